//! The stable stand-in for `cargo fuzz` in the ordinary test command: every checked-in
//! corpus and regression input of every target, then a bounded number of seeded mutations
//! of them. A failure names the target, the input (hex) and a one-line reproduction.
//!
//! `AGORA_FUZZ_MUTATIONS` (default `MUTATIONS_PER_TARGET`) and `AGORA_FUZZ_SEED` change the
//! mutation budget and seed.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use agora_fuzz_targets::{TARGETS, Target};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Mutated inputs run per target by default (a few seconds in all).
const MUTATIONS_PER_TARGET: usize = 3_000;
/// Largest mutated input, in bytes.
const MAX_INPUT_BYTES: usize = 4_096;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted (missing directory: none).
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one input; a panic becomes an error message with a reproduction.
fn run_one(target: &Target, input: &[u8], origin: &str) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| (target.run)(input))).map_err(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!(
            "target {} panicked on {origin}: {what}\n  input (hex): {}\n  reproduce: save the bytes as fuzz/regressions/{}/<name> and run \
             `cargo nextest run -p agora-fuzz-targets`, or `scripts/fuzz.sh` with cargo fuzz",
            target.name,
            hex(input),
            target.name,
        )
    })
}

/// One random change of `input`, drawing on `pool` for splices.
fn mutate(rng: &mut SmallRng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        match rng.random_range(0..6) {
            0 if !out.is_empty() => {
                let at = rng.random_range(0..out.len());
                out[at] ^= 1 << rng.random_range(0..8);
            }
            1 if !out.is_empty() => {
                let at = rng.random_range(0..out.len());
                out[at] = rng.random();
            }
            2 => {
                let at = rng.random_range(0..=out.len());
                let interesting = [
                    0u8, 0xff, b'[', b']', b'{', b'}', b':', b';', b'"', b'-', b'.',
                ];
                out.insert(at, interesting[rng.random_range(0..interesting.len())]);
            }
            3 if !out.is_empty() => {
                let from = rng.random_range(0..out.len());
                let to = rng.random_range(from..=out.len().min(from + 16));
                out.drain(from..to);
            }
            4 if !pool.is_empty() => {
                let other = &pool[rng.random_range(0..pool.len())];
                if !other.is_empty() {
                    let from = rng.random_range(0..other.len());
                    let to = rng.random_range(from..=other.len());
                    let at = rng.random_range(0..=out.len());
                    out.splice(at..at, other[from..to].iter().copied());
                }
            }
            _ => {
                let at = rng.random_range(0..=out.len());
                let repeat = out[..at].to_vec();
                out.splice(at..at, repeat);
            }
        }
    }
    out.truncate(MAX_INPUT_BYTES);
    out
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
        Err(_) => default,
    }
}

#[test]
fn every_target_has_a_corpus() {
    for target in TARGETS {
        assert!(
            !inputs("corpus", target.name).is_empty(),
            "fuzz/corpus/{} is empty: seed it (scripts/fuzz.sh --seed-corpus)",
            target.name
        );
    }
}

#[test]
fn corpora_regressions_and_seeded_mutations_never_fail() {
    let mutations = env_number("AGORA_FUZZ_MUTATIONS", MUTATIONS_PER_TARGET as u64);
    let seed = env_number("AGORA_FUZZ_SEED", 0x5eed);
    let mut failures = Vec::new();
    for target in TARGETS {
        let mut pool = Vec::new();
        for kind in ["corpus", "regressions"] {
            for (path, bytes) in inputs(kind, target.name) {
                if let Err(e) = run_one(target, &bytes, &path.display().to_string()) {
                    failures.push(e);
                }
                pool.push(bytes);
            }
        }
        if pool.is_empty() {
            continue;
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        for i in 0..mutations {
            let base = &pool[rng.random_range(0..pool.len())];
            let input = mutate(&mut rng, base, &pool);
            let origin = format!("mutation {i} (AGORA_FUZZ_SEED={seed})");
            if let Err(e) = run_one(target, &input, &origin) {
                failures.push(e);
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The mutator itself changes its input and stays within its size limit.
#[test]
fn mutations_change_inputs_within_the_limit() {
    let mut rng = SmallRng::seed_from_u64(1);
    let base = b"cpus:2;mem:1024".to_vec();
    let pool = vec![base.clone()];
    let changed = (0..100)
        .map(|_| mutate(&mut rng, &base, &pool))
        .inspect(|m| assert!(m.len() <= MAX_INPUT_BYTES))
        .filter(|m| *m != base)
        .count();
    assert!(
        changed > 90,
        "only {changed} of 100 mutations changed the input"
    );
}
