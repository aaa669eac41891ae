//! Checks every request head passes before routing: size limits, and one canonical path that
//! the traffic policy and the upstream app both see.
//!
//! Without a canonical path a rule such as `req.url.path.startsWith('/admin')` is bypassed by
//! `/%61dmin`, `/x/../admin` or `//admin`, which most upstream frameworks still route to
//! `/admin`. The edge therefore rewrites the path the way RFC 3986 §6.2.2 normalizes it
//! (percent-decoding unreserved characters, upper-casing the other escapes, removing dot
//! segments) and merges repeated slashes, as nginx does by default, before the policy runs.
//! Case is kept: paths are case-sensitive in HTTP (see docs/policy.md for rules that need
//! case-insensitive matching).

use pingora::http::RequestHeader;
use sluice_proto::error_code::ErrorCode;

/// More header fields than this get 431 (browsers send about 20; pingora's parser stops at 256).
pub const MAX_HEADER_FIELDS: usize = 100;

/// More header bytes (names and values) than this get 431. Large enough for big cookies and
/// JWTs, small enough that a client cannot make the edge hold megabytes per request.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The error for a head that breaks a limit, if any.
pub fn check_head(req: &RequestHeader) -> Result<(), ErrorCode> {
    if req.headers.len() > MAX_HEADER_FIELDS {
        return Err(ErrorCode::HeadersTooLarge);
    }
    let bytes: usize = req
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(ErrorCode::HeadersTooLarge);
    }
    Ok(())
}

/// Removes every `sluice-auth-*` header a client sent: only the edge's oauth / openid-connect
/// actions set them, for the upstream to trust.
pub fn strip_identity_headers(req: &mut RequestHeader) {
    let forged: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|n| {
            n.as_str()
                .starts_with(sluice_policy::identity::IDENTITY_HEADER_PREFIX)
        })
        .cloned()
        .collect();
    for name in forged {
        req.remove_header(&name);
    }
}

/// Rewrites the request's path to its canonical form when it differs (the query is kept).
pub fn canonicalize_path(req: &mut RequestHeader) -> Result<(), ErrorCode> {
    let path = req.uri.path();
    let canonical = canonical_path(path);
    if canonical == path {
        return Ok(());
    }
    let target = match req.uri.query() {
        Some(q) => format!("{canonical}?{q}"),
        None => canonical,
    };
    let uri = target.parse().map_err(|_| ErrorCode::BadRequest)?;
    req.set_uri(uri);
    Ok(())
}

/// `path` with unreserved escapes decoded, other escapes upper-cased, repeated slashes merged
/// and dot segments removed. Always starts with `/`.
pub fn canonical_path(path: &str) -> String {
    let decoded = normalize_escapes(path);
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for segment in &segments {
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            "" => {}
            s => out.push(s),
        }
    }
    // A path ending in `/.`, `/..` or `/` keeps its trailing slash.
    let trailing = matches!(segments.get(last), Some(&"." | &".." | &"")) && !out.is_empty();
    let mut canonical = format!("/{}", out.join("/"));
    if trailing {
        canonical.push('/');
    }
    canonical
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decodes `%XX` escapes of unreserved characters and upper-cases the hex of the others.
fn normalize_escapes(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| {
                Some((
                    hex_value(*bytes.get(i + 1)?)?,
                    hex_value(*bytes.get(i + 2)?)?,
                ))
            })
            .flatten();
        match escape {
            Some((hi, lo)) => {
                let b = hi << 4 | lo;
                if is_unreserved(b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
                i += 3;
            }
            None => {
                // The path is ASCII (pingora parsed it as a URI); copy byte by byte.
                out.push(bytes[i] as char);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::canonical_path;

    #[test]
    fn canonical_paths() {
        for (raw, want) in [
            ("/", "/"),
            ("/admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/%61%64%6d%69%6E/x", "/admin/x"),
            ("/x/../admin", "/admin"),
            ("/./admin", "/admin"),
            ("//admin", "/admin"),
            ("/a//b///c", "/a/b/c"),
            ("/a/b/", "/a/b/"),
            ("/a/b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/%2e%2e/%2E%2e/etc", "/etc"),
            ("/a%2fb", "/a%2Fb"),
            ("/100%", "/100%"),
            ("/%zz", "/%zz"),
            ("/ADMIN", "/ADMIN"),
        ] {
            assert_eq!(canonical_path(raw), want, "{raw}");
        }
    }
}
