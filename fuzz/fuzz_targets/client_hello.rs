//! The edge's ClientHello reader (edge/src/tls/client_hello.rs) on arbitrary bytes, whole and
//! in two pieces: nothing panics, the cap holds, and feeding in pieces decides as one buffer
//! does (a hello found whole is found in pieces, with the same SNI and ALPN).
#![no_main]

// The module depends on rustls only; compiling the file here keeps pingora, quinn and the
// edge's allocator out of the sanitizer build.
#[path = "../../edge/src/tls/client_hello.rs"]
#[allow(dead_code)]
mod client_hello;

use client_hello::{parse, HelloReader, Step, MAX_HELLO_BYTES};
use libfuzzer_sys::fuzz_target;

/// SNI and ALPN of a hello, `None` for anything else.
fn summary(step: &Step) -> Option<(Option<String>, Vec<Vec<u8>>)> {
    match step {
        Step::Hello(h) => Some((h.sni.clone(), h.alpn.clone())),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let whole = parse(data);
    if data.len() > MAX_HELLO_BYTES {
        assert!(matches!(whole, Step::Refused(_)), "over the cap and not refused");
    }
    if let Step::Hello(h) = &whole {
        if let Some(sni) = &h.sni {
            assert!(!sni.is_empty() && sni.is_ascii());
        }
    }
    // The same bytes in two pieces, cut where the first input byte says.
    let at = usize::from(cut) % (data.len() + 1);
    let mut reader = HelloReader::default();
    let mut pieces = reader.feed(&data[..at]);
    if matches!(pieces, Step::More) {
        pieces = reader.feed(&data[at..]);
    }
    if summary(&whole).is_some() {
        assert_eq!(summary(&pieces), summary(&whole));
    }
});
