#!/usr/bin/env bash
# The README demo: installs what is needed, builds curfew, starts the demo backend and curfew
# on the bundled config (config/curfew.yaml), and runs a client that shows deadlines enforced.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake --preset release >/dev/null
cmake --build build/release -j "$(nproc)" --target curfew curfew-demo-backend curfew-demo-client >/dev/null

bin=build/release
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$bin/tests/backends/curfew-demo-backend" --address 127.0.0.1:8080 &
pids+=($!)
"$bin/app/curfew" --config config/curfew.yaml &
pids+=($!)

echo "--- curfew's effective routes:"
"$bin/app/curfew" --check-config config/curfew.yaml
for _ in $(seq 50); do  # wait (at most 5 s) until curfew accepts connections
  (exec 3<>/dev/tcp/127.0.0.1/15001) 2>/dev/null && break
  sleep 0.1
done
echo "--- calls through curfew (127.0.0.1:15001) to the demo backend (127.0.0.1:8080):"
"$bin/tests/backends/curfew-demo-client" --target 127.0.0.1:15001
