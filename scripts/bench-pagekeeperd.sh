#!/usr/bin/env bash
# bench-pagekeeperd.sh BUILD_DIR: requests/s and latency of pagekeeperd answering a cached
# single input on /v1/embeddings (float and base64) with wrk, beside redis-server answering GET
# for a value of the same size as each response body, measured in the same run with
# redis-benchmark. Same client concurrency for both (CONNECTIONS, default 8), DURATION seconds.
set -euo pipefail
readonly build_dir="${1:?usage: bench-pagekeeperd.sh BUILD_DIR}"
readonly repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly connections="${CONNECTIONS:-8}" duration="${DURATION:-10}"
readonly port="${PORT:-18177}" redis_port="${REDIS_PORT:-16379}"

"${build_dir}/bin/pagekeeperd" --port "${port}" --threads "${connections}" --no-host-memory >/dev/null 2>&1 &
daemon=$!
redis-server --port "${redis_port}" --save "" --appendonly no >/dev/null 2>&1 &
redis=$!
trap 'kill ${daemon} ${redis} 2>/dev/null || true' EXIT
sleep 1
for encoding in float base64; do
  body="$(curl -fsS -XPOST "http://127.0.0.1:${port}/v1/embeddings" -H 'Content-Type: application/json' \
    -d "{\"input\":\"pagekeeper benchmark: one cached sentence of ordinary length\",\"model\":\"lexical\",\"encoding_format\":\"${encoding}\"}")"
  size=${#body}
  echo "== pagekeeperd /v1/embeddings ${encoding} (response body ${size} bytes), wrk -t1 -c${connections} -d${duration}s"
  ENCODING="${encoding}" wrk -t1 -c"${connections}" -d"${duration}s" --latency \
    -s "${repo_root}/scripts/wrk/embeddings.lua" "http://127.0.0.1:${port}" | grep -E "Requests/sec|99%|50%|Non-2xx|errors"
  echo "== redis-server GET of a ${size}-byte value, redis-benchmark -c ${connections}"
  redis-benchmark -p "${redis_port}" -c "${connections}" -n $((duration * 40000)) -d "${size}" -t get -q \
    --precision 3 2>/dev/null | tr '\r' '\n' | grep -E "GET" | tail -1
  redis-benchmark -p "${redis_port}" -c "${connections}" -n $((duration * 40000)) -d "${size}" -t get \
    2>/dev/null | tr '\r' '\n' | grep -A3 -E "latency summary" | tail -2
done
