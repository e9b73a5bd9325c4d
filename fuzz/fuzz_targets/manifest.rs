//! Fuzz target `manifest`: see `cloacina_fuzz_targets::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloacina_fuzz_targets::manifest(data));
