#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scangate::fuzzing::npm_package_json(data);
});
