#!/usr/bin/env bash
# Chaos: the chaos test (tests/chaos/chaos_main.cc: every feature at once against the real
# binary, invariants checked from outside) for DURATION seconds against the ASan+UBSan build and
# then the TSan build of curfew. Each run prints its seed; CURFEW_CHAOS_SEED=N replays one.
#
#   bash scripts/chaos.sh [DURATION]     DURATION in seconds (default 1200), per sanitizer build
#
# Environment: CHAOS_PRESETS="asan tsan" (which builds), CURFEW_CHAOS_SEED (replay).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-1200}
[[ "$duration" =~ ^[0-9]+$ && "$duration" -gt 0 ]] || { echo "usage: $0 [DURATION_SECONDS]" >&2; exit 2; }
source scripts/sanitizer-env.sh

status=0
for preset in ${CHAOS_PRESETS:-asan tsan}; do
  dir=build/$preset
  echo "=== chaos: $preset build"
  cmake --preset "$preset" >/dev/null
  cmake --build "$dir" -j "$(nproc)" --target curfew curfew-chaos >"$dir.chaos-build.log" 2>&1 || {
    tail -n 40 "$dir.chaos-build.log"; echo "=== chaos: $preset: BUILD FAILED"; status=1; continue; }
  echo "=== chaos: $preset: ${duration}s"
  if "$dir/tests/chaos/curfew-chaos" --curfew "$dir/app/curfew" --seconds "$duration"; then
    echo "=== chaos: $preset: PASSED"
  else
    echo "=== chaos: $preset: FAILED"; status=1
  fi
done
exit $status
