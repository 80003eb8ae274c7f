#![no_main]
// The body and its oracle: agora_fuzz_targets::mesos_recordio (see fuzz-targets/src).
libfuzzer_sys::fuzz_target!(|data: &[u8]| agora_fuzz_targets::TARGETS
    .iter()
    .filter(|t| t.name == "mesos_recordio")
    .for_each(|t| (t.run)(data)));
