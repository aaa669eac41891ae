//! Reading an edge's `/metrics` in tests: fetch the text, look samples up by series.

use anyhow::Context as _;
use std::net::SocketAddr;

/// The Prometheus text served at `http://ADDR/metrics`.
pub async fn scrape(addr: SocketAddr) -> anyhow::Result<String> {
    let resp = crate::client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .context("scraping /metrics")?;
    anyhow::ensure!(resp.status() == 200, "/metrics answered {}", resp.status());
    Ok(resp.text().await?)
}

/// The value of one series, written exactly as in the text format with labels in name order,
/// e.g. `sluice_edge_http_requests_total{endpoint="other",status_class="2xx"}`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Lines of `text` whose series name starts with `prefix`, for failure messages.
pub fn lines_of<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}
