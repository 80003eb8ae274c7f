#!/usr/bin/env bash
# One app of INSTANCES instances (default 1,000) on AGENTS agents (default 100) with
# agora-services: the time from POST /v2/apps until every instance runs and is healthy
# and the deployment has ended, then the same for a rolling upgrade of it (a new `cmd`,
# minimumHealthCapacity 0.9, maximumOverCapacity 0.1).
#
# Real agora-master and agora-services (release builds); the agents are agora-loadgen's
# emulated ones (`launch --frameworks 0`: they speak the real agent protocol, run no
# processes, report RUNNING at once and a task with a health check healthy in it). Each
# instance takes 0.1 cpu, 32 MB and one port, with a COMMAND health check.
#
# Bounded: every process it starts is killed on exit, each phase gives up after
# PHASE_MAX_SECS, and the loadgen stops itself after its --max-seconds.
#
# Usage: bash scripts/bench-services-1k.sh
#   env: INSTANCES=1000 AGENTS=100 PHASE_MAX_SECS=600 SKIP_BUILD=1 (use binaries built)
#        BIN=<dir of agora-master, agora-services> LOADGEN=<agora-loadgen binary>
set -euo pipefail

INSTANCES=${INSTANCES:-1000}
AGENTS=${AGENTS:-100}
PHASE_MAX_SECS=${PHASE_MAX_SECS:-600}
AGENT_RESOURCES=${AGENT_RESOURCES:-cpus:16;mem:65536;disk:65536;ports:[31000-32000]}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1:15950}
SERVICES_ADDR=${SERVICES_ADDR:-127.0.0.1:15960}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release}
LOADGEN=${LOADGEN:-$BIN/agora-loadgen}

if [[ -z ${SKIP_BUILD:-} ]]; then
    (cd "$ROOT" && cargo build --release -p agora-master -p agora-services -p agora-benches \
        --bin agora-master --bin agora-services --bin agora-loadgen)
fi

WORK=$(mktemp -d /tmp/bench-services-1k.XXXXXX)
# shellcheck source=lib/bench.sh
source "$ROOT/scripts/lib/bench.sh"

"$BIN/agora-master" --listen "$MASTER_ADDR" --data-dir "$WORK/master" \
    >"$WORK/master.log" 2>&1 &
PIDS+=($!)
wait_http "http://$MASTER_ADDR/health" 60

TOTAL_SECS=$((PHASE_MAX_SECS * 2 + 300))
"$LOADGEN" --master "$MASTER_ADDR" --agent-resources "$AGENT_RESOURCES" --skip-starting \
    --max-seconds "$TOTAL_SECS" --results "$WORK/loadgen" \
    launch --agents "$AGENTS" --frameworks 0 --task-secs 86400 --task-jitter-secs 0 \
    --duration-secs "$TOTAL_SECS" \
    >"$WORK/loadgen.log" 2>&1 &
PIDS+=($!)

"$BIN/agora-services" --master "$MASTER_ADDR" --listen "$SERVICES_ADDR" \
    --data-dir "$WORK/services" >"$WORK/services.log" 2>&1 &
SERVICES_PID=$!
PIDS+=($SERVICES_PID)
wait_http "http://$SERVICES_ADDR/ping" 60

echo "waiting for $AGENTS agents ..."
for _ in $(seq 1 600); do
    n=$(curl -sf "http://$MASTER_ADDR/api/v1/state" | python3 -c \
        'import json,sys; print(sum(1 for a in json.load(sys.stdin)["agents"] if a["status"]=="registered"))' \
        2>/dev/null || echo 0)
    [[ $n -ge $AGENTS ]] && break
    sleep 0.5
done
echo "$n agents registered"

python3 - "$SERVICES_ADDR" "$INSTANCES" "$PHASE_MAX_SECS" "$SERVICES_PID" <<'EOF'
import http.client, json, os, sys, time
addr, n, limit, pid = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
host, port = addr.rsplit(":", 1)
tick = os.sysconf("SC_CLK_TCK")

def call(method, path, body=None):
    c = http.client.HTTPConnection(host, int(port), timeout=60)
    c.request(method, path, json.dumps(body) if body is not None else None,
              {"content-type": "application/json"})
    r = c.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data else None)

def cpu_secs():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def rss_mib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

def app(cmd):
    return {"id": "/bench/web", "cmd": cmd, "instances": n, "cpus": 0.1, "mem": 32,
            "portDefinitions": [{"port": 0}],
            "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"},
                              "gracePeriodSeconds": 30, "intervalSeconds": 10}],
            "upgradeStrategy": {"minimumHealthCapacity": 0.9, "maximumOverCapacity": 0.1}}

def wait_done(what, t0, cpu0):
    first = None
    while True:
        _, body = call("GET", "/v2/apps?id=/bench/web")
        a = body["apps"][0]
        if first is None and a["tasksRunning"] > 0:
            first = time.monotonic() - t0
        if a["tasksHealthy"] == n and not a["deployments"]:
            secs = time.monotonic() - t0
            print(f"{what}: {n} instances running and healthy, deployment ended, in "
                  f"{secs:.1f} s (first running after {first or 0:.2f} s); daemon CPU "
                  f"{cpu_secs() - cpu0:.1f} s, RSS {rss_mib():.0f} MiB")
            return secs
        if time.monotonic() - t0 > limit:
            sys.exit(f"{what}: not done after {limit:.0f} s: {json.dumps(a)[:400]}")
        time.sleep(0.2)

cpu0, t0 = cpu_secs(), time.monotonic()
status, body = call("POST", "/v2/apps", app("sleep 86400"))
assert status == 201, (status, body)
start = wait_done("start", t0, cpu0)

cpu0, t0 = cpu_secs(), time.monotonic()
status, body = call("PUT", "/v2/apps/bench/web", app("sleep 86401"))
assert status == 200, (status, body)
roll = wait_done("rolling upgrade", t0, cpu0)
_, tasks = call("GET", "/v2/apps/bench/web/tasks")
versions = {t["version"] for t in tasks["tasks"]}
assert len(tasks["tasks"]) == n and len(versions) == 1, (len(tasks["tasks"]), versions)
print(json.dumps({"instances": n, "start_s": round(start, 2), "rolling_upgrade_s": round(roll, 2)}))
EOF
