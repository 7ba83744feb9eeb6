#!/usr/bin/env bash
# Runs clang-tidy (configuration: .clang-tidy) over every library, server and CLI source file,
# using the compile database of a configured build directory. Fails on any warning.
# Usage: scripts/clang-tidy.sh [BUILD_DIR]   (default: build/release)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build/release}"
if [[ ! -f "$build_dir/compile_commands.json" ]]; then
  echo "clang-tidy.sh: $build_dir/compile_commands.json not found; configure that build first" >&2
  exit 2
fi
mapfile -t files < <(git ls-files 'src/*.cpp' 'tools/*.cpp')
echo "clang-tidy: ${#files[@]} files"
log=$(mktemp)
status=0
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$build_dir" --quiet >"$log" 2>/dev/null || status=$?
if grep -E "(warning|error):" "$log"; then
  echo "clang-tidy: findings above" >&2
  exit 1
fi
if [[ $status -ne 0 ]]; then
  cat "$log" >&2
  echo "clang-tidy: failed with status $status" >&2
  exit 1
fi
echo "clang-tidy: clean"
