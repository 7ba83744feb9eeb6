#!/usr/bin/env bash
# bench-pagekeeperd.sh BUILD_DIR: requests/s and latency of pagekeeperd answering a cached
# single input on /v1/embeddings with wrk (scripts/wrk/embeddings.lua), beside redis-server
# answering GET of a stored value of the same size as the response body, measured in the same
# run with redis-benchmark at the same concurrency. For each of CONNECTIONS (default
# "8 64 256") and each of ENCODINGS (default "float"), DURATION seconds each (default 10).
# Prints one line per pair with the ratio, and fails when wrk reports errors or non-2xx answers.
# Each line also gives the CPU time each server spent per answer (user + system, from
# /proc/PID/stat), which a busy shared machine disturbs far less than requests per second.
set -euo pipefail
readonly build_dir="${1:?usage: bench-pagekeeperd.sh BUILD_DIR}"
readonly repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly connection_counts="${CONNECTIONS:-8 64 256}" encodings="${ENCODINGS:-float}" duration="${DURATION:-10}"
readonly port="${PORT:-18177}" redis_port="${REDIS_PORT:-16379}"
readonly input="pagekeeper benchmark: one cached sentence of ordinary length"

"${build_dir}/bin/pagekeeperd" --port "${port}" --no-host-memory >/dev/null 2>&1 &
daemon=$!
redis-server --port "${redis_port}" --save "" --appendonly no >/dev/null 2>&1 &
redis=$!
trap 'kill ${daemon} ${redis} 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:${port}/healthz" >/dev/null 2>&1 && redis-cli -p "${redis_port}" ping >/dev/null 2>&1 && break
  sleep 0.1
done

# CPU time (user + system) of process $1 so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
readonly ticks_per_second="$(getconf CLK_TCK)"
# Microseconds of CPU per request: ticks $1 over $2 requests.
micros_per() { awk -v t="$1" -v n="$2" -v hz="${ticks_per_second}" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}'; }

status=0
for encoding in ${encodings}; do
  body="$(curl -fsS -XPOST "http://127.0.0.1:${port}/v1/embeddings" -H 'Content-Type: application/json' \
    -d "{\"input\":\"${input}\",\"model\":\"lexical\",\"encoding_format\":\"${encoding}\"}")"
  size=${#body}
  # redis-benchmark's GET reads the key "key:__rand_int__" (no -r): store a value of that size.
  head -c "${size}" /dev/zero | tr '\0' 'v' | redis-cli -p "${redis_port}" -x set 'key:__rand_int__' >/dev/null
  for c in ${connection_counts}; do
    ours_cpu0=$(cpu_ticks "${daemon}")
    wrk_out="$(ENCODING="${encoding}" wrk -t1 -c"${c}" -d"${duration}s" --latency \
      -s "${repo_root}/scripts/wrk/embeddings.lua" "http://127.0.0.1:${port}")"
    ours_cpu=$(($(cpu_ticks "${daemon}") - ours_cpu0))
    ours=$(awk '/Requests\/sec/ {print $2}' <<<"${wrk_out}")
    ours_requests=$(awk '/requests in/ {print $1}' <<<"${wrk_out}")
    p50=$(awk '$1 == "50%" {print $2}' <<<"${wrk_out}")
    p99=$(awk '$1 == "99%" {print $2}' <<<"${wrk_out}")
    errors=$(grep -E "Non-2xx|Socket errors" <<<"${wrk_out}" || true)
    redis_cpu0=$(cpu_ticks "${redis}")
    redis_requests=$((duration * 30000))
    redis_out="$(redis-benchmark -p "${redis_port}" -c "${c}" -n "${redis_requests}" -t get 2>/dev/null | tr '\r' '\n')"
    redis_cpu=$(($(cpu_ticks "${redis}") - redis_cpu0))
    theirs=$(awk '/throughput summary/ {print $3}' <<<"${redis_out}")
    redis_p99=$(grep -A2 "latency summary" <<<"${redis_out}" | tail -1 | awk '{print $5}')
    ratio=$(awk -v a="${ours}" -v b="${theirs}" 'BEGIN {printf "%.2f", a / b}')
    echo "${encoding} body ${size} B, ${c} connections: pagekeeperd ${ours} req/s (p50 ${p50}, p99 ${p99})," \
      "redis GET ${theirs} req/s (p99 ${redis_p99} ms), ratio ${ratio};" \
      "CPU per request: pagekeeperd $(micros_per "${ours_cpu}" "${ours_requests}") us," \
      "redis $(micros_per "${redis_cpu}" "${redis_requests}") us${errors:+; wrk: ${errors//$'\n'/; }}"
    if [[ -n "${errors}" ]]; then status=1; fi
  done
done
exit "${status}"
