//! The built-in static file server behind `file://` upstreams: files with content types,
//! ranges and conditional requests (tower-http's `ServeDir`), `index.html`, and directory
//! listings.
//!
//! Confinement: every request path is percent-decoded and refused (404) if any segment is
//! `..`, or holds `\` or NUL; the resolved file's canonical path (symlinks followed) must lie
//! inside the canonical root, so a symlink may point anywhere *within* the served directory but
//! never outside it. See `docs/agent-config.md` ("file:// upstreams").

use super::body::{boxed, full, ProxyBody};
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Empty;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::path::{Path, PathBuf};
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// Characters escaped in listing links: everything but unreserved URL characters.
const LINK: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why a `file://` upstream cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("file upstream {root}: {reason}")]
pub struct FileServerError {
    root: String,
    reason: String,
}

/// Serves one directory.
#[derive(Debug, Clone)]
pub struct FileServer {
    root: PathBuf,
    files: ServeDir,
}

impl FileServer {
    /// A server for `root`, which must be an existing directory (relative paths are resolved
    /// against the working directory).
    pub fn new(root: &Path) -> Result<Self, FileServerError> {
        let err = |reason: String| FileServerError {
            root: root.display().to_string(),
            reason,
        };
        let root = std::fs::canonicalize(root).map_err(|e| err(e.to_string()))?;
        if !root.is_dir() {
            return Err(err("not a directory".into()));
        }
        let files = ServeDir::new(&root).append_index_html_on_directories(true);
        Ok(Self { root, files })
    }

    /// Answers one request.
    pub async fn serve(&self, req: Request<ProxyBody>) -> Response<ProxyBody> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = status(StatusCode::METHOD_NOT_ALLOWED);
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let path = req.uri().path().to_string();
        let Some(real) = self.confine(&path).await else {
            return status(StatusCode::NOT_FOUND);
        };
        if real.is_dir() && path.ends_with('/') && !real.join("index.html").is_file() {
            return listing(&real, &path).await;
        }
        // Files ignore request bodies; dropping it here also keeps the boxed body's trait
        // object out of ServeDir's future (rustc cannot prove that future `Send` otherwise).
        let req = Request::from_parts(req.into_parts().0, Empty::<Bytes>::new());
        match self.files.clone().oneshot(req).await {
            Ok(resp) => resp.map(boxed),
            Err(never) => match never {},
        }
    }

    /// The canonical file `path` names, if it exists inside the root.
    async fn confine(&self, path: &str) -> Option<PathBuf> {
        let relative = safe_relative(path)?;
        let real = tokio::fs::canonicalize(self.root.join(relative))
            .await
            .ok()?;
        real.starts_with(&self.root).then_some(real)
    }
}

/// The request path as a relative file path, or `None` if it could leave the root.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode_str(path).decode_utf8().ok()?;
    let mut out = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            s if s.contains(['\\', '\0']) => return None,
            s => out.push(s),
        }
    }
    Some(out)
}

fn status(code: StatusCode) -> Response<ProxyBody> {
    let mut resp = Response::new(full(format!("{code}\n")));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// An HTML index of `dir`, directories first, names sorted.
async fn listing(dir: &Path, url_path: &str) -> Response<ProxyBody> {
    let Ok(mut read) = tokio::fs::read_dir(dir).await else {
        return status(StatusCode::NOT_FOUND);
    };
    let mut entries = Vec::new();
    while let Ok(Some(entry)) = read.next_entry().await {
        let is_dir = entry.file_type().await.is_ok_and(|t| t.is_dir());
        entries.push((!is_dir, entry.file_name().to_string_lossy().into_owned()));
    }
    entries.sort();
    let title = html_escape(&percent_decode_str(url_path).decode_utf8_lossy());
    let mut html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<ul>\n"
    );
    if url_path != "/" {
        html.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (is_file, name) in entries {
        let slash = if is_file { "" } else { "/" };
        let href = utf8_percent_encode(&name, LINK);
        let text = html_escape(&name);
        html.push_str(&format!(
            "<li><a href=\"{href}{slash}\">{text}{slash}</a></li>\n"
        ));
    }
    html.push_str("</ul></body></html>\n");
    let mut resp = Response::new(full(html));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused_before_touching_the_disk() {
        assert_eq!(safe_relative("/a/b.txt"), Some(PathBuf::from("a/b.txt")));
        assert_eq!(safe_relative("/a/./b/"), Some(PathBuf::from("a/b")));
        for bad in [
            "/../etc/passwd",
            "/a/%2e%2e/%2e%2e/x",
            "/a/..%2fb",
            "/a%5c..%5cb",
            "/%00",
        ] {
            let got = safe_relative(bad);
            assert!(
                got.as_ref()
                    .is_none_or(|p| !p.to_string_lossy().contains("..")),
                "{bad} -> {got:?}"
            );
        }
    }

    #[test]
    fn listing_names_are_escaped() {
        assert_eq!(
            html_escape("<a href='x'>&"),
            "&lt;a href=&#39;x&#39;&gt;&amp;"
        );
    }
}
