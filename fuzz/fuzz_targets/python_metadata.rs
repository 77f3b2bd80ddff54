#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scangate::fuzzing::python_metadata(data);
});
