#!/usr/bin/env bash
# fleet-sim.sh: a fleet of N pagekeeperd processes that embed one shared corpus, once with
# every daemon on one Redis (--redis) and once as N independent daemons, and the total texts
# their embedders were sent in each case (pagekeeper_embedder_texts_total, read from each
# daemon's embedding/cache/stats). With the shared tier the total should fall to about 1/N.
#
# Two schedules: `staggered` (host i starts when host i-1 has finished: a fleet rolling out)
# and `concurrent` (all hosts at once, each in its own shuffled order: a fleet indexing the
# same tree at the same moment, where texts embedded at the same time by two hosts are paid
# twice).
#
# Usage: scripts/fleet-sim.sh BUILD_DIR [HOSTS=4] [TEXTS=2000]
set -euo pipefail

build="${1:?usage: fleet-sim.sh BUILD_DIR [HOSTS] [TEXTS]}"
hosts="${2:-4}"
texts="${3:-2000}"
daemon="${build}/bin/pagekeeperd"
[[ -x "${daemon}" ]] || { echo "fleet-sim: ${daemon} not built" >&2; exit 2; }
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "${pid}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "${work}"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The corpus, as request bodies of 250 texts, in a different shuffled order per host.
python3 - "${work}" "${hosts}" "${texts}" <<'PY'
import json, random, sys
work, hosts, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
corpus = [f"chunk {i} of the shared corpus: a paragraph every host of the fleet embeds" for i in range(n)]
for h in range(hosts):
    order = corpus[:]
    random.Random(h).shuffle(order)
    for b in range(0, n, 250):
        with open(f"{work}/host{h}-batch{b // 250:04d}.json", "w") as f:
            json.dump({"input": order[b:b + 250]}, f)
PY

redis_port="$(free_port)"
redis-server --port "${redis_port}" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning \
  --dir "${work}" >/dev/null &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "${redis_port}" PING 2>/dev/null | grep -q PONG && break; sleep 0.1; done

start_daemon() {  # start_daemon LOG [FLAGS...]: prints the daemon's port
  local log="$1"; shift
  "${daemon}" --port 0 --no-host-memory --threads 4 "$@" >"${log}" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do
    if grep -q "listening on" "${log}"; then grep -o 'listening on http://[^ ]*' "${log}" | sed 's/.*://'; return; fi
    sleep 0.05
  done
  echo "fleet-sim: pagekeeperd did not start: $(cat "${log}")" >&2; exit 1
}

feed() {  # feed PORT HOST: sends the host's batches in order
  for body in "${work}"/host"$2"-batch*.json; do
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' --data-binary @"${body}" \
      "http://127.0.0.1:$1/v1/embeddings"
  done
}

embedded() {  # embedded PORT: texts the daemon's embedders were sent
  curl -sf -X POST -H 'Content-Type: application/json' -d '{}' "http://127.0.0.1:$1/api/embedding/cache/stats" |
    python3 -c 'import json,sys; print(sum(json.load(sys.stdin).get("embedderTexts", {}).values()))'
}

run() {  # run SCHEDULE SHARED: prints the total embedded by the fleet
  local schedule="$1" shared="$2" total=0 ports=() flags=()
  redis-cli -p "${redis_port}" FLUSHALL >/dev/null
  [[ "${shared}" == yes ]] && flags=(--redis "redis://127.0.0.1:${redis_port}")
  for h in $(seq 0 $((hosts - 1))); do ports+=("$(start_daemon "${work}/d${h}.log" "${flags[@]}")"); done
  if [[ "${schedule}" == staggered ]]; then
    for h in $(seq 0 $((hosts - 1))); do
      feed "${ports[h]}" "${h}"
      # The next host starts once this one's vectors are written down.
      [[ "${shared}" == yes ]] && for _ in $(seq 200); do
        [[ "$(redis-cli -p "${redis_port}" DBSIZE)" -ge "${texts}" ]] && break; sleep 0.05; done
    done
  else
    for h in $(seq 0 $((hosts - 1))); do feed "${ports[h]}" "${h}" & done
    wait_feeds=$(jobs -p | grep -v -F -x -f <(printf '%s\n' "${pids[@]}") || true)
    for pid in ${wait_feeds}; do wait "${pid}"; done
  fi
  for h in $(seq 0 $((hosts - 1))); do total=$((total + $(embedded "${ports[h]}"))); done
  for pid in "${pids[@]:1}"; do kill "${pid}" 2>/dev/null || true; wait "${pid}" 2>/dev/null || true; done
  pids=("${pids[0]}")
  echo "${total}"
}

echo "fleet-sim: ${hosts} hosts, ${texts} shared texts (lexical, 384 dimensions)"
printf '%-11s %-22s %-22s %s\n' schedule "independent (texts)" "shared Redis (texts)" "shared / independent"
for schedule in staggered concurrent; do
  independent="$(run "${schedule}" no)"
  shared="$(run "${schedule}" yes)"
  printf '%-11s %-22s %-22s %s\n' "${schedule}" "${independent}" "${shared}" \
    "$(python3 -c "print(f'{${shared}/${independent}:.3f} (1/N = {1/${hosts}:.3f})')")"
done
