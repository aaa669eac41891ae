//! `https://` upstreams: the agent speaks TLS to a local app with a self-signed certificate
//! (not verified by default, as ngrok users expect; verified against a CA file or the system
//! roots with `--upstream-tls-verify[-cas]`).

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sluice_agent::{EndpointConfig, UpstreamTlsVerify};
use sluice_e2e::{any_port, client, error_code, TestAgent, TestEdge, TOKEN};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A TLS app with a fresh self-signed certificate for `localhost`; answers `secure hello` plus
/// the Host it saw. Returns its address and its certificate as PEM.
async fn tls_app() -> anyhow::Result<(std::net::SocketAddr, String)> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    let pem = cert.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind(any_port()).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let host = req
                        .headers()
                        .get("host")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(format!(
                        "secure hello {host}"
                    )))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((addr, pem))
}

#[tokio::test]
async fn https_upstream_with_self_signed_certificate() -> anyhow::Result<()> {
    let (app, _) = tls_app().await?;
    let edge = TestEdge::start().await?;
    let mut config = edge.agent_config(TOKEN, "secure", app);
    config.endpoints[0] = EndpointConfig {
        url: Some("secure".into()),
        ..EndpointConfig::new(format!("https://{app}").parse()?)
    };
    let agent = TestAgent::start(config).await?;
    let r = client().get(format!("{}/x", agent.url())).send().await?;
    assert_eq!(r.status(), 200);
    let body = r.text().await?;
    assert!(body.starts_with("secure hello secure.localhost"), "{body}");
    agent.stop().await
}

/// Runs one request through an agent whose endpoint verifies the upstream as `verify` says;
/// returns status and error code.
async fn through_verifying_agent(
    port: u16,
    verify: UpstreamTlsVerify,
) -> anyhow::Result<(u16, Option<String>)> {
    let edge = TestEdge::start().await?;
    let mut config = edge.agent_config(TOKEN, "verified", any_port());
    config.endpoints[0] = EndpointConfig {
        url: Some("verified".into()),
        upstream_tls_verify: verify,
        ..EndpointConfig::new(format!("https://localhost:{port}").parse()?)
    };
    let agent = TestAgent::start(config).await?;
    let r = client().get(format!("{}/v", agent.url())).send().await?;
    let out = (r.status().as_u16(), error_code(r.headers()));
    agent.stop().await?;
    Ok(out)
}

#[tokio::test]
async fn upstream_tls_verification_uses_the_given_ca_file() -> anyhow::Result<()> {
    let (app, pem) = tls_app().await?;
    let dir = tempfile::tempdir()?;
    let right = dir.path().join("app-ca.pem");
    std::fs::write(&right, pem)?;
    let other_pem = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?
        .cert
        .pem();
    let wrong = dir.path().join("other-ca.pem");
    std::fs::write(&wrong, other_pem)?;

    let ok = through_verifying_agent(app.port(), UpstreamTlsVerify::CaFile(right)).await?;
    assert_eq!(ok, (200, None));
    let refused = through_verifying_agent(app.port(), UpstreamTlsVerify::CaFile(wrong)).await?;
    assert_eq!(refused, (502, Some("ERR_SLUICE_8012".to_string())));
    // A self-signed certificate is in no system trust store.
    let system = through_verifying_agent(app.port(), UpstreamTlsVerify::SystemRoots).await?;
    assert_eq!(system, (502, Some("ERR_SLUICE_8012".to_string())));
    Ok(())
}
