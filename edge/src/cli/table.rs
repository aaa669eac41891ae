//! Plain tables for `edge admin`: one row per object, columns padded to their widest cell.
//! Text from the API is printed without control characters, so a description cannot move the
//! cursor or recolour the terminal.

use sluice_edge::admin::model::{
    Credential, Endpoint, Ref, ReservedAddr, ReservedDomain, Source, TunnelSession,
};

/// An object shown as one table row.
pub trait Row {
    /// The column titles.
    const HEADERS: &'static [&'static str];
    /// The cells, in the titles' order.
    fn cells(&self) -> Vec<String>;
}

/// The table of `rows`, header first, each line ending in a newline.
pub fn render<T: Row>(rows: &[T]) -> String {
    let lines: Vec<Vec<String>> =
        std::iter::once(T::HEADERS.iter().map(|h| h.to_string()).collect())
            .chain(
                rows.iter()
                    .map(|r| r.cells().iter().map(|c| clean(c)).collect()),
            )
            .collect();
    let mut widths = vec![0; T::HEADERS.len()];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in lines {
        let padded: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(padded.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `text` with control characters (newlines, escapes) as spaces; `-` when empty.
fn clean(text: &str) -> String {
    if text.is_empty() {
        return "-".into();
    }
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn limit(n: Option<u32>) -> String {
    n.map_or_else(|| "-".into(), |n| n.to_string())
}

fn source(s: Option<Source>) -> String {
    match s {
        Some(Source::Api) => "api".into(),
        Some(Source::Config) => "config".into(),
        None => String::new(),
    }
}

fn id(r: &Option<Ref>) -> String {
    r.as_ref().map(|r| r.id.clone()).unwrap_or_default()
}

impl Row for Credential {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "DESCRIPTION",
        "ACL",
        "MAX SESSIONS",
        "MAX ENDPOINTS",
        "SOURCE",
        "CREATED",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.description.clone(),
            self.acl.join(","),
            limit(self.max_sessions),
            limit(self.max_endpoints),
            source(Some(self.source)),
            self.created_at.clone(),
        ]
    }
}

impl Row for TunnelSession {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "CREDENTIAL",
        "AGENT",
        "IP",
        "ENDPOINTS",
        "STARTED",
        "EDGE",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.credential.id.clone(),
            self.agent_version.clone(),
            self.ip.clone(),
            self.endpoints.join(","),
            self.started_at.clone(),
            // In a cluster, the edge holding it (empty on an edge on its own).
            self.links
                .iter()
                .filter_map(|l| l.edge_id.as_deref())
                .collect::<Vec<_>>()
                .join(","),
        ]
    }
}

impl Row for ReservedDomain {
    const HEADERS: &'static [&'static str] =
        &["ID", "DOMAIN", "CREDENTIAL", "DESCRIPTION", "CREATED"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.domain.clone(),
            self.credential.id.clone(),
            self.description.clone(),
            self.created_at.clone(),
        ]
    }
}

impl Row for ReservedAddr {
    const HEADERS: &'static [&'static str] =
        &["ID", "ADDR", "CREDENTIAL", "DESCRIPTION", "CREATED"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.addr.clone(),
            self.credential.id.clone(),
            self.description.clone(),
            self.created_at.clone(),
        ]
    }
}

impl Row for Endpoint {
    const HEADERS: &'static [&'static str] = &[
        "ID",
        "TYPE",
        "URL",
        "BINDING",
        "POOLED",
        "SESSION",
        "CREDENTIAL",
        "SOURCE",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.kind.clone(),
            self.url.clone(),
            self.binding.clone(),
            if self.pooling_enabled { "yes" } else { "no" }.into(),
            id(&self.tunnel_session),
            id(&self.credential),
            source(self.source),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, endpoints: &[&str]) -> TunnelSession {
        TunnelSession {
            id: id.into(),
            uri: format!("/tunnel_sessions/{id}"),
            credential: Ref {
                id: "cr_1".into(),
                uri: "/credentials/cr_1".into(),
            },
            agent_version: "0.1.0\x1b[31m".into(),
            ip: "127.0.0.1".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
            links: Vec::new(),
        }
    }

    #[test]
    fn columns_line_up_and_control_characters_go() {
        let table = render(&[
            session("ses_1", &["http://a.localhost"]),
            session("ses_long_id", &[]),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        let at = |line: &str| line.find("CREDENTIAL").or_else(|| line.find("cr_1"));
        assert_eq!(at(lines[0]), at(lines[1]));
        assert_eq!(at(lines[1]), at(lines[2]));
        assert!(!table.contains('\x1b'), "{table:?}");
        assert!(lines[2].contains(" - "), "an empty cell shows '-': {table}");
    }
}
