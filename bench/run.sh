#!/usr/bin/env bash
# bench/run.sh: curfew against a direct call and against nginx (grpc_pass), same load for all.
#
#   bash bench/run.sh            # installs nginx / nghttp2-client if missing, builds, runs, prints
#
# Environment (all optional): DURATION=5 WARMUP=1 (seconds per case), OPEN_RATE=2000 (calls/s of
# the open-loop case), IDLE_STREAMS=10000, PIN=1 (0: no taskset), BUILD_DIR=build/release,
# H2LOAD=1 (0: skip the h2load second opinion), SKIP_BUILD=0, CURFEW_BIN (another curfew binary,
# e.g. for a before/after comparison), KEEP=1 (keep the temp folder with the processes' logs).
#
# Targets: direct, nginx, curfew, and curfew-bp (the same curfew with busy_poll: 0.05ms; unary
# cases only; BUSY_POLL_TARGET=0 leaves it out, the default with CURFEW_BIN).
#
# Pinning (PIN=1, the default; the machine has 2 cores): the load generator and the upstream echo
# server share CPU 0; the proxy under test (curfew with `workers: 1`, or nginx with one worker
# process) gets CPU 1 to itself. Every case therefore gives the client side the same CPU and each
# proxy exactly one core; "direct" runs with CPU 1 idle.
#
# Everything listens on 127.0.0.1 only; every case is bounded in time (the load generator stops
# itself); every process started here is stopped by its PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
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
CURFEW_BP_PID=""
UNARY_TARGETS=(direct nginx curfew)
if [[ $BUSY_POLL_TARGET == 1 ]]; then UNARY_TARGETS+=(curfew-bp); fi

# ---- dependencies and build ---------------------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
[[ -x /usr/bin/python3 ]] || missing+=(python3)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
PY=/usr/bin/python3

if [[ $SKIP_BUILD != 1 ]]; then
  if [[ $BUILD_DIR == build/release ]]; then
    cmake --preset release >/dev/null
  else
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-16 >/dev/null
  fi
  echo "bench: building in $BUILD_DIR"
  cmake --build "$BUILD_DIR" --target curfew bench_loadgen bench_echo_server >"$BUILD_DIR/bench-build.log" 2>&1 || {
    tail -n 40 "$BUILD_DIR/bench-build.log"; echo "bench: BUILD FAILED"; exit 1; }
fi
CURFEW=${CURFEW_BIN:-$ROOT/$BUILD_DIR/app/curfew}
LOADGEN=$ROOT/$BUILD_DIR/bench/bench_loadgen
ECHO=$ROOT/$BUILD_DIR/bench/bench_echo_server

# ---- processes ----------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/curfew-bench.XXXXXX)
STARTED=()
cleanup() {
  for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${STARTED[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
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

read -r P_ECHO P_A P_B P_C P_CURFEW P_NGINX P_ADMIN P_CURFEW_BP P_ADMIN_BP < <("$PY" - <<'EOF'
import socket
socks = []
for _ in range(9):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)

wait_port() {  # bounded: 10 s
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench: nothing listens on 127.0.0.1:$1 ($2)"; exit 1
}

ulimit -n 65536 2>/dev/null || true

start_all() {
  "${PIN_LOAD[@]}" "$ECHO" --port "$P_ECHO" --port "$P_A" --port "$P_B" --port "$P_C" --slow-ms 1000 \
    >"$WORK/echo.log" 2>&1 &
  ECHO_PID=$!
  STARTED+=($ECHO_PID)
  wait_port "$P_ECHO" echo

  cat >"$WORK/curfew.yaml" <<EOF
admin: {address: 127.0.0.1:$P_ADMIN}
workers: 1
listeners:
  - name: bench
    address: 127.0.0.1:$P_CURFEW
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
EOF
  "${PIN_PROXY[@]}" "$CURFEW" --config "$WORK/curfew.yaml" --log-level warning >"$WORK/curfew.log" 2>&1 &
  CURFEW_PID=$!
  STARTED+=($CURFEW_PID)
  wait_port "$P_CURFEW" curfew

  # The same curfew with busy polling (config busy_poll: a worker polls 50 µs after each event
  # instead of sleeping): target "curfew-bp". Same core as the other proxies; idle while others run.
  if [[ $BUSY_POLL_TARGET == 1 ]]; then
    sed -e "s|127.0.0.1:$P_ADMIN}|127.0.0.1:$P_ADMIN_BP}|" -e "s|127.0.0.1:$P_CURFEW\$|127.0.0.1:$P_CURFEW_BP|" \
      "$WORK/curfew.yaml" >"$WORK/curfew-bp.yaml"
    echo "busy_poll: 0.05ms" >>"$WORK/curfew-bp.yaml"
    "${PIN_PROXY[@]}" "$CURFEW" --config "$WORK/curfew-bp.yaml" --log-level warning >"$WORK/curfew-bp.log" 2>&1 &
    CURFEW_BP_PID=$!
    STARTED+=($CURFEW_BP_PID)
    wait_port "$P_CURFEW_BP" curfew-bp
  fi

  mkdir -p "$WORK/nginx"
  sed -e "s|@PREFIX@|$WORK/nginx|g" -e "s|@PORT@|$P_NGINX|g" -e "s|@UPSTREAM_PORT@|$P_ECHO|g" \
    bench/nginx.conf >"$WORK/nginx/nginx.conf"
  "${PIN_PROXY[@]}" "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" \
    >"$WORK/nginx/stdout.log" 2>&1 &
  NGINX_PID=$!
  STARTED+=($NGINX_PID)
  wait_port "$P_NGINX" nginx
  NGINX_PIDS=("$NGINX_PID" $(pgrep -P "$NGINX_PID" || true))
}

stop_all() {
  for pid in "$ECHO_PID" "$CURFEW_PID" ${CURFEW_BP_PID:+"$CURFEW_BP_PID"} "${NGINX_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$ECHO_PID" "$CURFEW_PID" ${CURFEW_BP_PID:+"$CURFEW_BP_PID"} "$NGINX_PID"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

start_all
sleep 1
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
CURFEW_IDLE_KB=$(kb "$CURFEW_PID" VmRSS)
NGINX_IDLE_KB=0
for p in "${NGINX_PIDS[@]}"; do NGINX_IDLE_KB=$((NGINX_IDLE_KB + $(kb "$p" VmRSS))); done

# ---- cases --------------------------------------------------------------------------------------
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
pid_args() {
  case $1 in
    direct) ;;
    curfew) echo "--pid $CURFEW_PID" ;;
    curfew-bp) echo "--pid $CURFEW_BP_PID" ;;
    nginx) for p in "${NGINX_PIDS[@]}"; do printf -- '--pid %s ' "$p"; done ;;
  esac
}
port_of() {
  case $1 in
    direct) echo "$P_ECHO" ;; curfew) echo "$P_CURFEW" ;; curfew-bp) echo "$P_CURFEW_BP" ;; nginx) echo "$P_NGINX" ;;
  esac
}

# run_case SCENARIO TARGET loadgen-args...
run_case() {
  local scenario=$1 target=$2
  shift 2
  local out
  # shellcheck disable=SC2046
  if out=$(timeout 120 "${PIN_LOAD[@]}" "$LOADGEN" --target "127.0.0.1:$(port_of "$target")" \
             --duration "$DURATION" --warmup "$WARMUP" $(pid_args "$target") "$@" 2>"$WORK/loadgen.err"); then :; fi
  if [[ -z $out ]]; then out='{"error":"load generator failed"}'; fi
  echo "{\"scenario\":\"$scenario\",\"target\":\"$target\",\"result\":$out}" >>"$RESULTS"
  printf '  %-28s %-7s %s\n' "$scenario" "$target" "$(echo "$out" | cut -c1-150)"
}

# Memory first, on fresh processes (a heap grown by the load cases would hide the cost). The
# direct case comes first: it measures gRPC's own cost of an idle stream, the echo server's RSS
# per stream held directly, before the proxied cases grow that server's heap.
echo "bench: ${IDLE_STREAMS} idle streams"
# Connect the proxies' upstream channels first (a few calls): curfew dials lazily, and 10,000
# calls landing on a channel still connecting can see its connect timeout under load.
for t in curfew nginx; do
  timeout 60 "${PIN_LOAD[@]}" "$LOADGEN" --target "127.0.0.1:$(port_of "$t")" --mode closed --concurrency 1 \
    --calls 20 --duration 10 --warmup 0 >/dev/null 2>&1 || true
done
run_case "${IDLE_STREAMS} idle streams" direct --mode idle --streams "$IDLE_STREAMS" --channels 20 --hold 2 \
  --pid "$ECHO_PID"
for t in curfew nginx; do
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
for t in direct nginx curfew; do run_case "stream c=64 (msgs)" "$t" --mode stream --concurrency 64; done
# The same 20% of calls go to a method that answers after 1 s: the caller's own 10 ms deadline
# cuts them when calling direct or through nginx; through curfew the caller sends no deadline and
# the route's 10 ms timeout cuts them (curfew answers DEADLINE_EXCEEDED and cancels upstream).
for t in direct nginx; do
  run_case "20% hit deadline c=64" "$t" --mode closed --concurrency 64 --slow-fraction 0.2 --slow-deadline-ms 10
done
run_case "20% hit deadline c=64" curfew --mode closed --concurrency 64 --slow-fraction 0.2
run_case "fan-out all x3 c=64" curfew --mode closed --concurrency 64 --method /bench.Fan/Unary

sleep 2
CURFEW_AFTER_KB=$(kb "$CURFEW_PID" VmRSS)

# ---- h2load: a second opinion on unary c=64 ------------------------------------------------------
H2=$WORK/h2load.txt
: >"$H2"
if [[ $H2LOAD == 1 ]]; then
  "$PY" -c 'import sys; sys.stdout.buffer.write(b"\0\0\0\0\x40" + b"x" * 64)' >"$WORK/request.bin"
  for t in direct nginx curfew; do
    rps=$(timeout 60 "${PIN_LOAD[@]}" h2load -D "$(awk "BEGIN {print int($DURATION * 1000)}")ms" \
            --warm-up-time "$(awk "BEGIN {print int($WARMUP * 1000)}")ms" -c 1 -m 64 \
            -d "$WORK/request.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
            "http://127.0.0.1:$(port_of "$t")/bench.Echo/Unary" 2>/dev/null |
          awk '/^finished in/ {gsub(",", "", $4); print $4}') || true
    echo "$t ${rps:-n/a}" >>"$H2"
  done
fi

# ---- the table ----------------------------------------------------------------------------------
mkdir -p "$BUILD_DIR/bench"
cp "$RESULTS" "$BUILD_DIR/bench/results.jsonl"
"$PY" bench/table.py "$RESULTS" --curfew-idle-kb "$CURFEW_IDLE_KB" --curfew-after-kb "$CURFEW_AFTER_KB" \
  --nginx-idle-kb "$NGINX_IDLE_KB" --h2load "$H2" --pinned "$PIN" \
  --load "$(cut -d' ' -f1-3 /proc/loadavg)"
echo "raw results: $BUILD_DIR/bench/results.jsonl"
