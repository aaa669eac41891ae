//! request-body-find-replace, response-body-find-replace and sse-find-replace, run through
//! the engine.

use crate::testutil::*;
use crate::RequestState;
use std::io::Read;

/// Feeds `body` through the request-body transform in chunks of `size`.
fn request_body(st: &mut RequestState, body: &[u8], size: usize) -> Vec<u8> {
    let mut t = st
        .take_request_body_transform()
        .expect("a request transform");
    let mut out = Vec::new();
    for c in body.chunks(size) {
        out.extend_from_slice(&t.transform(c, false));
    }
    out.extend_from_slice(&t.transform(b"", true));
    out
}

#[test]
fn request_body_is_rewritten_and_loses_its_length() {
    let e = engine(
        "on_http_request: [{actions: [{type: request-body-find-replace, config: {replacements: \
         [{from: 'api_key=([a-z0-9]+)', to: 'api_key=REDACTED'}, {from: 'REDACTED', to: '${req.method}-$0'}]}}]}]",
    );
    let mut st = state(&e, "1.1.1.1");
    let mut r = req("POST /", &[("content-length", "24")]);
    e.on_http_request(&mut st, &mut r);
    assert!(r.headers.get("content-length").is_none());
    let out = request_body(&mut st, b"user=1&api_key=abc123&x", 3);
    assert_eq!(out, b"user=1&api_key=POST-REDACTED&x");
}

#[test]
fn compressed_request_bodies_are_skipped() {
    let e = engine(
        "on_http_request: [{actions: [{type: request-body-find-replace, config: {replacements: [{from: a}]}}]}]",
    );
    let mut st = state(&e, "1.1.1.1");
    let mut r = req(
        "POST /",
        &[("content-encoding", "gzip"), ("content-length", "3")],
    );
    e.on_http_request(&mut st, &mut r);
    assert!(st.take_request_body_transform().is_none());
    assert_eq!(r.headers.get("content-length").unwrap(), "3");
    assert_eq!(
        st.last_outcome("request-body-find-replace"),
        Some(crate::run::outcome::Decision::Skip)
    );
}

#[test]
fn response_body_is_replaced_then_compressed_whatever_the_rule_order() {
    for order in [
        "[{type: compress-response}, {type: response-body-find-replace, config: {replacements: [{from: world, to: there}]}}]",
        "[{type: response-body-find-replace, config: {replacements: [{from: world, to: there}]}}, {type: compress-response}]",
    ] {
        let e = engine(&format!("on_http_response: [{{actions: {order}}}]"));
        let o = run(&e, req("GET /", &[("accept-encoding", "gzip")]), "1.1.1.1");
        assert_eq!(header(&o.res, "content-encoding"), Some("gzip"), "{order}");
        assert_eq!(header(&o.res, "content-length"), None);
        let mut s = String::new();
        flate2::read::GzDecoder::new(o.res.body().as_ref())
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello there", "{order}");
    }
}

#[test]
fn compressed_or_bodiless_responses_are_skipped() {
    let e = engine(
        "on_http_response: [{actions: [{type: add-headers, config: {headers: {content-encoding: br}}}, \
         {type: response-body-find-replace, config: {replacements: [{from: hello}]}}]}]",
    );
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(o.res.body().as_ref(), b"hello world");
    assert_eq!(header(&o.res, "content-length"), Some("11"));
    let e = engine(
        "on_http_response: [{actions: [{type: response-body-find-replace, config: {replacements: [{from: hello}]}}]}]",
    );
    let o = run(&e, req("HEAD /", &[]), "1.1.1.1");
    assert_eq!(header(&o.res, "content-length"), Some("11"));
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(o.res.body().as_ref(), b" world", "an omitted `to` deletes");
}

#[test]
fn config_problems_are_located() {
    let errs = errors(
        "on_http_response:\n  - actions:\n      - type: response-body-find-replace\n        config:\n          replacements:\n            - from: '(unclosed'\n            - to: x\n            - {from: a, field: data}\n",
    );
    let text = errs.join("\n");
    assert!(
        text.contains(":6:") && text.contains("replacements[0].from: invalid regex `(unclosed`"),
        "{text}"
    );
    assert!(
        text.contains("replacements[1]: missing required field `from`"),
        "{text}"
    );
    assert!(
        text.contains("replacements[2].field: unknown field `field`, expected one of: from, to"),
        "{text}"
    );
    let errs = errors("on_http_response: [{actions: [{type: response-body-find-replace, config: {replacements: []}}]}]");
    assert!(
        errs[0].contains("at least one replacement is required"),
        "{errs:?}"
    );
    let errs = errors("on_event_stream_message: [{actions: [{type: sse-find-replace, config: {replacements: [{from: a, field: id}]}}]}]");
    assert!(
        errs[0].contains("replacements[0].field: unknown field `id`, expected data or retry"),
        "{errs:?}"
    );
    let errs = errors("on_http_response: [{actions: [{type: sse-find-replace, config: {replacements: [{from: a}]}}]}]");
    assert!(
        errs[0].contains("only in on_event_stream_message"),
        "{errs:?}"
    );
    let errs = errors("on_event_stream_message: [{actions: [{type: deny}]}]");
    assert!(
        errs[0].contains("not allowed in on_event_stream_message"),
        "{errs:?}"
    );
}

/// Runs the response phase on an event-stream response, then streams `chunks` through
/// on_event_stream_message, returning what each chunk became.
fn sse(yaml: &str, chunks: &[&str]) -> (Vec<String>, RequestState) {
    let e = engine(yaml);
    let mut st = state(&e, "1.1.1.1");
    let mut r = req("GET /events", &[]);
    e.on_http_request(&mut st, &mut r);
    let (mut res, ()) = http::Response::builder()
        .header("content-type", "text/event-stream")
        .body(())
        .unwrap()
        .into_parts();
    e.on_http_response(&mut st, &r, &mut res);
    assert!(st.rewrites_event_stream());
    let out = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let b = e.on_event_stream(&mut st, &r, &res, c.as_bytes(), i + 1 == chunks.len());
            String::from_utf8(b.to_vec()).unwrap()
        })
        .collect();
    (out, st)
}

#[test]
fn each_event_is_rewritten_as_soon_as_it_is_complete() {
    let (out, _) = sse(
        "on_event_stream_message: [{actions: [{type: sse-find-replace, config: {replacements: \
         [{from: 'sk-[a-z0-9]+', to: '[key]'}, {field: retry, from: '^\\d+$', to: '5000'}]}}]}]",
        &[
            "event: t\ndata: use sk-abc1",
            "23 now\nretry: 10\n\ndata: plain\n",
            "\n",
            ": bye\n",
        ],
    );
    assert_eq!(
        out,
        [
            "",
            "event: t\ndata: use [key] now\nretry: 5000\n\n",
            "data: plain\n\n",
            ": bye\n"
        ]
    );
}

#[test]
fn rules_and_results_are_per_event() {
    let (out, st) = sse(
        "on_event_stream_message:\n  - expressions: [\"req.url.path == '/events'\"]\n    actions:\n      - type: sse-find-replace\n        config: {replacements: [{from: 'a+', to: b}, {from: c, to: d}]}\n  - expressions: ['size(actions.ngrok.sse_find_replace.replacements) > 1']\n    actions: [{type: sse-find-replace, config: {replacements: [{from: 'bx', to: '${actions.ngrok.sse_find_replace.replacements[0].matched_content}'}]}}]\n",
        &["data: aa c aax\n\n", "data: zzz\n\n"],
    );
    // The second rule saw the first one's matches on the first event only.
    assert_eq!(out, ["data: b d aa\n\n", "data: zzz\n\n"]);
    assert!(st.errors().is_empty(), "{:?}", st.errors());
}

#[test]
fn compressed_event_streams_pass_unchanged() {
    let e = engine("on_event_stream_message: [{actions: [{type: sse-find-replace, config: {replacements: [{from: a}]}}]}]");
    let mut st = state(&e, "1.1.1.1");
    let r = req("GET /", &[]);
    let (mut res, ()) = http::Response::builder()
        .header("content-type", "text/event-stream")
        .header("content-encoding", "gzip")
        .body(())
        .unwrap()
        .into_parts();
    e.on_http_response(&mut st, &r, &mut res);
    assert!(!st.rewrites_event_stream());
}
