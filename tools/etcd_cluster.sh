#!/usr/bin/env bash
# A 3-member etcd cluster on 127.0.0.1, the baseline mrkv is measured against (issue #4).
#
#   tools/etcd_cluster.sh start    # start m1..m3, wait until all are healthy
#   tools/etcd_cluster.sh status   # health of each member
#   tools/etcd_cluster.sh stop     # stop the members this script started and delete their data
#
# Install etcd with `apt-get install -y etcd-server` (Debian bookworm: etcd 3.4.23).
# Client URLs: http://127.0.0.1:23791..23793 (what tools/load.ts --target etcd uses by default);
# peer URLs: http://127.0.0.1:23801..23803. Ports avoid 2379/2380, which mrkv's scheduler uses.
# Everything (data dirs, logs, pid files) lives under $ETCD_BENCH_DIR, default
# ${TMPDIR:-/tmp}/mrkv-etcd. Flags are etcd's defaults apart from the URLs and names (fsync on,
# heartbeat 100 ms, election timeout 1000 ms, snapshot-count 100000), so the numbers are those of
# a stock etcd.
set -euo pipefail

DIR="${ETCD_BENCH_DIR:-${TMPDIR:-/tmp}/mrkv-etcd}"
CLIENT_BASE="${ETCD_CLIENT_BASE_PORT:-23790}"
PEER_BASE="${ETCD_PEER_BASE_PORT:-23800}"
MEMBERS=(1 2 3)
ETCD="${ETCD_BIN:-etcd}"

client_url() { echo "http://127.0.0.1:$((CLIENT_BASE + $1))"; }
peer_url() { echo "http://127.0.0.1:$((PEER_BASE + $1))"; }

initial_cluster() {
  local parts=()
  for i in "${MEMBERS[@]}"; do parts+=("m$i=$(peer_url "$i")"); done
  local IFS=,
  echo "${parts[*]}"
}

# The flags each member is started with; also printed by `flags` for the benchmark notes.
member_flags() {
  local i=$1
  echo --name "m$i" \
    --data-dir "$DIR/m$i.data" \
    --listen-client-urls "$(client_url "$i")" \
    --advertise-client-urls "$(client_url "$i")" \
    --listen-peer-urls "$(peer_url "$i")" \
    --initial-advertise-peer-urls "$(peer_url "$i")" \
    --initial-cluster "$(initial_cluster)" \
    --initial-cluster-token mrkv-bench \
    --initial-cluster-state new \
    --logger zap --log-outputs stderr --log-level info
}

is_running() {
  local pidfile="$DIR/m$1.pid"
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

healthy() {
  curl -fsS --max-time 2 "$(client_url "$1")/health" 2>/dev/null | grep -q '"health":"true"'
}

start() {
  command -v "$ETCD" >/dev/null || { echo "etcd_cluster: '$ETCD' not found (apt-get install -y etcd-server)" >&2; exit 1; }
  for i in "${MEMBERS[@]}"; do
    if is_running "$i"; then echo "etcd_cluster: m$i is already running (stop first)" >&2; exit 1; fi
  done
  rm -rf "$DIR"
  mkdir -p "$DIR"
  "$ETCD" --version | head -n1 >"$DIR/version"
  for i in "${MEMBERS[@]}"; do
    # shellcheck disable=SC2046 # member_flags is word-split on purpose; paths have no spaces
    nohup "$ETCD" $(member_flags "$i") >"$DIR/m$i.log" 2>&1 &
    echo $! >"$DIR/m$i.pid"
  done
  # Poll every member's /health for up to 30 s.
  for _ in $(seq 1 150); do
    local ok=0
    for i in "${MEMBERS[@]}"; do
      is_running "$i" || { echo "etcd_cluster: m$i exited; log:" >&2; tail -n 20 "$DIR/m$i.log" >&2; stop; exit 1; }
      healthy "$i" && ok=$((ok + 1))
    done
    if [[ $ok -eq ${#MEMBERS[@]} ]]; then
      echo "etcd_cluster: $(cat "$DIR/version"), 3 members healthy at" \
        "$(client_url 1),$(client_url 2),$(client_url 3); data under $DIR"
      return 0
    fi
    sleep 0.2
  done
  echo "etcd_cluster: members not healthy after 30 s; logs under $DIR" >&2
  stop
  exit 1
}

stop() {
  for i in "${MEMBERS[@]}"; do
    local pidfile="$DIR/m$i.pid"
    [[ -f $pidfile ]] || continue
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$pidfile"
  done
  rm -rf "$DIR"
  echo "etcd_cluster: stopped"
}

status() {
  for i in "${MEMBERS[@]}"; do
    local state="down"
    is_running "$i" && state="running"
    is_running "$i" && healthy "$i" && state="healthy"
    echo "m$i $(client_url "$i") $state"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  flags) member_flags "${2:-1}"; echo ;;
  *) echo "usage: $0 start|stop|status|flags [member]" >&2; exit 2 ;;
esac
