#!/usr/bin/env bash
# Builds the repository's Dockerfile for real and runs the image the way the Helm chart runs it.
# Opt-in (minutes of apt downloads and a full compile): CTest test image_build when configured
# with -DCURFEW_IMAGE_TEST=ON, or by hand, as root:
#
#   bash tests/helm/image_check.sh
#
# No registry image can be pulled here, so the base images come from Debian itself: debootstrap
# --variant=minbase bookworm, imported into a private buildah store as debian:bookworm and
# debian:bookworm-slim (the official images are minbase bookworm too). Then:
#   1. buildah bud builds the Dockerfile (both stages, every step as written);
#   2. the image's user, entrypoint and exposed ports are those the chart relies on;
#   3. as in a pod rendered by the chart (uid 65532, read-only root filesystem, the chart's
#      ConfigMap mounted read-only at /etc/curfew): the preStop hook's /bin/sleep (clusters before
#      1.30) runs, the classic sidecar's postStart wait (bash) returns once curfew is ready, curfew
#      accepts the rendered config, answers the probes and the scrape endpoint with 200, and exits 0
#      on SIGTERM after draining.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
tools=${CURFEW_TOOLS_DIR:-$repo/.tools}
store=$tools/image-check
work=$(mktemp -d "${TMPDIR:-/tmp}/curfew-image-check.XXXXXX")
say() { echo "image_check: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

((EUID == 0)) || die "run as root (debootstrap, buildah, chroot)"
missing=()
for tool in debootstrap buildah; do command -v $tool >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
bash "$repo/scripts/install-helm-tools.sh" >/dev/null

buildah() { command buildah --root "$store/storage" --runroot "$store/run" --storage-driver vfs "$@"; }
ctr=
cleanup() {
  [[ -n $ctr ]] && { buildah umount "$ctr" >/dev/null 2>&1 || true; buildah rm "$ctr" >/dev/null 2>&1 || true; }
  rm -rf "$work"
}
trap cleanup EXIT

# The Debian mirror this machine's apt uses (deb822 .sources or one-line .list entries; not the
# security archive): no mirror host is written in the repository.
debian_mirror() {
  {
    awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/*.sources 2>/dev/null
    awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
  } | grep -v -- '-security' | head -n 1
}

# 1. Base images from Debian (kept in the store between runs).
if ! buildah inspect --type image docker.io/library/debian:bookworm-slim >/dev/null 2>&1; then
  mirror=$(debian_mirror)
  [[ -n $mirror ]] || die "no Debian mirror in this machine's apt configuration (/etc/apt/sources.list*)"
  say "debootstrap --variant=minbase bookworm (from this machine's apt mirror)"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; die "debootstrap failed"; }
  base=$(buildah from scratch)
  buildah add "$base" "$work/rootfs" / >/dev/null
  buildah config --cmd /bin/bash "$base"
  buildah commit -q "$base" docker.io/library/debian:bookworm >/dev/null
  buildah tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
  buildah rm "$base" >/dev/null
  rm -rf "$work/rootfs"
fi

# 2. The Dockerfile, as written, with the repository as its context (.dockerignore applies).
say "buildah bud (the Dockerfile's two stages)"
buildah bud --isolation chroot --pull-never -t localhost/curfew:check "$repo" >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log"; die "the Dockerfile does not build"; }
grep -A20 'cat /out/runtime-packages' "$work/build.log" | grep -E '^[a-z0-9][a-z0-9.+-]+$' | tr '\n' ' ' |
  sed 's/^/image_check: runtime packages: /'; echo
config=$(buildah inspect --type image --format '{{.OCIv1.Config.User}} {{.OCIv1.Config.Entrypoint}}' localhost/curfew:check)
[[ $config == "65532:65532 [/usr/local/bin/curfew]" ]] || die "image user/entrypoint is '$config'"

# 3. Run it as the chart's pod does.
"$tools/bin/helm" template image-check "$repo/deploy/helm/curfew" --set ports.admin=19971 --set nativeSidecar=false \
  --set 'config.listeners[0].name=inbound' --set 'config.listeners[0].address=0.0.0.0:19972' \
  --set 'config.listeners[0].routes[0].name=default' --set 'config.listeners[0].routes[0].match.prefix=/' \
  --set 'config.listeners[0].routes[0].upstream=app' >"$work/rendered.yaml" 2>/dev/null
NODE_PATH=$tools/helm-test-node/node_modules node "$repo/tests/helm/check.js" extract-config \
  "$work/rendered.yaml" "$work/config" >/dev/null
mv "$work/config"/image-check-curfew-config*.yaml "$work/config/curfew.yaml"
# The classic sidecar's postStart wait, as rendered (a bash script).
NODE_PATH=$tools/helm-test-node/node_modules node -e '
  const YAML = require("yaml");
  const docs = YAML.parseAllDocuments(require("fs").readFileSync(process.argv[1], "utf8")).map((d) => d.toJS());
  const c = docs.find((o) => o && o.kind === "Deployment").spec.template.spec.containers.find((x) => x.name === "curfew");
  const cmd = c.lifecycle.postStart.exec.command;
  if (cmd[0] !== "/bin/bash" || cmd[1] !== "-c") throw new Error("unexpected postStart " + JSON.stringify(cmd));
  require("fs").writeFileSync(process.argv[2], cmd[2]);' "$work/rendered.yaml" "$work/config/wait.sh"
ctr=$(buildah from localhost/curfew:check)
root=$(buildah mount "$ctr")
cat >"$work/pod.sh" <<EOF
set -euo pipefail
mount --bind "$root" "$root" && mount -o remount,bind,ro "$root"
mount --bind "$work/config" "$root/etc/curfew" && mount -o remount,bind,ro "$root/etc/curfew"
if touch "$root/probe" 2>/dev/null; then echo "FAIL: the root filesystem is writable" >&2; exit 1; fi
as_pod=(chroot --userspec=65532:65532 "$root")
"\${as_pod[@]}" /bin/sleep 0.1 || { echo "FAIL: the preStop hook's /bin/sleep does not run" >&2; exit 1; }
"\${as_pod[@]}" /usr/local/bin/curfew --check-config /etc/curfew/curfew.yaml >/dev/null
# chroot execs curfew, so \$! is curfew itself.
"\${as_pod[@]}" /usr/local/bin/curfew --config /etc/curfew/curfew.yaml &
pid=\$!
trap 'kill -9 \$pid 2>/dev/null || true' EXIT
"\${as_pod[@]}" /bin/bash /etc/curfew/wait.sh || { echo "FAIL: the postStart wait fails in the image" >&2; exit 1; }
echo "image_check: the postStart wait (bash /dev/tcp) returned 0 once curfew was ready"
for path in healthz readyz metrics; do
  code=000
  for _ in \$(seq 50); do
    code=\$(node -e 'require("http").get(process.argv[1], (r) => console.log(r.statusCode)).on("error", () => console.log("000"))' "http://127.0.0.1:19971/\$path")
    [[ \$code == 200 ]] && break
    sleep 0.1
  done
  [[ \$code == 200 ]] || { echo "FAIL: GET /\$path answered \$code" >&2; kill -9 \$pid; exit 1; }
  echo "image_check: GET /\$path: 200"
done
kill -TERM \$pid
wait \$pid || { echo "FAIL: curfew exited \$? on SIGTERM" >&2; exit 1; }
EOF
unshare -m bash "$work/pod.sh"
echo "PASS: the Dockerfile builds; the image runs as the chart's pod (uid 65532, read-only root, rendered config, probes, SIGTERM)"
