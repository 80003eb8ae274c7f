//! The dependency check that keeps the allocator core pure: no async runtime, no clock,
//! no file system, network, threads or processes anywhere under `src/allocator/`.

/// Paths that must never appear in allocator sources (outside this file).
const FORBIDDEN: [&str; 9] = [
    "tokio",
    "std::time",
    "std::fs",
    "std::net",
    "std::thread",
    "std::process",
    "std::env",
    "Instant::now",
    "SystemTime",
];

#[test]
fn allocator_sources_stay_pure() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/allocator");
    let mut checked = 0;
    let entries = std::fs::read_dir(&dir).expect("allocator source directory");
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.ends_with(".rs") || name == "purity.rs" || name == "tests.rs" {
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
                "{name} mentions '{word}': the allocator core must stay free of I/O, clocks and async"
            );
        }
        checked += 1;
    }
    assert!(checked >= 4, "found only {checked} allocator sources");
}
