//! The Rust SDK: expose a program through a Sluice edge without a separate agent process.
//!
//! A [`SessionBuilder`] collects endpoints — each either forwarded to an upstream URL like
//! `agent http` does, or answered by an [`AppService`] inside this process — then
//! [`SessionBuilder::start`] connects one QUIC session, waits until every endpoint is online,
//! and returns a [`Tunnel`] with the public URLs. The session reconnects on its own and
//! reclaims the same hostnames; [`Tunnel::stop`] closes it and the edge frees them at once.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_agent::sdk::Session;
//! use sluice_agent::{body, AppService};
//!
//! let hello = AppService::from_fn("hello", |_req| async {
//!     http::Response::new(body::full("hello from Rust"))
//! });
//! let tunnel = Session::builder("tunnel.example.com:4443", "my-authtoken")
//!     .edge_ca("tunnel.crt")
//!     .serve(Some("hello"), hello)
//!     .forward(None, "http://localhost:8080".parse()?)
//!     .start()
//!     .await?;
//! for url in tunnel.urls() {
//!     println!("online at {url}");
//! }
//! tunnel.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! To take requests one by one instead of writing a service, use [`requests`]: it returns an
//! [`AppService`] for [`SessionBuilder::serve`] and a stream of [`IncomingRequest`]s.
//!
//! A TCP service goes online on one of the edge's TCP ports with [`SessionBuilder::tcp`], as
//! `agent tcp` does (and by TLS name with [`SessionBuilder::tls`]):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_agent::sdk::Session;
//!
//! let tunnel = Session::builder("tunnel.example.com:4443", "my-authtoken")
//!     .tcp(None, "localhost:22")?
//!     .start()
//!     .await?;
//! println!("ssh -p PORT of {}", tunnel.urls()[0]); // tcp://tunnel.example.com:PORT
//! # Ok(())
//! # }
//! ```

use crate::config::agent::AgentConfig;
use crate::config::endpoint::EndpointConfig;
use crate::config::upstream::{Upstream, UpstreamError};
use crate::forward::app_service::AppService;
use crate::forward::body::{BoxError, ProxyBody};
use crate::link::error::AgentError;
use crate::link::events::AgentEvent;
use crate::link::supervisor;
use http::{Request, Response};
use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Entry point of the SDK.
pub struct Session;

impl Session {
    /// A builder for a session with the edge at `edge` (`host:port` of its QUIC listener).
    pub fn builder(edge: impl Into<String>, authtoken: impl Into<String>) -> SessionBuilder {
        SessionBuilder {
            edge: edge.into(),
            more_edges: Vec::new(),
            ha_connections: None,
            authtoken: authtoken.into(),
            edge_ca: None,
            endpoints: Vec::new(),
        }
    }
}

/// Collects a session's settings and endpoints; see the [module docs](self).
#[derive(Debug)]
pub struct SessionBuilder {
    edge: String,
    more_edges: Vec<String>,
    ha_connections: Option<usize>,
    authtoken: String,
    edge_ca: Option<PathBuf>,
    endpoints: Vec<EndpointConfig>,
}

/// Why [`SessionBuilder::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No endpoint was added.
    #[error("no endpoints: add one with forward(), serve() or endpoint()")]
    NoEndpoints,
    /// The agent stopped before coming online (refused token, hostname taken, bad CA, …).
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The agent task ended without saying why.
    #[error("the agent task ended before coming online")]
    Ended,
}

/// Why [`SessionBuilder::tcp`] or [`SessionBuilder::tls`] refused its arguments.
#[derive(Debug, thiserror::Error)]
pub enum RawEndpointError {
    /// The upstream is not `PORT`, `HOST:PORT` or `tcp://HOST:PORT`.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The URL names another scheme than the method's.
    #[error("URL {url}: a {scheme}:// endpoint takes {scheme}:// URLs")]
    Scheme {
        /// The URL given.
        url: String,
        /// The method's scheme.
        scheme: &'static str,
    },
}

/// The URL a `tcp://` or `tls://` endpoint asks for: `url` with `scheme` (added when left
/// out, refused when another), or just the scheme, which asks for a random port or name.
pub fn raw_endpoint_url(
    url: Option<&str>,
    scheme: &'static str,
) -> Result<String, RawEndpointError> {
    let Some(url) = url else {
        return Ok(format!("{scheme}://"));
    };
    match url.split_once("://") {
        None => Ok(format!("{scheme}://{url}")),
        Some((given, _)) if given.eq_ignore_ascii_case(scheme) => Ok(url.to_string()),
        Some(_) => Err(RawEndpointError::Scheme {
            url: url.to_string(),
            scheme,
        }),
    }
}

impl SessionBuilder {
    /// Adds more edges of the same cluster (`host:port` each): the session keeps links to
    /// several of them at once (see [`Self::ha_connections`]).
    pub fn edges<S: Into<String>>(mut self, edges: impl IntoIterator<Item = S>) -> Self {
        self.more_edges.extend(edges.into_iter().map(Into::into));
        self
    }

    /// How many links to keep, each to another edge of a cluster (default
    /// [`crate::DEFAULT_HA_CONNECTIONS`], at most [`crate::MAX_HA_CONNECTIONS`]); an edge that
    /// runs alone gets one whatever this says.
    pub fn ha_connections(mut self, n: usize) -> Self {
        self.ha_connections = Some(n);
        self
    }

    /// Trusts this PEM certificate or CA for the edge instead of the system roots.
    pub fn edge_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.edge_ca = Some(path.into());
        self
    }

    /// Adds an endpoint that forwards to `upstream`, as `agent http` does. `url` is the public
    /// URL (`NAME`, `NAME.DOMAIN`, `http://NAME.DOMAIN`); `None` asks for a random name.
    pub fn forward(self, url: Option<&str>, upstream: Upstream) -> Self {
        let mut endpoint = EndpointConfig::new(upstream);
        endpoint.url = url.map(str::to_string);
        self.endpoint(endpoint)
    }

    /// Adds an endpoint whose requests `service` answers inside this process.
    pub fn serve(self, url: Option<&str>, service: AppService) -> Self {
        self.forward(url, Upstream::service(service))
    }

    /// Adds a TCP endpoint whose connections go to `upstream` (`PORT` on localhost,
    /// `HOST:PORT` or `tcp://HOST:PORT`) byte for byte, as `agent tcp` does. `url` asks for a
    /// port (`tcp://DOMAIN:PORT` or `DOMAIN:PORT`); `None` takes a random one of the edge's.
    /// For a PROXY protocol header or a policy, build the [`EndpointConfig`] and use
    /// [`Self::endpoint`].
    pub fn tcp(self, url: Option<&str>, upstream: &str) -> Result<Self, RawEndpointError> {
        self.raw("tcp", url, upstream)
    }

    /// Adds a TLS endpoint: connections whose SNI is `url`'s name (`tls://NAME.DOMAIN`;
    /// `None` for a random name) go to `upstream` still encrypted, as `agent tls` does.
    pub fn tls(self, url: Option<&str>, upstream: &str) -> Result<Self, RawEndpointError> {
        self.raw("tls", url, upstream)
    }

    fn raw(
        self,
        scheme: &'static str,
        url: Option<&str>,
        upstream: &str,
    ) -> Result<Self, RawEndpointError> {
        let mut endpoint = EndpointConfig::new(upstream.parse::<Upstream>()?.into_tcp(upstream)?);
        endpoint.url = Some(raw_endpoint_url(url, scheme)?);
        Ok(self.endpoint(endpoint))
    }

    /// Adds a fully configured endpoint (policies, host header, upstream protocol, …).
    pub fn endpoint(mut self, endpoint: EndpointConfig) -> Self {
        self.endpoints.push(endpoint);
        self
    }

    /// The [`AgentConfig`] this builder describes, for settings it has no method for
    /// (timeouts, reconnect delays); run it with [`start_config`].
    pub fn into_config(self) -> Result<AgentConfig, StartError> {
        let mut endpoints = self.endpoints.into_iter();
        let first = endpoints.next().ok_or(StartError::NoEndpoints)?;
        let mut config = AgentConfig::new(self.edge, self.authtoken, first);
        config.endpoints.extend(endpoints);
        config.edge_ca = self.edge_ca;
        config.more_edges = self.more_edges;
        if let Some(n) = self.ha_connections {
            config.ha_connections = n;
        }
        Ok(config)
    }

    /// Connects and waits until every endpoint is online.
    pub async fn start(self) -> Result<Tunnel, StartError> {
        start_config(self.into_config()?).await
    }
}

/// Runs `config` until every endpoint is online; see [`SessionBuilder::start`].
pub async fn start_config(config: AgentConfig) -> Result<Tunnel, StartError> {
    let (stop, stop_rx) = watch::channel(false);
    let (tx, mut events) = mpsc::unbounded_channel();
    let mut task = tokio::spawn(supervisor::run(config, Some(tx), stop_rx));
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(AgentEvent::Online { endpoints, .. }) => {
                    return Ok(Tunnel {
                        urls: endpoints.into_iter().map(|(bound, _)| bound.url).collect(),
                        stop,
                        task,
                        events,
                    });
                }
                Some(AgentEvent::Reconnecting { .. }) => continue,
                None => return Err(ended(&mut task).await),
            },
            result = &mut task => return Err(match result {
                Ok(Err(e)) => StartError::Agent(e),
                _ => StartError::Ended,
            }),
        }
    }
}

async fn ended(task: &mut JoinHandle<Result<(), AgentError>>) -> StartError {
    match task.await {
        Ok(Err(e)) => StartError::Agent(e),
        _ => StartError::Ended,
    }
}

/// A running session: its public URLs, its events, and a way to stop it.
#[derive(Debug)]
pub struct Tunnel {
    urls: Vec<String>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), AgentError>>,
    events: mpsc::UnboundedReceiver<AgentEvent>,
}

impl Tunnel {
    /// Public URLs, in the order the endpoints were added.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The next session event (reconnecting, back online); `None` once the session ended.
    pub async fn next_event(&mut self) -> Option<AgentEvent> {
        self.events.recv().await
    }

    /// Closes the session cleanly (in-flight requests get a moment to finish) and waits.
    pub async fn stop(self) -> Result<(), AgentError> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(Ok(()))
    }
}

/// One request handed to the application by [`requests`]; answer it with
/// [`IncomingRequest::respond`] (or split it with [`IncomingRequest::into_parts`] to read the
/// body first). Dropping it unanswered gives the client a 502.
#[derive(Debug)]
pub struct IncomingRequest {
    request: Request<ProxyBody>,
    reply: Responder,
}

/// Sends the response for one [`IncomingRequest`].
#[derive(Debug)]
pub struct Responder(oneshot::Sender<Response<ProxyBody>>);

impl Responder {
    /// Sends the response to the client.
    pub fn respond(self, response: Response<ProxyBody>) {
        // The client may have gone; nothing to do then.
        let _ = self.0.send(response);
    }
}

impl IncomingRequest {
    /// The request; its body is still streaming.
    pub fn request(&self) -> &Request<ProxyBody> {
        &self.request
    }

    /// The request and the handle to answer it.
    pub fn into_parts(self) -> (Request<ProxyBody>, Responder) {
        (self.request, self.reply)
    }

    /// Answers without reading the body.
    pub fn respond(self, response: Response<ProxyBody>) {
        self.reply.respond(response);
    }
}

/// The stream side of [`requests`].
pub type Requests = mpsc::Receiver<IncomingRequest>;

/// A service that hands every request to the returned stream (at most `buffer` waiting), for
/// programs that prefer a loop over a `tower::Service`.
pub fn requests(name: &str, buffer: usize) -> (AppService, Requests) {
    let (tx, rx) = mpsc::channel(buffer.max(1));
    let service = AppService::new(
        name,
        tower::service_fn(move |request: Request<ProxyBody>| {
            let tx = tx.clone();
            async move {
                let (reply, answer) = oneshot::channel();
                let reply = Responder(reply);
                tx.send(IncomingRequest { request, reply })
                    .await
                    .map_err(|_| BoxError::from("the request stream was dropped"))?;
                answer
                    .await
                    .map_err(|_| BoxError::from("the request was dropped unanswered"))
            }
        }),
    );
    (service, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_urls_get_the_scheme_and_upstreams_must_be_tcp() {
        assert_eq!(raw_endpoint_url(None, "tcp").expect("url"), "tcp://");
        assert_eq!(
            raw_endpoint_url(Some("example.com:20001"), "tcp").expect("url"),
            "tcp://example.com:20001"
        );
        assert_eq!(
            raw_endpoint_url(Some("tls://db.example.com"), "tls").expect("url"),
            "tls://db.example.com"
        );
        let wrong = raw_endpoint_url(Some("https://a.example.com"), "tls").expect_err("https");
        assert!(wrong.to_string().contains("takes tls:// URLs"), "{wrong}");
        let builder = || Session::builder("edge:4443", "token");
        let refused = builder()
            .tcp(None, "http://localhost:80")
            .expect_err("http");
        assert!(refused.to_string().contains("tcp://HOST:PORT"), "{refused}");
        let config = builder()
            .tcp(None, "22")
            .expect("port")
            .into_config()
            .expect("config");
        assert_eq!(
            config.endpoints[0].upstream.to_string(),
            "tcp://localhost:22"
        );
        assert_eq!(config.endpoints[0].url.as_deref(), Some("tcp://"));
    }
}
