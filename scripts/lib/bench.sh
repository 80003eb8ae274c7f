# Shared by the benchmark scripts (sourced, not run): the processes a benchmark starts
# (`PIDS`), stopped on exit, and a wait for an HTTP endpoint. The caller sets `WORK`.

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    echo "logs and data: $WORK"
}
trap cleanup EXIT

wait_http() { # url, seconds
    for _ in $(seq 1 $(($2 * 10))); do
        curl -sf "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "timed out waiting for $1" >&2
    return 1
}
