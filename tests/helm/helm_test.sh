#!/usr/bin/env bash
# Test driver for the curfew Helm chart (deploy/helm/curfew), run by CTest (tests/helm/CMakeLists.txt)
# with the real helm and kubectl that scripts/install-helm-tools.sh installs.
#
#   helm_test.sh CURFEW_BINARY CASE [ARGS...]
#
#   lint [VALUES]                      helm lint --strict, with the default values or VALUES
#   render VALUES STYLE CHANGE [OPTION...]
#                                      helm template; every object validated against its schema
#                                      (check.js validate); the pod checked (check.js pod); PDB,
#                                      NetworkPolicy, spread and HPA checked (check.js policies).
#                                      OPTIONs: monitoring (the monitors, alert rules and dashboard
#                                      too), restricted (Pod Security "restricted"), spread (the
#                                      default soft spread is there), kube=V (helm template
#                                      --kube-version V), set:K=V (--set K=V), expect:KIND (an
#                                      object of that kind is rendered), pod:--FLAG (a check.js
#                                      pod flag)
#   check-config VALUES                the curfew.yaml rendered into the ConfigMap passes
#                                      `curfew --check-config`
#   schema-sync                        values.schema.json allows exactly curfew's config keys
#   reject BAD_VALUES                  helm template refuses the file with the schema's message(s)
#                                      listed in its `# expect:` lines
#   refuse MESSAGE HELM_ARGS...        helm template with these arguments fails, saying MESSAGE
#   config-change                      rollout: any config change changes the pod template and
#                                      the hash-suffixed ConfigMap name, nothing else does;
#                                      reload: route changes do not, listener changes do, and the
#                                      ConfigMap keeps its name
#   probes                             curfew, run with the rendered config, answers the rendered
#                                      probes and scrape annotation; the classic sidecar's
#                                      postStart hook waits for it (and gives up when it never
#                                      comes); SIGTERM drains and exits 0
#   readme                             the worked examples in deploy/helm/README.md render and pass
#   package                            helm package makes the archive, which lints and renders
#   include STYLE                      the consumer chart (tests/helm/consumer) that includes
#                                      curfew's named templates renders a pod with both containers
#   mutate NAME                        breaks a copy of the chart as mutations.json says and runs
#                                      the check guarding that property: it must fail, saying why
#
# VALUES is a path relative to the repository, or "-" for the chart's defaults.
set -euo pipefail

curfew=${1:?usage: helm_test.sh CURFEW_BINARY CASE [ARGS...]}
case_name=${2:?usage: helm_test.sh CURFEW_BINARY CASE [ARGS...]}
shift 2

repo=$(cd "$(dirname "$0")/../.." && pwd)
tools=${CURFEW_TOOLS_DIR:-$repo/.tools}
helm=$tools/bin/helm
chart=${CURFEW_CHART:-$repo/deploy/helm/curfew}
check="node $repo/tests/helm/check.js"
export NODE_PATH=$tools/helm-test-node/node_modules

[[ -x $helm ]] || { echo "helm is not installed: run scripts/install-helm-tools.sh" >&2; exit 1; }
[[ -d $NODE_PATH ]] || { echo "$NODE_PATH is missing: run scripts/install-helm-tools.sh" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/curfew-helm-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
# Helm's own state stays inside the test.
export HELM_CACHE_HOME=$work/.helm/cache HELM_CONFIG_HOME=$work/.helm/config HELM_DATA_HOME=$work/.helm/data

pass() { echo "PASS: $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

values_args() {  # values_args VALUES: the -f argument for a values path, or none for "-"
  [[ $1 == - ]] || printf '%s\n' -f "$repo/$1"
}

render() {  # render CHART OUT [HELM_ARGS...]: helm template into OUT, failing loudly
  local chart_dir=$1 out=$2
  shift 2
  "$helm" template curfew-test "$chart_dir" --namespace shop "$@" >"$out" 2>"$work/render.err" || {
    cat "$work/render.err" >&2
    die "helm template $chart_dir $* failed"
  }
}

check_configs() {  # check_configs RENDERED: every rendered curfew.yaml passes curfew --check-config
  local rendered=$1 n=0
  [[ -x $curfew ]] || die "curfew binary $curfew is missing"
  while read -r file; do
    echo "--- curfew --check-config $(basename "$file")"
    "$curfew" --check-config "$file" || die "curfew --check-config rejects the config the chart rendered ($file):
$(cat "$file")"
    n=$((n + 1))
  done < <($check extract-config "$rendered" "$work/configs")
  ((n > 0)) || die "no curfew config found in the rendered chart"
  pass "$n rendered curfew config(s) pass curfew --check-config"
}

case $case_name in
lint)
  values=${1:--}
  mapfile -t args < <(values_args "$values")
  "$helm" lint --strict "$chart" "${args[@]}"
  pass "helm lint --strict ($values)"
  ;;

render)
  values=$1 style=$2 change=$3
  shift 3
  mapfile -t args < <(values_args "$values")
  expect=(--expect ConfigMap --expect Deployment --expect Service)
  pod_flags=() policy_flags=() monitoring= restricted=
  for option in "$@"; do
    case $option in
    monitoring) monitoring=1; expect+=(--expect ServiceMonitor --expect PodMonitor --expect PrometheusRule) ;;
    restricted) restricted=1 ;;
    spread) policy_flags+=(--expect-spread) ;;
    kube=*) args+=(--kube-version "${option#kube=}"); pod_flags+=(--kube-version "${option#kube=}") ;;
    set:*) args+=(--set "${option#set:}") ;;
    expect:*) expect+=(--expect "${option#expect:}") ;;
    pod:*) pod_flags+=("${option#pod:}") ;;
    *) die "unknown render option $option" ;;
    esac
  done
  render "$chart" "$work/out.yaml" "${args[@]}"
  $check validate "$work/out.yaml" "${expect[@]}"
  $check pod "$work/out.yaml" --style "$style" --config-change "$change" "${pod_flags[@]}"
  $check policies "$work/out.yaml" "${policy_flags[@]}"
  [[ -n $monitoring ]] && $check monitoring "$work/out.yaml"
  [[ -n $restricted ]] && $check restricted "$work/out.yaml"
  pass "helm template ($values $*): every object valid, $style sidecar wired as promised"
  ;;

check-config)
  values=$1
  mapfile -t args < <(values_args "$values")
  render "$chart" "$work/out.yaml" "${args[@]}"
  check_configs "$work/out.yaml"
  ;;

schema-sync)
  $check schema-sync "$chart/values.schema.json" "$repo/config/internal"
  ;;

reject)
  bad=$repo/$1
  mapfile -t expects < <(sed -n 's/^# expect: //p' "$bad")
  ((${#expects[@]})) || die "$1 has no '# expect:' line"
  if "$helm" template curfew-test "$chart" -f "$bad" >"$work/out.yaml" 2>"$work/err"; then
    die "helm template accepted $1"
  fi
  cat "$work/err"
  grep -qF "values don't meet the specifications of the schema" "$work/err" ||
    die "$1 was refused, but not by values.schema.json"
  for e in "${expects[@]}"; do
    grep -qF -- "$e" "$work/err" || die "the error does not say: $e"
  done
  pass "values.schema.json rejects $1"
  ;;

refuse)
  message=$1
  shift
  if "$helm" template curfew-test "$chart" "$@" >"$work/out.yaml" 2>"$work/err"; then
    die "helm template $* rendered, expected it to refuse: $message"
  fi
  cat "$work/err"
  grep -qF -- "$message" "$work/err" || die "the error does not say: $message"
  pass "helm template $* refused: $message"
  ;;

config-change)
  annotations() {  # annotations OUT: the Deployment's pod template annotations, one per line
    node -e '
      const YAML = require("yaml");
      const docs = YAML.parseAllDocuments(require("fs").readFileSync(process.argv[1], "utf8"));
      const d = docs.map((x) => x.toJS()).find((o) => o && o.kind === "Deployment");
      const a = d.spec.template.metadata.annotations || {};
      for (const k of Object.keys(a).sort()) console.log(`${k}=${a[k]}`);' "$1"
  }
  same() { [[ "$(annotations "$1")" == "$(annotations "$2")" ]]; }
  cm() {  # cm OUT: the name of the ConfigMap holding curfew.yaml, and the one the pod mounts
    node -e '
      const YAML = require("yaml");
      const docs = YAML.parseAllDocuments(require("fs").readFileSync(process.argv[1], "utf8")).map((x) => x.toJS());
      const c = docs.find((o) => o && o.kind === "ConfigMap" && o.data && o.data["curfew.yaml"]);
      const d = docs.find((o) => o && o.kind === "Deployment");
      const v = d.spec.template.spec.volumes.find((x) => x.name === "curfew-config");
      console.log(`${c.metadata.name} ${v.configMap.name}`);' "$1"
  }
  route='config.listeners[0].routes[0]'
  base=(--set "config.listeners[0].name=inbound" --set "config.listeners[0].address=0.0.0.0:15001"
        --set "$route.name=default" --set "$route.match.prefix=/" --set "$route.upstream=app")
  for change in rollout reload; do
    render "$chart" "$work/$change-a.yaml" --set configChange=$change "${base[@]}" --set "$route.timeout=1s"
    render "$chart" "$work/$change-b.yaml" --set configChange=$change "${base[@]}" --set "$route.timeout=2s"
    render "$chart" "$work/$change-c.yaml" --set configChange=$change "${base[@]}" --set "$route.timeout=1s" \
      --set "config.listeners[0].address=0.0.0.0:15009"
    render "$chart" "$work/$change-d.yaml" --set configChange=$change "${base[@]}" --set "$route.timeout=1s"
    # Values that are not curfew's config: the app, curfew's log level and image, the PDB.
    render "$chart" "$work/$change-e.yaml" --set configChange=$change "${base[@]}" --set "$route.timeout=1s" \
      --set app.replicaCount=7 --set app.image.tag=9.9.9 --set logLevel=debug --set image.tag=0.2.0 --set pdb.maxUnavailable=2
    same "$work/$change-a.yaml" "$work/$change-d.yaml" || die "$change: the same values gave different pod annotations"
    for x in a b c d e; do
      read -r made mounted < <(cm "$work/$change-$x.yaml")
      [[ $made == "$mounted" ]] || die "$change: the pod mounts ConfigMap $mounted, the chart renders $made"
      eval "cm_$x=\$made"
    done
    echo "$change ConfigMap names: $cm_a (a), $cm_b (timeout changed), $cm_c (listener changed), $cm_d (a again), $cm_e (other values changed)"
    [[ $cm_a == "$cm_d" ]] || die "$change: the same config gave ConfigMap names $cm_a and $cm_d"
    [[ $cm_a == "$cm_e" ]] || die "$change: the ConfigMap name changed from $cm_a to $cm_e although the config did not"
    if [[ $change == rollout ]]; then
      [[ $cm_a =~ -[0-9a-f]{10}$ ]] || die "rollout: the ConfigMap name $cm_a carries no hash of the config"
      [[ $cm_a != "$cm_b" && $cm_a != "$cm_c" ]] ||
        die "rollout: a config change kept the ConfigMap name ($cm_a), so running pods would hot-reload it"
    else
      [[ ! $cm_a =~ -[0-9a-f]{10}$ && $cm_b == "$cm_a" && $cm_c == "$cm_a" ]] ||
        die "reload: the ConfigMap name changed ($cm_a, $cm_b, $cm_c): running pods must see the update and reload it"
    fi
    if [[ $change == rollout ]]; then
      same "$work/$change-a.yaml" "$work/$change-b.yaml" && die "rollout: a route timeout change leaves the pod template alone"
    else
      same "$work/$change-a.yaml" "$work/$change-b.yaml" || die "reload: a route timeout change rolls the pods instead of reloading"
    fi
    same "$work/$change-a.yaml" "$work/$change-c.yaml" && die "$change: a listener change leaves the pod template alone (curfew cannot reload it)"
    annotations "$work/$change-a.yaml"
  done
  pass "configChange rollout rolls on any config change, with a ConfigMap named after the config; reload rolls only for listener changes and keeps one ConfigMap"
  ;;

probes)
  # The chart's probes and scrape annotation, against the real curfew running the rendered config:
  # every httpGet the pod spec declares answers 200 on loopback (the admin server binds every
  # address, "*", so the kubelet reaches it on the pod IP, IPv4 or IPv6), /metrics serves
  # curfew's metrics, SIGTERM drains and exits 0.
  [[ -x $curfew ]] || die "curfew binary $curfew is missing"
  read -r admin listen < <(node -e '
    const net = require("net");
    const free = () => new Promise((ok) => { const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); }); });
    (async () => { const a = await free(); let b = await free(); while (b === a) b = await free(); console.log(a, b); })();')
  l='config.listeners[0]'
  # Classic sidecar, so that the pod has the postStart wait too.
  probe_values=(--set nativeSidecar=false --set ports.admin="$admin" --set "$l.name=inbound"
    --set "$l.address=0.0.0.0:$listen" --set "$l.routes[0].name=default"
    --set "$l.routes[0].match.prefix=/" --set "$l.routes[0].upstream=app")
  render "$chart" "$work/out.yaml" "${probe_values[@]}"
  # The same pod with a 2 s startup budget: its wait gives up after 2 s.
  render "$chart" "$work/short.yaml" "${probe_values[@]}" --set probes.startup.periodSeconds=1 \
    --set probes.startup.failureThreshold=2
  config=$($check extract-config "$work/out.yaml" "$work/configs")
  post_start() {  # post_start OUT SCRIPT: writes curfew's postStart command, one argument a line
    node -e '
      const YAML = require("yaml");
      const docs = YAML.parseAllDocuments(require("fs").readFileSync(process.argv[1], "utf8")).map((d) => d.toJS());
      const c = docs.find((o) => o && o.kind === "Deployment").spec.template.spec.containers.find((x) => x.name === "curfew");
      const cmd = c.lifecycle && c.lifecycle.postStart && c.lifecycle.postStart.exec && c.lifecycle.postStart.exec.command;
      if (!cmd) { console.error("FAIL: the classic sidecar has no postStart exec hook"); process.exit(1); }
      require("fs").writeFileSync(process.argv[2], JSON.stringify(cmd));' "$1" "$2"
  }
  run_hook() {  # run_hook CMD_JSON: runs the hook's command as the kubelet would (exec, no shell around it)
    node -e '
      const cmd = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const r = require("child_process").spawnSync(cmd[0], cmd.slice(1), {stdio: "inherit"});
      process.exit(r.status === null ? 99 : r.status);' "$1"
  }
  post_start "$work/out.yaml" "$work/hook.json"
  post_start "$work/short.yaml" "$work/hook-short.json"
  # Nothing listens yet: the short hook must give up, non-zero, saying so.
  start=$SECONDS
  if run_hook "$work/hook-short.json" 2>"$work/hook.err"; then die "the postStart wait succeeded with no curfew running"; fi
  cat "$work/hook.err"
  grep -q "did not answer 200" "$work/hook.err" || die "the postStart wait failed without saying why"
  ((SECONDS - start <= 6)) || die "the postStart wait took $((SECONDS - start)) s to give up on a 2 s budget"
  echo "postStart wait with nothing listening: gave up after $((SECONDS - start)) s"
  # The real hook starts before curfew, as the kubelet runs it: it must still be waiting a second
  # later, then succeed once curfew is ready.
  run_hook "$work/hook.json" >"$work/hook.out" 2>&1 &
  hook=$!
  sleep 1
  kill -0 $hook 2>/dev/null || { cat "$work/hook.out"; die "the postStart hook returned before curfew was started"; }
  mapfile -t gets < <(node -e '
    const YAML = require("yaml");
    const docs = YAML.parseAllDocuments(require("fs").readFileSync(process.argv[1], "utf8")).map((d) => d.toJS());
    const pod = docs.find((o) => o && o.kind === "Deployment").spec.template;
    const c = [...(pod.spec.initContainers || []), ...pod.spec.containers].find((x) => x.name === "curfew");
    for (const p of ["startupProbe", "livenessProbe", "readinessProbe"]) console.log(`${c[p].httpGet.port}${c[p].httpGet.path}`);
    const a = pod.metadata.annotations;
    console.log(`${a["prometheus.io/port"]}${a["prometheus.io/path"]}`);' "$work/out.yaml")
  ((${#gets[@]} == 4)) || die "could not read the probes from the rendered pod"
  "$curfew" --config "$config" >"$work/curfew.log" 2>&1 &
  pid=$!
  trap 'kill -9 $pid $hook 2>/dev/null || true; rm -rf "$work"' EXIT
  hook_status=0
  wait $hook || hook_status=$?
  cat "$work/hook.out"
  ((hook_status == 0)) || { cat "$work/curfew.log"; die "the postStart wait exited $hook_status although curfew came up"; }
  echo "postStart wait: returned 0 once curfew answered /readyz"
  # Over IPv6 too where the machine has ::1 (the kubelet probes the pod IP, IPv6 on an IPv6 or
  # dual-stack cluster); /proc/net/if_inet6 lists ::1 as 31 zeros and a 1.
  urls=()
  for get in "${gets[@]}"; do urls+=("http://127.0.0.1:$get"); done
  if grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null; then
    for get in "${gets[@]}"; do urls+=("http://[::1]:$get"); done
  fi
  for url in "${urls[@]}"; do
    code=000
    for _ in $(seq 100); do
      code=$(node -e '
        require("http").get(process.argv[1], (r) => {
          const out = require("fs").createWriteStream(process.argv[2]);
          r.pipe(out).on("finish", () => console.log(r.statusCode));
        }).on("error", () => console.log("000"));' "$url" "$work/body")
      [[ $code != 000 && $code != 503 ]] && break  # 503: not ready yet
      kill -0 $pid 2>/dev/null || { cat "$work/curfew.log"; die "curfew exited"; }
      sleep 0.1
    done
    [[ $code == 200 ]] || { cat "$work/curfew.log"; die "GET $url answered $code, not 200"; }
    echo "GET $url: 200"
  done
  grep -q '^curfew_build_info' "$work/body" || die "the scrape annotation's endpoint serves no curfew_build_info"
  kill -TERM $pid
  status=0
  wait $pid || status=$?
  cat "$work/curfew.log"
  ((status == 0)) || die "curfew exited $status after SIGTERM"
  grep -q "drain" "$work/curfew.log" || die "curfew did not log its drain"
  pass "the rendered probes and scrape endpoint answer 200 from curfew running the rendered config; the postStart hook waits for it; SIGTERM drains"
  ;;

readme)
  # The worked examples of deploy/helm/README.md (§2 classic, §3 native), as written there.
  node -e '
    const fs = require("fs");
    const text = fs.readFileSync(process.argv[1], "utf8");
    for (const name of ["orders-values.yaml", "orders-native.yaml"]) {
      const at = text.indexOf("`" + name + "`");
      const m = at < 0 ? null : /```yaml\n([\s\S]*?)```/.exec(text.slice(at));
      if (!m) { console.error(`FAIL: no yaml block after ${name} in ${process.argv[1]}`); process.exit(1); }
      fs.writeFileSync(`${process.argv[2]}/${name}`, m[1]);
    }' "$repo/deploy/helm/README.md" "$work"
  render "$chart" "$work/classic.yaml" -f "$work/orders-values.yaml"
  $check validate "$work/classic.yaml" --expect Deployment --expect Service --expect ConfigMap
  $check pod "$work/classic.yaml" --style classic --config-change rollout
  check_configs "$work/classic.yaml"
  render "$chart" "$work/native.yaml" -f "$work/orders-values.yaml" -f "$work/orders-native.yaml"
  $check validate "$work/native.yaml" --expect Deployment --expect Service --expect ConfigMap
  $check pod "$work/native.yaml" --style native --config-change rollout
  rm -rf "$work/configs"
  check_configs "$work/native.yaml"
  pass "the README's worked examples (classic and native sidecar) render, validate and pass --check-config"
  ;;

package)
  "$helm" package "$chart" --destination "$work/dist"
  version=$(sed -n 's/^version: *//p' "$chart/Chart.yaml")
  app_version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart/Chart.yaml")
  archive=$work/dist/curfew-$version.tgz
  [[ -s $archive ]] || die "helm package did not produce $archive"
  tar -tzf "$archive" >"$work/list"
  for f in Chart.yaml values.yaml values.schema.json templates/_sidecar.tpl templates/deployment.yaml \
           templates/configmap.yaml files/prometheus-rules.yaml files/grafana-dashboard.json; do
    grep -qx "curfew/$f" "$work/list" || die "the archive lacks curfew/$f"
  done
  # The chart's files/ link to deploy/prometheus: the archive carries their contents.
  tar -xzf "$archive" -C "$work" curfew/files
  cmp "$work/curfew/files/prometheus-rules.yaml" "$repo/deploy/prometheus/curfew-alerts.yaml" ||
    die "the archive's alert rules differ from deploy/prometheus/curfew-alerts.yaml"
  cmp "$work/curfew/files/grafana-dashboard.json" "$repo/deploy/prometheus/curfew-dashboard.json" ||
    die "the archive's dashboard differs from deploy/prometheus/curfew-dashboard.json"
  "$helm" lint --strict "$archive"
  render "$archive" "$work/out.yaml"
  $check validate "$work/out.yaml" --expect Deployment
  tag=$("$helm" show values "$archive" | sed -n 's/^  tag: "\(.*\)".*/\1/p' | head -1)
  [[ $tag == "$app_version" ]] || die "values image.tag $tag differs from the chart's appVersion $app_version"
  pass "helm package made $(basename "$archive") ($(wc -l <"$work/list") files), which lints and renders"
  ;;

include)
  style=$1
  # The consumer chart, laid out as in the repository, so its file:// dependency resolves.
  mkdir -p "$work/repo/tests/helm" "$work/repo/deploy/helm"
  cp -r "$repo/tests/helm/consumer" "$work/repo/tests/helm/"
  ln -s "$chart" "$work/repo/deploy/helm/curfew"
  consumer=$work/repo/tests/helm/consumer
  "$helm" dependency update "$consumer"
  native=false
  [[ $style == native ]] && native=true
  "$helm" lint --strict "$consumer" --set curfew.nativeSidecar=$native
  render "$consumer" "$work/out.yaml" --set curfew.nativeSidecar=$native
  $check validate "$work/out.yaml" --expect Deployment --expect ConfigMap --expect PodMonitor
  $check pod "$work/out.yaml" --style "$style" --config-change rollout
  $check monitoring "$work/out.yaml"
  check_configs "$work/out.yaml"
  node -e '
    const YAML = require("yaml");
    const docs = YAML.parseAllDocuments(require("fs").readFileSync(process.argv[1], "utf8")).map((d) => d.toJS());
    const d = docs.find((o) => o && o.kind === "Deployment" && o.metadata.name.endsWith("-orders"));
    if (!d) { console.error("FAIL: the consumer chart rendered no orders Deployment"); process.exit(1); }
    const s = d.spec.template.spec;
    const names = [...(s.initContainers || []).map((c) => `init:${c.name}`), ...s.containers.map((c) => c.name)];
    console.log(`pod containers: ${names.join(", ")}`);
    const want = process.argv[2] === "native" ? "init:curfew,orders" : "curfew,orders";
    if (names.join(",") !== want) { console.error(`FAIL: expected ${want}`); process.exit(1); }
    if (docs.some((o) => o && o.kind === "Deployment" && o !== d)) {
      console.error("FAIL: the curfew dependency rendered a Deployment of its own (app.enabled: false)"); process.exit(1);
    }' "$work/out.yaml" "$style"
  pass "the consumer chart includes curfew's named templates: its pod runs orders and curfew ($style)"
  ;;

mutate)
  # Breaks a copy of the chart as mutations.json says, then runs the check that guards the
  # broken property against it: that check must fail, and say why.
  name=$1
  # -L: the chart's files/ are links to deploy/prometheus; mutate copies, never the originals.
  cp -rL "$chart" "$work/chart"
  mapfile -t spec < <(node "$repo/tests/helm/mutate.js" "$repo/tests/helm/mutations.json" "$name" "$work/chart")
  ((${#spec[@]} >= 2)) || die "mutation $name could not be applied"
  expect=${spec[0]}
  run=("${spec[@]:1}")
  if CURFEW_CHART=$work/chart bash "$0" "$curfew" "${run[@]}" >"$work/mutant.out" 2>&1; then
    cat "$work/mutant.out"
    die "mutation $name went unnoticed: '${run[*]}' passes on the broken chart"
  fi
  grep -qF -- "$expect" "$work/mutant.out" || {
    cat "$work/mutant.out"
    die "mutation $name: '${run[*]}' failed, but without saying: $expect"
  }
  grep -F -- "$expect" "$work/mutant.out" | head -3
  pass "mutation $name is caught by '${run[*]}'"
  ;;

*)
  die "unknown case $case_name"
  ;;
esac
