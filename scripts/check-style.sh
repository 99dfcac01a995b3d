#!/usr/bin/env bash
# The tree's style and lint checks (run by scripts/test.sh):
#   - every C++ file is formatted as .clang-format says (clang-format-16; the whole tree, fast);
#   - clang-tidy-16 with .clang-tidy's small set of bug checks, on the C++ sources a change
#     touches: those changed since CURFEW_TIDY_BASE (default: the newest commit older than a day,
#     i.e. roughly the last session's change; the whole tree on 2 cores would take too long).
#     `--all` lints every source file.
# Needs build/release/compile_commands.json (scripts/test.sh builds the release preset first).
#
#   bash scripts/check-style.sh [--all]        bash scripts/check-style.sh --fix   (formats in place)
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t cxx < <(git ls-files '*.cc' '*.h')
if [[ ${1:-} == --fix ]]; then
  clang-format-16 -i "${cxx[@]}"
  exit 0
fi

status=0
echo "=== style: clang-format (${#cxx[@]} files)"
unformatted=()
for f in "${cxx[@]}"; do
  clang-format-16 --dry-run -Werror "$f" >/dev/null 2>&1 || unformatted+=("$f")
done
if ((${#unformatted[@]})); then
  printf 'not formatted (bash scripts/check-style.sh --fix): %s\n' "${unformatted[@]}"
  status=1
fi

# Sources only (headers are linted through them, .clang-tidy's HeaderFilterRegex); generated,
# fuzz and test files excluded: tests may do on purpose what the checks warn about.
lintable() { grep -E '^(app|runtime|sidecar|metrics|config|wire|h2|tls|dns)/.*\.cc$' || true; }
if [[ ${1:-} == --all ]]; then
  mapfile -t tidy < <(printf '%s\n' "${cxx[@]}" | lintable)
else
  base=${CURFEW_TIDY_BASE:-$(git rev-list -1 --before='24 hours ago' HEAD 2>/dev/null || true)}
  if [[ -z $base ]]; then
    mapfile -t tidy < <(printf '%s\n' "${cxx[@]}" | lintable)
  else
    # Changed sources; the headers they include are linted through them.
    mapfile -t tidy < <(git diff --name-only --diff-filter=d "$base" -- '*.cc' | lintable)
  fi
fi
echo "=== style: clang-tidy (${#tidy[@]} files)"
if ((${#tidy[@]})); then
  [[ -f build/release/compile_commands.json ]] || { echo "no build/release/compile_commands.json"; exit 1; }
  printf '%s\n' "${tidy[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy-16 -p build/release --quiet \
    2> >(grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated|^Suppressed|^Use -header-filter|^Error while processing' >&2) \
    || status=1
fi
exit $status
