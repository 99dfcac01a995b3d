# Sourced by test.sh, soak.sh and chaos.sh: the sanitizer runtimes' options. Options already in
# the environment win. The symbolizer is the compiler's own LLVM's, named explicitly: without it
# reports are unsymbolized and tests/tsan.supp's name-based suppressions match nothing (another
# LLVM's llvm-symbolizer on PATH is not it). scripts/install-deps.sh installs llvm-16.
curfew_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
symbolizer=/usr/lib/llvm-16/bin/llvm-symbolizer
if [[ ! -x $symbolizer ]]; then
  echo "sanitizer-env: $symbolizer missing (scripts/install-deps.sh installs llvm-16)" >&2
  return 1
fi
export ASAN_SYMBOLIZER_PATH=$symbolizer TSAN_SYMBOLIZER_PATH=$symbolizer
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:external_symbolizer_path=$symbolizer}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:external_symbolizer_path=$symbolizer}
export TSAN_OPTIONS=${TSAN_OPTIONS:-"halt_on_error=1 second_deadlock_stack=1 suppressions=$curfew_root/tests/tsan.supp external_symbolizer_path=$symbolizer"}
