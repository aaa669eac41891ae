//! How two edges of a cluster prove to each other that they share the peer secret: QUIC with
//! ALPN `sluice-peer/1`, then, on the link's first stream, each side sends an HMAC of the peer
//! secret over the TLS session's exported keying material. The proof is bound to this very
//! connection (a relay in the middle has two TLS sessions, so two different exports), so the
//! certificates need no CA: any certificate is taken, its handshake signature checked.

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use ring::hmac;
use serde::{Deserialize, Serialize};
use sluice_proto::codec::{read_frame, write_frame, FrameError};
use sluice_proto::key_proof::{AnyServerCertificate, KeyProof};
use sluice_proto::link::Link;
use sluice_proto::transport::transport_config;
use std::sync::Arc;
use std::time::Duration;

/// ALPN of links between edges.
pub const ALPN_PEER: &[u8] = b"sluice-peer/1";

/// A link between edges sends a keep-alive this often when idle...
const PEER_KEEP_ALIVE: Duration = Duration::from_millis(500);

/// ...and is dead after this much silence: requests stop going to an edge that died within
/// this time (agents' links allow more, for mobile networks).
const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the proof exchange may take.
pub const PROOF_TIMEOUT: Duration = Duration::from_secs(5);

/// Streams the dialling edge may have open at once on one link (one per request in flight).
const PEER_STREAMS: u32 = 4096;

/// TLS exporter label for the proofs.
const EXPORTER_LABEL: &[u8] = b"EXPORTER-sluice-peer-proof";

/// Why a link between edges was refused or failed to set up.
#[derive(Debug, thiserror::Error)]
pub enum PeerAuthError {
    /// TLS setup failed.
    #[error("peer TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The rustls config is unusable for QUIC.
    #[error("peer TLS for QUIC: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// The link ended or said something else than a proof.
    #[error("peer handshake: {0}")]
    Exchange(String),
    /// The other side does not know the peer secret.
    #[error("the other edge's proof is wrong: it has another peer_secret")]
    WrongProof,
    /// No proof in time.
    #[error("no peer proof within {PROOF_TIMEOUT:?}")]
    Timeout,
}

impl From<FrameError> for PeerAuthError {
    fn from(e: FrameError) -> Self {
        Self::Exchange(e.to_string())
    }
}

/// One side's proof, with the id of the edge sending it.
#[derive(Debug, Serialize, Deserialize)]
struct Proof {
    edge_id: String,
    mac: String,
}

/// Which side computes a proof: the two differ, so one cannot be reflected as the other.
#[derive(Debug, Clone, Copy)]
enum Role {
    Dialler,
    Listener,
}

/// The secret both sides hold, and the proofs made with it.
pub struct PeerSecret(hmac::Key);

impl PeerSecret {
    /// From the configured `peer_secret`.
    pub fn new(secret: &str) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()))
    }

    /// The MAC input: the role, then the connection's exported keying material.
    fn input(conn: &quinn::Connection, role: Role) -> Result<Vec<u8>, PeerAuthError> {
        let mut export = [0u8; 32];
        conn.export_keying_material(&mut export, EXPORTER_LABEL, b"")
            .map_err(|_| PeerAuthError::Exchange("no keying material".into()))?;
        let mut input = match role {
            Role::Dialler => b"dialler:".to_vec(),
            Role::Listener => b"listener:".to_vec(),
        };
        input.extend_from_slice(&export);
        Ok(input)
    }

    /// This side's proof on `conn` as edge `edge_id`.
    fn proof(
        &self,
        conn: &quinn::Connection,
        role: Role,
        edge_id: &str,
    ) -> Result<Proof, PeerAuthError> {
        Ok(Proof {
            edge_id: edge_id.to_string(),
            mac: hex::encode(hmac::sign(&self.0, &Self::input(conn, role)?).as_ref()),
        })
    }

    /// Checks `proof` in constant time (ring's `verify`).
    fn check(
        &self,
        conn: &quinn::Connection,
        role: Role,
        proof: &Proof,
    ) -> Result<(), PeerAuthError> {
        let mac = hex::decode(&proof.mac).map_err(|_| PeerAuthError::WrongProof)?;
        hmac::verify(&self.0, &Self::input(conn, role)?, &mac)
            .map_err(|_| PeerAuthError::WrongProof)
    }

    /// The dialling side: sends its proof on a new stream, checks the answer. Returns the
    /// other edge's id.
    pub async fn dial(
        &self,
        conn: &quinn::Connection,
        edge_id: &str,
    ) -> Result<String, PeerAuthError> {
        let link = Link::Quic(conn.clone());
        let exchange = async {
            let (mut send, mut recv) = link
                .open_bi()
                .await
                .map_err(|e| PeerAuthError::Exchange(e.to_string()))?;
            write_frame(&mut send, &self.proof(conn, Role::Dialler, edge_id)?).await?;
            let theirs: Proof = read_frame(&mut recv).await?;
            self.check(conn, Role::Listener, &theirs)?;
            Ok(theirs.edge_id)
        };
        within_proof_timeout(exchange).await
    }

    /// The listening side: reads the dialler's proof from its first stream, checks it, answers
    /// with its own. Returns the other edge's id.
    pub async fn accept(
        &self,
        conn: &quinn::Connection,
        edge_id: &str,
    ) -> Result<String, PeerAuthError> {
        let link = Link::Quic(conn.clone());
        let exchange = async {
            let (mut send, mut recv) = link
                .accept_bi()
                .await
                .map_err(|e| PeerAuthError::Exchange(e.to_string()))?;
            let theirs: Proof = read_frame(&mut recv).await?;
            self.check(conn, Role::Dialler, &theirs)?;
            write_frame(&mut send, &self.proof(conn, Role::Listener, edge_id)?).await?;
            send.finish();
            Ok(theirs.edge_id)
        };
        within_proof_timeout(exchange).await
    }
}

/// `exchange`, given at most [`PROOF_TIMEOUT`].
async fn within_proof_timeout<T>(
    exchange: impl std::future::Future<Output = Result<T, PeerAuthError>>,
) -> Result<T, PeerAuthError> {
    tokio::time::timeout(PROOF_TIMEOUT, exchange)
        .await
        .map_err(|_| PeerAuthError::Timeout)?
}

/// Transport settings of links between edges: the agents' windows and congestion control,
/// with a shorter keep-alive and idle timeout.
fn peer_transport() -> quinn::TransportConfig {
    let mut t = transport_config(PEER_STREAMS);
    t.keep_alive_interval(Some(PEER_KEEP_ALIVE));
    t.max_idle_timeout(PEER_IDLE_TIMEOUT.try_into().ok());
    t
}

/// The listening side's QUIC settings: the edge's tunnel certificate, TLS 1.3, ALPN
/// [`ALPN_PEER`].
pub fn server_config(
    identity: &crate::certs::TunnelIdentity,
) -> Result<quinn::ServerConfig, PeerAuthError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![ALPN_PEER.to_vec()];
    tls.max_early_data_size = 0;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    server.transport_config(Arc::new(peer_transport()));
    Ok(server)
}

/// The dialling side's QUIC settings: any certificate (the proofs authenticate), TLS 1.3.
pub fn client_config() -> Result<quinn::ClientConfig, PeerAuthError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyServerCertificate(KeyProof::new(&provider)));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN_PEER.to_vec()];
    let mut client = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    client.transport_config(Arc::new(peer_transport()));
    Ok(client)
}
