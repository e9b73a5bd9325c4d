//! Fuzz target `archive`: see `cloacina_fuzz_targets::archive`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloacina_fuzz_targets::archive(data));
