#![no_main]
// The body and its oracle: agora_fuzz_targets::registry_log (see fuzz-targets/src).
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz_targets::TARGETS
    .iter()
    .filter(|t| t.name == "registry_log")
    .for_each(|t| (t.run)(data)));
