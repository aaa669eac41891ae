//! Replay: rebuild a captured request, as is or with the caller's edits, to send straight to
//! the upstream (the edge and its traffic policy are not involved, as with ngrok).

use super::store::Captured;
use crate::forward::body::ProxyBody;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use serde::Deserialize;
use std::collections::BTreeMap;

/// `POST /api/requests/http`: ngrok's `{id, tunnel_name}` plus optional edits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Id of the captured request to replay.
    pub id: String,
    /// Send it to this tunnel's upstream instead of the original one.
    pub tunnel_name: Option<String>,
    /// Replace the method.
    pub method: Option<String>,
    /// Replace the request target (`/path?query`).
    pub uri: Option<String>,
    /// Replace every header (`{"Name": ["value", …]}`).
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    /// Replace the body (UTF-8 text).
    pub body: Option<String>,
}

/// Why a replay was refused: HTTP status and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct ReplayError {
    /// Status to answer with.
    pub status: StatusCode,
    /// What is wrong.
    pub msg: String,
}

fn bad(msg: impl Into<String>) -> ReplayError {
    ReplayError {
        status: StatusCode::BAD_REQUEST,
        msg: msg.into(),
    }
}

/// The request to send for `edit` of `original`.
pub fn build(original: &Captured, edit: &ReplayRequest) -> Result<Request<ProxyBody>, ReplayError> {
    let method = match &edit.method {
        Some(m) => {
            Method::from_bytes(m.as_bytes()).map_err(|_| bad(format!("method: invalid '{m}'")))?
        }
        None => original.request.method.clone(),
    };
    let uri = match &edit.uri {
        Some(u) if u.starts_with('/') => u
            .parse::<Uri>()
            .map_err(|e| bad(format!("uri: invalid '{u}': {e}")))?,
        Some(u) => return Err(bad(format!("uri: '{u}' must start with '/'"))),
        None => original.request.uri.clone(),
    };
    let mut headers = match &edit.headers {
        Some(h) => header_map(h)?,
        None => original.request.headers.clone(),
    };
    let body = match (&edit.body, &original.request_body) {
        (Some(text), _) => Bytes::from(text.clone()),
        (None, Some(b)) if b.complete && !b.truncated => b.bytes.clone(),
        (None, Some(b)) if b.truncated => {
            return Err(ReplayError {
                status: StatusCode::CONFLICT,
                msg: format!(
                    "the request body ({} bytes) was captured only up to {} bytes; replay it with an edited body",
                    b.size,
                    b.bytes.len()
                ),
            })
        }
        (None, _) => {
            return Err(ReplayError {
                status: StatusCode::CONFLICT,
                msg: "the request body was not received completely; replay it with an edited body".into(),
            })
        }
    };
    let had_length = headers.contains_key(CONTENT_LENGTH);
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRANSFER_ENCODING);
    if had_length || !body.is_empty() {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let mut req = Request::new(crate::forward::body::full(body));
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

fn header_map(h: &BTreeMap<String, Vec<String>>) -> Result<HeaderMap, ReplayError> {
    let mut map = HeaderMap::new();
    for (name, values) in h {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("headers: invalid name '{name}'")))?;
        for v in values {
            let value = HeaderValue::from_str(v)
                .map_err(|_| bad(format!("headers: invalid value for '{name}'")))?;
            map.append(n.clone(), value);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::store::{BodyCapture, RequestHead};
    use std::time::SystemTime;

    fn captured(body: BodyCapture) -> Captured {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("demo.localhost"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.size));
        Captured {
            seq: 7,
            endpoint: 0,
            remote_addr: None,
            replay_of: None,
            start: SystemTime::now(),
            request: RequestHead {
                method: Method::POST,
                uri: "/hook?x=1".parse().expect("uri"),
                version: http::Version::HTTP_11,
                headers,
            },
            request_body: Some(body),
            response: None,
            response_body: None,
            duration: None,
        }
    }

    fn edit(json: &str) -> ReplayRequest {
        serde_json::from_str(json).expect("replay json")
    }

    fn full(text: &str) -> BodyCapture {
        BodyCapture {
            bytes: Bytes::from(text.to_string()),
            size: text.len() as u64,
            truncated: false,
            complete: true,
        }
    }

    #[test]
    fn as_is_keeps_method_target_headers_and_body() {
        let req = build(&captured(full("hello")), &edit(r#"{"id":"req_7"}"#)).expect("build");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/hook?x=1");
        assert_eq!(req.headers()["host"], "demo.localhost");
        assert_eq!(req.headers()[CONTENT_LENGTH], "5");
    }

    #[test]
    fn edits_replace_and_fix_the_length() {
        let e = edit(
            r#"{"id":"req_7","method":"PUT","uri":"/other","headers":{"X-A":["1","2"]},"body":"changed!"}"#,
        );
        let req = build(&captured(full("hello")), &e).expect("build");
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(req.uri(), "/other");
        assert_eq!(req.headers().get_all("x-a").iter().count(), 2);
        assert!(req.headers().get("host").is_none());
        assert_eq!(req.headers()[CONTENT_LENGTH], "8");
    }

    #[test]
    fn cut_body_needs_an_edit() {
        let cut = BodyCapture {
            bytes: Bytes::from_static(b"abc"),
            size: 10,
            truncated: true,
            complete: true,
        };
        let err = build(&captured(cut.clone()), &edit(r#"{"id":"req_7"}"#)).expect_err("cut");
        assert_eq!(err.status, StatusCode::CONFLICT);
        assert!(build(&captured(cut), &edit(r#"{"id":"req_7","body":"x"}"#)).is_ok());
    }

    #[test]
    fn bad_edits_say_which_field() {
        let c = captured(full(""));
        assert!(build(&c, &edit(r#"{"id":"a","uri":"http://evil/"}"#))
            .expect_err("uri")
            .msg
            .starts_with("uri:"));
        assert!(build(&c, &edit(r#"{"id":"a","method":"G E T"}"#))
            .expect_err("m")
            .msg
            .starts_with("method:"));
        assert!(
            build(&c, &edit(r#"{"id":"a","headers":{"bad name":["x"]}}"#))
                .expect_err("h")
                .msg
                .starts_with("headers:")
        );
        assert!(serde_json::from_str::<ReplayRequest>(r#"{"id":"a","bogus":1}"#).is_err());
    }
}
