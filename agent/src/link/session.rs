//! The agent's link to the edge: QUIC connect, handshake, serving streams, and reconnecting
//! with exponential backoff and jitter, reclaiming the same hostnames.

use super::control::Control;
use super::tls;
use crate::config::agent::AgentConfig;
use crate::forward::forwarder::Forwarder;
use crate::forward::handler::HandlerError;
use crate::forward::stream::serve_stream;
use crate::trust::TlsError;
use quinn::crypto::rustls::QuicClientConfig;
use quinn::ConnectionError;
use rand::Rng;
use sluice_proto::codec::{read_frame, write_frame};
use sluice_proto::control::{
    BoundEndpoint, EndpointRequest, Hello, HelloReply, Rejection, Welcome,
};
use sluice_proto::error_code::ErrorCode;
use sluice_proto::transport::transport_config;
use sluice_proto::{close_code, PROTOCOL_VERSION};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{info, info_span, warn, Instrument};

/// What the agent reports while it runs (the CLI prints these; SDK users may watch them).
#[derive(Debug, Clone)]
pub enum AgentEvent {
    /// A session is up and every endpoint is online.
    Online {
        /// Edge-assigned session id.
        session_id: String,
        /// Online endpoints with their upstreams, in config order.
        endpoints: Vec<(BoundEndpoint, String)>,
        /// Whether this follows a lost session.
        reconnected: bool,
        /// The QUIC connection to the edge, for its round-trip time ([`quinn::Connection::rtt`]).
        connection: quinn::Connection,
    },
    /// The session was lost; the agent retries after `retry_in`.
    Reconnecting {
        /// Why the previous attempt or session ended.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
}

/// Why the agent stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The edge refused the session (bad token, hostname taken, invalid policy, …).
    #[error("edge refused the session: {0}")]
    Rejected(Rejection),
    /// Another agent with the same authtoken took over the hostname.
    #[error("another agent with the same authtoken took over this endpoint")]
    Replaced,
    /// The edge's operator stopped this session, or deleted its authtoken: reconnecting would
    /// undo the operator's decision.
    #[error("{0}")]
    Stopped(String),
    /// The edge's certificate is not trusted (see `--edge-ca`).
    #[error(
        "the edge's TLS certificate was refused: {0} (pass the edge's certificate with --edge-ca)"
    )]
    Untrusted(String),
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The edge address is unusable.
    #[error("edge address '{0}': {1}")]
    EdgeAddress(String, String),
    /// An endpoint's upstream cannot be used (unreadable CA file, missing directory).
    #[error(transparent)]
    Upstream(#[from] HandlerError),
    /// The local UDP socket could not be set up.
    #[error("local QUIC socket: {0}")]
    Socket(#[from] std::io::Error),
}

enum Attempt {
    Fatal(AgentError),
    Transient(String),
}

enum SessionEnd {
    Shutdown,
    Replaced,
    /// The operator ended it (`close_code::STOPPED`, `CREDENTIAL_DELETED`); the edge's reason.
    Stopped(String),
    Lost(String),
}

/// Runs the agent until `shutdown` turns true (clean close, hostnames freed at once) or a fatal
/// error. Events go to `events`, if any.
pub async fn run(
    config: AgentConfig,
    events: Option<mpsc::UnboundedSender<AgentEvent>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let emit = |e: AgentEvent| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    let client_config = client_config(&config)?;
    let (host, addr) = resolve_edge(&config.edge).await?;
    let endpoint = client_endpoint(addr)?;
    let forwarder = Arc::new(Forwarder::new(&config)?.with_observers(config.observers.clone()));
    let mut wanted: Vec<Option<String>> = config.endpoints.iter().map(|e| e.url.clone()).collect();
    // One id for this run, kept across reconnects: a pooled endpoint then replaces its own
    // earlier member at the edge rather than adding a second one.
    let run_id = new_run_id();
    let mut failures: u32 = 0;
    let mut ever_online = false;
    loop {
        let attempt = tokio::select! {
            a = connect(&endpoint, &client_config, addr, &host, &config, &run_id, &wanted) => a,
            _ = wait_true(&mut shutdown) => return Ok(()),
        };
        let reason = match attempt {
            Ok((conn, welcome, control)) => {
                failures = 0;
                for (slot, bound) in wanted.iter_mut().zip(&welcome.endpoints) {
                    // Reclaim exactly these endpoints after a reconnect, random names included,
                    // on the scheme they were bound with. An internal URL is reclaimed as it
                    // was bound, port included; a public one without the edge's port, which
                    // requested URLs may not name.
                    *slot = Some(match bound.url.split_once("://") {
                        _ if bound.hostname.ends_with(".internal") => bound.url.clone(),
                        // A TCP endpoint is its port: reclaimed with it.
                        Some(("tcp", _)) => bound.url.clone(),
                        Some((scheme, _)) => format!("{scheme}://{}", bound.hostname),
                        None => bound.hostname.clone(),
                    });
                }
                emit(AgentEvent::Online {
                    session_id: welcome.session_id.clone(),
                    endpoints: welcome
                        .endpoints
                        .iter()
                        .cloned()
                        .zip(config.endpoints.iter().map(|e| e.upstream.to_string()))
                        .collect(),
                    reconnected: ever_online,
                    connection: conn.clone(),
                });
                let span = info_span!("agent_session", session = %welcome.session_id);
                for bound in &welcome.endpoints {
                    info!(parent: &span, url = %bound.url, reconnected = ever_online, "session online");
                }
                ever_online = true;
                let end = serve(&conn, &forwarder, control, &mut shutdown)
                    .instrument(span)
                    .await;
                match end {
                    SessionEnd::Shutdown => {
                        conn.close(close_code::NORMAL.into(), b"agent shutting down");
                        let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle())
                            .await;
                        return Ok(());
                    }
                    SessionEnd::Replaced => return Err(AgentError::Replaced),
                    SessionEnd::Stopped(reason) => return Err(AgentError::Stopped(reason)),
                    SessionEnd::Lost(reason) => reason,
                }
            }
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Transient(reason)) => reason,
        };
        let delay = backoff(&config, failures);
        failures = failures.saturating_add(1);
        warn!(%reason, retry_in_ms = delay.as_millis() as u64, "edge session lost; reconnecting");
        emit(AgentEvent::Reconnecting {
            reason,
            retry_in: delay,
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = wait_true(&mut shutdown) => return Ok(()),
        }
    }
}

/// Exponential backoff with full jitter: uniformly random in `[min, min·2^n]`, capped.
fn backoff(config: &AgentConfig, failures: u32) -> Duration {
    let ceiling = config
        .reconnect_min
        .saturating_mul(1u32 << failures.min(16))
        .min(config.reconnect_max);
    let lo = config.reconnect_min.min(ceiling).as_millis() as u64;
    let hi = ceiling.as_millis() as u64;
    Duration::from_millis(rand::thread_rng().gen_range(lo..=hi.max(lo)))
}

async fn wait_true(rx: &mut watch::Receiver<bool>) {
    // A dropped sender means nobody can ask us to stop; keep running.
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn client_config(config: &AgentConfig) -> Result<quinn::ClientConfig, AgentError> {
    let tls = tls::client_config(config.edge_ca.as_deref())?;
    let quic = QuicClientConfig::try_from((*tls).clone())
        .map_err(|e| AgentError::Tls(TlsError::Rustls(rustls::Error::General(e.to_string()))))?;
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    client.transport_config(Arc::new(transport_config(config.max_concurrent_requests)));
    Ok(client)
}

async fn resolve_edge(edge: &str) -> Result<(String, SocketAddr), AgentError> {
    let bad = |why: String| AgentError::EdgeAddress(edge.to_string(), why);
    let (host, _) = edge
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT".into()))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addr = tokio::net::lookup_host(edge)
        .await
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("no address found".into()))?;
    Ok((host, addr))
}

fn client_endpoint(edge: SocketAddr) -> Result<quinn::Endpoint, AgentError> {
    let local: SocketAddr = if edge.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    Ok(sluice_proto::transport::endpoint(
        local,
        quinn::EndpointConfig::default(),
        None,
    )?)
}

/// TLS alerts are QUIC transport errors 0x100–0x1ff; a certificate problem will not fix itself.
/// A random id for one agent run (`run_…`, 16 hex digits).
fn new_run_id() -> String {
    format!("run_{:016x}", rand::random::<u64>())
}

fn is_tls_failure(e: &ConnectionError) -> bool {
    matches!(e, ConnectionError::TransportError(t) if (0x100..0x200).contains(&u64::from(t.code)))
}

async fn connect(
    endpoint: &quinn::Endpoint,
    client_config: &quinn::ClientConfig,
    addr: SocketAddr,
    host: &str,
    config: &AgentConfig,
    run_id: &str,
    wanted: &[Option<String>],
) -> Result<(quinn::Connection, Welcome, Control), Attempt> {
    let transient = |e: &dyn std::fmt::Display| Attempt::Transient(e.to_string());
    let connecting = endpoint
        .connect_with(client_config.clone(), addr, host)
        .map_err(|e| Attempt::Fatal(AgentError::EdgeAddress(config.edge.clone(), e.to_string())))?;
    let conn = match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Err(_) => {
            return Err(Attempt::Transient(
                "timed out connecting to the edge".into(),
            ))
        }
        Ok(Err(e)) if is_tls_failure(&e) => {
            return Err(Attempt::Fatal(AgentError::Untrusted(e.to_string())))
        }
        Ok(Err(e)) => return Err(transient(&e)),
        Ok(Ok(conn)) => conn,
    };
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| transient(&e))?;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        authtoken: config.authtoken.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id: run_id.to_string(),
        endpoints: config
            .endpoints
            .iter()
            .zip(wanted)
            .map(|(ep, url)| EndpointRequest {
                url: url.clone(),
                upstream: ep.upstream.to_string(),
                pooling_enabled: ep.pooling_enabled,
                policies: ep.policies.clone(),
            })
            .collect(),
    };
    write_frame(&mut send, &hello)
        .await
        .map_err(|e| transient(&e))?;
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        read_frame::<HelloReply, _>(&mut recv),
    )
    .await
    .map_err(|_| Attempt::Transient("edge did not answer the handshake".into()))?
    .map_err(|e| transient(&e))?;
    match reply {
        HelloReply::Welcome(welcome) => Ok((conn, welcome, Control::hold(send, recv))),
        HelloReply::Rejected(mut rejection) => {
            conn.close(close_code::REJECTED.into(), b"rejected");
            if rejection.code == ErrorCode::UnsupportedVersion
                && !rejection.message.contains("upgrade")
            {
                // An edge older than this agent does not say which side to upgrade.
                rejection.message = format!(
                    "{} (this agent, sluice {}, speaks protocol {PROTOCOL_VERSION}): upgrade the edge, \
                     or use an agent of the edge's version",
                    rejection.message,
                    env!("CARGO_PKG_VERSION")
                );
            }
            // A slow handshake, or an address the edge is rate-limiting after wrong tokens
            // (possibly another user behind the same NAT): worth retrying with backoff.
            if matches!(
                rejection.code,
                ErrorCode::HandshakeFailed | ErrorCode::AuthRateLimited
            ) {
                Err(Attempt::Transient(rejection.to_string()))
            } else {
                Err(Attempt::Fatal(AgentError::Rejected(rejection)))
            }
        }
    }
}

/// Accepts edge-opened streams until the session ends. When the agent stops, it first tells
/// the edge it is leaving and keeps serving until the edge stops picking it and the requests
/// already sent have finished (at most a few seconds), so a pooled endpoint loses no request.
async fn serve(
    conn: &quinn::Connection,
    forwarder: &Arc<Forwarder>,
    control: Control,
    shutdown: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut control = Some(control);
    let mut leaving = None;
    loop {
        tokio::select! {
            stream = conn.accept_bi() => match stream {
                Ok((send, recv)) => {
                    let stream = serve_stream(forwarder.clone(), send, recv, in_flight.clone());
                    tokio::spawn(stream.in_current_span());
                }
                Err(ConnectionError::ApplicationClosed(c)) if c.error_code == close_code::REPLACED.into() => {
                    return SessionEnd::Replaced;
                }
                Err(ConnectionError::ApplicationClosed(c)) if operator_ended(&c) => {
                    return SessionEnd::Stopped(operator_reason(&c));
                }
                Err(e) => return SessionEnd::Lost(e.to_string()),
            },
            _ = wait_true(shutdown), if leaving.is_none() => {
                if let Some(control) = control.take() {
                    leaving = Some(Box::pin(leave(control, conn.rtt(), in_flight.clone())));
                }
            }
            () = async { if let Some(l) = leaving.as_mut() { l.await } }, if leaving.is_some() => {
                info!("session closing");
                return SessionEnd::Shutdown;
            }
        }
    }
}

/// Whether the edge closed the session on its operator's word.
fn operator_ended(c: &quinn::ApplicationClose) -> bool {
    [close_code::STOPPED, close_code::CREDENTIAL_DELETED]
        .iter()
        .any(|code| c.error_code == (*code).into())
}

/// The edge's reason for an operator's close, as it sent it (bounded, printable), or a
/// default when it sent none.
fn operator_reason(c: &quinn::ApplicationClose) -> String {
    let reason: String = String::from_utf8_lossy(&c.reason)
        .chars()
        .filter(|ch| !ch.is_control())
        .take(200)
        .collect();
    if reason.is_empty() {
        "stopped by the edge operator".to_string()
    } else {
        reason
    }
}

/// The agent's part of leaving: the edge is told and acknowledges, then requests it sent just
/// before (in flight on the network for about a round trip) and those already running finish.
async fn leave(control: Control, rtt: Duration, in_flight: Arc<AtomicUsize>) {
    control.leave(Duration::from_secs(1)).await;
    tokio::time::sleep((rtt * 2).max(Duration::from_millis(100))).await;
    let drain = async {
        while in_flight.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), drain).await;
}
