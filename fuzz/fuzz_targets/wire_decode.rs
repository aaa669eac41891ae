//! The edge↔agent wire format on arbitrary bytes: every message type either decodes, asks for
//! more bytes, or is rejected; nothing panics, and what decodes encodes back to bytes that
//! decode to the same message.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use serde::{de::DeserializeOwned, Serialize};
use sluice_proto::codec::{decode, encode};
use sluice_proto::control::{ControlFrame, Hello, HelloReply};
use sluice_proto::frame::Frame;

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

/// Request-stream frames: decode a sequence until the bytes run out or are refused; each frame
/// decoded encodes to bytes that decode to the same frame.
fn frames(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = Frame::decode(&mut buf) {
        let mut again = BytesMut::new();
        frame.encode(&mut again);
        let back = Frame::decode(&mut again)
            .expect("an encoded frame decodes")
            .expect("an encoded frame is whole");
        assert_eq!(back, frame);
        assert!(again.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Hello>(data);
    round_trip::<HelloReply>(data);
    round_trip::<ControlFrame>(data);
    frames(data);
});
