//! The edge↔agent wire format on arbitrary bytes: every message type either decodes, asks for
//! more bytes, or is rejected; nothing panics, and what decodes encodes back to a frame that
//! decodes to the same length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use sluice_proto::codec::{decode, encode};
use sluice_proto::control::{Hello, HelloReply};
use sluice_proto::stream::StreamHeader;

fn round_trip<T: Serialize + DeserializeOwned>(data: &[u8]) {
    if let Ok(Some((msg, used))) = decode::<T>(data) {
        assert!(used <= data.len());
        let again = encode(&msg).expect("a decoded message encodes");
        let (_, len) = decode::<T>(&again)
            .expect("an encoded message decodes")
            .expect("an encoded message is a whole frame");
        assert_eq!(len, again.len());
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Hello>(data);
    round_trip::<HelloReply>(data);
    round_trip::<StreamHeader>(data);
});
