//! `--host-header rewrite`: the upstream sees its own host, and its redirects to itself come
//! back as the public URL.

use http::Response;
use sluice_agent::HostHeader;
use sluice_e2e::upstream::{full, serve};
use sluice_e2e::{client_builder, TestAgent, TestEdge, TOKEN};

#[tokio::test]
async fn host_header_rewrite_and_location_back_to_the_public_url() -> anyhow::Result<()> {
    let app = serve(|req| async move {
        let host = req.headers()["host"]
            .to_str()
            .unwrap_or_default()
            .to_string();
        let mut resp = Response::new(full(format!("host={host}")));
        let location = match req.uri().path() {
            "/self" => Some(format!("http://{host}/landing?x=1")),
            "/other" => Some("https://example.com/elsewhere".to_string()),
            "/relative" => Some("/landing".to_string()),
            _ => None,
        };
        if let Some(l) = location {
            *resp.status_mut() = http::StatusCode::FOUND;
            resp.headers_mut()
                .insert("location", l.parse().expect("location"));
        }
        resp
    })
    .await?;
    let edge = TestEdge::start().await?;
    let mut config = edge.agent_config(TOKEN, "rewrite", app.addr);
    config.endpoints[0].host_header = HostHeader::Rewrite;
    let agent = TestAgent::start(config).await?;
    let url = agent.url().to_string();
    let http = client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    let r = http.get(format!("{url}/plain")).send().await?;
    assert_eq!(r.text().await?, format!("host={}", app.addr));
    let location = |r: &reqwest::Response| r.headers()["location"].to_str().map(str::to_string);
    let r = http.get(format!("{url}/self")).send().await?;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r)?, format!("{url}/landing?x=1"));
    let r = http.get(format!("{url}/other")).send().await?;
    assert_eq!(location(&r)?, "https://example.com/elsewhere");
    let r = http.get(format!("{url}/relative")).send().await?;
    assert_eq!(location(&r)?, "/landing");
    agent.stop().await?;

    // Without rewrite the app sees the public host, so its redirects are already public.
    let config = edge.agent_config(TOKEN, "preserve", app.addr);
    let agent = TestAgent::start(config).await?;
    let r = http.get(format!("{}/plain", agent.url())).send().await?;
    let public = format!("host={}:{}", agent.hostnames[0], edge.http_addr.port());
    assert_eq!(r.text().await?, public);
    agent.stop().await
}
