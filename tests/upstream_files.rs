//! `file://` upstreams: the built-in file server through edge and agent — content types,
//! ranges, listings, index.html, and no way out of the directory (encoded `..`, symlinks).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use sluice_agent::EndpointConfig;
use sluice_e2e::{any_port, client, h1_connect, TestAgent, TestEdge, TOKEN};
use std::path::Path;

const SECRET: &str = "top secret outside the root";

/// `root/` is served; `outside/secret.txt` sits next to it.
fn site(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("docs"))?;
    std::fs::create_dir_all(root.join("empty dir"))?;
    std::fs::create_dir_all(dir.join("outside"))?;
    std::fs::write(dir.join("outside/secret.txt"), SECRET)?;
    std::fs::write(root.join("hello.txt"), "hello files\n")?;
    std::fs::write(root.join("<b>.txt"), "odd name")?;
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("data.bin"), &data)?;
    std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>")?;
    std::os::unix::fs::symlink("hello.txt", root.join("inside-link"))?;
    std::os::unix::fs::symlink("../outside/secret.txt", root.join("escape-link"))?;
    std::os::unix::fs::symlink(dir.join("outside"), root.join("escape-dir"))?;
    Ok(root)
}

/// A raw request with the path exactly as given (no client-side normalisation of `..`).
async fn raw_get(edge: &TestEdge, host: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let mut send = h1_connect(edge.http_addr).await?;
    let req = http::Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn file_upstream_serves_files_ranges_listings_and_nothing_outside() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let root = site(dir.path())?;
    let edge = TestEdge::start().await?;
    let mut config = edge.agent_config(TOKEN, "files", any_port());
    config.endpoints[0] = EndpointConfig {
        url: Some("files".into()),
        ..EndpointConfig::new(format!("file://{}", root.display()).parse()?)
    };
    let agent = TestAgent::start(config).await?;
    let url = agent.url().to_string();
    let http = client();

    let r = http.get(format!("{url}/hello.txt")).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.text().await?, "hello files\n");

    let r = http
        .get(format!("{url}/data.bin"))
        .header("range", "bytes=10-19")
        .send()
        .await?;
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/1000");
    let want: Vec<u8> = (10..20u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(r.bytes().await?.to_vec(), want);

    let r = http.get(format!("{url}/")).send().await?;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()?
        .starts_with("text/html"));
    let listing = r.text().await?;
    for entry in [
        "href=\"hello.txt\"",
        "href=\"docs/\"",
        "href=\"empty%20dir/\"",
        "&lt;b&gt;.txt",
    ] {
        assert!(listing.contains(entry), "{entry} missing in {listing}");
    }
    let r = http.get(format!("{url}/empty%20dir/")).send().await?;
    assert!(r.text().await?.contains("href=\"../\""));
    assert_eq!(
        http.get(format!("{url}/docs/"))
            .send()
            .await?
            .text()
            .await?,
        "<h1>docs</h1>"
    );
    assert_eq!(
        http.get(format!("{url}/inside-link"))
            .send()
            .await?
            .text()
            .await?,
        "hello files\n"
    );
    assert_eq!(
        http.post(format!("{url}/hello.txt")).send().await?.status(),
        405
    );
    assert_eq!(
        http.get(format!("{url}/nope.txt")).send().await?.status(),
        404
    );

    let host = &agent.hostnames[0];
    for attack in [
        "/../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/docs/..%2f..%2foutside%2fsecret.txt",
        "/docs/%2E%2E/%2E%2E/outside/secret.txt",
        "/..%5coutside%5csecret.txt",
        "/escape-link",
        "/escape-dir/secret.txt",
        "/escape-dir/",
    ] {
        let (status, body) = raw_get(&edge, host, attack).await?;
        assert!(status == 404 || status == 400, "{attack}: {status} {body}");
        assert!(!body.contains(SECRET), "{attack} leaked the file");
    }
    agent.stop().await
}
