#!/usr/bin/env bash
# Runs every check and test of the workspace, as CI does (.ci/run calls this).
#
# Needs only a Rust toolchain: protoc is vendored by the build, cargo-nextest is installed
# here when missing. End-to-end tests start real agora-master / agora-agent processes on
# loopback, so the binaries are built first.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install a Rust toolchain (https://rustup.rs)" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  step "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  step "installing rustfmt and clippy"
  rustup component add rustfmt clippy
fi

# The docs' curl examples are run by a test (cli/tests/e2e_docs.rs): it needs curl and jq.
missing=""
for tool in curl jq; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  step "installing$missing (the docs' curl examples are tested)"
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null; }
  else
    echo "error:$missing missing; install them (e.g. apt-get install$missing)" >&2
    exit 1
  fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "building binaries for end-to-end tests"
cargo build --workspace --bins

# Tests that need a facility carry it in their name (`needs_root`: root with cgroups, for
# Linux containers). Where the facility is absent they are filtered out, which nextest counts
# and prints as skipped, never as passed.
filter="all()"
have_cgroups() { [ -d /sys/fs/cgroup ] && [ -n "$(ls -A /sys/fs/cgroup 2>/dev/null)" ]; }
if [ "$(id -u)" != "0" ] || ! have_cgroups; then
  filter="$filter - test(needs_root)"
  echo "note: not root with cgroups: tests named needs_root are skipped"
fi

# The container image tests (agent/tests/images.rs, linux_isolation.rs) build a tiny image
# at test time from Debian's busybox-static (/bin/busybox); installed here when missing.
if [ ! -x /bin/busybox ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  step "installing busybox-static (the container image tests build their image from it)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q busybox-static >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q busybox-static >/dev/null 2>&1; } ||
    echo "note: could not install busybox-static"
fi
if [ ! -x /bin/busybox ]; then
  filter="$filter - test(needs_root_image) - test(needs_root_gpus)"
  echo "note: /bin/busybox missing: the container image tests are skipped"
fi

# `needs_root_netns`: the chaos soak (chaos/, agora-chaos) also needs iproute2's `ip netns`
# and util-linux's `unshare --time` (Linux 5.6+); installed when missing and apt-get can,
# otherwise (or where namespaces cannot be made, e.g. in an unprivileged container) skipped.
if [ "$(id -u)" = "0" ] && ! command -v ip >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  step "installing iproute2 (tests named needs_root_netns)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q iproute2 >/dev/null 2>&1; } || true
fi
have_netns() {
  local probe="agora-probe-$$"
  [ "$(id -u)" = "0" ] && command -v ip >/dev/null 2>&1 && ip netns add "$probe" 2>/dev/null &&
    { ip netns del "$probe"; unshare --time --fork true 2>/dev/null; }
}
if ! have_netns; then
  filter="$filter - test(needs_root_netns)"
  echo "note: no network or time namespaces here: tests named needs_root_netns are skipped"
fi

# `needs_etcd`: a real etcd (Debian's etcd-server, 3.4+) for the high-availability tests,
# which start their own 3-member cluster on loopback. Installed here when missing and
# apt-get can (root); otherwise those tests are skipped.
have_etcd() { command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ]; }
if ! have_etcd && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  step "installing etcd-server (tests named needs_etcd)"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q etcd-server >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1 || true
    apt-get install -y -q etcd-server >/dev/null 2>&1 || true
  fi
  # The package starts a system etcd on the default ports; the tests use their own.
  if command -v systemctl >/dev/null 2>&1; then
    systemctl stop etcd >/dev/null 2>&1 || true
  fi
fi
if ! have_etcd; then
  filter="$filter - test(needs_etcd)"
  echo "note: etcd not installed and cannot be: tests named needs_etcd are skipped"
fi

# The web UI's browser tests (`needs_browser`) drive Debian's chromium over WebDriver
# (chromedriver). Installed here when missing and apt can; skipped where neither works.
have_browser() { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }
if ! have_browser && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  step "installing chromium and chromium-driver for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } ||
    echo "note: could not install chromium and chromium-driver"
fi
if ! have_browser; then
  filter="$filter - test(needs_browser)"
  echo "note: chromium or chromedriver missing: tests named needs_browser are skipped"
fi

# `needs_python`: third-party Mesos client code (pymesos from PyPI) in a venv under target/
# (scripts/mesos-py-env.sh); where it cannot be built those tests are skipped.
step "Python venv with a third-party Mesos client (pymesos)"
if py="$(bash scripts/mesos-py-env.sh)"; then
  export AGORA_MESOS_PYTHON="$PWD/$py"
else
  filter="$filter - test(needs_python)"
  echo "note: the pymesos venv could not be built: tests named needs_python are skipped"
fi

step "tests (cargo nextest)"
cargo nextest run --workspace --no-fail-fast -E "$filter" "$@"

step "doc tests"
cargo test --workspace --doc

# Coverage-guided fuzzing (cargo fuzz, libFuzzer) needs the nightly toolchain; the stable
# replay of every corpus ran with the tests above. CI gives each target a short budget;
# elsewhere set AGORA_FUZZ_SECONDS to run it.
if [ "${CI:-}" = "true" ] || [ -n "${AGORA_FUZZ_SECONDS:-}" ]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    step "fuzzing (cargo fuzz, ${AGORA_FUZZ_SECONDS:-10} s per target)"
    bash scripts/fuzz.sh --scratch --seconds "${AGORA_FUZZ_SECONDS:-10}"
  else
    echo "note: no nightly toolchain: cargo fuzz skipped (the stable corpus replay ran with the tests)"
  fi
fi

echo
echo "all checks passed"
