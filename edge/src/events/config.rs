//! Event destinations in `edge.yaml` (`event_destinations:`) and `--events-file`: the YAML
//! shapes, their defaults, and validation with errors that name the entry.

use super::file_sink::FileSink;
use super::filter::{EventFilter, FilterError};
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
#[error("event_destinations[{index}]: {kind}")]
pub struct EventConfigError {
    /// Index in the list.
    pub index: usize,
    /// What is wrong (part of the message, so not also its `source`).
    pub kind: DestinationError,
}

impl EventConfigError {
    /// An error about entry `index`.
    pub fn at(index: usize, kind: DestinationError) -> Self {
        Self { index, kind }
    }
}

/// What is wrong with one `event_destinations:` entry; [`EventConfigError`] adds which.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// Neither or both of `file` and `http`.
    #[error("give exactly one of file, http")]
    Sink,
    /// `file.max_bytes` is 0.
    #[error("file.max_bytes must be at least 1")]
    FileMaxBytes,
    /// `http.url` is not a URL.
    #[error("http.url '{url}': {error}")]
    HttpUrl {
        /// The URL as written.
        url: String,
        /// Why it does not parse.
        error: url::ParseError,
    },
    /// `http.url` is neither `http://` nor `https://`.
    #[error("http.url '{url}': must be http:// or https://")]
    HttpScheme {
        /// The URL as written.
        url: String,
    },
    /// `http.batch_size` is 0.
    #[error("http.batch_size must be at least 1")]
    HttpBatchSize,
    /// `filter` does not compile.
    #[error("filter: {0}")]
    Filter(FilterError),
    /// A `fields` entry is not a dotted path.
    #[error("fields: '{0}' is not a dotted path")]
    Field(String),
    /// `queue_size` is 0.
    #[error("queue_size must be at least 1")]
    QueueSize,
    /// Another entry has the same name.
    #[error("name '{0}' is used twice")]
    DuplicateName(String),
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
        let at = |kind: DestinationError| EventConfigError::at(index, kind);
        let sink = match (self.file, self.http) {
            (Some(f), None) => Sink::File(file_sink(f, base).map_err(at)?),
            (None, Some(h)) => Sink::Http(http_sink(h).map_err(at)?),
            _ => return Err(at(DestinationError::Sink)),
        };
        if let Some(expr) = &self.filter {
            EventFilter::compile(expr).map_err(|e| at(DestinationError::Filter(e)))?;
        }
        if let Some(bad) = self
            .fields
            .iter()
            .find(|f| f.is_empty() || f.split('.').any(str::is_empty))
        {
            return Err(at(DestinationError::Field(bad.clone())));
        }
        let queue_size = self.queue_size.unwrap_or(DEFAULT_QUEUE_SIZE);
        if queue_size == 0 {
            return Err(at(DestinationError::QueueSize));
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

fn file_sink(f: FileSinkYaml, base: &Path) -> Result<FileSink, DestinationError> {
    let max_bytes = f.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes == 0 {
        return Err(DestinationError::FileMaxBytes);
    }
    Ok(FileSink {
        path: (f.path != "-").then(|| base.join(&f.path)),
        max_bytes,
        keep: f.keep.unwrap_or(DEFAULT_KEEP),
    })
}

fn http_sink(h: HttpSinkYaml) -> Result<HttpSink, DestinationError> {
    let url = match reqwest::Url::parse(&h.url) {
        Ok(url) => url,
        Err(error) => return Err(DestinationError::HttpUrl { url: h.url, error }),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DestinationError::HttpScheme { url: h.url });
    }
    let batch_size = h.batch_size.unwrap_or(500);
    if batch_size == 0 {
        return Err(DestinationError::HttpBatchSize);
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
                DestinationError::DuplicateName(d.name.clone()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(yaml: &str) -> String {
        serde_yaml::from_str::<FileDestination>(yaml)
            .expect("valid entry")
            .resolve(2, Path::new("/etc/sluice"))
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn error_messages() {
        for (yaml, want) in [
            (
                "{}",
                "event_destinations[2]: give exactly one of file, http",
            ),
            (
                "file: {path: a, max_bytes: 0}",
                "event_destinations[2]: file.max_bytes must be at least 1",
            ),
            (
                "http: {url: 'not a url'}",
                "event_destinations[2]: http.url 'not a url': relative URL without a base",
            ),
            (
                "http: {url: 'ftp://x'}",
                "event_destinations[2]: http.url 'ftp://x': must be http:// or https://",
            ),
            (
                "http: {url: 'http://x', batch_size: 0}",
                "event_destinations[2]: http.batch_size must be at least 1",
            ),
            (
                "{file: {path: a}, fields: [a..b]}",
                "event_destinations[2]: fields: 'a..b' is not a dotted path",
            ),
            (
                "{file: {path: a}, queue_size: 0}",
                "event_destinations[2]: queue_size must be at least 1",
            ),
        ] {
            assert_eq!(message(yaml), want, "{yaml}");
        }
        let filter = message("{file: {path: a}, filter: 'ev.('}");
        let parse = EventFilter::compile("ev.(").err().map(|e| e.to_string());
        assert_eq!(
            Some(filter),
            parse.map(|p| format!("event_destinations[2]: filter: {p}"))
        );
        let twice = vec![
            EventDestination::events_file("-"),
            EventDestination::events_file("x"),
        ];
        let err = check_unique(&twice).expect_err("same name");
        assert_eq!(
            err.to_string(),
            "event_destinations[1]: name 'events-file' is used twice"
        );
    }
}
