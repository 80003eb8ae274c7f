#![no_main]
// The body and its oracle: agora_fuzz_targets::resources_json (see fuzz-targets/src).
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz_targets::TARGETS
    .iter()
    .filter(|t| t.name == "resources_json")
    .for_each(|t| (t.run)(data)));
