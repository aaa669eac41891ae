//! The TCP section: a raw TCP service reached directly, through a Sluice `tcp://` endpoint
//! (`edge --tcp-ports`, `agent tcp`), through rathole and through bore, in the same run:
//! 64-byte echo round trips on 32 connections, 1 GiB each way, and new connections per second.
//!
//! `SLUICE_BENCH_TCP=0` skips the section; `SLUICE_BENCH_TCP=direct,sluice` runs those paths
//! only (labels as in the table). With `SLUICE_BENCH_BASELINE=DIR` (a directory holding
//! another build's `edge` and `agent`), `sluice (baseline build)` runs too, for a change's
//! effect within one run.

use crate::loads::percentile;
use crate::paths::{bore_services, rathole_services, sluice_commands, PathKind};
use sluice_e2e::{any_port, within, AgentProcess, EdgeProcess, TOKEN};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Child;

/// Concurrent connections of the echo load.
const ECHO_CONNS: usize = 32;
/// Bytes per echo message.
const MESSAGE: usize = 64;
/// Most round trips per echo connection (the load also stops after its time).
const ECHO_MAX_PER_CONN: usize = 50_000;
/// Bytes of each transfer.
const TRANSFER: u64 = 1 << 30;
/// Concurrent workers of the connection-rate load.
const CONNECT_WORKERS: usize = 8;
/// Most connections of the connection-rate load.
const CONNECT_MAX: usize = 20_000;

/// The first byte a client sends picks what the server does with the connection.
const ECHO: u8 = b'e';
const DOWNLOAD: u8 = b'd';
const UPLOAD: u8 = b'u';

/// The ways to the TCP service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpPath {
    Direct,
    Sluice,
    /// Sluice with its agent on the TCP transport (`--transport tcp`).
    SluiceTcpTransport,
    /// The build in `SLUICE_BENCH_BASELINE`, to compare a change within one run.
    SluiceBaseline,
    Rathole,
    Bore,
}

impl TcpPath {
    pub const ALL: [TcpPath; 6] = [
        TcpPath::Direct,
        TcpPath::Sluice,
        TcpPath::SluiceTcpTransport,
        TcpPath::SluiceBaseline,
        TcpPath::Rathole,
        TcpPath::Bore,
    ];

    pub fn label(self) -> &'static str {
        match self {
            TcpPath::Direct => "direct",
            TcpPath::Sluice => "sluice",
            TcpPath::SluiceTcpTransport => "sluice (TCP transport)",
            TcpPath::SluiceBaseline => "sluice (baseline build)",
            TcpPath::Rathole => "rathole",
            TcpPath::Bore => "bore",
        }
    }

    /// The HTTP section's path with the same build.
    fn build(self) -> PathKind {
        match self {
            TcpPath::SluiceBaseline => PathKind::SluiceBaseline,
            TcpPath::SluiceTcpTransport => PathKind::SluiceTcpTransport,
            _ => PathKind::Sluice,
        }
    }
}

/// Whether the section runs `path`: every one without `SLUICE_BENCH_TCP` (the baseline when
/// a baseline build is given), else those it names.
pub fn selected(path: TcpPath) -> bool {
    match std::env::var("SLUICE_BENCH_TCP") {
        Err(_) => path != TcpPath::SluiceBaseline || PathKind::SluiceBaseline.by_default(),
        Ok(list) => list.split(',').any(|l| l.trim() == path.label()),
    }
}

/// One path's numbers.
#[derive(Clone, Default)]
pub struct TcpMeasured {
    pub echo_per_sec: f64,
    pub echo_p50: Duration,
    pub echo_p99: Duration,
    pub down_mibs: f64,
    pub up_mibs: f64,
    pub connects_per_sec: f64,
    pub connect_p99: Duration,
    pub errors: u64,
}

/// The server every path forwards to: by the first byte, an echo, a 1 GiB download or an
/// upload it counts (answering the count as 8 bytes after the client's end).
pub async fn server() -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(any_port()).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = serve(stream).await;
            });
        }
    });
    Ok((addr, task))
}

async fn serve(mut stream: TcpStream) -> anyhow::Result<()> {
    let mut mode = [0u8; 1];
    stream.read_exact(&mut mode).await?;
    let (mut read, mut write) = stream.split();
    match mode[0] {
        ECHO => {
            tokio::io::copy(&mut read, &mut write).await?;
        }
        DOWNLOAD => {
            let chunk = vec![0x5au8; 256 * 1024];
            let mut left = TRANSFER;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                write.write_all(&chunk[..n]).await?;
                left -= n as u64;
            }
        }
        UPLOAD => {
            let n = tokio::io::copy(&mut read, &mut tokio::io::sink()).await?;
            write.write_all(&n.to_be_bytes()).await?;
        }
        other => anyhow::bail!("unknown mode {other}"),
    }
    write.shutdown().await?;
    Ok(())
}

/// A started path: the address clients connect to and what to stop afterwards.
pub struct Started {
    pub addr: SocketAddr,
    sluice: Option<(EdgeProcess, AgentProcess)>,
    children: Vec<Child>,
}

impl Started {
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some((edge, agent)) = self.sluice.take() {
            agent.terminate(Duration::from_secs(5)).await?;
            edge.terminate(Duration::from_secs(5)).await?;
        }
        for mut child in self.children.drain(..) {
            let _ = child.kill().await;
        }
        Ok(())
    }
}

/// Starts `path` in front of the server at `service`.
pub async fn start(path: TcpPath, service: SocketAddr, dir: &FsPath) -> anyhow::Result<Started> {
    let dir = dir.join(format!("tcp-{}", path.label()));
    std::fs::create_dir_all(&dir)?;
    let plain = |(public, children): (Vec<SocketAddr>, Vec<Child>)| Started {
        addr: public[0],
        sluice: None,
        children,
    };
    match path {
        TcpPath::Direct => Ok(Started {
            addr: service,
            sluice: None,
            children: Vec::new(),
        }),
        TcpPath::Sluice | TcpPath::SluiceTcpTransport | TcpPath::SluiceBaseline => {
            sluice(path.build(), service, &dir).await
        }
        TcpPath::Rathole => Ok(plain(rathole_services(&[("tcp", service)], &dir).await?)),
        TcpPath::Bore => Ok(plain(bore_services(&[("tcp", service)], &dir).await?)),
    }
}

/// `edge --tcp-ports RANGE` and `agent tcp SERVICE` of `build`: the port the agent printed.
async fn sluice(build: PathKind, service: SocketAddr, dir: &FsPath) -> anyhow::Result<Started> {
    let range = sluice_e2e::tcp_port_range(10)?.to_string();
    let (mut edge, mut agent) = sluice_commands(build)?;
    edge.args(["--tcp-ports", &range]);
    let edge = EdgeProcess::spawn_command(edge, dir, any_port(), any_port(), TOKEN).await?;
    agent
        .args(["tcp", &service.to_string()])
        .args([
            "--edge",
            &edge.tunnel_addr.to_string(),
            "--authtoken",
            TOKEN,
        ])
        .arg("--edge-ca")
        .arg(&edge.cert);
    let agent = AgentProcess::spawn(agent, &dir.join("agent.log")).await?;
    let port = agent
        .url
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in {}", agent.url))?;
    Ok(Started {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        sluice: Some((edge, agent)),
        children: Vec::new(),
    })
}

/// All loads against `addr`, each bounded by `each` (and by count).
pub async fn run_all(addr: SocketAddr, each: Duration) -> anyhow::Result<TcpMeasured> {
    let mut m = TcpMeasured::default();
    let (rate, p50, p99, errors) = echo_load(addr, each).await?;
    (m.echo_per_sec, m.echo_p50, m.echo_p99) = (rate, p50, p99);
    m.errors += errors;
    m.down_mibs = download(addr).await?;
    m.up_mibs = upload(addr).await?;
    let (rate, p99, errors) = connect_load(addr, each).await?;
    (m.connects_per_sec, m.connect_p99) = (rate, p99);
    m.errors += errors;
    Ok(m)
}

/// A connection in echo mode.
async fn echo_connection(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    stream.write_all(&[ECHO]).await?;
    Ok(stream)
}

/// One message out and back.
async fn round_trip(stream: &mut TcpStream, buf: &mut [u8; MESSAGE]) -> anyhow::Result<()> {
    stream.write_all(&[0x42; MESSAGE]).await?;
    stream.read_exact(buf).await?;
    Ok(())
}

/// `ECHO_CONNS` connections doing round trips one after another: messages per second, p50 and
/// p99 round trip, failed connections.
async fn echo_load(
    addr: SocketAddr,
    each: Duration,
) -> anyhow::Result<(f64, Duration, Duration, u64)> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..ECHO_CONNS)
        .map(|_| {
            tokio::spawn(async move {
                let mut rtts = Vec::new();
                let mut stream = echo_connection(addr).await?;
                let mut buf = [0u8; MESSAGE];
                while rtts.len() < ECHO_MAX_PER_CONN && start.elapsed() < each {
                    let t = Instant::now();
                    round_trip(&mut stream, &mut buf).await?;
                    rtts.push(t.elapsed());
                }
                anyhow::Ok(rtts)
            })
        })
        .collect();
    let (mut rtts, mut errors) = (Vec::new(), 0);
    for task in tasks {
        match within(each + Duration::from_secs(10), "echo connection", task).await? {
            Ok(Ok(r)) => rtts.extend(r),
            _ => errors += 1,
        }
    }
    let rate = rtts.len() as f64 / start.elapsed().as_secs_f64();
    Ok((
        rate,
        percentile(&mut rtts, 0.50),
        percentile(&mut rtts, 0.99),
        errors,
    ))
}

/// MiB/s of `bytes` in `elapsed`.
fn mibs(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64()
}

/// 1 GiB from the server to the client.
async fn download(addr: SocketAddr) -> anyhow::Result<f64> {
    within(Duration::from_secs(120), "1 GiB download", async {
        let start = Instant::now();
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(&[DOWNLOAD]).await?;
        let n = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await?;
        anyhow::ensure!(n == TRANSFER, "download ended after {n} bytes");
        Ok(mibs(n, start.elapsed()))
    })
    .await?
}

/// 1 GiB from the client to the server, timed until the server's count arrives.
async fn upload(addr: SocketAddr) -> anyhow::Result<f64> {
    within(Duration::from_secs(120), "1 GiB upload", async {
        let start = Instant::now();
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(&[UPLOAD]).await?;
        let chunk = vec![0xa5u8; 256 * 1024];
        let mut left = TRANSFER;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            stream.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        stream.shutdown().await?;
        let mut count = [0u8; 8];
        stream.read_exact(&mut count).await?;
        let n = u64::from_be_bytes(count);
        anyhow::ensure!(n == TRANSFER, "the server counted {n} bytes");
        Ok(mibs(n, start.elapsed()))
    })
    .await?
}

/// `CONNECT_WORKERS` workers each connecting, echoing one message and closing, over and over:
/// connections per second, p99 of connect + first echo, failures.
async fn connect_load(addr: SocketAddr, each: Duration) -> anyhow::Result<(f64, Duration, u64)> {
    let start = Instant::now();
    let per_worker = CONNECT_MAX / CONNECT_WORKERS;
    let tasks: Vec<_> = (0..CONNECT_WORKERS)
        .map(|_| {
            tokio::spawn(async move {
                let (mut times, mut errors) = (Vec::new(), 0u64);
                while times.len() < per_worker && start.elapsed() < each {
                    let t = Instant::now();
                    let one = async {
                        let mut stream = echo_connection(addr).await?;
                        round_trip(&mut stream, &mut [0u8; MESSAGE]).await?;
                        anyhow::Ok(())
                    };
                    match within(Duration::from_secs(5), "connect + echo", one).await {
                        Ok(Ok(())) => times.push(t.elapsed()),
                        _ => errors += 1,
                    }
                }
                (times, errors)
            })
        })
        .collect();
    let (mut times, mut errors) = (Vec::new(), 0);
    for task in tasks {
        let (t, e) = task.await?;
        times.extend(t);
        errors += e;
    }
    let rate = times.len() as f64 / start.elapsed().as_secs_f64();
    Ok((rate, percentile(&mut times, 0.99), errors))
}

/// Per-path TCP numbers in run order.
#[derive(Default)]
pub struct TcpTable {
    rows: Vec<(TcpPath, TcpMeasured)>,
}

impl TcpTable {
    pub fn record(&mut self, path: TcpPath, m: TcpMeasured) {
        self.rows.push((path, m));
    }

    fn get(&self, path: TcpPath) -> TcpMeasured {
        self.rows
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// The markdown table (empty when the section did not run), ratios against rathole and bore.
    pub fn render(&self) -> String {
        if self.rows.is_empty() {
            return String::new();
        }
        let (rathole, bore) = (self.get(TcpPath::Rathole), self.get(TcpPath::Bore));
        let vs = |v: f64, of: fn(&TcpMeasured) -> f64| {
            let ratio = |base: f64| {
                if base > 0.0 {
                    format!("{:.2}", v / base)
                } else {
                    "–".into()
                }
            };
            format!("{} / {}", ratio(of(&rathole)), ratio(of(&bore)))
        };
        let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1e3);
        let mut out =
            String::from("\nTCP (a raw TCP service; ratios are vs rathole / vs bore):\n\n");
        let _ = writeln!(
            out,
            "| path | 64 B echoes/s (32 conns) | vs rathole / bore | echo RTT p50 / p99 ms | 1 GiB down MiB/s | vs rathole / bore | 1 GiB up MiB/s | vs rathole / bore | new conns/s (connect + 1 echo) | vs rathole / bore | connect + echo p99 ms | errors |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (path, m) in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} / {} | {:.0} | {} | {:.0} | {} | {:.0} | {} | {} | {} |",
                path.label(),
                m.echo_per_sec,
                vs(m.echo_per_sec, |m| m.echo_per_sec),
                ms(m.echo_p50),
                ms(m.echo_p99),
                m.down_mibs,
                vs(m.down_mibs, |m| m.down_mibs),
                m.up_mibs,
                vs(m.up_mibs, |m| m.up_mibs),
                m.connects_per_sec,
                vs(m.connects_per_sec, |m| m.connects_per_sec),
                ms(m.connect_p99),
                m.errors,
            );
        }
        out
    }
}

/// Runs the section: every selected path in turn.
pub async fn run(dir: &FsPath, each: Duration) -> anyhow::Result<TcpTable> {
    let (service, _server) = server().await?;
    let mut table = TcpTable::default();
    for path in TcpPath::ALL.iter().copied().filter(|p| selected(*p)) {
        eprintln!("== tcp: {}", path.label());
        let started = start(path, service, dir).await?;
        table.record(path, run_all(started.addr, each).await?);
        started.stop().await?;
    }
    Ok(table)
}
