//! The second guard of the allocator's purity, beside its dependency list.
//!
//! Cargo keeps every async runtime and I/O crate out: the crate cannot name one. It cannot
//! keep out what `std` itself offers, nor `rand`'s OS-seeded generators (the workspace
//! builds `rand` with its default features for the master), so this test reads every
//! source file of the crate (`src/`, recursively) and refuses those paths: no clock, no
//! file system, network, threads, processes or environment, no unseeded randomness.

use std::path::{Path, PathBuf};

/// Paths that must never appear in allocator code (comments may name them).
const FORBIDDEN: [&str; 15] = [
    "tokio",
    "std::time",
    "std::fs",
    "std::net",
    "std::thread",
    "std::process",
    "std::env",
    "std::io",
    "Instant::now",
    "SystemTime",
    "thread_rng",
    "rand::rng(",
    "rand::random",
    "OsRng",
    "from_os_rng",
];

/// The files that may name them: this one (the list) and the test-only modules.
const EXEMPT: [&str; 2] = ["purity.rs", "tests.rs"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("allocator source directory");
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn allocator_sources_stay_pure() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut checked = 0;
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if EXEMPT.contains(&name) {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("allocator source");
        // Code only: documentation may name what the module must not use.
        let text: String = source
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for word in FORBIDDEN {
            assert!(
                !text.contains(word),
                "{} mentions '{word}': the allocator must stay free of I/O, clocks, threads \
                 and unseeded randomness",
                path.display()
            );
        }
        checked += 1;
    }
    // lib, constraints, kinds, tree and the drf modules: a walk that finds fewer missed
    // the tree (a moved directory), and would pass without checking anything.
    assert!(checked >= 12, "found only {checked} allocator sources");
}
