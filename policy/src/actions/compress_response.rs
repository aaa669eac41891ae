//! compress-response: negotiates an encoding and hands the edge a streaming transformer.

pub(crate) mod encoders;

use super::action::{Action, Exec, Flow, Msg};
use super::config::Cfg;
use crate::load::check::{string_list, Cx};
use crate::run::outcome::Decision;
use crate::run::state::RequestState;
use cel::Value;
use encoders::{negotiate, Algorithm};
use http::header::{
    HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, TRAILER, VARY,
};
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
}

impl Action for CompressResponse {
    fn run(&self, ex: &mut Exec) -> Flow {
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
        // A body followed by trailers (gRPC's status, an announced `Trailer`) is left alone:
        // the compressed stream would have to end before the trailers, which the proxy only
        // learns of when they arrive.
        let trailers = res.headers().contains_key(TRAILER)
            || res
                .headers()
                .get_all(CONTENT_TYPE)
                .iter()
                .any(|v| v.as_bytes().starts_with(b"application/grpc"));
        let chosen = if encoded || bodiless || trailers {
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
            ex.st.scratch.put(Chosen(alg));
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

/// The encoding compress-response chose, in the request state's scratch.
struct Chosen(Algorithm);

impl RequestState {
    /// The compression algorithm chosen by compress-response, if any.
    pub fn compression(&self) -> Option<&'static str> {
        self.scratch.get::<Chosen>().map(|c| c.0.token())
    }
}
