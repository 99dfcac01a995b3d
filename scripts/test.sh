#!/usr/bin/env bash
# Installs dependencies, then builds and runs every test: the optimised build, then the runtime and
# sidecar suites again under ASan+UBSan and under TSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

jobs=$(nproc)
status=0
run_preset() {
  local preset=$1 label_filter=$2
  echo "=== $preset: build"
  cmake --preset "$preset" >/dev/null
  cmake --build "build/$preset" -j "$jobs" >"build/$preset.build.log" 2>&1 || {
    tail -n 60 "build/$preset.build.log"; echo "=== $preset: BUILD FAILED"; return 1; }
  echo "=== $preset: test"
  (cd "build/$preset" && ctest --output-on-failure -j "$jobs" $label_filter)
}

run_preset release "" || status=1
# The symbolizer of the compiler's own LLVM, named explicitly: without it reports are unsymbolized
# and tests/tsan.supp's name-based suppressions match nothing (another LLVM's on PATH is not it).
symbolizer=/usr/lib/llvm-16/bin/llvm-symbolizer
[[ -x $symbolizer ]] || { echo "test.sh: $symbolizer missing (scripts/install-deps.sh installs llvm-16)"; exit 1; }
export ASAN_SYMBOLIZER_PATH=$symbolizer TSAN_SYMBOLIZER_PATH=$symbolizer
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:external_symbolizer_path=$symbolizer
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:external_symbolizer_path=$symbolizer
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp external_symbolizer_path=$symbolizer"
run_preset asan "-L sanitize" || status=1
run_preset tsan "-L sanitize" || status=1
# Soak (issue 8): the short version (CTest label "soak", CURFEW_SOAK_SECONDS = 25 s) against each
# sanitizer build; `bash scripts/soak.sh DURATION` runs the long one.
for preset in asan tsan; do
  echo "=== $preset: soak"
  (cd "build/$preset" && ctest --output-on-failure -L soak) || status=1
done
# Fuzzing (issue 8): each libFuzzer target for a bounded time (CURFEW_FUZZ_SECONDS = 30 s).
run_preset fuzz "-L fuzz" || status=1
exit $status
