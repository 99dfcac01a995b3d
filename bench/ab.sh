#!/usr/bin/env bash
# bench/ab.sh: two curfew binaries A/B on the same load, alternating, for before/after figures.
#
#   bash bench/ab.sh OLD_CURFEW NEW_CURFEW [ROUNDS=3] [CONCURRENCY=64]
#   A_DATA_PATH=grpc bash bench/ab.sh OLD_CURFEW NEW_CURFEW  # an OLD binary that still had `data_path: grpc`
#
# One echo server and the load generator on CPU 0, the curfew under test alone on CPU 1 (the
# pinning of bench/run.sh), a plain unary route; each round starts each binary afresh, warms its
# upstream channel, then measures DURATION (default 4) seconds after a 1 s warm-up. Prints calls/s,
# median latency and the proxy's CPU per call for every run. Only 127.0.0.1; every run is bounded.
# Needs a release build (bench_echo_server, bench_loadgen) in BUILD_DIR (default build/release).
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1
B=$2
ROUNDS=${3:-3}
CONCURRENCY=${4:-64}
DURATION=${DURATION:-4}
BUILD_DIR=${BUILD_DIR:-build/release}
LOADGEN=$BUILD_DIR/bench/bench_loadgen
ECHO=$BUILD_DIR/bench/bench_echo_server
WORK=$(mktemp -d /tmp/curfew-ab.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

read -r P_ECHO P_CURFEW P_ADMIN < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
wait_port() {  # bounded: 10 s
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "ab: nothing listens on 127.0.0.1:$1" >&2
  exit 1
}

taskset -c 0 "$ECHO" --port "$P_ECHO" >"$WORK/echo.log" 2>&1 &
PIDS+=($!)
wait_port "$P_ECHO"
# A_DATA_PATH / B_DATA_PATH: the config's data_path for that side (unset: the key is left out,
# so a binary that predates it still loads the config).
write_config() {  # write_config FILE DATA_PATH
  cat >"$1" <<YAML
${2:+data_path: $2}
admin: {address: 127.0.0.1:$P_ADMIN}
workers: 1
listeners:
  - name: bench
    address: 127.0.0.1:$P_CURFEW
    default_timeout: 60s
    routes:
      - {name: echo, match: {prefix: /}, upstream: echo, timeout: 60s}
upstreams:
  - {name: echo, endpoints: [127.0.0.1:$P_ECHO]}
YAML
}
write_config "$WORK/a.yaml" "${A_DATA_PATH:-}"
write_config "$WORK/b.yaml" "${B_DATA_PATH:-}"

for round in $(seq 1 "$ROUNDS"); do
  for side in a b; do
    if [[ $side == a ]]; then bin=$A; else bin=$B; fi
    taskset -c 1 "$bin" --config "$WORK/$side.yaml" --log-level warning >"$WORK/curfew.log" 2>&1 &
    pid=$!
    wait_port "$P_CURFEW"
    timeout 30 taskset -c 0 "$LOADGEN" --target "127.0.0.1:$P_CURFEW" --mode closed --concurrency 1 \
      --calls 50 --duration 10 --warmup 0 >/dev/null 2>&1 || true
    out=$(timeout 60 taskset -c 0 "$LOADGEN" --target "127.0.0.1:$P_CURFEW" --mode closed \
            --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 1 --pid "$pid" 2>/dev/null || true)
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    path_var=${side^^}_DATA_PATH
    printf 'round %s c=%s %-40s %-8s ' "$round" "$CONCURRENCY" "$bin" "${!path_var:-}"
    echo "${out:-{\}}" | python3 -c '
import json, sys
d = json.load(sys.stdin)
if "rps" not in d: print("load generator failed"); sys.exit()
print("calls/s %8.0f  p50 %6.0f us  proxy CPU %6.1f us/call" % (d["rps"], d["p50_us"], d["proxy_cpu_s_per_1k"] * 1000))'
  done
done
