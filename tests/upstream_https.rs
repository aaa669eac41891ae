//! `https://` upstreams: the agent speaks TLS to a local app with a self-signed certificate
//! (not verified by default, as ngrok users expect).

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sluice_agent::EndpointConfig;
use sluice_e2e::{any_port, client, TestAgent, TestEdge, TOKEN};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

/// A TLS app with a fresh self-signed certificate; answers `secure hello` plus the Host it saw.
async fn tls_app() -> anyhow::Result<std::net::SocketAddr> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
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
    Ok(addr)
}

#[tokio::test]
async fn https_upstream_with_self_signed_certificate() -> anyhow::Result<()> {
    let app = tls_app().await?;
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
