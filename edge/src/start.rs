//! [`start`]: binds every listener, wires pingora and the QUIC listener together, and returns
//! an [`EdgeHandle`] for addresses and shutdown. The binary and the tests both call it.

use crate::acme::{self, challenges::Http01Challenges, store::AcmeStore};
use crate::admin::api::Admin;
use crate::admin::auth::AdminTokens;
use crate::admin::listener as admin_listener;
use crate::admin::plane::{ControlPlane, PlaneError};
use crate::certs::{self, CertError, TunnelIdentity};
use crate::cloud::{self, CloudEndpointError};
use crate::cluster;
use crate::cluster::registry::ClusterRoutes;
use crate::cluster::shared::SharedState;
use crate::config::{EdgeConfig, TunnelTcp, TunnelTls};
use crate::events::config::EventConfigError;
use crate::events::EventExport;
use crate::facts::{self, FactsError};
use crate::http::h1::dispatch;
use crate::http::proxy::EdgeProxy;
use crate::http::state::ProxyState;
use crate::login::jwks::JwksCache;
use crate::login::{
    AuthHost, LoginService, Revocations, SessionKeyError, SessionKeys, REVOKED_FILE,
};
use crate::metrics::{EdgeMetrics, MetricsApp, TlsMetrics};
use crate::outbound::{AddressRules, InternalCalls, PolicyCaller};
use crate::policy::compile::PolicyServices;
use crate::policy::connections::ConnectionPhases;
use crate::policy::operator::{OperatorEndpoints, OperatorPolicyError};
use crate::store::{Store, StoreError};
use crate::tcp::tls::TlsEndpoints;
use crate::tcp::{TcpSide, TcpState};
use crate::tls::certificate::TlsCertError;
use crate::tls::config::{CertFiles, HttpsConfig};
use crate::tls::files;
use crate::tls::front::{SniTable, TlsFront};
use crate::tls::resolver::CertResolver;
use crate::tunnel::admission::{AuthFailures, SessionCounts};
use crate::tunnel::connector::AgentConnector;
use crate::tunnel::credentials::Credentials;
use crate::tunnel::directory::Directory;
use crate::tunnel::listener::{self, ListenError, TunnelOverHttps};
use crate::tunnel::ports::TcpPorts;
use crate::tunnel::reset_key::{self, ResetKeyError};
use crate::tunnel::routes::{LocalRoutes, RouteRegistry};
use crate::tunnel::state::TunnelState;
use crate::tunnel::unreachable::ErrorQueue;
use crate::urls::PublicUrls;
use pingora::apps::http_app::HttpServer;
use pingora::listeners::ListenerConfig;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::Fds;
use pingora::services::listening::Service as ListeningService;
use pingora::services::Service as _;
use sluice_proto::close_code;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::IntoRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// How long shutdown waits for event destinations to write out their queues.
const EVENTS_FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Certificate problem.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// QUIC listener problem.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The QUIC stateless-reset key could not be loaded or created.
    #[error(transparent)]
    ResetKey(#[from] ResetKeyError),
    /// A cloud endpoint cannot come online.
    #[error(transparent)]
    CloudEndpoint(#[from] CloudEndpointError),
    /// A TCP listener could not bind.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The dev token could not be read or written.
    #[error("dev authtoken at {path}")]
    DevToken {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The HTTP client for JWKS documents could not be built (TLS roots).
    #[error("building an HTTP client (JWKS, sign-in)")]
    HttpClient(#[source] reqwest::Error),
    /// A `facts:` file (user-agent regexes, IP database, category list) is unusable.
    #[error(transparent)]
    Facts(#[from] FactsError),
    /// The session cookie keys could not be loaded or created.
    #[error(transparent)]
    SessionKeys(#[from] SessionKeyError),
    /// The list of logged-out sessions could not be read or written.
    #[error("ended sessions file {path}")]
    RevokedSessions {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state store could not be opened (or is from a newer version).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store's credentials, reservations or cloud endpoints could not be loaded.
    #[error(transparent)]
    Plane(#[from] PlaneError),
    /// No authtoken and not in dev mode.
    #[error("no authtoken configured (use --authtoken or --dev)")]
    NoAuthtoken,
    /// An operator policy in `edge.yaml` does not compile.
    #[error(transparent)]
    Policy(#[from] OperatorPolicyError),
    /// An event destination could not be set up.
    #[error(transparent)]
    Events(#[from] EventConfigError),
    /// Metrics registry setup failed.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// An HTTPS certificate is unusable.
    #[error("HTTPS certificate: {0}")]
    TlsCert(#[from] TlsCertError),
    /// The cluster store did not answer at start.
    #[error("{0}")]
    Cluster(String),
    /// rustls refused the HTTPS listener's configuration.
    #[error("HTTPS listener: {0}")]
    TlsListener(String),
}

/// The dev-mode authtoken and where it is stored.
#[derive(Debug, Clone)]
pub struct DevToken {
    /// The token.
    pub token: String,
    /// The file holding it.
    pub path: PathBuf,
    /// Whether it was generated by this start (print it then, and only then).
    pub generated: bool,
}

/// A running edge.
pub struct EdgeHandle {
    /// Bound public HTTP address.
    pub http_addr: SocketAddr,
    /// Bound public HTTPS address, when enabled.
    pub https_addr: Option<SocketAddr>,
    /// The HTTPS certificates by SNI, when HTTPS is enabled.
    pub certificates: Option<Arc<CertResolver>>,
    /// Where the HTTPS listener sends each SNI name (TLS passthrough targets, per-name TLS
    /// configurations), when HTTPS is enabled. Names not in it get the edge's certificates.
    pub sni_routes: Option<Arc<SniTable>>,
    /// Bound QUIC address.
    pub tunnel_addr: SocketAddr,
    /// Bound TLS-over-TCP address for agents, unless turned off.
    pub tunnel_tcp_addr: Option<SocketAddr>,
    /// In a cluster, where the other edges link to this one (`advertise_addr`, its port
    /// bound).
    pub peer_addr: Option<SocketAddr>,
    /// Bound metrics address, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Bound admin API address, if enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The QUIC certificate file agents can trust with `--edge-ca`.
    pub tunnel_cert_path: PathBuf,
    /// SHA-256 fingerprint of that certificate.
    pub tunnel_fingerprint: String,
    /// The dev token, in `--dev` mode.
    pub dev_token: Option<DevToken>,
    control_plane: Arc<ControlPlane>,
    state: Arc<ProxyState>,
    /// The agent sessions online, closed at shutdown (QUIC's are closed with the endpoint
    /// too; TCP links need it).
    sessions: Arc<Directory>,
    endpoint: quinn::Endpoint,
    shutdown: watch::Sender<bool>,
    /// Stops the metrics listener, after the drain: it keeps answering `/readyz` (503) and
    /// `/metrics` while requests in flight finish.
    metrics_shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    grace_period: Duration,
}

/// The sockets agents dial.
struct TunnelListeners {
    quic: quinn::Endpoint,
    /// The QUIC socket's ICMP error queue.
    errors: ErrorQueue,
    /// The TLS-over-TCP listener and its TLS settings, unless off.
    tcp: Option<(tokio::net::TcpListener, TlsAcceptor)>,
}

/// The agent listeners: QUIC, and TLS over TCP unless it is off. On the QUIC port's number by
/// default; when that was 0 (any free port) and the same number is taken on TCP, both are
/// bound again on another.
fn bind_tunnel(
    config: &EdgeConfig,
    identity: &TunnelIdentity,
    endpoint: quinn::EndpointConfig,
    unreachable: mpsc::UnboundedSender<SocketAddr>,
) -> Result<TunnelListeners, StartError> {
    const ATTEMPTS: usize = 20;
    for attempt in 1.. {
        let (quic, errors) = listener::bind(
            config.tunnel_addr,
            identity,
            endpoint.clone(),
            unreachable.clone(),
        )?;
        let tcp_addr = match config.tunnel_tcp {
            TunnelTcp::Off => {
                return Ok(TunnelListeners {
                    quic,
                    errors,
                    tcp: None,
                })
            }
            TunnelTcp::Addr(addr) => addr,
            TunnelTcp::SamePort => quic.local_addr().map_err(|source| StartError::Bind {
                addr: config.tunnel_addr,
                source,
            })?,
        };
        match listener::bind_tcp(tcp_addr, identity) {
            Ok(tcp) => {
                return Ok(TunnelListeners {
                    quic,
                    errors,
                    tcp: Some(tcp),
                })
            }
            Err(ListenError::Bind { .. })
                if config.tunnel_tcp == TunnelTcp::SamePort
                    && config.tunnel_addr.port() == 0
                    && attempt < ATTEMPTS =>
            {
                continue
            }
            Err(e) => return Err(e.into()),
        }
    }
    unreachable!("the loop returns")
}

fn bind_tcp(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let err = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).map_err(err)?;
    // pingora adopts the fd into tokio, whose accept loop needs a non-blocking socket.
    listener.set_nonblocking(true).map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

/// Hands a pre-bound listener to a pingora service: pingora looks listening sockets up by
/// address in its fd table (the mechanism behind its graceful upgrades), so binding ourselves
/// lets tests use port 0 and learn the real port before pingora starts.
fn add_listener<A>(
    service: &mut ListeningService<A>,
    fds: &mut Fds,
    listener: TcpListener,
    addr: SocketAddr,
) {
    let key = addr.to_string();
    // No pingora TLS settings on any listener: HTTPS is the edge's own (tls/front.rs).
    service.add_listener(ListenerConfig::tcp(&key).l4_buffer(client_buffers()));
    fds.add(key, listener.into_raw_fd());
}

/// Buffers of each accepted connection. pingora's default puts a 64 KiB read buffer under every
/// client connection for its whole life: 640 MiB for 10,000 open websockets. Without it,
/// pingora reads heads into its own growing buffer and bodies straight from the socket (the
/// kernel buffers anyway), so an idle connection costs only what it holds.
fn client_buffers() -> L4BufferSettings {
    L4BufferSettings::default().read(0)
}

/// Starts the admin API on its bound listener. It stops with the metrics listener, after the
/// drain, so an operator can still look at sessions while requests finish.
fn admin_api(
    listener: TcpListener,
    addr: SocketAddr,
    config: &EdgeConfig,
    admin: Arc<dyn Admin>,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, StartError> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|source| StartError::Bind { addr, source })?;
    if !addr.ip().is_loopback() {
        warn!(%addr, "the admin API listens beyond loopback: its tokens cross the network in clear unless a TLS proxy fronts it");
    }
    let tokens = AdminTokens::new(config.admin_tokens.iter().map(String::as_str));
    Ok(tokio::spawn(admin_listener::serve(
        listener, tokens, admin, stop,
    )))
}

/// The public HTTPS listener before it is handed to pingora.
struct HttpsListener {
    listener: TcpListener,
    addr: SocketAddr,
    resolver: Arc<CertResolver>,
    /// File pairs to watch, with their resolver slots.
    files: Vec<(String, CertFiles)>,
}

/// Loads the HTTPS certificates (a bad one stops the start) and binds the listener.
fn https_listener(https: &HttpsConfig) -> Result<HttpsListener, StartError> {
    let default_slot = https.default_cert.as_ref().map(|_| files::slot_name(None));
    let resolver = Arc::new(CertResolver::new(default_slot.clone()));
    let files: Vec<(String, CertFiles)> = default_slot
        .into_iter()
        .zip(https.default_cert.clone())
        .chain(
            https
                .certificates
                .iter()
                .enumerate()
                .map(|(i, c)| (files::slot_name(Some(i)), c.clone())),
        )
        .collect();
    files::load_all(&resolver, &files)?;
    let (listener, addr) = bind_tcp(https.addr)?;
    Ok(HttpsListener {
        listener,
        addr,
        resolver,
        files,
    })
}

fn dev_token(config: &EdgeConfig) -> Result<DevToken, StartError> {
    let path = config.state_dir.join("dev-authtoken");
    let io = |source| StartError::DevToken {
        path: path.clone(),
        source,
    };
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let token = existing.trim().to_string();
        if !token.is_empty() {
            return Ok(DevToken {
                token,
                path,
                generated: false,
            });
        }
    }
    std::fs::create_dir_all(&config.state_dir).map_err(io)?;
    let token = format!("dev_{}", hex::encode(rand::random::<[u8; 20]>()));
    certs::write_private(&path, token.as_bytes()).map_err(|e| match e {
        CertError::Io { source, .. } => io(source),
        other => StartError::Cert(other),
    })?;
    Ok(DevToken {
        token,
        path,
        generated: true,
    })
}

fn tunnel_identity(config: &EdgeConfig) -> Result<TunnelIdentity, CertError> {
    match &config.tunnel_tls {
        TunnelTls::Files { cert, key } => certs::load_pem(cert, key),
        TunnelTls::SelfSigned => {
            let domain = config.domain.as_str();
            let mut names = vec![
                "localhost".to_string(),
                domain.to_string(),
                format!("*.{domain}"),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ];
            let ip = config.tunnel_addr.ip();
            if !ip.is_unspecified() && !ip.is_loopback() {
                names.push(ip.to_string());
            }
            names.dedup();
            certs::load_or_create_self_signed(&config.state_dir, names)
        }
    }
}

/// The JWKS cache and the sign-in service (its cookie keys from the state dir, its revoked
/// sessions `revoked`), which also answers on the auth host when one is configured; `auth` is
/// where that host is reached. In a cluster, `shared` gives the engines their rate-limit
/// buckets and the sign-in service its shared logouts and codes.
fn policy_services(
    config: &EdgeConfig,
    auth: Option<AuthHost>,
    calls: Arc<InternalCalls>,
    revoked: Arc<Revocations>,
    shared: Option<&SharedState>,
) -> Result<(PolicyServices, Arc<LoginService>), StartError> {
    // Policies choose every URL these clients fetch: one set of address rules for all.
    let rules = AddressRules::new(config.outbound.allow.clone());
    let jwks = Arc::new(JwksCache::new(&rules).map_err(StartError::HttpClient)?);
    let keys = SessionKeys::load_or_create(&config.state_dir)?;
    let mut login = LoginService::new(keys, revoked, jwks.clone(), auth, &rules)
        .map_err(StartError::HttpClient)?;
    if let Some(shared) = shared {
        login = login.with_shared(shared.sign_in.clone());
    }
    let login = Arc::new(login);
    let facts = facts::load(&config.facts)?;
    let (operator_env, agent_env) =
        PolicyServices::load_envs(&config.secret_vaults, &config.login_apps, &facts);
    let http = Arc::new(PolicyCaller::new(&rules, calls).map_err(StartError::HttpClient)?);
    let services = PolicyServices {
        keys: jwks,
        login: login.clone(),
        http,
        facts,
        operator_env,
        agent_env,
        rate_limits: shared.map(|s| s.rate_limits.clone()),
    };
    Ok((services, login))
}

/// Where the auth host is reached: over https on the HTTPS listener when there is one (the
/// port left out when 443), else over http.
fn auth_host(config: &EdgeConfig, urls: &PublicUrls) -> Option<AuthHost> {
    let host = config.auth_host.clone()?;
    Some(match urls.https_port {
        Some(port) => AuthHost::new(host, true, port),
        None => AuthHost::new(host, false, urls.http_port),
    })
}

/// Starts an edge: binds all listeners, builds each side's state once, then serves until
/// [`EdgeHandle::shutdown`].
pub async fn start(config: EdgeConfig) -> Result<EdgeHandle, StartError> {
    let dev_token = match (config.authtokens.is_empty(), config.dev) {
        (true, true) => Some(dev_token(&config)?),
        (true, false) => return Err(StartError::NoAuthtoken),
        (false, _) => None,
    };
    let tokens: Vec<String> = config
        .authtokens
        .iter()
        .cloned()
        .chain(dev_token.as_ref().map(|d| d.token.clone()))
        .collect();
    let store = Store::open(&config.state_dir)?;
    if config.tunnel_tcp_on_https && config.https.is_none() {
        return Err(StartError::TlsListener(
            "tunnel_tcp_on_https needs the HTTPS listener".into(),
        ));
    }
    if config.cluster.is_some() && !SessionKeys::path(&config.state_dir).exists() {
        return Err(StartError::Cluster(format!(
            "cluster mode needs the sign-in session keys at {} from the operator, the same file \
             on every edge (one generated here would differ from the other edges'): e.g. \
             `openssl rand -hex 32`",
            SessionKeys::path(&config.state_dir).display()
        )));
    }
    let identity = tunnel_identity(&config)?;
    let (http_listener, http_addr) = bind_tcp(config.http_addr)?;
    let admin_bound = config.admin_addr.map(bind_tcp).transpose()?;
    let https = config.https.as_ref().map(https_listener).transpose()?;
    let (unreachable_tx, unreachable_rx) = mpsc::unbounded_channel();
    let reset = reset_key::load_or_create(&config.state_dir)?;
    let TunnelListeners {
        quic: endpoint,
        errors: error_queue,
        tcp: tunnel_tcp,
    } = bind_tunnel(
        &config,
        &identity,
        reset_key::endpoint_config(&reset),
        unreachable_tx,
    )?;
    let tunnel_addr = endpoint.local_addr().map_err(|source| StartError::Bind {
        addr: config.tunnel_addr,
        source,
    })?;
    let tunnel_tcp_addr = tunnel_tcp
        .as_ref()
        .map(|(listener, _)| listener.local_addr())
        .transpose()
        .map_err(|source| StartError::Bind {
            addr: config.tunnel_addr,
            source,
        })?;
    let metrics = EdgeMetrics::new()?;
    let tls_metrics = TlsMetrics::register(&metrics.registry)?;
    let urls = Arc::new(PublicUrls {
        domain: config.domain.clone(),
        http_port: http_addr.port(),
        https_port: https.as_ref().map(|h| h.addr.port()),
    });
    let auth = auth_host(&config, &urls);
    // http-request's calls to internal endpoints come back in through the HTTP listener.
    let internal_calls = Arc::new(InternalCalls::new(http_addr));
    let revoked =
        Revocations::load(&config.state_dir).map_err(|source| StartError::RevokedSessions {
            path: config.state_dir.join(REVOKED_FILE),
            source,
        })?;
    let revoked = Arc::new(revoked);
    // In a cluster, rate limits and sign-in state live in the store: connected before the
    // policy services that use them.
    let shared = match &config.cluster {
        Some(c) => Some(
            SharedState::connect(c, revoked.clone(), metrics.store_errors.clone())
                .await
                .map_err(|e| StartError::Cluster(e.to_string()))?,
        ),
        None => None,
    };
    let (services, login) = policy_services(
        &config,
        auth.clone(),
        internal_calls.clone(),
        revoked,
        shared.as_ref(),
    )?;
    let operators = Arc::new(OperatorEndpoints::compile(
        &config.operator_policies,
        &services,
        &urls,
    )?);
    if let Some(auth) = &auth {
        info!(redirect_uri = %format!("{}{}", auth.base_url(), crate::login::CALLBACK_PATH), "sign-ins run on the auth host");
    }
    let acme_config = config.https.as_ref().and_then(|h| h.acme.clone());
    // In a cluster, the other edges' endpoints (mirrored) back this edge's own.
    let remote = config
        .cluster
        .as_ref()
        .map(|_| Arc::new(LocalRoutes::new()));
    let routes: Arc<dyn RouteRegistry> = match &remote {
        Some(remote) => Arc::new(ClusterRoutes::new(remote.clone())),
        None => Arc::new(LocalRoutes::new()),
    };
    let events = Arc::new(EventExport::start(&config.event_destinations, &metrics)?);
    let connection_phases = Arc::new(ConnectionPhases::default());
    let proxy_state = Arc::new(ProxyState {
        routes: routes.clone(),
        urls: urls.clone(),
        operators: operators.clone(),
        metrics: metrics.clone(),
        record_metrics: config.metrics_addr.is_some(),
        events: events.clone(),
        redirect_http: config.https.as_ref().is_some_and(|h| h.redirect_http),
        acme_challenges: acme_config
            .as_ref()
            .map(|_| Arc::new(Http01Challenges::default())),
        auth_host: auth.as_ref().map(|_| login.clone()),
        stream_open_timeout: config.stream_open_timeout,
        internal_calls,
        connection_phases: connection_phases.clone(),
    });
    let tcp_state = Arc::new(TcpState {
        routes: routes.clone(),
        stream_open_timeout: config.stream_open_timeout,
        metrics: metrics.clone(),
        events: events.clone(),
        operators: operators.clone(),
        edge_certs: https.as_ref().map(|h| h.resolver.clone()),
        connections: connection_phases,
    });
    let tcp_ports = config.tcp_ports.map(|range| {
        let side = TcpSide(tcp_state.clone());
        Arc::new(TcpPorts::new(range, http_addr.ip(), Arc::new(side)))
    });
    let joined = match &config.cluster {
        Some(c) => Some(
            cluster::join(
                c,
                &identity,
                &reset,
                login.session_keys().primary_digest(),
                metrics.store_errors.clone(),
            )
            .await
            .map_err(|e| StartError::Cluster(e.to_string()))?,
        ),
        None => None,
    };
    let tunnel_state = Arc::new(TunnelState {
        routes,
        urls,
        operators,
        services,
        credentials: Arc::new(Credentials::configured(tokens.iter().map(String::as_str))),
        reservations: Arc::default(),
        directory: Arc::default(),
        auth_failures: AuthFailures::default(),
        sessions_per_token: SessionCounts::new(config.max_agents_per_token),
        auth_hostname: config.auth_host.clone(),
        handshake_timeout: config.handshake_timeout,
        metrics: metrics.clone(),
        peers: Arc::default(),
        tcp_ports,
        cluster: joined.as_ref().map(|j| j.claims.clone()),
    });
    let sessions = tunnel_state.directory.clone();
    cloud::bring_online(&config.cloud_endpoints, &tunnel_state)?;
    // In a cluster the admin API's rows are the store's: this edge's file is synced with it
    // (seeding or importing, when due) before the control plane loads it.
    let admin_rows = match &joined {
        Some(joined) => Some(
            joined
                .admin_rows(store.clone())
                .await
                .map_err(|e| StartError::Cluster(e.to_string()))?,
        ),
        None => None,
    };
    let control_plane = Arc::new(ControlPlane::load(
        store.clone(),
        admin_rows.clone(),
        tunnel_state.clone(),
        &tokens,
        &config.cloud_endpoints,
        events.clone(),
        joined.as_ref().map(|j| j.sessions.clone()),
    )?);

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut fds = Fds::new();
    // We drive shutdown ourselves (EdgeHandle::shutdown), but pingora reads these too.
    let server_conf = Arc::new(ServerConf {
        grace_period_seconds: Some(config.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    });
    // HTTP/1.x on the public listeners is hyper's (http/h1/): pingora hands those connections
    // to the bridge through its custom session hook, with the proxy application; HTTP/2 (TLS
    // h2, and h2c recognised by the bridge) stays pingora's. See docs/architecture.md.
    let mut proxy = pingora::proxy::http_proxy_service_with_name_custom(
        &server_conf,
        EdgeProxy::new(proxy_state.clone()),
        "sluice-edge",
        AgentConnector,
        Arc::new(dispatch::hook),
    );
    if let Some(app) = proxy.app_logic_mut() {
        app.server_options = Some(dispatch::server_options(config.h1_server));
    }
    add_listener(&mut proxy, &mut fds, http_listener, http_addr);
    let mut tasks = Vec::new();
    let https_addr = https.as_ref().map(|h| h.addr);
    let certificates = https.as_ref().map(|h| h.resolver.clone());
    let mut https_service = None;
    let mut sni_routes = None;
    if let Some(h) = https {
        // The HTTPS listener has a service of its own, so that its hook (the edge's TLS, then
        // the HTTP servers) is the only one its connections meet; see docs/tls.md.
        let table = Arc::new(SniTable::default());
        let routes = TlsEndpoints::new(tcp_state.clone(), table.clone());
        let mut front = TlsFront::new(h.resolver.clone(), Arc::new(routes))
            .map_err(|e| StartError::TlsListener(e.to_string()))?;
        if config.tunnel_tcp_on_https {
            let tunnel = TunnelOverHttps::new(listener::tcp_tls(&identity)?, tunnel_state.clone());
            front = front.with_tunnel(Arc::new(tunnel));
        }
        let mut svc = pingora::proxy::http_proxy_service_with_name_custom(
            &server_conf,
            EdgeProxy::new(proxy_state.clone()),
            "sluice-edge-https",
            AgentConnector,
            Arc::new(dispatch::https_hook(Arc::new(front), config.h1_server)),
        );
        if let Some(app) = svc.app_logic_mut() {
            app.server_options = Some(dispatch::https_server_options());
        }
        add_listener(&mut svc, &mut fds, h.listener, h.addr);
        https_service = Some(svc);
        sni_routes = Some(table);
        let every = config
            .https
            .as_ref()
            .map_or(Duration::from_secs(10), |c| c.reload_interval);
        if let (Some(acme_config), Some(challenges)) = (acme_config, &proxy_state.acme_challenges) {
            tasks.push(acme::manager::start(
                acme_config,
                AcmeStore::new(&config.state_dir),
                h.resolver.clone(),
                challenges.clone(),
                tls_metrics.clone(),
                shutdown_rx.clone(),
            ));
        }
        tasks.push(tokio::spawn(files::reload_loop(
            h.resolver,
            h.files,
            every,
            tls_metrics.clone(),
            shutdown_rx.clone(),
        )));
    }
    let (metrics_shutdown_tx, metrics_shutdown_rx) = watch::channel(false);
    let mut metrics_service = None;
    let mut metrics_addr = None;
    if let Some(addr) = config.metrics_addr {
        let (l, bound) = bind_tcp(addr)?;
        let mut svc = ListeningService::new(
            "sluice-metrics".to_string(),
            HttpServer::new_app(MetricsApp::new(
                metrics.registry.clone(),
                shutdown_rx.clone(),
                store.clone(),
            )),
        );
        add_listener(&mut svc, &mut fds, l, bound);
        metrics_service = Some(svc);
        metrics_addr = Some(bound);
    }
    let admin_addr = admin_bound.as_ref().map(|(_, addr)| *addr);
    if let Some((l, addr)) = admin_bound {
        tasks.push(admin_api(
            l,
            addr,
            &config,
            control_plane.clone(),
            metrics_shutdown_rx.clone(),
        )?);
    }
    let fds = Arc::new(parking_lot::Mutex::new(fds));
    {
        let (fds, rx) = (fds.clone(), shutdown_rx.clone());
        tasks.push(tokio::spawn(async move {
            proxy.start_service(Some(fds), rx, 1).await;
        }));
    }
    if let Some(mut svc) = https_service {
        let (fds, rx) = (fds.clone(), shutdown_rx.clone());
        tasks.push(tokio::spawn(async move {
            svc.start_service(Some(fds), rx, 1).await;
        }));
    }
    if let Some(mut svc) = metrics_service {
        let (fds, rx) = (fds.clone(), metrics_shutdown_rx);
        tasks.push(tokio::spawn(async move {
            svc.start_service(Some(fds), rx, 1).await;
        }));
    }
    error_queue.spawn().map_err(|source| StartError::Bind {
        addr: config.tunnel_addr,
        source,
    })?;
    tasks.push(tokio::spawn(
        tunnel_state.peers.clone().listen(unreachable_rx),
    ));
    if let Some((tcp_listener, tls)) = tunnel_tcp {
        tasks.push(tokio::spawn(listener::accept_tcp_loop(
            tcp_listener,
            tls,
            tunnel_state.clone(),
            shutdown_rx.clone(),
        )));
    }
    let peer_addr = joined.as_ref().and_then(cluster::Joined::peer_addr);
    if let (Some(joined), Some(remote)) = (joined, remote) {
        let running = joined
            .run(
                &tunnel_state,
                remote,
                &metrics,
                config.stream_open_timeout,
                shutdown_rx.clone(),
            )
            .await
            .map_err(|e| StartError::Cluster(e.to_string()))?;
        tasks.extend(running);
    }
    tasks.extend(shared.map(|s| s.following));
    if let Some(rows) = admin_rows {
        tasks.push(tokio::spawn(rows.follow(control_plane.clone())));
    }
    tasks.push(tokio::spawn(listener::accept_loop(
        endpoint.clone(),
        tunnel_state,
        shutdown_rx,
    )));
    info!(%http_addr, ?https_addr, %tunnel_addr, ?tunnel_tcp_addr, ?metrics_addr, ?admin_addr, domain = %config.domain, "edge started");
    Ok(EdgeHandle {
        http_addr,
        https_addr,
        certificates,
        sni_routes,
        tunnel_addr,
        tunnel_tcp_addr,
        peer_addr,
        metrics_addr,
        admin_addr,
        tunnel_cert_path: identity.cert_path,
        tunnel_fingerprint: identity.fingerprint,
        dev_token,
        control_plane,
        state: proxy_state,
        sessions,
        endpoint,
        shutdown: shutdown_tx,
        metrics_shutdown: metrics_shutdown_tx,
        tasks,
        grace_period: config.grace_period,
    })
}

impl EdgeHandle {
    /// The edge's metrics registry (what `/metrics` serves), for embedding and tests.
    pub fn metrics(&self) -> &prometheus::Registry {
        &self.state.metrics.registry
    }

    /// The operator's control plane: what the admin API calls (credentials, reservations,
    /// sessions, cloud endpoints), for embedding and tests.
    pub fn admin(&self) -> Arc<dyn Admin> {
        self.control_plane.clone()
    }

    /// The route registry: which agent session holds which hostname.
    pub fn routes(&self) -> &dyn RouteRegistry {
        self.state.routes.as_ref()
    }

    /// Stops accepting, waits up to the grace period for in-flight requests, then closes every
    /// agent session (agents reconnect on their own) and stops.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let deadline = Instant::now() + self.grace_period;
        while self.state.metrics.requests_in_flight.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.metrics_shutdown.send(true);
        // Every request that will complete has emitted its event: write out the queues.
        self.state.events.shutdown(EVENTS_FLUSH_LIMIT).await;
        for entry in self.sessions.all() {
            entry
                .handle
                .link
                .conn
                .close(close_code::NORMAL, b"edge shutting down");
        }
        self.endpoint
            .close(close_code::NORMAL.into(), b"edge shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
        for task in self.tasks {
            task.abort();
        }
        info!("edge stopped");
    }
}
