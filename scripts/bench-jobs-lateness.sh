#!/usr/bin/env bash
# Start lateness of scheduled job runs (scheduled time -> launch sent), p50/p99, on one
# agora-jobs daemon against a real agora-master, with agora-loadgen's emulated agents
# (they answer RunTask and report statuses; no real processes are started).
#
# JOBS jobs (default 10,000), each on a 6-field cron once a minute at second i % 60, so
# about JOBS/60 runs are due every second. After every job exists, the script waits for the
# next minute boundary (so the first minute's catch-up is not counted), reads the daemon's
# `agora_jobs_start_lateness_seconds` histogram, lets MEASURE_SECS pass, reads it again and
# prints p50/p99 of the difference (linear inside a bucket) and the start rate.
#
# Bounded: every process it starts is killed on exit, and the whole run stops after
# MEASURE_SECS plus setup (the loadgen has its own --max-seconds cap).
#
# Usage: bash scripts/bench-jobs-lateness.sh
#   env: JOBS=10000 MEASURE_SECS=150 AGENTS=100 SKIP_BUILD=1 (use binaries already built)
#        BIN=<dir of agora-master, agora-jobs> LOADGEN=<agora-loadgen binary>
set -euo pipefail

JOBS=${JOBS:-10000}
MEASURE_SECS=${MEASURE_SECS:-150}
AGENTS=${AGENTS:-100}
AGENT_RESOURCES=${AGENT_RESOURCES:-cpus:16;mem:65536;disk:65536}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1:15850}
JOBS_ADDR=${JOBS_ADDR:-127.0.0.1:15860}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release}
LOADGEN=${LOADGEN:-$BIN/agora-loadgen}

if [[ -z ${SKIP_BUILD:-} ]]; then
    (cd "$ROOT" && cargo build --release -p agora-master -p agora-jobs -p agora-benches \
        --bin agora-master --bin agora-jobs --bin agora-loadgen)
fi

WORK=$(mktemp -d /tmp/bench-jobs-lateness.XXXXXX)
# shellcheck source=lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"

"$BIN/agora-master" --listen "$MASTER_ADDR" --data-dir "$WORK/master" \
    >"$WORK/master.log" 2>&1 &
PIDS+=($!)
wait_http "http://$MASTER_ADDR/health" 60

TOTAL_SECS=$((MEASURE_SECS + 600))
"$LOADGEN" --master "$MASTER_ADDR" --agent-resources "$AGENT_RESOURCES" --skip-starting \
    --max-seconds "$TOTAL_SECS" --results "$WORK/loadgen" \
    launch --agents "$AGENTS" --frameworks 0 --duration-secs "$TOTAL_SECS" \
    >"$WORK/loadgen.log" 2>&1 &
PIDS+=($!)

"$BIN/agora-jobs" --master "$MASTER_ADDR" --listen "$JOBS_ADDR" --data-dir "$WORK/jobs" \
    >"$WORK/jobs.log" 2>&1 &
PIDS+=($!)
wait_http "http://$JOBS_ADDR/health" 60

echo "creating $JOBS jobs ..."
python3 - "$JOBS_ADDR" "$JOBS" <<'EOF'
import http.client, json, sys, threading
addr, n = sys.argv[1], int(sys.argv[2])
host, port = addr.rsplit(":", 1)
errors = []
def worker(lo, hi):
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    for i in range(lo, hi):
        body = json.dumps({
            "id": f"bench.j{i}",
            "run": {"cmd": "true", "cpus": 0.1, "mem": 32},
            "schedules": [{"id": "s", "cron": f"{i % 60} * * * * *", "timezone": "UTC"}],
        })
        c.request("POST", "/v1/jobs", body, {"content-type": "application/json"})
        r = c.getresponse(); data = r.read()
        if r.status >= 300:
            errors.append((i, r.status, data[:200])); return
threads, k = [], 8
for t in range(k):
    th = threading.Thread(target=worker, args=(n * t // k, n * (t + 1) // k)); th.start(); threads.append(th)
for th in threads: th.join()
if errors:
    sys.exit(f"job creation failed: {errors[:3]}")
EOF
echo "created at $(date -u +%T); waiting for the next minute boundary"
sleep $((60 - $(date +%s) % 60 + 5))

snap() { curl -sf "http://$JOBS_ADDR/metrics" | grep '^agora_jobs_start_lateness_seconds_bucket\|^agora_jobs_runs_started_total'; }
snap >"$WORK/before.txt"
T0=$(date +%s.%N)
echo "measuring for ${MEASURE_SECS}s from $(date -u +%T)"
sleep "$MEASURE_SECS"
snap >"$WORK/after.txt"
T1=$(date +%s.%N)

python3 - "$WORK/before.txt" "$WORK/after.txt" "$T0" "$T1" <<'EOF'
import re, sys
def read(p):
    b, started = [], 0
    for line in open(p):
        m = re.match(r'agora_jobs_start_lateness_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
        if m: b.append((float(m.group(1)), int(m.group(2))))
        elif line.startswith("agora_jobs_runs_started_total"): started = int(line.split()[1])
    return b, started
(b0, s0), (b1, s1) = read(sys.argv[1]), read(sys.argv[2])
secs = float(sys.argv[4]) - float(sys.argv[3])
cum = [(le, c1 - c0) for (le, c1), (_, c0) in zip(b1, b0)]
n = cum[-1][1]
def q(p):
    rank, prev_le, prev_c = p * n, 0.0, 0
    for le, c in cum:
        if c >= rank:
            if le == float("inf"): return float("inf")
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1)
        prev_le, prev_c = le, c
print(f"scheduled starts measured: {n} in {secs:.0f} s = {n / secs:.1f}/s (runs started: {s1 - s0})")
print("buckets (le -> count):", ", ".join(f"{le}:{c}" for le, c in cum))
print(f"lateness p50 = {q(0.5) * 1000:.0f} ms, p99 = {q(0.99) * 1000:.0f} ms (linear within buckets)")
EOF
