# syntax=docker/dockerfile:1
# curfew's container image.
#
#   docker build -t registry.example.com/curfew:0.1.0 .
#
# The build stage runs the README's build: scripts/install-deps.sh, cmake --preset release, then
# the curfew target. The runtime stage is debian:bookworm-slim with only the Debian packages that
# provide the shared libraries curfew links (found with ldd + dpkg -S, so the list follows the
# build), runs as an unprivileged user and works with a read-only root filesystem. The Helm chart
# (deploy/helm/curfew) mounts the real configuration over /etc/curfew. tests/helm/image_check.sh
# builds this file with buildah and runs the image as the chart's pod does.

FROM debian:bookworm AS build
WORKDIR /src
# The dependencies first, so that a change to the sources reuses this layer. Node.js is only for
# the Helm chart tests, not for building.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN CURFEW_INSTALL_NODE=0 bash scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake --preset release >/dev/null \
 && cmake --build build/release --target curfew \
 && cmake --install build/release --prefix /out \
 && /out/bin/curfew --version \
 && /out/bin/curfew --check-config config/curfew.yaml >/dev/null
# The Debian packages holding the libraries curfew links (usrmerge: ldd may print /lib/... for a
# file dpkg knows as /usr/lib/..., or the other way round).
RUN for lib in $(ldd /out/bin/curfew | awk '$3 ~ /^\// {print $3}'); do \
      dpkg -S "$lib" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null || dpkg -S "${lib#/usr}" 2>/dev/null \
        || { echo "no Debian package provides $lib" >&2; exit 1; }; \
    done >/out/dpkg-owners \
 && cut -d: -f1 /out/dpkg-owners | sort -u >/out/runtime-packages \
 && cat /out/runtime-packages

FROM debian:bookworm-slim
COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages
COPY --from=build /out/bin/curfew /usr/local/bin/curfew
# A default configuration (the README demo's); the chart mounts its own over /etc/curfew.
COPY config/curfew.yaml /etc/curfew/curfew.yaml
# Non-root (the chart's default runAsUser/runAsGroup); curfew writes no files.
USER 65532:65532
# Listener (config/curfew.yaml) and admin (/metrics, /healthz, /readyz) ports.
EXPOSE 15001 9901
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/curfew"]
CMD ["--config", "/etc/curfew/curfew.yaml"]
