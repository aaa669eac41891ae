//! One client connection to a TCP or TLS endpoint: the member that takes it, the endpoint's
//! `on_tcp_connect` rules (and those of the internal endpoints they forward it to), a stream to its agent opened with a connect frame, the agent's
//! answer (its upstream connection is open, or why not), then the connection's bytes both
//! ways until both sides are done; and the record of it for metrics and events.

use super::client::Client;
use super::state::TcpState;
use super::terminate::server_config;
use crate::ids::new_id;
use crate::record::ConnectionRecord;
use crate::tls::resolver::CertResolver;
use crate::tunnel::routes::{EndpointKey, Route};
use crate::tunnel::stream::AgentStream;
use bytes::BytesMut;
use sluice_policy::{
    ConnInfo, ConnectVerdict, Handshake, HandshakeFuture, InternalUrl, RequestState, TerminateTls,
    MAX_FORWARD_DEPTH,
};
use sluice_proto::frame::{AgentFailure, ConnectHead, Frame};
use sluice_proto::splice::{SpliceFailure, Spliced};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpStream;
use tracing::{debug, info, info_span, Instrument};

/// Most of the client's bytes read at once while the agent connects its upstream.
const EARLY_CHUNK: usize = 64 * 1024;

/// How a connection ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// No endpoint holds the port any more (its agent just left).
    NoEndpoint,
    /// The endpoint's on_tcp_connect rules closed it (deny, close-connection, restrict-ips).
    PolicyClosed,
    /// No stream to the agent could be had, or it ended before answering.
    AgentGone(String),
    /// The agent could not open its upstream connection.
    Refused(AgentFailure),
    /// terminate-tls: the client's TLS handshake failed (a refused version, no client
    /// certificate under mutual TLS, …), or the settings could not be used.
    TlsRefused(String),
    /// The bytes flowed; a failure in `Spliced` means one side broke off.
    Carried(Spliced),
}

impl Outcome {
    /// The fixed word metrics and events use.
    fn label(&self) -> &'static str {
        match self {
            Outcome::NoEndpoint => "no_endpoint",
            Outcome::PolicyClosed => "policy_closed",
            Outcome::AgentGone(_) => "agent_gone",
            Outcome::Refused(_) => "upstream_unreachable",
            Outcome::TlsRefused(_) => "tls_refused",
            Outcome::Carried(s) if s.failure.is_some() => "broken",
            Outcome::Carried(_) => "closed",
        }
    }
}

/// One accepted connection's facts.
struct Accepted {
    id: String,
    peer: SocketAddr,
    local: SocketAddr,
    /// The SNI a TLS endpoint's connection was routed by (`conn.tls.sni` before any handshake).
    sni: Option<String>,
    start: SystemTime,
}

/// Serves one accepted connection to `local` (one of the edge's TCP ports) from `peer`.
pub(crate) async fn serve_port(
    client: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    state: Arc<TcpState>,
) {
    let _ = client.set_nodelay(true);
    let route = member(&state, local.port());
    serve(Client::Tcp(client), peer, local, None, route, &state).await;
}

/// Serves `client`, which connected from `peer` to `local` (a TLS endpoint's: asking for
/// `sni`), with `route` (a member of its endpoint; `None` when no endpoint holds it any more).
pub(crate) async fn serve(
    mut client: Client,
    peer: SocketAddr,
    local: SocketAddr,
    sni: Option<String>,
    route: Option<Arc<Route>>,
    state: &TcpState,
) {
    let accepted = Accepted {
        id: new_id("conn"),
        peer,
        local,
        sni,
        start: SystemTime::now(),
    };
    let span = info_span!("tcp_connection", connection = %accepted.id, client = %peer, port = local.port());
    async move {
        let started = Instant::now();
        let open = route.as_ref().map(|r| {
            state
                .metrics
                .tcp_connections_open
                .with_label_values(&[&state.label(r)])
        });
        if let Some(gauge) = &open {
            gauge.inc();
        }
        let (outcome, policy) = match &route {
            None => (Outcome::NoEndpoint, None),
            Some(route) => run(&mut client, &accepted, route, state).await,
        };
        if matches!(outcome.label(), "broken") {
            client.reset();
        }
        drop(client);
        if let Some(gauge) = &open {
            gauge.dec();
        }
        log(&outcome, started.elapsed());
        let (bytes_in, bytes_out) = match &outcome {
            Outcome::Carried(s) => (s.to_stream, s.from_stream),
            _ => (0, 0),
        };
        let record = ConnectionRecord {
            connection_id: &accepted.id,
            endpoint_url: route.as_ref().map_or("", |r| r.url.as_str()),
            endpoint: route.as_ref().map(|r| &*r.endpoint),
            agent: route.as_ref().and_then(|r| r.agent_leg()),
            forwarded_to_edge: route.as_ref().and_then(|r| r.remote_edge()),
            client_addr: peer,
            server_addr: local,
            start: accepted.start,
            duration: started.elapsed(),
            bytes_in,
            bytes_out,
            outcome: outcome.label(),
            policy: policy.as_ref(),
        };
        state.metrics.record_connection(&record);
        state.events.emit_connection(&record);
    }
    .instrument(span)
    .await
}

/// Runs the endpoint's on_tcp_connect rules, then carries the connection unless they closed
/// it; a forward-internal hands it to a member of the internal endpoint, whose rules run next
/// (at most [`MAX_FORWARD_DEPTH`] endpoints). Returns the first endpoint's policy state for
/// the record.
async fn run(
    client: &mut Client,
    accepted: &Accepted,
    route: &Arc<Route>,
    state: &TcpState,
) -> (Outcome, Option<RequestState>) {
    let mut first = None;
    let mut route = route.clone();
    for _ in 0..MAX_FORWARD_DEPTH {
        let Some(engine) = route.policy.as_ref().filter(|e| e.has_tcp_connect_rules()) else {
            return (carry(client, accepted, &route, state).await, first);
        };
        let mut conn = ConnInfo::new(accepted.peer, accepted.local.port(), accepted.start);
        conn.server_ip = Some(accepted.local.ip());
        conn.tls.sni.clone_from(&accepted.sni);
        let mut st = engine.new_request(conn, route.endpoint.clone());
        let mut handshake = ClientHandshake {
            client: &mut *client,
            edge_certs: state.edge_certs.clone(),
            failed: None,
        };
        let verdict = engine.on_tcp_connect_tls(&mut st, &mut handshake).await;
        let failed = handshake.failed.take();
        first.get_or_insert(st);
        match verdict {
            ConnectVerdict::Continue { .. } => {
                return (carry(client, accepted, &route, state).await, first)
            }
            ConnectVerdict::Close => {
                let outcome = failed.map_or(Outcome::PolicyClosed, Outcome::TlsRefused);
                return (outcome, first);
            }
            ConnectVerdict::Forward(url) => match target(state, &route, &url) {
                Some(next) => {
                    debug!(%url, "connection forwarded");
                    route = next;
                }
                None => {
                    info!(%url, "forward-internal target went offline; connection closed");
                    return (Outcome::PolicyClosed, first);
                }
            },
        }
    }
    info!("connection forwarded through {MAX_FORWARD_DEPTH} endpoints: a loop; closed");
    (Outcome::PolicyClosed, first)
}

/// terminate-tls on this connection, made where the action runs in on_tcp_connect: the
/// handshake the client started is finished with the action's settings, so the agent gets
/// plaintext and the rules after the action read the client's certificate.
struct ClientHandshake<'c> {
    client: &'c mut Client,
    edge_certs: Option<Arc<CertResolver>>,
    /// Why the handshake failed, for the connection's outcome.
    failed: Option<String>,
}

impl Handshake for ClientHandshake<'_> {
    fn terminate<'a>(&'a mut self, settings: &'a TerminateTls) -> HandshakeFuture<'a> {
        Box::pin(async move {
            let done = match server_config(settings, self.edge_certs.clone()) {
                Ok(config) => {
                    let done = self.client.terminate(Arc::new(config)).await;
                    done.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = &done {
                self.failed = Some(why.clone());
            }
            done
        })
    }
}

/// A live member of the internal endpoint `url` in the namespace of `from`'s authtoken (the
/// action checked it is online a moment ago).
fn target(state: &TcpState, from: &Route, url: &InternalUrl) -> Option<Arc<Route>> {
    let key = EndpointKey::internal(from.owner(), url)?;
    state.routes.lookup_key(&key)?.pick()
}

/// Takes the connection to the member's agent and carries it.
async fn carry(
    client: &mut Client,
    accepted: &Accepted,
    route: &Route,
    state: &TcpState,
) -> Outcome {
    let Some((link, endpoint_id, forward)) = route.carrier(state.stream_open_timeout).await else {
        return match route.remote_edge() {
            Some(edge) => Outcome::AgentGone(format!("no link to edge '{edge}', which holds it")),
            None => Outcome::NoEndpoint,
        };
    };
    // Counted as waiting on the agent for the connection's whole life, so a dead agent is
    // noticed within seconds and its clients closed, as for requests.
    let _waiting = link.liveness.begin();
    let mut stream = match link.stream(state.stream_open_timeout).await {
        Ok(stream) => stream,
        Err(e) => return Outcome::AgentGone(e.to_string()),
    };
    // Another edge's member: that edge relays the connection to its agent (cluster/relay.rs).
    if let Some(forward) = forward {
        if let Err(e) = stream.writer.send(&Frame::Forward(Box::new(forward))).await {
            return Outcome::AgentGone(e.to_string());
        }
    }
    let head = ConnectHead {
        endpoint_id,
        connection_id: accepted.id.clone(),
        client_addr: accepted.peer,
        server_addr: accepted.local,
    };
    let early = match open(client, &mut stream, head).await {
        Ok(early) => early,
        Err(outcome) => return outcome,
    };
    let mut spliced = client.splice(&mut stream.reader, &mut stream.writer).await;
    spliced.to_stream += early;
    Outcome::Carried(spliced)
}

/// A live member of the endpoint on `port`.
fn member(state: &TcpState, port: u16) -> Option<Arc<Route>> {
    state.routes.lookup_port(port)?.pick()
}

/// Sends the connect frame and waits for the agent's answer. Meanwhile the client's first
/// bytes already go along (they wait in the stream until the agent's upstream is connected),
/// so a protocol where the client speaks first saves a round trip through the tunnel. Returns
/// how many went.
async fn open(
    client: &mut Client,
    stream: &mut AgentStream,
    head: ConnectHead,
) -> Result<u64, Outcome> {
    let gone = |why: String| Outcome::AgentGone(why);
    stream
        .writer
        .send(&Frame::Connect(Box::new(head)))
        .await
        .map_err(|e| gone(e.to_string()))?;
    let mut early = BytesMut::new();
    let (mut sent, mut client_done) = (0, false);
    loop {
        early.reserve(EARLY_CHUNK);
        tokio::select! {
            answer = stream.reader.next() => return match answer {
                Ok(Some(Frame::Connected)) => Ok(sent),
                Ok(Some(Frame::Error(failure))) => Err(Outcome::Refused(failure)),
                Ok(Some(other)) => Err(gone(format!("the agent answered {other:?}"))),
                Ok(None) => Err(gone("the agent ended the stream".to_string())),
                Err(e) => Err(gone(e.to_string())),
            },
            read = client.read_buf(&mut early), if !client_done => match read {
                // The splice reads the end again and passes it on.
                Ok(0) => client_done = true,
                Ok(n) => {
                    let bytes = early.split().freeze();
                    stream.writer.send_raw(bytes).await.map_err(|e| gone(e.to_string()))?;
                    sent += n as u64;
                }
                Err(e) => {
                    return Err(Outcome::Carried(Spliced {
                        failure: Some(SpliceFailure::Io(e.to_string())),
                        ..Spliced::default()
                    }))
                }
            },
        }
    }
}

fn log(outcome: &Outcome, took: Duration) {
    match outcome {
        Outcome::NoEndpoint => debug!("no endpoint on this port; connection closed"),
        Outcome::PolicyClosed => info!("connection closed by the endpoint's on_tcp_connect rules"),
        Outcome::AgentGone(why) => info!("connection closed: the agent is gone: {why}"),
        Outcome::TlsRefused(why) => info!("connection closed: terminate-tls: {why}"),
        Outcome::Refused(failure) => info!(
            code = %failure.code,
            "connection closed: the agent could not reach its upstream: {}",
            failure.message
        ),
        Outcome::Carried(spliced) => info!(
            bytes_in = spliced.to_stream,
            bytes_out = spliced.from_stream,
            duration_ms = took.as_millis() as u64,
            failure = spliced.failure.as_ref().map(ToString::to_string),
            "connection closed"
        ),
    }
}
