//! The real `edge` and `agent` binaries as child processes: spawn, read what they print, send
//! signals, wait for exit, read peak memory.
//!
//! Binaries are looked up next to the test executable (`target/debug/`). When missing they are
//! built once per test process with `cargo build --bins -p sluice-edge -p sluice-agent`; build
//! them first (`cargo build --bins`) so tests never run a stale one.

use anyhow::{anyhow, bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::within;

static BUILT: OnceLock<Result<(), String>> = OnceLock::new();

/// Path of binary `name` (`edge` or `agent`), building the binaries once if missing.
pub fn bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("test executable has no target dir: {}", exe.display()))?;
    let path = profile_dir.join(name);
    if path.exists() {
        return Ok(path);
    }
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| anyhow!("no target dir above {}", profile_dir.display()))?
        .to_path_buf();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "--bins", "-p", "sluice-edge", "-p", "sluice-agent"])
                .arg("--target-dir")
                .arg(&target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status();
            match status {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => Err(format!("cargo build --bins failed: {s}")),
                Err(e) => Err(format!("running cargo: {e}")),
            }
        })
        .clone()
        .map_err(|e| anyhow!(e))?;
    if !path.exists() {
        bail!("{} still missing after building", path.display());
    }
    Ok(path)
}

/// A command for the built binary `name` with the developer's `SLUICE_*` settings removed.
pub fn base_command(name: &str) -> anyhow::Result<Command> {
    Ok(command_at(&bin(name)?))
}

/// [`base_command`] for the binary at `exe` (another build, such as the benches' baseline).
pub fn command_at(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    // The developer's own settings must not leak into tests.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("SLUICE_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("RUST_LOG", "info")
        .kill_on_drop(true)
        .stdin(Stdio::null());
    cmd
}

fn log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening log {}", path.display()))
}

/// Sends `sig` to `child`, if it still runs.
fn signal(child: &Child, sig: Signal) -> anyhow::Result<()> {
    let pid = child
        .id()
        .ok_or_else(|| anyhow!("process already reaped"))?;
    kill(Pid::from_raw(pid as i32), sig).with_context(|| format!("sending {sig} to {pid}"))
}

/// Peak resident memory (`VmHWM`) of a running process, in bytes.
pub fn peak_rss(child: &Child) -> anyhow::Result<u64> {
    status_bytes(child, "VmHWM:")
}

/// Current resident memory (`VmRSS`) of a running process, in bytes.
pub fn rss(child: &Child) -> anyhow::Result<u64> {
    status_bytes(child, "VmRSS:")
}

/// CPU time (user + system) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // start at field 3, so utime and stime (fields 14 and 15) are the 12th and 13th.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("bad /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse()?)
    };
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?
        .filter(|t| *t > 0)
        .unwrap_or(100) as u64;
    Ok(Duration::from_micros(
        (ticks(11)? + ticks(12)?) * 1_000_000 / per_second,
    ))
}

/// Open file descriptors of process `pid`.
pub fn open_fds(pid: u32) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

fn pid(child: &Child) -> anyhow::Result<u32> {
    child.id().ok_or_else(|| anyhow!("process already reaped"))
}

/// A `kB` field of `/proc/PID/status`, in bytes.
fn status_bytes(child: &Child, field: &str) -> anyhow::Result<u64> {
    let pid = pid(child)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("bad {field} line {line}"))?
        .parse()?;
    Ok(kib * 1024)
}

/// Stdout lines of a child, collected by a background task.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(stdout: ChildStdout) -> (Self, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let lines = Lines::default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let store = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                store
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.clone());
                let _ = tx.send(line);
            }
        });
        (lines, rx)
    }

    fn all(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }
}

/// A running `edge` binary.
pub struct EdgeProcess {
    child: Child,
    /// Public HTTP address it printed.
    pub http_addr: SocketAddr,
    /// QUIC address it printed.
    pub tunnel_addr: SocketAddr,
    /// Tunnel certificate it printed.
    pub cert: PathBuf,
    /// Admin API address it printed, when it runs one (`--admin-addr`).
    pub admin_addr: Option<SocketAddr>,
    /// Its stderr (logs).
    pub log: PathBuf,
    stdout: Lines,
}

impl EdgeProcess {
    /// Starts `edge --state-dir DIR --http-addr HTTP --tunnel-addr TUNNEL --metrics-addr
    /// 127.0.0.1:0 --authtoken TOKEN` and waits (up to 20 s) until it printed its addresses.
    pub async fn spawn(
        state_dir: &Path,
        http: SocketAddr,
        tunnel: SocketAddr,
        token: &str,
    ) -> anyhow::Result<Self> {
        Self::spawn_with_args(state_dir, http, tunnel, token, &[]).await
    }

    /// [`EdgeProcess::spawn`] with `extra` flags appended.
    pub async fn spawn_with_args(
        state_dir: &Path,
        http: SocketAddr,
        tunnel: SocketAddr,
        token: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut cmd = base_command("edge")?;
        cmd.args(extra);
        Self::spawn_command(cmd, state_dir, http, tunnel, token).await
    }

    /// [`EdgeProcess::spawn`] from a prepared command (another binary, extra flags or
    /// environment); the listener, state and token flags are added here.
    pub async fn spawn_command(
        mut cmd: Command,
        state_dir: &Path,
        http: SocketAddr,
        tunnel: SocketAddr,
        token: &str,
    ) -> anyhow::Result<Self> {
        let log = state_dir.join("edge.log");
        cmd.arg("--state-dir")
            .arg(state_dir)
            .args(["--http-addr", &http.to_string()])
            .args(["--tunnel-addr", &tunnel.to_string()])
            .args(["--metrics-addr", "127.0.0.1:0", "--authtoken", token])
            .stdout(Stdio::piped())
            .stderr(log_file(&log)?);
        let mut child = cmd.spawn().context("spawning edge")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (lines, mut rx) = Lines::collect(stdout);
        let (mut http_addr, mut tunnel_addr, mut cert, mut admin_addr) = (None, None, None, None);
        let read = within(
            Duration::from_secs(20),
            "edge to print its addresses",
            async {
                while let Some(line) = rx.recv().await {
                    let line = line.trim();
                    if let Some(v) = line.strip_prefix("HTTP:") {
                        http_addr = v.trim().trim_start_matches("http://").parse().ok();
                    } else if let Some(v) = line.strip_prefix("Tunnel:") {
                        tunnel_addr = v.trim().trim_end_matches("(QUIC)").trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("Admin:") {
                        // Printed before Cert, so it is in when the loop ends.
                        admin_addr = v.trim().trim_start_matches("http://").parse().ok();
                    } else if let Some(v) = line.strip_prefix("Cert:") {
                        cert = Some(PathBuf::from(v.trim()));
                    }
                    if http_addr.is_some() && tunnel_addr.is_some() && cert.is_some() {
                        return true;
                    }
                }
                false
            },
        )
        .await;
        let complete = matches!(read, Ok(true));
        if !complete {
            let _ = child.start_kill();
            let logs = std::fs::read_to_string(&log).unwrap_or_default();
            bail!(
                "edge did not start ({read:?}); stdout:\n{}\nstderr:\n{logs}",
                lines.all()
            );
        }
        Ok(Self {
            child,
            http_addr: http_addr.unwrap_or_else(|| unreachable!()),
            tunnel_addr: tunnel_addr.unwrap_or_else(|| unreachable!()),
            cert: cert.unwrap_or_else(|| unreachable!()),
            admin_addr,
            log,
            stdout: lines,
        })
    }

    /// [`EdgeProcess::spawn`] on fixed ports that are free now, for tests that restart the
    /// edge on the same ports. Another process may grab a port between our probe and the
    /// edge's bind, so this tries up to 5 fresh pairs.
    pub async fn spawn_on_fixed_ports(state_dir: &Path, token: &str) -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..5 {
            let (http, tunnel) = (crate::free_tcp_port()?, crate::free_udp_port()?);
            match Self::spawn(state_dir, http, tunnel, token).await {
                Ok(edge) => return Ok(edge),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no attempt made")))
    }

    /// Starts a new edge on this edge's ports and state dir (same certificate) after this one
    /// exited, retrying for up to 3 s while a port is still held.
    pub async fn respawn(
        state_dir: &Path,
        http: SocketAddr,
        tunnel: SocketAddr,
        token: &str,
    ) -> anyhow::Result<Self> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            match Self::spawn(state_dir, http, tunnel, token).await {
                Ok(edge) => return Ok(edge),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Sends SIGTERM and waits (up to `limit`) for a clean exit.
    pub async fn terminate(mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        signal(&self.child, Signal::SIGTERM)?;
        within(limit, "edge to exit after SIGTERM", self.child.wait())
            .await?
            .context("waiting for edge")
    }

    /// SIGKILL, then reap.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing edge")
    }

    /// Peak RSS in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        peak_rss(&self.child)
    }

    /// Current RSS in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss(&self.child)
    }

    /// Process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        pid(&self.child)
    }

    /// Stdout so far and the log file, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "edge stdout:\n{}\nedge stderr:\n{}",
            self.stdout.all(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

/// `agent http http://UPSTREAM --edge TUNNEL --authtoken TOKEN --edge-ca CERT --url URL`.
pub fn agent_command(
    tunnel: SocketAddr,
    cert: &Path,
    token: &str,
    url: &str,
    upstream: SocketAddr,
) -> anyhow::Result<Command> {
    Ok(agent_command_from(
        base_command("agent")?,
        tunnel,
        cert,
        token,
        url,
        upstream,
    ))
}

/// [`agent_command`]'s arguments added to `cmd` (another agent binary, see [`command_at`]).
pub fn agent_command_from(
    mut cmd: Command,
    tunnel: SocketAddr,
    cert: &Path,
    token: &str,
    url: &str,
    upstream: SocketAddr,
) -> Command {
    cmd.args(["http", &format!("http://{upstream}")])
        .args(["--edge", &tunnel.to_string(), "--authtoken", token])
        .arg("--edge-ca")
        .arg(cert)
        .args(["--url", url]);
    // The transport a test run asks for (scripts/test's TCP pass), as an environment variable,
    // not a flag: older agent binaries ignore it, and a caller's own choice is kept otherwise.
    if std::env::var_os("SLUICE_TEST_TRANSPORT").is_some() {
        cmd.env("SLUICE_TRANSPORT", crate::test_transport_flag());
    }
    cmd
}

/// A running `agent` binary that printed its `Forwarding` line.
pub struct AgentProcess {
    child: Child,
    /// The public URL it printed.
    pub url: String,
    /// Its stderr (logs).
    pub log: PathBuf,
    stdout: Lines,
}

impl AgentProcess {
    /// Spawns `cmd` (see [`agent_command`]), logging stderr to `log`, and waits (up to 20 s)
    /// for `Forwarding URL -> UPSTREAM`.
    pub async fn spawn(mut cmd: Command, log: &Path) -> anyhow::Result<Self> {
        cmd.stdout(Stdio::piped()).stderr(log_file(log)?);
        let mut child = cmd.spawn().context("spawning agent")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (lines, mut rx) = Lines::collect(stdout);
        let url = within(Duration::from_secs(20), "agent's Forwarding line", async {
            while let Some(line) = rx.recv().await {
                if let Some(rest) = line.trim().strip_prefix("Forwarding ") {
                    return rest.split(" -> ").next().map(str::to_string);
                }
            }
            None
        })
        .await;
        match url {
            Ok(Some(url)) => Ok(Self {
                child,
                url,
                log: log.to_path_buf(),
                stdout: lines,
            }),
            other => {
                let _ = child.start_kill();
                let status = child.try_wait().ok().flatten();
                bail!(
                    "agent did not come online ({other:?}, exit {status:?}); stdout:\n{}\nstderr:\n{}",
                    lines.all(),
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            }
        }
    }

    /// Runs `cmd` to completion (at most `limit`): exit status, stdout, stderr.
    pub async fn run_to_exit(
        mut cmd: Command,
        limit: Duration,
    ) -> anyhow::Result<(ExitStatus, String, String)> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().context("spawning agent")?;
        let out = within(limit, "agent to exit", child.wait_with_output())
            .await?
            .context("waiting for agent")?;
        Ok((
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Waits (up to `limit`) for the agent to exit on its own.
    pub async fn exited(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        within(limit, "agent to exit", self.child.wait())
            .await?
            .context("waiting for agent")
    }

    /// Sends SIGTERM and waits (up to `limit`) for the exit.
    pub async fn terminate(mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        signal(&self.child, Signal::SIGTERM)?;
        within(limit, "agent to exit after SIGTERM", self.child.wait())
            .await?
            .context("waiting for agent")
    }

    /// SIGKILL, then reap.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing agent")
    }

    /// Peak RSS in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        peak_rss(&self.child)
    }

    /// Current RSS in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss(&self.child)
    }

    /// Process id.
    pub fn pid(&self) -> anyhow::Result<u32> {
        pid(&self.child)
    }

    /// Stdout so far and the log file, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "agent stdout:\n{}\nagent stderr:\n{}",
            self.stdout.all(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}
