//! `Policy::parse` on arbitrary bytes: it may reject, it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sluice_policy::Policy::parse(text, "fuzz.yml");
    }
});
