#!/usr/bin/env bash
# demo.sh: the README's main-job command. On a fresh Debian 12 machine: installs the
# dependencies, builds `pagekeeperd` and the `pagekeeper` tool (Release), starts pagekeeperd on
# the lexical embedder, indexes this repository through it twice (the second run must be all
# cache hits), replays the bundled OLTP trace through the pool (`pagekeeper sim`, hit_ratio
# 32.83 as in the ARC README), and leaves the daemon running with its dashboard's address.
# Prints one JSON object on stdout: {"index": {"first": ..., "second": ...}, "dashboard": URL,
# "pagekeeperdPid": PID, "sim": {...}}; progress goes to stderr.
#
# Environment: PAGEKEEPER_BUILD_DIR (default <repo>/build-demo), PAGEKEEPER_SKIP_SETUP=1 to
# skip setup-debian.sh,
# PAGEKEEPER_PORT (default 8077), PAGEKEEPER_DEMO_STOP=1 to stop pagekeeperd at the end.
set -euo pipefail

readonly repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly build_dir="${PAGEKEEPER_BUILD_DIR:-${repo_root}/build-demo}"
# The OLTP trace ships with the repository (tests/data/README.md cites its source).
readonly trace="${repo_root}/tests/data/OLTP.lis.zst"
readonly port="${PAGEKEEPER_PORT:-8077}"
readonly url="http://127.0.0.1:${port}"

if [[ "${PAGEKEEPER_SKIP_SETUP:-0}" != "1" ]]; then
  bash "${repo_root}/scripts/setup-debian.sh" >&2
fi
if [[ ! -f "${trace}" ]]; then
  echo "demo: trace ${trace} not found (it is part of the repository)" >&2
  exit 1
fi
cmake -S "${repo_root}" -B "${build_dir}" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "${build_dir}" -j "${PAGEKEEPER_JOBS:-2}" --target pagekeeper_cli pagekeeperd >&2

# A daemon left running by an earlier demo holds the port: stop it first.
pid_file="${build_dir}/pagekeeperd.pid"
if [[ -f "${pid_file}" ]] && kill -0 "$(cat "${pid_file}")" 2>/dev/null; then
  kill -TERM "$(cat "${pid_file}")"
  while kill -0 "$(cat "${pid_file}")" 2>/dev/null; do sleep 0.1; done
fi
nohup "${build_dir}/bin/pagekeeperd" --port "${port}" --model lexical >"${build_dir}/pagekeeperd.log" 2>&1 &
daemon_pid=$!
echo "${daemon_pid}" >"${pid_file}"
for _ in $(seq 100); do
  curl -fsS "${url}/healthz" >/dev/null 2>&1 && break
  kill -0 "${daemon_pid}" 2>/dev/null || { cat "${build_dir}/pagekeeperd.log" >&2; exit 1; }
  sleep 0.1
done
echo "demo: pagekeeperd ${daemon_pid} on ${url}; indexing ${repo_root} twice" >&2
first="$("${build_dir}/bin/pagekeeper" index "${repo_root}" --server "${url}" --json)"
second="$("${build_dir}/bin/pagekeeper" index "${repo_root}" --server "${url}" --json)"
python3 -c 'import json,sys; a,b=map(json.loads,sys.argv[1:]); print("demo: first run hit rate %.1f%% (%d chunks), second run hit rate %.1f%%" % (a["hitRatePercent"], a["chunks"], b["hitRatePercent"]), file=sys.stderr)' "${first}" "${second}"
sim="$("${build_dir}/bin/pagekeeper" sim --trace "${trace}" --capacity 1000 --policy lru --watermark 1.0 --shards 1)"
if [[ "${PAGEKEEPER_DEMO_STOP:-0}" == "1" ]]; then
  kill -TERM "${daemon_pid}" && wait "${daemon_pid}" || true
else
  echo "demo: dashboard at ${url}/  (stop the daemon with: kill ${daemon_pid})" >&2
fi
printf '{"index":{"first":%s,"second":%s},"dashboard":"%s/","pagekeeperdPid":%s,"sim":%s}\n' \
  "${first}" "${second}" "${url}" "${daemon_pid}" "$(tr -d '\n' <<<"${sim}")"
