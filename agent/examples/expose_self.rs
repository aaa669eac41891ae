//! Expose this program through a Sluice edge with the SDK, no agent process needed.
//!
//! Two endpoints on one session: `hello` answered by a closure-based service, and `inbox`
//! whose requests arrive one by one on a stream the program loops over.
//!
//! ```sh
//! SLUICE_EDGE=127.0.0.1:4443 SLUICE_AUTHTOKEN=… SLUICE_EDGE_CA=path/to/tunnel.crt \
//!   cargo run -p sluice-agent --example expose_self
//! ```

use http::{Request, Response};
use http_body_util::BodyExt;
use sluice_agent::body::{full, ProxyBody};
use sluice_agent::sdk::{self, SessionBuilder, StartError, Tunnel};
use sluice_agent::AppService;

/// `hello`: greets with the request path. `inbox`: counts the bytes posted to it.
pub async fn expose(builder: SessionBuilder) -> Result<Tunnel, StartError> {
    let hello = AppService::from_fn("hello", |req: Request<ProxyBody>| async move {
        Response::new(full(format!(
            "hello from Rust, you asked for {}",
            req.uri().path()
        )))
    });
    let (inbox, mut requests) = sdk::requests("inbox", 16);
    tokio::spawn(async move {
        let mut seen = 0u64;
        while let Some(incoming) = requests.recv().await {
            seen += 1;
            let (request, reply) = incoming.into_parts();
            let len = match request.into_body().collect().await {
                Ok(body) => body.to_bytes().len(),
                Err(_) => 0,
            };
            reply.respond(Response::new(full(format!("request {seen}: {len} bytes"))));
        }
    });
    builder
        .serve(Some("hello"), hello)
        .serve(Some("inbox"), inbox)
        .start()
        .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let edge = std::env::var("SLUICE_EDGE").unwrap_or_else(|_| "127.0.0.1:4443".into());
    let token = std::env::var("SLUICE_AUTHTOKEN")?;
    let mut builder = sdk::Session::builder(edge, token);
    if let Ok(ca) = std::env::var("SLUICE_EDGE_CA") {
        builder = builder.edge_ca(ca);
    }
    let tunnel = expose(builder).await?;
    for url in tunnel.urls() {
        println!("Forwarding {url} -> this process");
    }
    tokio::signal::ctrl_c().await?;
    tunnel.stop().await?;
    Ok(())
}
