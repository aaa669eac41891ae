//! HTTPS in tests: a certificate authority generated at test time, certificates it issues
//! (written as PEM files the edge loads), and clients that trust only that CA.

use crate::client::client_builder;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use sluice_edge::CertFiles;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

/// A throwaway certificate authority.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl TestCa {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key)?;
        Ok(Self { cert, key })
    }

    /// The CA certificate (PEM), for clients to trust.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate (DER).
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// Issues a leaf for `names` (common name `file_name`) and writes `NAME.crt`/`NAME.key` into `dir` (replacing any
    /// previous pair, as a renewal would). Returns the files and the leaf's DER.
    pub fn issue(
        &self,
        dir: &Path,
        file_name: &str,
        names: &[&str],
    ) -> anyhow::Result<(CertFiles, CertificateDer<'static>)> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        // The file name is the subject's common name, so policies can tell leaves apart
        // (`conn.tls.client.subject.common_name`).
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, file_name);
        let leaf = params.signed_by(&key, &self.cert, &self.key)?;
        let files = CertFiles {
            cert: dir.join(format!("{file_name}.crt")),
            key: dir.join(format!("{file_name}.key")),
        };
        // New files are written beside and renamed over the old ones, as certbot and
        // Kubernetes do, so the edge never reads half a file.
        write_atomically(&files.key, key.serialize_pem().as_bytes())?;
        write_atomically(&files.cert, leaf.pem().as_bytes())?;
        Ok((files, leaf.der().clone()))
    }

    /// rustls client settings trusting only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> anyhow::Result<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der())?;
        client_config(roots, alpn)
    }

    /// A reqwest client (every name resolves to 127.0.0.1) that verifies certificates against
    /// this CA only.
    pub fn https_client(&self) -> anyhow::Result<reqwest::Client> {
        https_client_trusting(self.pem().as_bytes())
    }
}

/// A reqwest client (every name resolves to 127.0.0.1) trusting only the PEM root `root`.
pub fn https_client_trusting(root: &[u8]) -> anyhow::Result<reqwest::Client> {
    Ok(client_builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root)?)
        .build()?)
}

/// rustls client settings trusting only the PEM root `root`, offering `alpn`.
pub fn client_config_trusting(root: &[u8], alpn: &[&[u8]]) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &root[..]) {
        roots.add(cert?)?;
    }
    client_config(roots, alpn)
}

fn client_config(
    roots: rustls::RootCertStore,
    alpn: &[&[u8]],
) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A verified TLS connection to `addr` asking for `sni` (ALPN as in `config`).
pub async fn tls_connect(
    config: rustls::ClientConfig,
    addr: SocketAddr,
    sni: &str,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Ok(connector
        .connect(ServerName::try_from(sni.to_string())?, tcp)
        .await?)
}

/// The leaf certificate the server presented on `stream`.
pub fn presented_leaf(stream: &TlsStream<TcpStream>) -> Option<CertificateDer<'static>> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates()?
        .first()
        .map(|c| c.clone().into_owned())
}

/// A rustls server configuration serving the pair in `files` with TLS `versions`.
pub fn server_config(
    files: &CertFiles,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> anyhow::Result<rustls::ServerConfig> {
    let certs = rustls_pemfile::certs(&mut &std::fs::read(&files.cert)?[..])
        .collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut &std::fs::read(&files.key)?[..])?
        .ok_or_else(|| anyhow::anyhow!("no key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?)
}

/// A TLS server on loopback (the app behind a TLS endpoint) answering each line with
/// `upstream: LINE`.
pub async fn tls_upstream(config: rustls::ServerConfig) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 256];
                while let Ok(n @ 1..) = tls.read(&mut buf).await {
                    let reply = [b"upstream: ", &buf[..n]].concat();
                    if tls.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}
