#!/usr/bin/env bash
# Runs the BENCHMARKS.md measurements against real herald processes.
#
#   testing/load/bench.sh [run...]       runs: idle10k idle19k idle50k fanout1k
#                                              fanout10k fanout10kb fanout1r storm create
#                                              (default: all)
#
# Each Herald is its own process (built without -race), on 127.0.0.1:$BASEPORT+i,
# with its data in $OUT/h<i>, a shared HS256 secret, a 10-minute heartbeat (so
# pings do not disturb the figures) and /debug/pprof on. Replicas share a
# redis-server started here on a free port (never the shared one on 6379),
# without persistence, and stopped at the end. Every figure is printed as a
# table and kept as JSON in $OUT/<run>.json; with PROFILE=1 a 10 s CPU profile
# of each Herald is taken mid-run into $OUT/<run>-h<i>.pprof. HERALD_ENV adds
# environment to the Heralds only, e.g. HERALD_ENV='GOGC=400'.
set -euo pipefail

OUT=${OUT:-/tmp/herald-bench}
BASEPORT=${BASEPORT:-18800}
PROFILE=${PROFILE:-0}
PROFILE_DELAY=${PROFILE_DELAY:-8}
cd "$(dirname "$0")/../.."
mkdir -p "$OUT"

go build -o "$OUT/herald" ./sidecar/cmd/herald
go build -o "$OUT/load" ./testing/load
[ -s "$OUT/secret" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/secret"

PIDS=()
REDIS_PORT=

# start_heralds N [serve flags...]: N fresh replicas (Redis when N > 1).
start_heralds() {
	local n=$1
	shift
	local redis=()
	if [ "$n" -gt 1 ]; then
		start_redis
		redis=(--redis-url "redis://127.0.0.1:$REDIS_PORT/0" --redis-namespace "bench$RANDOM")
	fi
	for i in $(seq 1 "$n"); do
		rm -rf "$OUT/h$i"
		mkdir -p "$OUT/h$i"
		env ${HERALD_ENV:-} "$OUT/herald" serve --data-dir "$OUT/h$i" --http-addr "127.0.0.1:$((BASEPORT + i))" \
			--socket "$OUT/h$i/h.sock" --jwt-secret-file "$OUT/secret" --node-id "h$i" \
			--heartbeat 10m --pprof --log-level warn "${redis[@]}" "$@" >"$OUT/h$i/log" 2>&1 &
		PIDS+=($!)
	done
	for i in $(seq 1 "$n"); do
		for _ in $(seq 1 100); do
			curl -sf "http://127.0.0.1:$((BASEPORT + i))/readyz" >/dev/null && break
			sleep 0.1
		done
		curl -sf "http://127.0.0.1:$((BASEPORT + i))/readyz" >/dev/null ||
			{ echo "herald h$i not ready:" >&2; cat "$OUT/h$i/log" >&2; exit 1; }
	done
}

start_redis() {
	REDIS_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
	mkdir -p "$OUT/redis"
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
		--dir "$OUT/redis" --logfile "$OUT/redis/redis.log" --pidfile "$OUT/redis/redis.pid"
	for _ in $(seq 1 50); do
		redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return
		sleep 0.1
	done
	echo "redis-server on $REDIS_PORT did not start" >&2
	exit 1
}

stop_all() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	PIDS=()
	if [ -n "$REDIS_PORT" ]; then
		redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
		REDIS_PORT=
	fi
}
trap stop_all EXIT

ws_flags() { for i in $(seq 1 "$1"); do printf -- '--ws ws://127.0.0.1:%d/ws ' $((BASEPORT + i)); done; }
pid_flags() { for pid in "${PIDS[@]}"; do printf -- '--server-pid %d ' "$pid"; done; }

# measure NAME N LOAD-ARGS...: prints uptime and the command, runs it, keeps JSON.
measure() {
	local name=$1 n=$2
	shift 2
	local prof=()
	if [ "$PROFILE" = 1 ]; then
		for i in $(seq 1 "$n"); do
			(sleep "$PROFILE_DELAY" && curl -s -o "$OUT/$name-h$i.pprof" \
				"http://127.0.0.1:$((BASEPORT + i))/debug/pprof/profile?seconds=10") &
			prof+=($!)
		done
	fi
	echo "== $name  $(uptime)"
	echo "\$ load $*"
	"$OUT/load" "$@" --json-out "$OUT/$name.json" || echo "!! $name failed (exit $?)"
	for pid in "${prof[@]}"; do wait "$pid" || true; done
	echo "== $name done  $(uptime)"
}

run() {
	case $1 in
	idle10k | idle19k)
		local conns=$([ "$1" = idle10k ] && echo 10000 || echo 19000)
		start_heralds 1
		measure "$1" 1 idle $(ws_flags 1) --secret-file "$OUT/secret" --conns "$conns" $(pid_flags) \
			--settle 10s --hold 20s
		;;
	idle50k)
		start_heralds 3
		measure "$1" 3 idle $(ws_flags 3) --secret-file "$OUT/secret" --conns 50000 $(pid_flags) \
			--settle 10s --hold 20s
		;;
	fanout1k | fanout10k)
		local rate=$([ "$1" = fanout1k ] && echo 1000 || echo 10000)
		start_heralds 2
		measure "$1" 2 fanout $(ws_flags 2) --socket "$OUT/h1/h.sock" --secret-file "$OUT/secret" \
			--conns 10000 --rate "$rate" --duration 10s --drain 30s $(pid_flags)
		;;
	fanout10kb)
		# The same 10,000/s in CreateNotifications calls of 10: the create
		# path's per-call cost out of the way of delivery.
		start_heralds 2
		measure "$1" 2 fanout $(ws_flags 2) --socket "$OUT/h1/h.sock" --secret-file "$OUT/secret" \
			--conns 10000 --rate 10000 --batch 10 --duration 10s --drain 30s $(pid_flags)
		;;
	fanout1r)
		# Frames per second to 10,000 sockets on ONE Herald: creates in calls
		# of 100 at 20,000/s asked; the achieved delivery rate is the figure.
		start_heralds 1
		measure "$1" 1 fanout $(ws_flags 1) --socket "$OUT/h1/h.sock" --secret-file "$OUT/secret" \
			--conns 10000 --rate 20000 --batch 100 --duration 10s --drain 30s $(pid_flags)
		;;
	storm)
		start_heralds 1
		measure "$1" 1 storm $(ws_flags 1) --socket "$OUT/h1/h.sock" --secret-file "$OUT/secret" \
			--conns 18000 --unread 20 --spread 10s $(pid_flags)
		;;
	create)
		start_heralds 1
		measure create1 1 create --socket "$OUT/h1/h.sock" --callers 1 --duration 10s $(pid_flags)
		measure create64 1 create --socket "$OUT/h1/h.sock" --callers 64 --duration 10s $(pid_flags)
		;;
	*)
		echo "unknown run $1" >&2
		exit 2
		;;
	esac
	stop_all
}

echo "machine: $(nproc) CPUs, $(grep MemTotal /proc/meminfo | tr -s ' '), $(go version)"
echo "commit: $(git rev-parse --short HEAD) ($(git status --porcelain -- sidecar plugin sdk | wc -l) files changed or untracked under sidecar/ plugin/ sdk/)"
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(idle10k idle19k idle50k fanout1k fanout10k fanout10kb storm create)
for r in "${runs[@]}"; do run "$r"; done
