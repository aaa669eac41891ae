//! Event destinations in `edge.yaml` (`event_destinations:`) and `--events-file`: the YAML
//! shapes, their defaults, and validation with errors that name the entry.

use super::file_sink::FileSink;
use super::filter::EventFilter;
use super::http_sink::HttpSink;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Events a destination's queue holds before new ones are dropped.
pub const DEFAULT_QUEUE_SIZE: usize = 10_000;
/// Default file size before rotation: 100 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Rotated files kept by default.
pub const DEFAULT_KEEP: usize = 5;

/// A validated destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDestination {
    /// Its name: the `destination` metric label.
    pub name: String,
    /// Where events go.
    pub sink: Sink,
    /// Queue capacity.
    pub queue_size: usize,
    /// CEL filter over `ev`; only events for which it is `true` are sent.
    pub filter: Option<String>,
    /// Dotted paths of the object to send; empty sends everything.
    pub fields: Vec<String>,
}

/// A destination's sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// JSON lines to a file or stdout.
    File(FileSink),
    /// JSON-array batches POSTed to a URL.
    Http(HttpSink),
}

impl EventDestination {
    /// `--events-file PATH` (`-` for stdout) with the defaults.
    pub fn events_file(path: &str) -> Self {
        Self {
            name: "events-file".to_string(),
            sink: Sink::File(FileSink {
                path: (path != "-").then(|| PathBuf::from(path)),
                max_bytes: DEFAULT_MAX_BYTES,
                keep: DEFAULT_KEEP,
            }),
            queue_size: DEFAULT_QUEUE_SIZE,
            filter: None,
            fields: Vec::new(),
        }
    }
}

/// A destination that is unusable.
#[derive(Debug, thiserror::Error)]
#[error("event_destinations[{index}]: {msg}")]
pub struct EventConfigError {
    /// Index in the list.
    pub index: usize,
    /// What is wrong.
    pub msg: String,
}

impl EventConfigError {
    /// An error about entry `index`.
    pub fn at(index: usize, msg: impl Into<String>) -> Self {
        Self {
            index,
            msg: msg.into(),
        }
    }
}

/// `event_destinations:` entry. Unknown keys are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDestination {
    name: Option<String>,
    file: Option<FileSinkYaml>,
    http: Option<HttpSinkYaml>,
    filter: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
    queue_size: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSinkYaml {
    /// A path (relative to edge.yaml's folder) or `-` for stdout.
    path: String,
    max_bytes: Option<u64>,
    keep: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSinkYaml {
    url: String,
    batch_size: Option<usize>,
    #[serde(default, deserialize_with = "crate::serde_util::humantime_opt")]
    batch_interval: Option<Duration>,
    #[serde(default, deserialize_with = "crate::serde_util::humantime_opt")]
    max_backoff: Option<Duration>,
    #[serde(default, deserialize_with = "crate::serde_util::humantime_opt")]
    timeout: Option<Duration>,
}

impl FileDestination {
    /// Validates entry `index`; relative file paths are relative to `base`.
    pub fn resolve(self, index: usize, base: &Path) -> Result<EventDestination, EventConfigError> {
        let at = |msg: String| EventConfigError::at(index, msg);
        let sink = match (self.file, self.http) {
            (Some(f), None) => Sink::File(file_sink(f, base).map_err(at)?),
            (None, Some(h)) => Sink::Http(http_sink(h).map_err(at)?),
            _ => return Err(at("give exactly one of file, http".to_string())),
        };
        if let Some(expr) = &self.filter {
            EventFilter::compile(expr).map_err(|e| at(format!("filter: {e}")))?;
        }
        if let Some(bad) = self
            .fields
            .iter()
            .find(|f| f.is_empty() || f.split('.').any(str::is_empty))
        {
            return Err(at(format!("fields: '{bad}' is not a dotted path")));
        }
        let queue_size = self.queue_size.unwrap_or(DEFAULT_QUEUE_SIZE);
        if queue_size == 0 {
            return Err(at("queue_size must be at least 1".to_string()));
        }
        let name = self.name.unwrap_or_else(|| match sink {
            Sink::File(_) => format!("file-{index}"),
            Sink::Http(_) => format!("http-{index}"),
        });
        Ok(EventDestination {
            name,
            sink,
            queue_size,
            filter: self.filter,
            fields: self.fields,
        })
    }
}

fn file_sink(f: FileSinkYaml, base: &Path) -> Result<FileSink, String> {
    let max_bytes = f.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes == 0 {
        return Err("file.max_bytes must be at least 1".to_string());
    }
    Ok(FileSink {
        path: (f.path != "-").then(|| base.join(&f.path)),
        max_bytes,
        keep: f.keep.unwrap_or(DEFAULT_KEEP),
    })
}

fn http_sink(h: HttpSinkYaml) -> Result<HttpSink, String> {
    let url = reqwest::Url::parse(&h.url).map_err(|e| format!("http.url '{}': {e}", h.url))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("http.url '{}': must be http:// or https://", h.url));
    }
    let batch_size = h.batch_size.unwrap_or(500);
    if batch_size == 0 {
        return Err("http.batch_size must be at least 1".to_string());
    }
    Ok(HttpSink {
        url: url.to_string(),
        batch_size,
        batch_interval: h.batch_interval.unwrap_or(Duration::from_secs(1)),
        max_backoff: h.max_backoff.unwrap_or(Duration::from_secs(30)),
        timeout: h.timeout.unwrap_or(Duration::from_secs(10)),
    })
}

/// Checks that destination names are unique (they are metric label values).
pub fn check_unique(list: &[EventDestination]) -> Result<(), EventConfigError> {
    for (i, d) in list.iter().enumerate() {
        if list[..i].iter().any(|o| o.name == d.name) {
            return Err(EventConfigError::at(
                i,
                format!("name '{}' is used twice", d.name),
            ));
        }
    }
    Ok(())
}
