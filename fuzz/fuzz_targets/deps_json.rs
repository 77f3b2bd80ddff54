#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scangate::fuzzing::deps_json(data);
});
