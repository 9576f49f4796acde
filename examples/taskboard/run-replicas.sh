#!/usr/bin/env bash
# Runs two replicas of the taskboard, each launching its own Herald (plugin
# mode), joined through one Redis. Log in as alice on replica 1 and as bob on
# replica 2, assign a task to bob: bob's bell lights up on the other replica.
#
#   examples/taskboard/run-replicas.sh
#
# Settings (environment):
#   REDIS_URL       use this Redis; default: start redis-server on REDIS_PORT
#   REDIS_PORT      port of the redis-server started here (default 6390)
#   PORT1, PORT2    the taskboards' ports (default 8081, 8082)
#   WS_PORT1, WS_PORT2  their Heralds' WebSocket ports (default 8791, 8792)
#   HERALD_BIN, TASKBOARD_BIN  prebuilt binaries; default: go build them
#   WORK_DIR        where binaries, data and logs go (default: a new temp dir)
#
# Ctrl-C (or SIGTERM) stops everything it started.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
work=${WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/taskboard-replicas.XXXXXX")}
mkdir -p "$work"
port1=${PORT1:-8081}
port2=${PORT2:-8082}
ws1=${WS_PORT1:-8791}
ws2=${WS_PORT2:-8792}
redis_url=${REDIS_URL:-}

pids=()
cleanup() {
  trap - EXIT INT TERM
  # Newest first: the taskboards (each stops its Herald), then Redis.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

herald_bin=${HERALD_BIN:-}
taskboard_bin=${TASKBOARD_BIN:-}
if [[ -z $herald_bin ]]; then
  echo "building herald..."
  (cd "$root" && go build -o "$work/herald" ./sidecar/cmd/herald)
  herald_bin=$work/herald
fi
if [[ -z $taskboard_bin ]]; then
  echo "building taskboard..."
  (cd "$root" && go build -o "$work/taskboard" ./examples/taskboard)
  taskboard_bin=$work/taskboard
fi

if [[ -z $redis_url ]]; then
  redis_port=${REDIS_PORT:-6390}
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
  pids+=($!)
  redis_url=redis://127.0.0.1:$redis_port/0
  if command -v redis-cli >/dev/null; then
    for _ in $(seq 100); do
      redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
  fi
fi

start_replica() { # n port ws_port
  local n=$1 port=$2 ws=$3
  "$taskboard_bin" \
    --addr "127.0.0.1:$port" \
    --herald-bin "$herald_bin" \
    --herald-http-addr "127.0.0.1:$ws" \
    --herald-data-dir "$work/herald-$n" \
    --redis-url "$redis_url" \
    --herald-arg=--node-id=replica-$n \
    >"$work/taskboard-$n.log" 2>&1 &
  pids+=($!)
}
start_replica 1 "$port1" "$ws1"
start_replica 2 "$port2" "$ws2"

cat <<EOF
two taskboard replicas, each with its own Herald, sharing Redis at $redis_url
  replica 1: http://127.0.0.1:$port1/login?user=alice   (Herald ws://127.0.0.1:$ws1/ws)
  replica 2: http://127.0.0.1:$port2/login?user=bob     (Herald ws://127.0.0.1:$ws2/ws)
logs and data: $work
Ctrl-C stops everything.
EOF

# Stop everything as soon as one of them stops.
set +e
wait -n
status=$?
echo "a replica or Redis exited (status $status); stopping; see the logs in $work" >&2
exit "$status"
