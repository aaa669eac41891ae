//! The loads each path gets: small GETs (wrk), a fixed request rate, slow concurrent requests,
//! a gigabyte each way, and websocket round trips. Each is bounded in time and count.

use crate::paths::{Path, Target};
use anyhow::{bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use sluice_e2e::data;
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

/// Keep-alive connections for the small-GET load.
const CONNECTIONS: usize = 32;
/// The fixed rate whose latency is compared.
const FIXED_RATE: u32 = 2_000;
/// Concurrent slow requests, each held 1 s by the upstream, three waves.
const SLOW: usize = 256;
const SLOW_WAVES: usize = 3;
const GIB: u64 = 1 << 30;
const WS_ROUND_TRIPS: usize = 2_000;
/// The unmeasured small-GET run before the measured one.
const WARM_UP: Duration = Duration::from_secs(2);
/// The small GET: 1 KiB from the app, with the headers the 10-rule policy looks at.
const SMALL_PATH: &str = "/bytes/1024/7";
const HEADERS: [(&str, &str); 2] = [
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
    ),
    ("x-api-key", "k-123"),
];

/// What one path measured.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub small_rps: f64,
    /// CPU time of the tunnel's processes per small GET (`None` for the direct path).
    pub small_cpu_per_request: Option<Duration>,
    pub small_p50: Duration,
    pub small_p99: Duration,
    pub fixed_p50: Duration,
    pub fixed_p99: Duration,
    pub slow_secs: f64,
    pub download_mibs: f64,
    pub upload_mibs: f64,
    pub ws_p50: Duration,
    pub ws_p99: Duration,
    /// Failed requests in the small-GET and fixed-rate loads (wrk's socket errors and non-2xx,
    /// failed or non-200 paced requests); the other loads stop the run on any error.
    pub errors: u64,
}

/// Runs every load against `path`, or those named in `SLUICE_BENCH_LOADS` (a comma-separated
/// subset of `small,fixed,slow,download,upload,ws`, for quick checks and profiling).
pub async fn run_all(path: &Path, each: Duration) -> anyhow::Result<Measured> {
    let wanted = |load: &str| crate::selected("SLUICE_BENCH_LOADS", load);
    let mut m = Measured::default();
    if wanted("small") {
        // Unmeasured first: in full runs the second Sluice path was up to 30 % faster than the
        // first, though alone they are equal (connections, pools and allocator arenas warming).
        wrk(&path.app, WARM_UP).await?;
        let pids = path.pids();
        let before = cpu_of(&pids);
        let started = std::time::Instant::now();
        let errors;
        (m.small_rps, m.small_p50, m.small_p99, errors) = wrk(&path.app, each).await?;
        let requests = m.small_rps * started.elapsed().as_secs_f64();
        if !pids.is_empty() && requests > 0.0 {
            m.small_cpu_per_request = Some((cpu_of(&pids) - before).div_f64(requests));
        }
        m.errors += errors;
    }
    if wanted("fixed") {
        let errors;
        (m.fixed_p50, m.fixed_p99, errors) = fixed_rate(&path.app, each).await?;
        m.errors += errors;
    }
    if wanted("slow") {
        m.slow_secs = slow(&path.app).await?;
    }
    if wanted("download") {
        m.download_mibs = download(&path.app).await?;
    }
    if wanted("upload") {
        m.upload_mibs = upload(&path.app).await?;
    }
    if wanted("ws") {
        (m.ws_p50, m.ws_p99) = websocket(&path.ws).await?;
    }
    Ok(m)
}

/// The CPU time `pids` have used so far (processes that are gone count nothing).
fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter()
        .filter_map(|pid| sluice_e2e::process::cpu_time(*pid).ok())
        .sum()
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(SLOW)
        .timeout(Duration::from_secs(120))
        .build()?)
}

fn get(client: &reqwest::Client, t: &Target, path: &str) -> reqwest::RequestBuilder {
    let mut req = client
        .get(format!("http://{}{path}", t.addr))
        .header("host", &t.host);
    for (k, v) in HEADERS {
        req = req.header(k, v);
    }
    req
}

/// `wrk` with 32 connections for `each`: (req/s, p50, p99, errors).
async fn wrk(t: &Target, each: Duration) -> anyhow::Result<(f64, Duration, Duration, u64)> {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        &format!("-c{CONNECTIONS}"),
        &format!("-d{}s", each.as_secs()),
    ])
    .args(["--latency", "-H", &format!("Host: {}", t.host)]);
    for (k, v) in HEADERS {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    let out = cmd
        .arg(format!("http://{}{SMALL_PATH}", t.addr))
        .output()
        .await
        .context("running wrk (run ./scripts/bench)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(str::trim))
            .with_context(|| format!("no {prefix:?} in wrk output:\n{text}"))
    };
    let rps: f64 = field("Requests/sec:")?.parse()?;
    Ok((
        rps,
        wrk_duration(field("50%")?)?,
        wrk_duration(field("99%")?)?,
        wrk_errors(&text),
    ))
}

/// The sum of wrk's "Socket errors: connect 0, read 1, write 0, timeout 2" and
/// "Non-2xx or 3xx responses: 5" counts.
fn wrk_errors(text: &str) -> u64 {
    text.lines()
        .map(str::trim)
        .filter_map(|l| {
            l.strip_prefix("Socket errors:")
                .or_else(|| l.strip_prefix("Non-2xx or 3xx responses:"))
        })
        .flat_map(|rest| rest.split(|c: char| !c.is_ascii_digit()))
        .filter_map(|n| n.parse::<u64>().ok())
        .sum()
}

/// `1.23ms`, `456.00us`, `1.20s` as printed by wrk.
fn wrk_duration(v: &str) -> anyhow::Result<Duration> {
    let split = v
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in {v}"))?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse()?;
    let micros = match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        "m" => n * 60e6,
        _ => bail!("unknown unit {unit}"),
    };
    Ok(Duration::from_secs_f64(micros / 1e6))
}

/// Sends at `FIXED_RATE` for `each` (open loop: latency counts from the scheduled send time, so
/// a stalled path is not hidden by sending less); (p50, p99, failed requests).
async fn fixed_rate(t: &Target, each: Duration) -> anyhow::Result<(Duration, Duration, u64)> {
    let client = client()?;
    let total = (FIXED_RATE as u64 * each.as_secs()) as usize;
    let interval = Duration::from_secs(1) / FIXED_RATE;
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + interval * i as u32;
        let req = get(&client, t, SMALL_PATH);
        tasks.spawn(async move {
            tokio::time::sleep_until(due).await;
            let resp = req.send().await?;
            anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
            resp.bytes().await?;
            Ok(due.elapsed())
        });
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        match r? {
            Ok(latency) => latencies.push(latency),
            Err(_) => errors += 1,
        }
    }
    Ok((
        percentile(&mut latencies, 0.50),
        percentile(&mut latencies, 0.99),
        errors,
    ))
}

pub fn percentile(v: &mut [Duration], q: f64) -> Duration {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

/// `SLOW` clients each making `SLOW_WAVES` requests the upstream holds for 1 s; seconds taken
/// (ideal: `SLOW_WAVES`).
async fn slow(t: &Target) -> anyhow::Result<f64> {
    let client = client()?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SLOW {
        let (client, t) = (
            client.clone(),
            Target {
                addr: t.addr,
                host: t.host.clone(),
            },
        );
        tasks.spawn(async move {
            for _ in 0..SLOW_WAVES {
                let resp = get(&client, &t, "/sleep/1000").send().await?;
                anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
                resp.bytes().await?;
            }
            Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// One 1 GiB download on one connection; MiB/s.
async fn download(t: &Target) -> anyhow::Result<f64> {
    let started = Instant::now();
    let resp = get(&client()?, t, &format!("/bytes/{GIB}/1"))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
    let (_, len) = data::read_digest(resp).await?;
    anyhow::ensure!(len == GIB, "download cut at {len} bytes");
    Ok(1024.0 / started.elapsed().as_secs_f64())
}

/// One 1 GiB upload on one connection; MiB/s.
async fn upload(t: &Target) -> anyhow::Result<f64> {
    let started = Instant::now();
    let resp = client()?
        .post(format!("http://{}/sha256", t.addr))
        .header("host", &t.host)
        .body(reqwest::Body::wrap_stream(data::stream(GIB, 1)))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
    let answer = resp.text().await?;
    anyhow::ensure!(answer.ends_with(&format!(" {GIB}")), "upload cut: {answer}");
    Ok(1024.0 / started.elapsed().as_secs_f64())
}

/// `WS_ROUND_TRIPS` 64-byte echoes on one websocket: (p50, p99).
async fn websocket(t: &Target) -> anyhow::Result<(Duration, Duration)> {
    let mut request = format!("ws://{}/", t.host).into_client_request()?;
    request.headers_mut().insert("host", t.host.parse()?);
    let stream = tokio::net::TcpStream::connect(t.addr).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    let payload = vec![b'w'; 64];
    let mut rtts = Vec::with_capacity(WS_ROUND_TRIPS);
    for _ in 0..WS_ROUND_TRIPS {
        let sent = Instant::now();
        ws.send(Message::binary(payload.clone())).await?;
        match ws.next().await {
            Some(Ok(Message::Binary(b))) if b.len() == payload.len() => rtts.push(sent.elapsed()),
            other => bail!("websocket echo failed: {other:?}"),
        }
    }
    Ok((percentile(&mut rtts, 0.50), percentile(&mut rtts, 0.99)))
}
