//! Fuzz target `json_bodies`: see `cloacina_fuzz_targets::json_bodies`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloacina_fuzz_targets::json_bodies(data));
