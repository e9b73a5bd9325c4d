//! Fuzz target `key`: see `cloacina_fuzz_targets::key`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloacina_fuzz_targets::key(data));
