//! compress-response: negotiates an encoding and hands the edge a streaming transformer.

pub(crate) mod encoders;

use super::action::{Action, Exec, Flow, Msg};
use super::config::Cfg;
use crate::load::check::{string_list, Cx};
use crate::run::body::{encoded, untransformable};
use crate::run::outcome::Decision;
use crate::run::state::RequestState;
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
        let method = ex.req().method().clone();
        let Msg::Res(_, res) = &mut *ex.msg else {
            return Flow::Next;
        };
        let encoded = encoded(res.headers());
        // No body, or trailers after it: see `untransformable`.
        let untransformable = untransformable(&method, &**res).is_some();
        let chosen = if encoded || untransformable {
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
        // ngrok documents these as `actions.ngrok.compress.*`, not under the action's name.
        ex.set_result("compress", || {
            HashMap::from([
                ("already_compressed".to_string(), Value::Bool(encoded)),
                (
                    "negotiated_algorithm".to_string(),
                    Value::from(chosen.map_or("", Algorithm::token)),
                ),
            ])
            .into()
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
