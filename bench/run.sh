#!/usr/bin/env bash
# bench/run.sh: curfew against a direct call and against three other HTTP/2 proxies carrying gRPC
# (nghttpx, HAProxy and nginx's grpc_pass), the same load for all.
#
#   bash bench/run.sh            # installs the peers and h2load if missing, builds, runs, prints
#   TARGETS="nghttpx curfew" bash bench/run.sh                       # only these targets
#
# Environment (all optional): DURATION=5 WARMUP=1 (seconds per case), OPEN_RATE=2000 (calls/s of
# the open-loop case), IDLE_STREAMS=10000, PIN=1 (0: no taskset), BUILD_DIR=build/release,
# H2LOAD=1 (0: skip the h2load second opinion), SKIP_BUILD=0, CURFEW_BIN (another curfew binary,
# e.g. for a before/after comparison), KEEP=1 (keep the temp folder with the processes' logs),
# TARGETS (the targets to run, space-separated, in the order given; default: all of them, i.e.
# "direct nghttpx haproxy nginx curfew curfew-bp"), ATTACKS (the attacks of the last section,
# space-separated; "" skips it; default: every attack of curfew-h2-attack), ATTACK_SECONDS=5,
# ATTACK_RECONNECT=0 (1: the attacker reconnects each time it is shed), CASES=1 (0: only the
# attacks section), ENDPOINTS=1 (the endpoint-set section at the end; 0 skips it; "only": nothing
# else, i.e. CASES=0 ATTACKS= TARGETS=curfew H2LOAD=0), KILL_POD_MS=5 (ms each pod takes per call
# in the endpoint-set kill scenario), STAGES (1 when perf is installed and this runs as root: the
# stage-by-stage budget of one call at c=1 from a perf trace of socket system calls, bench/stages.py;
# 0 skips it), STAGES_SECONDS=2, GOLOAD=1 (0: no grpc-go client cases; bench/goload, built offline
# from Debian's golang-go and golang-google-grpc-dev, installed when missing).
#
#   ENDPOINTS=only bash bench/run.sh                                 # only the endpoint sets
#
# Targets:
#   direct     the load generator calls the echo server itself (no proxy)
#   nghttpx    nghttp2's proxy (Debian nghttp2-proxy), cleartext HTTP/2 both ways, --workers=1
#   haproxy    HAProxy (Debian haproxy, 2.6), `mode http`, HTTP/2 both ways, nbthread 1
#              (bench/haproxy.cfg)
#   nginx      nginx's grpc_pass, one worker process (bench/nginx.conf)
#   curfew     curfew with `workers: 1` (its own HTTP/2 connections on nghttp2)
#   curfew-bp  the same curfew with busy_poll: 0.05ms; unary cases only; BUSY_POLL_TARGET=0 leaves
#              it out of the default list (the default with CURFEW_BIN)
# The peers run as their packages ship them, only configured for this benchmark: loopback,
# one core's worth of threads, stream limits and timeouts large enough for every case.
# Cases a target cannot serve (fan-out: a curfew route feature) show as "n/a" with the reason.
#
# Pinning (PIN=1, the default; the machine has 2 cores): the load generator and the upstream echo
# server share CPU 0; the proxy under test (curfew with `workers: 1`, nginx with one worker
# process, nghttpx with one worker, HAProxy with one thread) gets CPU 1 to itself. Every case
# therefore gives the client side the same CPU and each proxy exactly one core; "direct" runs with
# CPU 1 idle. All the proxies are started together and sit idle while another one is measured.
#
# Endpoint sets (issue 18; ENDPOINTS): one upstream of three "pods", bench_echo_server on
# 127.0.0.2, 127.0.0.3 and 127.0.0.4 (one port, one process each, CPU 0 with the load generator),
# listed as one endpoint string "ipv4:127.0.0.2:P,127.0.0.3:P,127.0.0.4:P": the three addresses
# of one target, as a DNS name with three A records would give, without a DNS server (the tests in
# tests/dns resolve a real name with dnsmasq). curfew `workers: 1` on CPU 1; every case on fresh
# processes. Two scenarios:
#   slow pod  127.0.0.4 answers every call 20 ms late (--delay-ms 20); unary c=16 for DURATION s
#             with `balancer: round_robin`, then `balancer: peak_ewma`: p50/p99 and each pod's
#             share of the calls it served (its calls=N on exit, warm-up included). Targets: the
#             slow pod under 10% of the calls with peak-EWMA, and p99 at most half of round
#             robin's.
#   kill      unary c=64 (peak_ewma, outlier_detection defaults: 5 failures in a row eject),
#             every pod taking KILL_POD_MS=5 ms per call (a service at work: calls are in flight
#             on the pod when it dies; an echo that answers in microseconds seldom has any);
#             halfway through the window the pod on 127.0.0.3 gets SIGKILL; the failed calls, and
#             when the admin's /upstreams first lists it ejected, without a retry policy and with
#             `retry: {attempts: 2, per_try_timeout: 1s, budget_ratio: 1}`. Target: with the
#             retry policy, no caller sees a failure.
#
# Everything listens on loopback only (127.0.0.1, and 127.0.0.2-4 for the pods); every case is
# bounded in time (the load generator stops itself); every process started here is stopped by its
# PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ENDPOINTS=${ENDPOINTS:-1}
if [[ $ENDPOINTS == only ]]; then
  CASES=0 ATTACKS="" TARGETS=curfew H2LOAD=0
fi
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
OPEN_RATE=${OPEN_RATE:-2000}
IDLE_STREAMS=${IDLE_STREAMS:-10000}
PIN=${PIN:-1}
BUILD_DIR=${BUILD_DIR:-build/release}
H2LOAD=${H2LOAD:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP=${KEEP:-0}
# curfew-bp needs a curfew that knows busy_poll: off by default for another CURFEW_BIN.
if [[ -n ${CURFEW_BIN:-} ]]; then BUSY_POLL_TARGET=${BUSY_POLL_TARGET:-0}; else BUSY_POLL_TARGET=${BUSY_POLL_TARGET:-1}; fi
DEFAULT_TARGETS="direct nghttpx haproxy nginx curfew"
if [[ $BUSY_POLL_TARGET == 1 ]]; then DEFAULT_TARGETS+=" curfew-bp"; fi
read -r -a SELECTED <<<"${TARGETS:-$DEFAULT_TARGETS}"
for t in "${SELECTED[@]}"; do
  case $t in
    direct | nghttpx | haproxy | nginx | curfew | curfew-bp) ;;
    *) echo "bench: unknown target \"$t\" in TARGETS (known: direct nghttpx haproxy nginx curfew curfew-bp)"; exit 2 ;;
  esac
done
selected() { [[ " ${SELECTED[*]} " == *" $1 "* ]]; }
# The targets of each kind of case, in TARGETS order. curfew-bp runs the unary cases only.
UNARY_TARGETS=("${SELECTED[@]}")

# ---- dependencies and build ---------------------------------------------------------------------
missing=()
if selected nginx; then command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx); fi
if selected nghttpx; then command -v nghttpx >/dev/null 2>&1 || missing+=(nghttp2-proxy); fi
if selected haproxy; then command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy); fi
if [[ $H2LOAD == 1 ]]; then command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client); fi
[[ -x /usr/bin/python3 ]] || missing+=(python3)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [[ ${STAGES:-1} != 0 && $(id -u) == 0 ]]; then command -v perf >/dev/null 2>&1 || missing+=(linux-perf); fi
GOLOAD=${GOLOAD:-1}
if [[ $GOLOAD == 1 ]]; then
  command -v go >/dev/null 2>&1 || missing+=(golang-go)
  [[ -d /usr/share/gocode/src/google.golang.org/grpc ]] || missing+=(golang-google-grpc-dev)
fi
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
NGHTTPX=$(command -v nghttpx || echo /usr/sbin/nghttpx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
PY=/usr/bin/python3

if [[ $SKIP_BUILD != 1 ]]; then
  if [[ $BUILD_DIR == build/release ]]; then
    cmake --preset release >/dev/null
  else
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-16 >/dev/null
  fi
  echo "bench: building in $BUILD_DIR"
  cmake --build "$BUILD_DIR" --target curfew bench_loadgen bench_echo_server curfew-h2-attack >"$BUILD_DIR/bench-build.log" 2>&1 || {
    tail -n 40 "$BUILD_DIR/bench-build.log"; echo "bench: BUILD FAILED"; exit 1; }
fi
# The grpc-go client (bench/goload): offline, from Debian's Go packages (GOPATH mode).
GOLOADGEN=$ROOT/$BUILD_DIR/bench/bench_goload
if [[ $GOLOAD == 1 ]]; then
  mkdir -p "$BUILD_DIR/bench"
  (cd bench/goload && GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOCACHE="$ROOT/$BUILD_DIR/go-cache" \
     go build -o "$GOLOADGEN" .) >"$BUILD_DIR/goload-build.log" 2>&1 || {
    tail -n 20 "$BUILD_DIR/goload-build.log"; echo "bench: bench_goload BUILD FAILED"; exit 1; }
fi
CURFEW=${CURFEW_BIN:-$ROOT/$BUILD_DIR/app/curfew}
LOADGEN=$ROOT/$BUILD_DIR/bench/bench_loadgen
ATTACKER=$ROOT/$BUILD_DIR/tests/attack/curfew-h2-attack
ATTACKS=${ATTACKS-rapid_reset ping_flood settings_flood window_update_flood empty_data_flood closed_stream_flood continuation_flood hpack_bloat idle_streams headers_stall slowloris}
ATTACK_SECONDS=${ATTACK_SECONDS:-5}
ATTACK_RECONNECT=${ATTACK_RECONNECT:-0}
CASES=${CASES:-1}
STAGES_SECONDS=${STAGES_SECONDS:-2}
if [[ -z ${STAGES:-} ]]; then
  if command -v perf >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then STAGES=1; else STAGES=0; fi
fi
ECHO=$ROOT/$BUILD_DIR/bench/bench_echo_server

# ---- processes ----------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/curfew-bench.XXXXXX)
STARTED=()  # every process running now that this script started (children of proxies too)
# Stops everything in STARTED by PID: TERM, up to 5 s, then KILL.
stop_all() {
  local pid
  for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${STARTED[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  STARTED=()
}
cleanup() {
  stop_all
  if [[ $KEEP == 1 ]]; then echo "bench: logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [[ $PIN == 1 ]]; then
  PIN_LOAD=(taskset -c 0)
  PIN_PROXY=(taskset -c 1)
else
  PIN_LOAD=()
  PIN_PROXY=()
fi

read -r P_ECHO P_A P_B P_C P_CURFEW P_NGINX P_ADMIN P_CURFEW_BP P_ADMIN_BP \
  P_NGHTTPX P_HAPROXY < <("$PY" - <<'EOF'
import socket
socks = []
for _ in range(11):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)

wait_port() {  # wait_port PORT WHAT [HOST=127.0.0.1]; bounded: 10 s
  local host=${3:-127.0.0.1}
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: nothing listens on $host:$1 ($2)"; exit 1
}

ulimit -n 65536 2>/dev/null || true

# The child processes of PID (nginx's worker, nghttpx's worker process), waiting up to 5 s for
# the first one to appear: the listening socket is open before the workers are forked.
children_of() {
  local kids=""
  for _ in $(seq 1 50); do
    kids=$(pgrep -P "$1" || true)
    [[ -n $kids ]] && break
    sleep 0.1
  done
  echo $kids
}

# curfew's config: curfew_config ADMIN_PORT PORT [EXTRA_TOP_LEVEL_LINE].
curfew_config() {
  cat <<EOF
admin: {address: 127.0.0.1:$1}
workers: 1
listeners:
  - name: bench
    address: 127.0.0.1:$2
    default_timeout: 60s
    routes:
      # 20% case: no deadline from the caller; this route's timeout cuts the slow calls.
      - {name: slow, match: {method: /bench.Echo/Slow}, upstream: echo, timeout: 10ms}
      - name: fan
        match: {service: bench.Fan}
        timeout: 60s
        fanout: {mode: all, upstreams: [a, b, c], merge: concat}
      - {name: echo, match: {prefix: /}, upstream: echo, timeout: 60s}
upstreams:
  - {name: echo, endpoints: [127.0.0.1:$P_ECHO]}
  - {name: a, endpoints: [127.0.0.1:$P_A]}
  - {name: b, endpoints: [127.0.0.1:$P_B]}
  - {name: c, endpoints: [127.0.0.1:$P_C]}
${3:-}
EOF
}
curfew_config "$P_ADMIN" "$P_CURFEW" >"$WORK/curfew.yaml"
# The same config with busy polling (a worker polls 50 µs after each event instead of sleeping).
curfew_config "$P_ADMIN_BP" "$P_CURFEW_BP" "busy_poll: 0.05ms" >"$WORK/curfew-bp.yaml"
# The targets of the other cases: curfew-bp runs the unary cases only; PROXIES: all but direct.
STREAM_TARGETS=()
PROXIES=()
for t in "${SELECTED[@]}"; do
  [[ $t == curfew-bp ]] && continue
  STREAM_TARGETS+=("$t")
  [[ $t == direct ]] || PROXIES+=("$t")
done

start_all() {
  "${PIN_LOAD[@]}" "$ECHO" --port "$P_ECHO" --port "$P_A" --port "$P_B" --port "$P_C" --slow-ms 1000 \
    >"$WORK/echo.log" 2>&1 &
  ECHO_PID=$!
  STARTED+=("$ECHO_PID")
  wait_port "$P_ECHO" echo

  if selected curfew; then
    "${PIN_PROXY[@]}" "$CURFEW" --config "$WORK/curfew.yaml" --log-level warning >"$WORK/curfew.log" 2>&1 &
    CURFEW_PID=$!
    STARTED+=("$CURFEW_PID")
    wait_port "$P_CURFEW" curfew
  fi

  # Target "curfew-bp": same core as the other proxies; idle while others run.
  if selected curfew-bp; then
    "${PIN_PROXY[@]}" "$CURFEW" --config "$WORK/curfew-bp.yaml" --log-level warning >"$WORK/curfew-bp.log" 2>&1 &
    CURFEW_BP_PID=$!
    STARTED+=("$CURFEW_BP_PID")
    wait_port "$P_CURFEW_BP" curfew-bp
  fi

  if selected nginx; then
    mkdir -p "$WORK/nginx"
    sed -e "s|@PREFIX@|$WORK/nginx|g" -e "s|@PORT@|$P_NGINX|g" -e "s|@UPSTREAM_PORT@|$P_ECHO|g" \
      bench/nginx.conf >"$WORK/nginx/nginx.conf"
    "${PIN_PROXY[@]}" "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" \
      >"$WORK/nginx/stdout.log" 2>&1 &
    NGINX_PID=$!
    STARTED+=("$NGINX_PID")
    wait_port "$P_NGINX" nginx
    # shellcheck disable=SC2207  # PIDs: one word each
    NGINX_PIDS=("$NGINX_PID" $(children_of "$NGINX_PID"))
    STARTED+=("${NGINX_PIDS[@]:1}")
  fi

  # nghttpx: a main process and one worker process (--workers=1: one worker thread). Cleartext
  # HTTP/2 in (no-tls) and out (proto=h2). --conf=/dev/null: not /etc/nghttpx/nghttpx.conf; no
  # access log unless asked for; streams without timeouts of their own (the idle case holds them;
  # every case is bounded here); no Via / X-Forwarded-Proto / Server rewriting, which only add
  # header bytes; 1,000 streams per caller connection, as nginx.
  if selected nghttpx; then
    mkdir -p "$WORK/nghttpx"
    "${PIN_PROXY[@]}" "$NGHTTPX" --conf=/dev/null \
      "--frontend=127.0.0.1,$P_NGHTTPX;no-tls" "--backend=127.0.0.1,$P_ECHO;;proto=h2" --workers=1 \
      --pid-file="$WORK/nghttpx/nghttpx.pid" --errorlog-file="$WORK/nghttpx/error.log" --log-level=WARN \
      --frontend-http2-max-concurrent-streams=1000 \
      --frontend-http2-read-timeout=300s --stream-read-timeout=0 --stream-write-timeout=0 \
      --backend-read-timeout=300s --backend-write-timeout=300s \
      --no-via --no-add-x-forwarded-proto --no-server-rewrite \
      >"$WORK/nghttpx/stdout.log" 2>&1 &
    NGHTTPX_PID=$!
    STARTED+=("$NGHTTPX_PID")
    wait_port "$P_NGHTTPX" nghttpx
    # shellcheck disable=SC2207  # PIDs: one word each
    NGHTTPX_PIDS=("$NGHTTPX_PID" $(children_of "$NGHTTPX_PID"))
    STARTED+=("${NGHTTPX_PIDS[@]:1}")
  fi

  # HAProxy in the foreground (-db): one process, one thread (bench/haproxy.cfg).
  if selected haproxy; then
    mkdir -p "$WORK/haproxy"
    sed -e "s|@PREFIX@|$WORK/haproxy|g" -e "s|@PORT@|$P_HAPROXY|g" -e "s|@UPSTREAM_PORT@|$P_ECHO|g" \
      bench/haproxy.cfg >"$WORK/haproxy/haproxy.cfg"
    "${PIN_PROXY[@]}" "$HAPROXY" -db -f "$WORK/haproxy/haproxy.cfg" >"$WORK/haproxy/stdout.log" 2>&1 &
    HAPROXY_PID=$!
    STARTED+=("$HAPROXY_PID")
    wait_port "$P_HAPROXY" haproxy
  fi
}

# The processes of a target (what the load generator's --pid measures).
pids_of() {
  case $1 in
    direct) ;;
    curfew) echo "$CURFEW_PID" ;;
    curfew-bp) echo "$CURFEW_BP_PID" ;;
    nginx) echo "${NGINX_PIDS[@]}" ;;
    nghttpx) echo "${NGHTTPX_PIDS[@]}" ;;
    haproxy) echo "$HAPROXY_PID" ;;
  esac
}
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# rss_kb TARGET: VmRSS of all its processes.
rss_kb() {
  local total=0 p
  for p in $(pids_of "$1"); do total=$((total + $(kb "$p" VmRSS))); done
  echo "$total"
}

IDLE_KB_ARGS=()
if [[ $CASES == 1 || -n $ATTACKS ]]; then
  start_all
  sleep 1
  for t in "${PROXIES[@]}"; do IDLE_KB_ARGS+=(--idle-kb "$t=$(rss_kb "$t")"); done
fi

# ---- cases --------------------------------------------------------------------------------------
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
pid_args() {
  local p
  for p in $(pids_of "$1"); do printf -- '--pid %s ' "$p"; done
}
port_of() {
  case $1 in
    direct) echo "$P_ECHO" ;; curfew) echo "$P_CURFEW" ;; curfew-bp) echo "$P_CURFEW_BP" ;;
    nginx) echo "$P_NGINX" ;; nghttpx) echo "$P_NGHTTPX" ;;
    haproxy) echo "$P_HAPROXY" ;;
  esac
}

# run_case SCENARIO TARGET loadgen-args...  (CLIENT=goload: the grpc-go client instead)
run_case() {
  local scenario=$1 target=$2
  shift 2
  local out client=$LOADGEN
  [[ ${CLIENT:-} == goload ]] && client=$GOLOADGEN
  # shellcheck disable=SC2046
  if out=$(timeout 120 "${PIN_LOAD[@]}" "$client" --target "127.0.0.1:$(port_of "$target")" \
             --duration "$DURATION" --warmup "$WARMUP" $(pid_args "$target") "$@" 2>"$WORK/loadgen.err"); then :; fi
  if [[ -z $out ]]; then out='{"error":"load generator failed"}'; fi
  echo "{\"scenario\":\"$scenario\",\"target\":\"$target\",\"result\":$out}" >>"$RESULTS"
  printf '  %-28s %-9s %s\n' "$scenario" "$target" "$(echo "$out" | cut -c1-150)"
}
# na_case SCENARIO TARGET WHY: a case this target cannot serve; the table says "n/a" and why.
na_case() {
  echo "{\"scenario\":\"$1\",\"target\":\"$2\",\"result\":{\"na\":\"$3\"}}" >>"$RESULTS"
  printf '  %-28s %-9s n/a: %s\n' "$1" "$2" "$3"
}

if [[ $CASES == 1 ]]; then
# Memory first, on fresh processes (a heap grown by the load cases would hide the cost). The
# direct case comes first: it measures gRPC's own cost of an idle stream, the echo server's RSS
# per stream held directly, before the proxied cases grow that server's heap.
echo "bench: ${IDLE_STREAMS} idle streams"
# Connect the proxies' upstream channels first (a few calls): curfew dials lazily, and 10,000
# calls landing on a channel still connecting can see its connect timeout under load.
for t in "${PROXIES[@]}"; do
  timeout 60 "${PIN_LOAD[@]}" "$LOADGEN" --target "127.0.0.1:$(port_of "$t")" --mode closed --concurrency 1 \
    --calls 20 --duration 10 --warmup 0 >/dev/null 2>&1 || true
done
if selected direct; then
  run_case "${IDLE_STREAMS} idle streams" direct --mode idle --streams "$IDLE_STREAMS" --channels 20 --hold 2 \
    --pid "$ECHO_PID"
fi
for t in "${PROXIES[@]}"; do
  sleep 1
  run_case "${IDLE_STREAMS} idle streams" "$t" --mode idle --streams "$IDLE_STREAMS" --channels 20 --hold 2
done

# Fresh processes again for the load cases.
stop_all
start_all
sleep 1

echo "bench: load avg before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine skews every figure)"
echo "bench: cases (${DURATION}s each after ${WARMUP}s warm-up)"
for t in "${UNARY_TARGETS[@]}"; do run_case "unary c=1" "$t" --mode closed --concurrency 1; done
for t in "${UNARY_TARGETS[@]}"; do run_case "unary c=64" "$t" --mode closed --concurrency 64; done
for t in "${UNARY_TARGETS[@]}"; do run_case "unary open ${OPEN_RATE}/s" "$t" --mode open --rate "$OPEN_RATE"; done
# The same unary load from a grpc-go client (bench/goload): a second opinion on the client's side.
if [[ $GOLOAD == 1 ]]; then
  for t in "${UNARY_TARGETS[@]}"; do CLIENT=goload run_case "unary c=1 (grpc-go)" "$t" --concurrency 1; done
  for t in "${UNARY_TARGETS[@]}"; do CLIENT=goload run_case "unary c=64 (grpc-go)" "$t" --concurrency 64; done
fi
for t in "${STREAM_TARGETS[@]}"; do run_case "stream c=64 (msgs)" "$t" --mode stream --concurrency 64; done
# Cancel lag: 8 callers cancel calls the upstream holds, 5 ms in; the echo server notes when each
# cancellation reaches it (the table's "Cancel lag").
for t in "${STREAM_TARGETS[@]}"; do run_case "cancel lag c=8" "$t" --mode cancel --concurrency 8 --hold-ms 5; done
# The same 20% of calls go to a method that answers after 1 s: the caller's own 10 ms deadline
# cuts them when calling direct or through nghttpx, HAProxy or nginx; through curfew the caller
# sends no deadline and the route's 10 ms timeout cuts them (curfew answers DEADLINE_EXCEEDED and
# cancels upstream).
for t in "${STREAM_TARGETS[@]}"; do
  case $t in
    curfew) run_case "20% hit deadline c=64" "$t" --mode closed --concurrency 64 --slow-fraction 0.2 ;;
    *) run_case "20% hit deadline c=64" "$t" --mode closed --concurrency 64 --slow-fraction 0.2 --slow-deadline-ms 10 ;;
  esac
done
for t in "${STREAM_TARGETS[@]}"; do
  case $t in
    curfew) run_case "fan-out all x3 c=64" "$t" --mode closed --concurrency 64 --method /bench.Fan/Unary ;;
    direct) na_case "fan-out all x3 c=64" "$t" "no proxy, nothing fans out" ;;
    *) na_case "fan-out all x3 c=64" "$t" "fan-out (one call to 3 upstreams, replies merged) is a curfew route feature" ;;
  esac
done

sleep 2
AFTER_KB_ARGS=()
if selected curfew; then AFTER_KB_ARGS+=(--after-kb "curfew=$(rss_kb curfew)"); fi

# ---- h2load: a second opinion on unary c=64 ------------------------------------------------------
H2=$WORK/h2load.txt
: >"$H2"
if [[ $H2LOAD == 1 ]]; then
  "$PY" -c 'import sys; sys.stdout.buffer.write(b"\0\0\0\0\x40" + b"x" * 64)' >"$WORK/request.bin"
  for t in "${STREAM_TARGETS[@]}"; do
    rps=$(timeout 60 "${PIN_LOAD[@]}" h2load -D "$(awk "BEGIN {print int($DURATION * 1000)}")ms" \
            --warm-up-time "$(awk "BEGIN {print int($WARMUP * 1000)}")ms" -c 1 -m 64 \
            -d "$WORK/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
            "http://127.0.0.1:$(port_of "$t")/bench.Echo/Unary" 2>/dev/null |
          awk '/^finished in/ {gsub(",", "", $4); print $4}') || true
    echo "$t ${rps:-n/a}" >>"$H2"
  done
fi

# ---- stage by stage: one unary call at c=1 --------------------------------------------------------
# The load generator makes unary calls one at a time while `perf record` traces every process's
# socket system calls for STAGES_SECONDS; bench/stages.py cuts the trace into calls and each call
# into hops (caller -> proxy -> upstream -> proxy -> caller): the hand-offs between processes and
# each proxy's own time on the request and on the reply. Needs perf and root (system-wide
# tracepoints); STAGES=0 skips it.
STAGE_RESULTS=$WORK/stages.jsonl
: >"$STAGE_RESULTS"
if [[ $STAGES == 1 ]]; then
  EVENTS=""
  for s in read recvmsg recvfrom readv write sendmsg sendto writev; do
    EVENTS+="syscalls:sys_enter_$s,syscalls:sys_exit_$s,"
  done
  for t in "${STREAM_TARGETS[@]}"; do
    # Not under `timeout`: its PID must be the load generator's (which stops itself).
    "${PIN_LOAD[@]}" "$LOADGEN" --target "127.0.0.1:$(port_of "$t")" --mode closed \
      --concurrency 1 --duration $((STAGES_SECONDS + 2)) --warmup 0 >/dev/null 2>&1 &
    lg_pid=$!
    sleep 1
    proxy_pids=$(pids_of "$t" | tr ' ' ',')
    if timeout 60 perf record -q -a -k CLOCK_MONOTONIC -e "${EVENTS%,}" -o "$WORK/stages.data" \
         -- sleep "$STAGES_SECONDS" >/dev/null 2>&1; then
      out=$(perf script -i "$WORK/stages.data" --ns -F comm,pid,tid,cpu,time,event,trace 2>/dev/null |
            "$PY" bench/stages.py "$lg_pid" "$ECHO_PID" "${proxy_pids:--}")
    else
      out='{"error":"perf record failed"}'
    fi
    wait "$lg_pid" || true
    echo "{\"target\":\"$t\",\"result\":$out}" >>"$STAGE_RESULTS"
    printf '  %-28s %-9s %s\n' "stages c=1" "$t" "$(echo "$out" | cut -c1-150)"
  done
  rm -f "$WORK/stages.data"
fi

# ---- the table ----------------------------------------------------------------------------------
mkdir -p "$BUILD_DIR/bench"
cp "$STAGE_RESULTS" "$BUILD_DIR/bench/stages.jsonl"
cp "$RESULTS" "$BUILD_DIR/bench/results.jsonl"
"$PY" bench/table.py "$RESULTS" "${IDLE_KB_ARGS[@]}" "${AFTER_KB_ARGS[@]}" --h2load "$H2" --pinned "$PIN" \
  --load "$(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" bench/stages.py --table "$STAGE_RESULTS"
echo "raw results: $BUILD_DIR/bench/results.jsonl, $BUILD_DIR/bench/stages.jsonl"
fi  # CASES

# ---- one hostile connection ---------------------------------------------------------------------
# For each proxy and attack: legit unary calls at c=8 (the load generator, CPU 0) alone, then while
# one attacking connection (curfew-h2-attack, CPU 0 too) attacks from 1 s before the calls start
# to 1 s after they end; the ratio of the two calls/s, and what the attacker saw (its connection
# closed, after how long, the GOAWAY code). docs/security.md explains each attack and curfew's limit.
if [[ -n $ATTACKS ]]; then
  ATTACK_RESULTS=$WORK/attacks.jsonl
  : >"$ATTACK_RESULTS"
  echo "bench: one hostile connection (${ATTACK_SECONDS}s per attack; reconnect=$ATTACK_RECONNECT)"
  stop_all
  start_all
  sleep 1
  for t in "${PROXIES[@]}"; do
    [[ $t == curfew-bp ]] && continue
    alone=$(timeout 120 "${PIN_LOAD[@]}" "$LOADGEN" --target "127.0.0.1:$(port_of "$t")" --mode closed \
              --concurrency 8 --duration "$ATTACK_SECONDS" --warmup 1 2>/dev/null || echo '{}')
    for a in $ATTACKS; do
      timeout $((ATTACK_SECONDS + 30)) "${PIN_LOAD[@]}" "$ATTACKER" --port "$(port_of "$t")" --attack "$a" \
        --seconds $((ATTACK_SECONDS + 2)) --reconnect "$ATTACK_RECONNECT" >"$WORK/attack.out" 2>&1 &
      attacker_pid=$!
      sleep 1
      during=$(timeout 120 "${PIN_LOAD[@]}" "$LOADGEN" --target "127.0.0.1:$(port_of "$t")" --mode closed \
                 --concurrency 8 --duration "$ATTACK_SECONDS" --warmup 0 2>/dev/null || echo '{}')
      wait "$attacker_pid" || true
      report=$(tail -n 1 "$WORK/attack.out")
      echo "{\"target\":\"$t\",\"attack\":\"$a\",\"alone\":$alone,\"during\":$during,\"attacker\":\"$report\"}" >>"$ATTACK_RESULTS"
      printf '  %-9s %-20s %s\n' "$t" "$a" "$report"
      sleep 1  # what the attack left behind (timeouts, half-open streams) settles
    done
  done
  mkdir -p "$BUILD_DIR/bench"
  cp "$ATTACK_RESULTS" "$BUILD_DIR/bench/attacks.jsonl"
  "$PY" - "$ATTACK_RESULTS" <<'PYEOF'
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
targets = list(dict.fromkeys(r["target"] for r in rows))
attacks = list(dict.fromkeys(r["attack"] for r in rows))
cell = {}
for r in rows:
    alone, during = r["alone"].get("rps"), r["during"].get("rps")
    ratio = f"{during / alone:.2f}x" if alone and during is not None else "n/a"
    m = dict(re.findall(r"(\w+)=(-?\d+)", r["attacker"]))
    shed = (f"closed {m['first_close_ms']} ms" if m.get("closed", "0") != "0" else "not closed")
    if m.get("goaway", "-1") != "-1":
        shed += f", GOAWAY {m['goaway']}"
    cell[(r["attack"], r["target"])] = f"{ratio} ({shed})"
print()
print("Legit callers' calls/s during the attack / alone (c=8), and what the attacker saw:")
print()
print("| attack | " + " | ".join(targets) + " |")
print("|---|" + "---|" * len(targets))
for a in attacks:
    print(f"| {a} | " + " | ".join(cell.get((a, t), "") for t in targets) + " |")
PYEOF
  echo "raw attack results: $BUILD_DIR/bench/attacks.jsonl"
fi

# ---- endpoint sets (issue 18) -------------------------------------------------------------------
# Three pods of one upstream (see the top): a slow pod under round robin and peak-EWMA, then a pod
# killed at c=64 without and with a retry policy. Every case on fresh processes; the table and the
# targets are table.py's --endpoints.
if [[ $ENDPOINTS != 0 ]]; then
  stop_all
  PODS=(127.0.0.2 127.0.0.3 127.0.0.4)
  SLOW_POD=127.0.0.4
  KILL_POD_MS=${KILL_POD_MS:-5}
  KILLED_POD=127.0.0.3
  # A port free on all three pod addresses, and curfew's two on 127.0.0.1 (bounded: 50 tries).
  read -r P_POD P_EP P_EP_ADMIN < <("$PY" - "${PODS[@]}" <<'EOF'
import socket, sys
for _ in range(50):
    socks = []
    try:
        first = socket.socket(); first.bind((sys.argv[1], 0)); socks.append(first)
        port = first.getsockname()[1]
        for host in sys.argv[2:]:
            s = socket.socket(); s.bind((host, port)); socks.append(s)
    except OSError:
        continue
    mine = [socket.socket() for _ in range(2)]
    for s in mine: s.bind(("127.0.0.1", 0))
    print(port, *(s.getsockname()[1] for s in mine))
    break
else:
    sys.exit("no port free on every pod address")
EOF
)
  EP_TARGET="ipv4:$(IFS=,; echo "${PODS[*]/%/:$P_POD}")"
  EP_RESULTS=$WORK/endpoints.jsonl
  : >"$EP_RESULTS"

  # endpoint_config BALANCER [ROUTE_EXTRA]: curfew's config for one case.
  endpoint_config() {
    cat <<EOF
admin: {address: 127.0.0.1:$P_EP_ADMIN}
workers: 1
listeners:
  - name: bench
    address: 127.0.0.1:$P_EP
    default_timeout: 60s
    routes:
      - {name: pods, match: {prefix: /}, upstream: pods, timeout: 60s${2:+, $2}}
upstreams:
  - {name: pods, endpoints: ["$EP_TARGET"], balancer: $1}
EOF
  }
  # start_pods SLOW_HOST DELAY_MS: one echo server per pod address, each answering DELAY_MS late,
  # SLOW_HOST ("": none) 20 ms later still; POD_PID[host].
  declare -A POD_PID
  start_pods() {
    local host delay
    for host in "${PODS[@]}"; do
      delay=$2
      if [[ $host == "$1" ]]; then delay=$((delay + 20)); fi
      "${PIN_LOAD[@]}" "$ECHO" --host "$host" --port "$P_POD" --delay-ms "$delay" \
        >"$WORK/pod-$host.log" 2>&1 &
      POD_PID[$host]=$!
      STARTED+=("$!")
    done
    for host in "${PODS[@]}"; do wait_port "$P_POD" "pod $host" "$host"; done
  }
  # start_endpoint_curfew NAME BALANCER [ROUTE_EXTRA]
  start_endpoint_curfew() {
    endpoint_config "$2" "${3:-}" >"$WORK/$1.yaml"
    "${PIN_PROXY[@]}" "$CURFEW" --config "$WORK/$1.yaml" --log-level warning >"$WORK/$1.log" 2>&1 &
    CURFEW_PID=$!
    STARTED+=("$CURFEW_PID")
    wait_port "$P_EP" curfew
  }
  # endpoint_load CONCURRENCY: the load generator against curfew, one JSON line on stdout.
  endpoint_load() {
    local out
    out=$(timeout 120 "${PIN_LOAD[@]}" "$LOADGEN" --target "127.0.0.1:$P_EP" --mode closed \
            --concurrency "$1" --duration "$DURATION" --warmup "$WARMUP" --pid "$CURFEW_PID" \
            2>>"$WORK/loadgen.err") || true
    if [[ -z $out ]]; then out='{"error":"load generator failed"}'; fi
    echo "$out"
  }

  echo "bench: endpoint sets, pods ${PODS[*]} port $P_POD (${DURATION}s per case after ${WARMUP}s warm-up)"
  for balancer in round_robin peak_ewma; do
    start_pods "$SLOW_POD" 0
    start_endpoint_curfew "curfew-$balancer" "$balancer"
    out=$(endpoint_load 16)
    stop_all  # the pods print calls=N as they stop
    calls="{"
    for host in "${PODS[@]}"; do
      n=$(sed -n 's/^calls=\([0-9]*\).*/\1/p' "$WORK/pod-$host.log")
      calls+="\"$host\":${n:-null},"
    done
    calls="${calls%,}}"
    echo "{\"scenario\":\"slow\",\"balancer\":\"$balancer\",\"slow\":\"$SLOW_POD\",\"calls\":$calls,\"result\":$out}" >>"$EP_RESULTS"
    printf '  %-30s %s\n' "slow pod c=16 $balancer" "pods $calls; $(echo "$out" | cut -c1-110)"
  done

  # The kill: a helper (CPU 0) sleeps until halfway through the window, sends SIGKILL to the pod's
  # echo server, then polls /upstreams (every 10 ms, at most 5 s) until the pod shows "ejected".
  # Times are CLOCK_MONOTONIC, as the load generator's first/last failure.
  cat >"$WORK/kill_pod.py" <<'EOF'
import json, os, signal, sys, time, urllib.request
pid, delay, admin, victim = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
time.sleep(delay)
killed = time.monotonic()
os.kill(pid, signal.SIGKILL)
ejected, polls = None, 0
while ejected is None and time.monotonic() < killed + 5 and polls < 500:
    polls += 1
    try:
        with opener.open(f"http://{admin}/upstreams", timeout=1) as r:
            doc = json.load(r)
        if any(e["address"] == victim and e["state"] == "ejected"
               for u in doc["upstreams"] for e in u["endpoints"]):
            ejected = time.monotonic()
            break
    except (OSError, ValueError, KeyError):
        pass
    time.sleep(0.01)
print(json.dumps({"killed_mono_s": killed, "ejected_mono_s": ejected}))
EOF
  for policy in none retry; do
    extra=""
    [[ $policy == retry ]] && extra="retry: {attempts: 2, per_try_timeout: 1s, budget_ratio: 1}"
    start_pods "" "$KILL_POD_MS"
    start_endpoint_curfew "curfew-kill-$policy" peak_ewma "$extra"
    endpoint_load 64 >"$WORK/kill-$policy.json" &
    load_pid=$!
    kill_at=$(awk "BEGIN {print $WARMUP + $DURATION / 2}")
    victim=${POD_PID[$KILLED_POD]}
    # (The group's 2>/dev/null: bash's own "Killed" notice for the pod, an expected death.)
    {
      timeout 60 "${PIN_LOAD[@]}" "$PY" "$WORK/kill_pod.py" "$victim" "$kill_at" "127.0.0.1:$P_EP_ADMIN" \
        "$KILLED_POD:$P_POD" >"$WORK/kill-$policy.killer" 2>>"$WORK/loadgen.err" || true
      # Killed (SIGKILL sent): reaped here, and no longer ours to stop (its PID may be reused).
      if grep -q killed_mono_s "$WORK/kill-$policy.killer"; then
        wait "$victim" || true
        remaining=()
        for p in "${STARTED[@]}"; do [[ $p == "$victim" ]] || remaining+=("$p"); done
        STARTED=("${remaining[@]}")
      fi
    } 2>/dev/null
    wait "$load_pid" || true
    out=$(cat "$WORK/kill-$policy.json")
    killer=$(tail -n 1 "$WORK/kill-$policy.killer")
    if [[ -z $killer ]]; then killer='{"error":"the kill helper failed"}'; fi
    stop_all
    echo "{\"scenario\":\"kill\",\"policy\":\"$policy\",\"pod_ms\":$KILL_POD_MS,\"retry\":\"$extra\",\"killed\":\"$KILLED_POD\",\"kill\":$killer,\"result\":$out}" >>"$EP_RESULTS"
    printf '  %-30s %s\n' "kill 1 of 3 c=64 $policy" "$killer; $(echo "$out" | cut -c1-110)"
  done
  mkdir -p "$BUILD_DIR/bench"
  cp "$EP_RESULTS" "$BUILD_DIR/bench/endpoints.jsonl"
  "$PY" bench/table.py --endpoints "$EP_RESULTS" --pinned "$PIN" --load "$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "raw endpoint-set results: $BUILD_DIR/bench/endpoints.jsonl"
fi
