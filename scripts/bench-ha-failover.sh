#!/usr/bin/env bash
# Leader failover with real processes: a 3-member etcd on loopback, three agora-masters,
# AGENTS real agents (process isolation) and one framework (`agora run`, TASKS tasks that
# sleep), then `kill -9` of the leader. Prints, from the kill: when another master leads,
# when every agent is registered with it (same ids), when the framework is subscribed
# again, and whether every task is still RUNNING there (0 lost). Everything it started is
# killed at the end. Needs etcd (apt-get install etcd-server) and the debug binaries
# (cargo build -p agora-master -p agora-agent -p agora-cli --bins).
#
#   AGENTS=20 TASKS=100 TTL=2 scripts/bench-ha-failover.sh
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS="${AGENTS:-20}"; TASKS="${TASKS:-100}"; TTL="${TTL:-2}"; BIN="${BIN:-target/debug}"
[ "$AGENTS" -le 200 ] || { echo "AGENTS at most 200" >&2; exit 2; }
dir="$(mktemp -d /tmp/agora-ha-bench.XXXXXX)"; pids=()
# Tasks run as an unprivileged user: their sandboxes under $dir must be reachable.
chmod 755 "$dir"
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  # Tasks (process isolation) outlive a killed agent: end those whose sandbox is here.
  for p in $(pgrep -x sleep || true); do
    case "$(readlink "/proc/$p/cwd" 2>/dev/null)" in "$dir"/*) kill -9 "$p" 2>/dev/null || true;; esac
  done
  [ -n "${KEEP:-}" ] && echo "kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
ic=""; eps=""; declare -a cp pp
for i in 0 1 2; do cp[$i]=$(port); pp[$i]=$(port); ic+="e$i=http://127.0.0.1:${pp[$i]},"; eps+="http://127.0.0.1:${cp[$i]},"; done
for i in 0 1 2; do
  etcd --name "e$i" --data-dir "$dir/e$i" --listen-client-urls "http://127.0.0.1:${cp[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${cp[$i]}" --listen-peer-urls "http://127.0.0.1:${pp[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${pp[$i]}" --initial-cluster "${ic%,}" \
    --initial-cluster-token bench >"$dir/e$i.log" 2>&1 & pids+=($!)
done
declare -a ma mp
for i in 0 1 2; do
  ma[$i]="127.0.0.1:$(port)"
  "$BIN/agora-master" --listen "${ma[$i]}" --data-dir "$dir/m$i" --etcd-endpoints "${eps%,}" \
    --etcd-lease-ttl-seconds "$TTL" --allocation-interval-ms 200 >"$dir/m$i.log" 2>&1 & mp[$i]=$!; pids+=($!)
done
masters="${ma[0]},${ma[1]},${ma[2]}"
health() { curl -s -m 1 "http://$1/health" 2>/dev/null || true; }
leader() { for i in 0 1 2; do [ "${mp[$i]}" = dead ] && continue; health "${ma[$i]}" | grep -q '"leading":true' && { echo "$i"; return; }; done; echo -1; }
until [ "$(leader)" != -1 ]; do sleep 0.2; done
for k in $(seq 1 "$AGENTS"); do
  "$BIN/agora-agent" --master "$masters" --work-dir "$dir/a$k" --hostname "bench-$k" --isolation process \
    --resources "cpus:8;mem:8192;disk:1024;ports:[31000-31099]" >"$dir/a$k.log" 2>&1 & pids+=($!)
done
"$BIN/agora" run --master "$masters" --instances "$TASKS" --cpus 0.1 --mem 8 --name bench -- sleep 600 >"$dir/run.log" 2>&1 & pids+=($!)
l=$(leader); state() { curl -s -m 5 "http://${ma[$1]}/api/v1/state"; }
count() { python3 -c "import json,sys;s=json.load(sys.stdin);print(sum(1 for a in s['agents'] if a['status']=='registered'), sum(1 for f in s['frameworks'] if f.get('status')=='connected'), sum(1 for t in s['tasks'] if t['state']=='RUNNING'))" 2>/dev/null || echo "0 0 0"; }
w=0; until c=$(state "$l" | count); [ "$c" = "$AGENTS 1 $TASKS" ]; do
  sleep 0.5; w=$((w+1)); [ $((w % 10)) = 0 ] && echo "waiting for the load: agents, frameworks, tasks RUNNING = $c" >&2
  [ "$w" -lt 400 ] || { echo "the load never came up" >&2; exit 1; }
done
echo "load: $AGENTS agents, 1 framework, $TASKS tasks RUNNING on master $l; lease TTL ${TTL}s"
t0=$(date +%s.%N); kill -9 "${mp[$l]}"; mp[$l]=dead
since() { python3 -c "print(f'{$(date +%s.%N)-$t0:.2f}')"; }
until n=$(leader); [ "$n" != -1 ]; do sleep 0.05; done; echo "new leader (master $n): $(since) s"
a=""; f=""
while :; do
  read -r ra rf rt <<<"$(state "$n" | count)"
  [ -z "$a" ] && [ "$ra" = "$AGENTS" ] && a=$(since) && echo "all $AGENTS agents registered: $a s"
  [ -z "$f" ] && [ "$rf" = 1 ] && f=$(since) && echo "framework subscribed: $f s"
  if [ -n "$a" ] && [ -n "$f" ]; then echo "tasks RUNNING on the new leader: $rt of $TASKS (lost: $((TASKS-rt)))"; break; fi
  python3 -c "import sys;sys.exit(0 if $(date +%s)-${t0%.*} < 120 else 1)" || { echo "timed out"; exit 1; }
  sleep 0.05
done
