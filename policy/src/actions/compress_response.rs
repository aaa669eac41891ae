//! compress-response: negotiates an encoding and hands the edge a streaming transformer.

pub(crate) mod encoders;

use super::{Cfg, Exec, Flow, Msg};
use crate::load::check::{string_list, Cx};
use crate::run::state::Decision;
use cel::Value;
use encoders::{negotiate, Algorithm};
use http::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, VARY};
use std::collections::HashMap;

/// `compress-response`.
#[derive(Debug)]
pub(crate) struct CompressResponse {
    algorithms: Vec<Algorithm>,
}

impl CompressResponse {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["algorithms"])?;
        let before = cx.errors.len();
        let mut algorithms = vec![Algorithm::Gzip, Algorithm::Deflate, Algorithm::Brotli];
        if let Some((node, path)) = obj.get("algorithms") {
            algorithms.clear();
            for (name, p, pos) in string_list(cx, node, &path, None) {
                match name.as_str() {
                    "gzip" => algorithms.push(Algorithm::Gzip),
                    "deflate" => algorithms.push(Algorithm::Deflate),
                    "br" => algorithms.push(Algorithm::Brotli),
                    // ngrok's default list has `compress` (LZW); no client asks for it in practice.
                    "compress" => {}
                    other => cx.err(
                        &p,
                        pos,
                        format!(
                            "unknown algorithm `{other}`, expected gzip, deflate, br or compress"
                        ),
                    ),
                }
            }
        }
        (cx.errors.len() == before).then_some(Self { algorithms })
    }

    pub fn run(&self, ex: &mut Exec) -> Flow {
        const ACTION: &str = "compress-response";
        let accept = ex
            .req()
            .headers()
            .get_all(ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        let Msg::Res(_, res) = &mut *ex.msg else {
            return Flow::Next;
        };
        let encoded = res
            .headers()
            .get(CONTENT_ENCODING)
            .is_some_and(|v| v.as_bytes() != b"identity");
        let bodiless = matches!(res.status().as_u16(), 100..=199 | 204 | 304);
        let chosen = if encoded || bodiless {
            None
        } else {
            negotiate(&accept, &self.algorithms)
        };
        if let Some(alg) = chosen {
            res.remove_header(&CONTENT_LENGTH);
            res.insert_header(CONTENT_ENCODING, HeaderValue::from_static(alg.token()));
            let vary_has = res.headers().get_all(VARY).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|s| s.to_ascii_lowercase().contains("accept-encoding"))
            });
            if !vary_has {
                res.append_header(VARY, HeaderValue::from_static("Accept-Encoding"));
            }
            ex.st.body_transform = Some(alg.encoder());
            ex.st.compression = Some(alg.token());
        }
        ex.set_result("compress_response", || {
            let compress: HashMap<String, Value> = HashMap::from([
                ("already_compressed".to_string(), Value::Bool(encoded)),
                (
                    "negotiated_algorithm".to_string(),
                    Value::from(chosen.map_or("", Algorithm::token)),
                ),
            ]);
            HashMap::from([("compress".to_string(), Value::from(compress))]).into()
        });
        ex.record(
            ACTION,
            if chosen.is_some() {
                Decision::Modify
            } else {
                Decision::Skip
            },
            true,
        );
        Flow::Next
    }
}

#[cfg(test)]
mod tests {
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
             {type: add-headers, config: {headers: {x-already: '${actions.ngrok.compress_response.compress.already_compressed}'}}}]}]",
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
}
