#!/usr/bin/env bash
# demo.sh: the README's main-job command. On a fresh Debian 12 machine: installs the
# dependencies, builds the `pagekeeper` tool (Release) and replays the bundled OLTP trace
# through the pool with one shard, exact LRU and a 1,000-key budget. Prints one JSON object
# on stdout (progress goes to stderr); its hit_ratio is the ARC README's reference, 32.83.
#
# Environment: PAGEKEEPER_BUILD_DIR (default <repo>/build-demo), PAGEKEEPER_TRACE_DIR
# (default <repo>/../shared/traces/arc), PAGEKEEPER_SKIP_SETUP=1 to skip setup-debian.sh.
set -euo pipefail

readonly repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly build_dir="${PAGEKEEPER_BUILD_DIR:-${repo_root}/build-demo}"
readonly trace="${PAGEKEEPER_TRACE_DIR:-${repo_root}/../shared/traces/arc}/OLTP.lis.zst"

if [[ "${PAGEKEEPER_SKIP_SETUP:-0}" != "1" ]]; then
  bash "${repo_root}/scripts/setup-debian.sh" >&2
fi
if [[ ! -f "${trace}" ]]; then
  echo "demo: trace ${trace} not found; set PAGEKEEPER_TRACE_DIR to the ARC traces" >&2
  exit 1
fi
cmake -S "${repo_root}" -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "${build_dir}" -j "${PAGEKEEPER_JOBS:-2}" --target pagekeeper_cli >&2
"${build_dir}/bin/pagekeeper" sim --trace "${trace}" --capacity 1000 --policy lru \
  --watermark 1.0 --shards 1
