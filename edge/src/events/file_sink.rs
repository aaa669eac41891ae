//! JSON lines to a file (rotated by size) or to stdout.

use super::queue::Inbox;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;
use tracing::warn;

/// Most events written in one go before flushing.
const WRITE_BATCH: u64 = 256;

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSink {
    /// The file; `None` is stdout.
    pub path: Option<PathBuf>,
    /// Rotate once the file would grow past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`events.jsonl.1` newest … `.N` oldest).
    pub keep: usize,
}

enum Out {
    Stdout(tokio::io::Stdout),
    File { file: tokio::fs::File, written: u64 },
}

impl FileSink {
    /// Writes events until shutdown, then writes what is still queued and returns.
    pub async fn run(self, mut inbox: Inbox) {
        let mut out = match self.open().await {
            Ok(out) => out,
            Err(e) => {
                warn!(path = ?self.path, "event file cannot be opened: {e}");
                // Keep draining so the queue never blocks emitters; everything is dropped.
                while inbox.next().await.is_some() {
                    inbox.counters.dropped.inc();
                }
                return;
            }
        };
        while let Some(first) = inbox.next().await {
            let mut buf = first.into_bytes();
            buf.push(b'\n');
            let mut count: u64 = 1;
            while count < WRITE_BATCH {
                let Some(line) = inbox.try_next() else { break };
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
                count += 1;
            }
            match self.write(&mut out, &buf).await {
                Ok(()) => inbox.counters.exported.inc_by(count),
                Err(e) => {
                    warn!(path = ?self.path, "writing events: {e}");
                    inbox.counters.errors.inc();
                    inbox.counters.dropped.inc_by(count);
                }
            }
        }
    }

    async fn open(&self) -> std::io::Result<Out> {
        match &self.path {
            None => Ok(Out::Stdout(tokio::io::stdout())),
            Some(path) => {
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await?;
                let written = file.metadata().await?.len();
                Ok(Out::File { file, written })
            }
        }
    }

    async fn write(&self, out: &mut Out, buf: &[u8]) -> std::io::Result<()> {
        if let (Out::File { written, .. }, Some(path)) = (&*out, &self.path) {
            if *written > 0 && *written + buf.len() as u64 > self.max_bytes {
                rotate(path, self.keep).await?;
                *out = self.open().await?;
            }
        }
        match out {
            Out::Stdout(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Out::File { file, written } => {
                file.write_all(buf).await?;
                file.flush().await?;
                *written += buf.len() as u64;
                Ok(())
            }
        }
    }
}

/// `path` → `path.1`, `path.1` → `path.2`, …, dropping what falls past `keep`.
async fn rotate(path: &Path, keep: usize) -> std::io::Result<()> {
    let numbered = |n: usize| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    };
    if keep == 0 {
        return tokio::fs::remove_file(path).await;
    }
    let _ = tokio::fs::remove_file(numbered(keep)).await;
    for n in (1..keep).rev() {
        let from = numbered(n);
        if tokio::fs::try_exists(&from).await.unwrap_or(false) {
            tokio::fs::rename(&from, numbered(n + 1)).await?;
        }
    }
    tokio::fs::rename(path, numbered(1)).await
}
