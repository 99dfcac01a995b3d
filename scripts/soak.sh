#!/usr/bin/env bash
# Soak: mixed traffic (30% caller cancels, 20% deadline hits, fan-out failures, hedges, errors,
# plain calls) with a config reload every few seconds, against the ASan+UBSan build and then the
# TSan build of curfew; fails on any sanitizer report, any growth of RSS or file descriptors, any
# call not accounted for exactly, or an unclean drain. See tests/soak/soak_main.cc.
#
#   bash scripts/soak.sh [DURATION]     DURATION in seconds (default 600), per sanitizer build
#
# Environment: SOAK_PRESETS="asan tsan" (which builds), SOAK_BUILD_PREFIX (default build/: the
# builds are build/asan and build/tsan), SOAK_CALLERS (default 12), SOAK_RELOAD_EVERY (seconds,
# default 3), SOAK_SEED (to replay a run: each run prints its seed).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-600}
[[ "$duration" =~ ^[0-9]+$ && "$duration" -gt 0 ]] || { echo "usage: $0 [DURATION_SECONDS]" >&2; exit 2; }

source scripts/sanitizer-env.sh

status=0
for preset in ${SOAK_PRESETS:-asan tsan}; do
  echo "=== soak: $preset build"
  dir=${SOAK_BUILD_PREFIX:-build/}$preset
  cmake --preset "$preset" -B "$dir" >/dev/null
  cmake --build "$dir" -j "$(nproc)" --target curfew curfew-soak >"$dir.soak-build.log" 2>&1 || {
    tail -n 40 "$dir.soak-build.log"; echo "=== soak: $preset: BUILD FAILED"; status=1; continue; }
  echo "=== soak: $preset: ${duration}s"
  args=(--curfew "$dir/app/curfew" --seconds "$duration"
        --callers "${SOAK_CALLERS:-12}" --reload-every "${SOAK_RELOAD_EVERY:-3}")
  [[ -n "${SOAK_SEED:-}" ]] && args+=(--seed "$SOAK_SEED")
  if "$dir/tests/soak/curfew-soak" "${args[@]}"; then
    echo "=== soak: $preset: PASSED"
  else
    echo "=== soak: $preset: FAILED"; status=1
  fi
done
exit $status
