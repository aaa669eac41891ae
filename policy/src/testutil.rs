//! Helpers for the unit tests: a fixed clock, requests, and running both phases.

use crate::forward::{ForwardError, InternalEndpoints, InternalUrl};
use crate::load::parse::Policy;
use crate::run::engine::{Engine, RequestVerdict, ResponseVerdict};
use crate::run::facts::{Clock, ConnInfo, EndpointInfo};
use crate::run::state::RequestState;
use bytes::Bytes;
use http::{Request, Response};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A clock tests move by hand.
#[derive(Default)]
pub struct TestClock(pub AtomicU64);

impl TestClock {
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs * 1000, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH
            + Duration::from_secs(1_800_000_000)
            + Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// The internal endpoints online in the caller's namespace.
struct Online(&'static [&'static str]);

impl InternalEndpoints for Online {
    fn check(&self, target: &InternalUrl) -> Result<(), ForwardError> {
        let url = target.to_string();
        if self.0.contains(&url.as_str()) {
            Ok(())
        } else {
            Err(ForwardError::NotFound(url))
        }
    }
}

/// A namespace where exactly `urls` are online, for forward-internal.
pub fn online(urls: &'static [&'static str]) -> Arc<dyn InternalEndpoints> {
    Arc::new(Online(urls))
}

pub fn engine(yaml: &str) -> Engine {
    match Policy::parse(yaml, "test.yml") {
        Ok(p) => Engine::new(vec![p]),
        Err(e) => panic!("policy should compile:\n{e}"),
    }
}

pub fn errors(yaml: &str) -> Vec<String> {
    match Policy::parse(yaml, "test.yml") {
        Ok(_) => panic!("policy should not compile"),
        Err(e) => e.errors().iter().map(ToString::to_string).collect(),
    }
}

pub fn req(line: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let (method, uri) = line.split_once(' ').unwrap();
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "app.example.com");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

pub fn state(engine: &Engine, ip: &str) -> RequestState {
    let mut conn = ConnInfo::new(
        format!("{ip}:40000")
            .parse()
            .unwrap_or_else(|_| format!("[{ip}]:40000").parse().unwrap()),
        443,
        UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    );
    conn.tls.version = Some("1.3".into());
    let endpoint = EndpointInfo {
        id: "ep_1".into(),
        url: "https://app.example.com".into(),
        host: "app.example.com".into(),
        port: 443,
        protocol: "https".into(),
    };
    let mut st = engine.new_request(conn, Arc::new(endpoint));
    st.enable_trace();
    st
}

/// The outcome of running a request through both phases against a 200 upstream.
pub struct Outcome {
    pub st: RequestState,
    pub req: http::request::Parts,
    /// The response the client gets (policy-generated, or the upstream's after on_http_response).
    pub res: Response<Bytes>,
    /// Whether the upstream was called.
    pub forwarded: bool,
    /// Whether close-connection ended the request (`res` is then an empty 444, nginx's
    /// code for a connection closed without a response).
    pub closed: bool,
}

pub fn run(engine: &Engine, req: http::request::Parts, ip: &str) -> Outcome {
    run_state(engine, req, state(engine, ip))
}

/// [`run`] for a request with a body (for actions that read it).
pub fn run_with_body(engine: &Engine, req: http::request::Parts, body: &[u8]) -> Outcome {
    let mut st = state(engine, "1.1.1.1");
    st.set_request_body(Bytes::copy_from_slice(body));
    run_state(engine, req, st)
}

fn run_state(engine: &Engine, mut req: http::request::Parts, mut st: RequestState) -> Outcome {
    match engine.on_http_request(&mut st, &mut req) {
        RequestVerdict::Respond(res) => Outcome {
            st,
            req,
            res,
            forwarded: false,
            closed: false,
        },
        RequestVerdict::Close => Outcome {
            st,
            req,
            res: Response::builder().status(444).body(Bytes::new()).unwrap(),
            forwarded: false,
            closed: true,
        },
        RequestVerdict::Continue | RequestVerdict::Forward(_) => {
            let upstream = Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .header("content-length", "11")
                .body(Bytes::from_static(b"hello world"))
                .unwrap();
            let (mut parts, body) = upstream.into_parts();
            let res = match engine.on_http_response(&mut st, &req, &mut parts) {
                ResponseVerdict::Replace(r) => r,
                ResponseVerdict::Continue => {
                    let body = match st.take_body_transform() {
                        Some(mut t) => t.transform(&body, true),
                        None => body,
                    };
                    Response::from_parts(parts, body)
                }
            };
            Outcome {
                st,
                req,
                res,
                forwarded: true,
                closed: false,
            }
        }
    }
}

pub fn header<'a>(res: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}
