#!/usr/bin/env bash
# Fuzz every target with cargo fuzz (libFuzzer, nightly toolchain), a bounded time each.
#
#   bash scripts/fuzz.sh [--seconds N] [--seed-corpus] [TARGET ...]
#
# --seconds N     budget per target (default 60); the run stops by itself.
# --seed-corpus   rewrite the seed inputs of fuzz/corpus/ first (from the product's types).
# --scratch       keep new inputs in a temporary directory instead of fuzz/corpus/ (CI).
# TARGET ...      only these targets (default: all, see `cargo +nightly fuzz list` in fuzz/).
#
# New interesting inputs are added to fuzz/corpus/<target>/ (minimize with
# `cargo +nightly fuzz cmin <target>` before committing them). A crash stops the run with
# its input under fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/ so the
# stable replay (`cargo nextest run -p agora-fuzz-targets`, part of scripts/test.sh)
# keeps it fixed. Installs cargo-fuzz when missing; needs the nightly toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
seed=0
scratch=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seed-corpus) seed=1; shift ;;
        --scratch) scratch=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown flag $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly); cannot run cargo fuzz" >&2
    exit 3
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
if [ "$seed" = 1 ]; then
    cargo run -q -p agora-fuzz-targets --example seed_corpus
fi
cd fuzz
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
# Sanitizers off: the targets are safe Rust, and an uninstrumented build is several times
# faster to build and to run; libFuzzer still catches panics, timeouts and memory blow-ups.
flags=(--sanitizer none)
cargo +nightly fuzz build "${flags[@]}"
work=""
if [ "$scratch" = 1 ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${seconds}s"
    mkdir -p "corpus/$t"
    # libFuzzer adds what it finds to the first corpus directory it is given.
    dirs=("corpus/$t")
    if [ -n "$work" ]; then
        mkdir -p "$work/$t"
        dirs=("$work/$t" "corpus/$t")
    fi
    cargo +nightly fuzz run "${flags[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1
done
