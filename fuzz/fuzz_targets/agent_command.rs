#![no_main]
// The body and its oracle: agora_fuzz_targets::agent_command (see fuzz-targets/src).
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz_targets::TARGETS
    .iter()
    .filter(|t| t.name == "agent_command")
    .for_each(|t| (t.run)(data)));
