//! Batches of events POSTed to a URL as a JSON array, retried with exponential backoff until
//! delivered: a dead collector only fills this destination's bounded queue.

use super::queue::Inbox;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, warn};

/// First retry delay; doubles up to [`HttpSink::max_backoff`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// How long shutdown keeps trying to deliver what is queued.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// An HTTP collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSink {
    /// Where batches are POSTed.
    pub url: String,
    /// Most events in one POST.
    pub batch_size: usize,
    /// How long a partial batch waits for more events before it is sent.
    pub batch_interval: Duration,
    /// Longest wait between retries.
    pub max_backoff: Duration,
    /// Timeout of one POST.
    pub timeout: Duration,
}

impl HttpSink {
    /// Sends batches until shutdown, then tries (for a few seconds) to send what is queued.
    pub async fn run(self, mut inbox: Inbox) {
        let client = match reqwest::Client::builder().timeout(self.timeout).build() {
            Ok(c) => c,
            Err(e) => {
                warn!(url = %self.url, "event HTTP client: {e}");
                while inbox.next().await.is_some() {
                    inbox.counters.dropped.inc();
                }
                return;
            }
        };
        let mut flush_deadline = None;
        while let Some(batch) = self.next_batch(&mut inbox).await {
            if inbox.shutting_down() {
                flush_deadline.get_or_insert_with(|| Instant::now() + SHUTDOWN_FLUSH);
            }
            self.deliver(&client, batch, &mut inbox, &mut flush_deadline)
                .await;
        }
    }

    /// Up to `batch_size` events: the first one waited for, the rest for at most
    /// `batch_interval` (none after shutdown: then only what is queued).
    async fn next_batch(&self, inbox: &mut Inbox) -> Option<Vec<String>> {
        let mut batch = vec![inbox.next().await?];
        let deadline = Instant::now() + self.batch_interval;
        while batch.len() < self.batch_size {
            if let Some(line) = inbox.try_next() {
                batch.push(line);
                continue;
            }
            if inbox.shutting_down() {
                break;
            }
            match tokio::time::timeout_at(deadline, inbox.next()).await {
                Ok(Some(line)) => batch.push(line),
                Ok(None) | Err(_) => break,
            }
        }
        Some(batch)
    }

    /// POSTs `batch` until it is accepted; after shutdown, only until the flush deadline.
    async fn deliver(
        &self,
        client: &reqwest::Client,
        batch: Vec<String>,
        inbox: &mut Inbox,
        flush_deadline: &mut Option<Instant>,
    ) {
        let body = format!("[{}]", batch.join(","));
        let mut backoff = FIRST_BACKOFF;
        loop {
            let sent = client
                .post(&self.url)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    inbox.counters.exported.inc_by(batch.len() as u64);
                    return;
                }
                Ok(resp) => debug!(url = %self.url, status = %resp.status(), "event batch refused"),
                Err(e) => debug!(url = %self.url, "event batch not delivered: {e}"),
            }
            inbox.counters.errors.inc();
            if inbox.shutting_down() {
                let deadline =
                    *flush_deadline.get_or_insert_with(|| Instant::now() + SHUTDOWN_FLUSH);
                if Instant::now() + backoff > deadline {
                    warn!(url = %self.url, events = batch.len(), "dropping undelivered events at shutdown");
                    inbox.counters.dropped.inc_by(batch.len() as u64);
                    return;
                }
                tokio::time::sleep(backoff).await;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = inbox.until_shutdown() => {}
                }
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }
}
