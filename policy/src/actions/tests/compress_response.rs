//! compress-response, run through the engine.

use crate::testutil::*;
use std::io::Read;

const POLICY: &str = "on_http_response: [{actions: [{type: compress-response}]}]";

#[test]
fn compresses_by_accept_encoding() {
    let e = engine(POLICY);
    let o = run(
        &e,
        req("GET /", &[("accept-encoding", "gzip;q=0.5, br")]),
        "1.1.1.1",
    );
    assert_eq!(header(&o.res, "content-encoding"), Some("br"));
    assert_eq!(header(&o.res, "vary"), Some("Accept-Encoding"));
    assert_eq!(header(&o.res, "content-length"), None);
    let mut s = String::new();
    brotli::Decompressor::new(o.res.body().as_ref(), 4096)
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "hello world");
    assert_eq!(o.st.compression(), Some("br"));
}

#[test]
fn skips_without_acceptable_encoding_or_when_encoded() {
    let e = engine(POLICY);
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(header(&o.res, "content-encoding"), None);
    assert_eq!(header(&o.res, "content-length"), Some("11"));
    let e = engine(
        "on_http_response: [{actions: [{type: add-headers, config: {headers: {content-encoding: gzip}}}, {type: compress-response}, \
             {type: add-headers, config: {headers: {x-already: '${actions.ngrok.compress.already_compressed}'}}}]}]",
    );
    let o = run(&e, req("GET /", &[("accept-encoding", "gzip")]), "1.1.1.1");
    assert_eq!(header(&o.res, "x-already"), Some("true"));
    assert_eq!(o.res.body().as_ref(), b"hello world");
}

#[test]
fn only_in_the_response_phase() {
    let errs = errors("on_http_request: [{actions: [{type: compress-response}]}]");
    assert!(errs[0].contains("action `compress-response` is not allowed in on_http_request, only in on_http_response"), "{errs:?}");
}

#[test]
fn skips_bodies_followed_by_trailers() {
    // The upstream's headers are set by an earlier action here; the engine sees them alike.
    for announced in [
        "{trailer: grpc-status}",
        "{content-type: application/grpc+proto}",
    ] {
        let e = engine(&format!(
            "on_http_response: [{{actions: [{{type: add-headers, config: {{headers: {announced}}}}}, {{type: compress-response}}]}}]"
        ));
        let o = run(&e, req("GET /", &[("accept-encoding", "gzip")]), "1.1.1.1");
        assert_eq!(header(&o.res, "content-encoding"), None, "{announced}");
        assert_eq!(o.res.body().as_ref(), b"hello world");
    }
}
