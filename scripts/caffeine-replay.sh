#!/usr/bin/env bash
# Replays ARC traces through Caffeine (Debian's libcaffeine-java) with maximumSize = each
# capacity, for comparing hit ratios with `pagekeeper sim --policy wtinylfu` on the same
# requests (docs/PERFORMANCE.md). Installs the package (and a JDK) when missing.
# Usage: scripts/caffeine-replay.sh TRACE.lis.zst CAPACITY [CAPACITY...]
# Prints one JSON object per capacity (bench/peers/CaffeineReplay.java).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: $0 TRACE.lis.zst CAPACITY [CAPACITY...]" >&2
  exit 2
fi
repo_root="$(cd "$(dirname "$0")/.." && pwd)"
jar=/usr/share/java/caffeine.jar
if [[ ! -f "${jar}" ]] || ! command -v javac >/dev/null; then
  apt-get install -y libcaffeine-java default-jdk-headless >/dev/null
fi
work="${TMPDIR:-/tmp}/pagekeeper-caffeine-replay"
mkdir -p "${work}"
source_file="${repo_root}/bench/peers/CaffeineReplay.java"
if [[ ! -f "${work}/CaffeineReplay.class" || "${source_file}" -nt "${work}/CaffeineReplay.class" ]]; then
  javac -cp "${jar}" -d "${work}" "${source_file}"
fi
trace="$1"
shift
zstd -dc "${trace}" | java -cp "${jar}:${work}" CaffeineReplay "$@"
