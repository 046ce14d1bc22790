#!/usr/bin/env bash
# Local demo of the main job: a private redis-server on a free loopback port, sample metrics
# written to the key `metrics` every second (as the course's collector does every 5 s), and
# eventrt running the classic handler (examples/classic) event-driven. Prints each output as it
# lands, then the durable state and a few metrics. DEMO_ROUNDS (default 10) sets the length.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
ROUNDS=${DEMO_ROUNDS:-10}
DIR=$PWD/.demo
mkdir -p "$DIR"

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "demo: installing redis-server and redis-tools (Debian packages)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
fi

free_port() { # first port from $1 up with nothing listening on 127.0.0.1
  local p=$1
  while (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
RPORT=$(free_port 16390)
HPORT=$(free_port 18080)

echo "demo: building eventrt"
make -s build
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
  --logfile "$DIR/redis.log" --daemonize no &
pids+=($!)
R() { redis-cli -p "$RPORT" "$@"; }
wait_for() { # wait_for WHAT COMMAND...: up to 10 s
  local what=$1; shift
  for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "demo: $what did not come up; see $DIR" >&2; exit 1
}
wait_for redis-server R ping
echo "demo: redis-server on 127.0.0.1:$RPORT (notify-keyspace-events starts empty: eventrt sets it)"

REDIS_HOST=127.0.0.1 REDIS_PORT=$RPORT REDIS_OUTPUT_KEY=output HANDLER_PATH=examples/classic \
  HTTP_ADDR=127.0.0.1:$HPORT LOG_LEVEL=info ./bin/eventrt >"$DIR/eventrt.log" 2>&1 &
pids+=($!)
wait_for eventrt curl -fs "http://127.0.0.1:$HPORT/readyz"
echo "demo: eventrt ready on http://127.0.0.1:$HPORT (logs in .demo/eventrt.log)"
echo "demo: notify-keyspace-events is now '$(R config get notify-keyspace-events | tail -1)'"

pretty() { if command -v python3 >/dev/null 2>&1; then python3 -m json.tool --compact; else cat; fi; }
for i in $(seq "$ROUNDS"); do
  ts=$(date +%s.%N)
  json=$(awk -v ts="$ts" -v seed="$RANDOM" 'BEGIN{srand(seed)}
    /"timestamp"/ {sub(/[0-9.]+/, ts)}
    /"cpu_percent-[0-9]+"/ {sub(/: [0-9.]+/, sprintf(": %.1f", rand()*100))}
    {print}' examples/classic/metrics-sample.json)
  R set metrics "$json" >/dev/null
  # The output carries the input's timestamp: wait until this round's lands.
  for _ in $(seq 100); do R get output | grep -q "${ts%??????}" && break; sleep 0.02; done
  echo "round $i output: $(R get output | pretty)"
  sleep 1
done
echo
echo "demo: durable state (HGETALL {output}:env), survives an eventrt restart:"
R hgetall '{output}:env' | paste - - | head -20
echo "demo: bookkeeping (HGETALL {output}:env:meta):"
R hgetall '{output}:env:meta' | paste - -
echo "demo: metrics excerpt:"
curl -fs "http://127.0.0.1:$HPORT/metrics" | grep -E '^eventrt_(executions_total|runs_skipped_total|keyspace_notifications|redis_up)' || true
