//! Draws the status screen from a [`View`]: session, edge latency, forwarding lines, request
//! counters and the last requests, and for TCP and TLS endpoints connection counters and the
//! connections. Pure drawing, tested on ratatui's `TestBackend`.

use super::stats::{ConnectionLine, ConnectionState, Connections, Snapshot};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;
use sluice_proto::link::Transport;
use std::time::Duration;

/// The session's state as the screen shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// Dialling the edge for the first time.
    Connecting,
    /// Online.
    Online,
    /// Lost; retrying.
    Reconnecting(String),
    /// Closing after Ctrl-C.
    Closing,
}

/// Everything one redraw shows.
#[derive(Debug, Clone)]
pub struct View {
    /// Session state.
    pub session: Session,
    /// Edge address.
    pub edge: String,
    /// Round-trip time to the edge.
    pub latency: Option<Duration>,
    /// The transport of the link to the edge, while online.
    pub transport: Option<Transport>,
    /// Each link to the edges, in slot order (one line each when in a cluster).
    pub links: Vec<LinkLine>,
    /// Inspector URL, if running.
    pub inspector: Option<String>,
    /// `(public URL, upstream)` per endpoint.
    pub forwarding: Vec<(String, String)>,
    /// Traffic numbers.
    pub traffic: Snapshot,
}

/// One link to an edge, as the screen shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkLine {
    /// The edge's id in a cluster, `None` for an edge that runs alone.
    pub edge_id: Option<String>,
    /// The edge's address as the link reaches it.
    pub addr: String,
    /// The link's transport.
    pub transport: Transport,
    /// Its round-trip time.
    pub latency: Option<Duration>,
}

const LABEL: usize = 18;

fn field<'a>(label: &'a str, value: Span<'a>) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{label:<LABEL$}"), Style::new().fg(Color::DarkGray)),
        value,
    ])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_string(),
        |d| format!("{:.1}", d.as_secs_f64() * 1000.0),
    )
}

/// Draws `view` over the whole frame.
pub fn render(view: &View, frame: &mut Frame) {
    let mut info = vec![
        Line::from(vec![
            Span::styled("Sluice", Style::new().add_modifier(Modifier::BOLD)),
            Span::styled("  (Ctrl+C to quit)", Style::new().fg(Color::DarkGray)),
        ]),
        Line::default(),
    ];
    let session = match &view.session {
        Session::Connecting => Span::styled("connecting", Style::new().fg(Color::Yellow)),
        Session::Online => Span::styled("online", Style::new().fg(Color::Green)),
        Session::Reconnecting(why) => {
            Span::styled(format!("reconnecting ({why})"), Style::new().fg(Color::Red))
        }
        Session::Closing => Span::styled("closing", Style::new().fg(Color::Yellow)),
    };
    info.push(field("Session Status", session));
    info.push(field("Edge", Span::raw(view.edge.clone())));
    info.push(field(
        "Transport",
        Span::raw(view.transport.map_or("-", Transport::for_people)),
    ));
    info.push(field(
        "Latency",
        Span::raw(match view.latency {
            Some(_) => format!("{} ms", ms(view.latency)),
            None => "-".to_string(),
        }),
    ));
    // In a cluster, every link: which edge, how, how far.
    if view.links.len() > 1 || view.links.iter().any(|l| l.edge_id.is_some()) {
        for l in &view.links {
            info.push(field(
                "Link",
                Span::raw(format!(
                    "{} at {}, {}, {} ms",
                    l.edge_id.as_deref().unwrap_or("edge"),
                    l.addr,
                    l.transport.for_people(),
                    ms(l.latency)
                )),
            ));
        }
    }
    if let Some(url) = &view.inspector {
        info.push(field("Web Interface", Span::raw(url.clone())));
    }
    for (url, upstream) in &view.forwarding {
        info.push(field(
            "Forwarding",
            Span::raw(format!("{url} -> {upstream}")),
        ));
    }
    let info_height = info.len() as u16 + 1;
    let (requests, connections) = sections(view);
    let mut constraints = vec![Constraint::Length(info_height)];
    for _ in 0..(requests as usize + connections as usize) {
        constraints.extend([Constraint::Length(3), Constraint::Min(0)]);
    }
    let areas = Layout::vertical(constraints).split(frame.area());
    frame.render_widget(Paragraph::new(info), areas[0]);
    // Each section is a counters row and a list, in the order the constraints were made.
    let mut pairs = areas[1..].chunks_exact(2);
    if requests {
        if let Some([counters, list]) = pairs.next() {
            render_requests(&view.traffic, frame, *counters, *list);
        }
    }
    if connections {
        if let Some([counters, list]) = pairs.next() {
            render_connections(&view.traffic.connections, frame, *counters, *list);
        }
    }
}

/// Which sections to draw: requests for HTTP endpoints (and before the first is online),
/// connections for TCP and TLS ones; both when the agent runs both kinds.
fn sections(view: &View) -> (bool, bool) {
    let raw = |url: &str| url.starts_with("tcp://") || url.starts_with("tls://");
    let connections =
        view.traffic.connections.total > 0 || view.forwarding.iter().any(|(url, _)| raw(url));
    let requests =
        view.traffic.total > 0 || view.forwarding.iter().any(|(url, _)| !raw(url)) || !connections;
    (requests, connections)
}

/// The counters row: a label column, then one column per number.
fn counters<'a>(label: &'a str, names: &[&'a str], values: Vec<String>) -> Table<'a> {
    let header = Row::new(std::iter::once(label).chain(names.iter().copied()))
        .style(Style::new().fg(Color::DarkGray));
    let numbers = Row::new(std::iter::once(String::new()).chain(values));
    let widths = [Constraint::Length(LABEL as u16 - 1)]
        .into_iter()
        .chain(names.iter().map(|_| Constraint::Length(8)));
    Table::new([numbers], widths).header(header)
}

fn render_requests(t: &Snapshot, frame: &mut Frame, counters_area: Rect, area: Rect) {
    let table = counters(
        "Requests",
        &["ttl", "opn", "rt1", "rt5", "p50 ms", "p90 ms"],
        vec![
            t.total.to_string(),
            t.open.to_string(),
            format!("{:.2}", t.rate1),
            format!("{:.2}", t.rate5),
            ms(t.p50),
            ms(t.p90),
        ],
    );
    frame.render_widget(table, counters_area);

    let title = Line::styled("HTTP Requests", Style::new().add_modifier(Modifier::BOLD));
    let mut lines = vec![title, Line::from("-".repeat(13))];
    let room = area.height.saturating_sub(2) as usize;
    // Method (9) + path + space + status (16) + duration (12) fill the width.
    let path_width = (area.width as usize)
        .saturating_sub(9 + 1 + 16 + 12)
        .max(10);
    for r in t.recent.iter().take(room) {
        let status_style = match r.status.as_u16() {
            200..=299 => Style::new().fg(Color::Green),
            300..=399 => Style::new().fg(Color::Cyan),
            400..=499 => Style::new().fg(Color::Yellow),
            _ => Style::new().fg(Color::Red),
        };
        let path = truncate(&r.path, path_width);
        lines.push(Line::from(vec![
            Span::raw(format!("{:<8} {path:<path_width$} ", r.method.as_str())),
            Span::styled(format!("{:<16}", status_text(r.status)), status_style),
            Span::raw(format!("{:>9} ms", ms(Some(r.duration)))),
        ]));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn render_connections(c: &Connections, frame: &mut Frame, counters_area: Rect, area: Rect) {
    let table = counters(
        "Connections",
        &["ttl", "opn"],
        vec![c.total.to_string(), c.open.to_string()],
    );
    frame.render_widget(table, counters_area);

    let title = Line::styled("TCP Connections", Style::new().add_modifier(Modifier::BOLD));
    let header = Line::styled(
        format!(
            "{:<24} {:<8} {:>10} {:>10} {:>10}",
            "client", "state", "in", "out", "duration"
        ),
        Style::new().fg(Color::DarkGray),
    );
    let mut lines = vec![title, Line::from("-".repeat(15)), header];
    let room = area.height.saturating_sub(3) as usize;
    lines.extend(c.lines.iter().take(room).map(connection_line));
    frame.render_widget(Paragraph::new(lines), area);
}

fn connection_line(c: &ConnectionLine) -> Line<'static> {
    let (state, style) = match &c.state {
        ConnectionState::Open => ("open", Style::new().fg(Color::Cyan)),
        ConnectionState::Closed => ("closed", Style::new().fg(Color::Green)),
        ConnectionState::Failed(_) => ("failed", Style::new().fg(Color::Red)),
    };
    let (bytes_in, bytes_out) = (size(c.bytes.0), size(c.bytes.1));
    let mut spans = vec![
        Span::raw(format!("{:<24} ", c.client.to_string())),
        Span::styled(format!("{state:<8}"), style),
        Span::raw(format!(
            " {bytes_in:>10} {bytes_out:>10} {:>10}",
            seconds(c.duration)
        )),
    ];
    if let ConnectionState::Failed(why) = &c.state {
        spans.push(Span::styled(
            format!("  {why}"),
            Style::new().fg(Color::DarkGray),
        ));
    }
    Line::from(spans)
}

/// Bytes in binary units, one decimal above 1 KiB.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A connection's duration: milliseconds under a second, seconds above.
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn status_text(s: http::StatusCode) -> String {
    format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or(""))
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::stats::RequestLine;
    use http::{Method, StatusCode};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn text(view: &View, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
        terminal.draw(|f| render(view, f)).expect("draw");
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect()
    }

    fn view() -> View {
        let recent = (0..30)
            .map(|i| RequestLine {
                method: if i % 2 == 0 {
                    Method::GET
                } else {
                    Method::POST
                },
                path: format!("/hook/{i}"),
                status: if i == 0 {
                    StatusCode::BAD_GATEWAY
                } else {
                    StatusCode::OK
                },
                duration: Duration::from_micros(1500 + i),
            })
            .collect();
        View {
            session: Session::Online,
            edge: "edge.example.com:4443".into(),
            latency: Some(Duration::from_micros(12_340)),
            transport: Some(Transport::Quic),
            links: Vec::new(),
            inspector: Some("http://127.0.0.1:4040".into()),
            forwarding: vec![
                (
                    "http://a.example.com".into(),
                    "http://localhost:8080".into(),
                ),
                (
                    "http://b.example.com".into(),
                    "http://localhost:9090".into(),
                ),
            ],
            traffic: Snapshot {
                total: 1234,
                open: 2,
                rate1: 0.5,
                rate5: 0.25,
                p50: Some(Duration::from_millis(3)),
                p90: Some(Duration::from_micros(8_750)),
                recent,
                connections: Connections::default(),
            },
        }
    }

    fn find<'a>(lines: &'a [String], needle: &str) -> &'a str {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{}", lines.join("\n")))
    }

    #[test]
    fn shows_session_edge_latency_and_every_forwarding_line() {
        let lines = text(&view(), 100, 30);
        assert!(find(&lines, "Session Status").ends_with("online"));
        assert!(find(&lines, "Edge").ends_with("edge.example.com:4443"));
        assert!(find(&lines, "Latency").ends_with("12.3 ms"));
        assert!(find(&lines, "Transport").ends_with("QUIC"));
        assert!(find(&lines, "Web Interface").ends_with("http://127.0.0.1:4040"));
        assert!(find(&lines, "http://a.example.com").contains("-> http://localhost:8080"));
        assert!(find(&lines, "http://b.example.com").contains("-> http://localhost:9090"));
    }

    #[test]
    fn a_cluster_shows_one_line_per_link() {
        let mut v = view();
        let lines = text(&v, 100, 30);
        assert!(
            !lines.iter().any(|l| l.starts_with("Link")),
            "one edge alone: no link lines"
        );
        v.links = vec![
            LinkLine {
                edge_id: Some("edge-two".into()),
                addr: "10.0.0.12:4443".into(),
                transport: Transport::Quic,
                latency: Some(Duration::from_micros(1_250)),
            },
            LinkLine {
                edge_id: Some("edge-three".into()),
                addr: "10.0.0.13:4443".into(),
                transport: Transport::Tcp,
                latency: None,
            },
        ];
        let lines = text(&v, 100, 30);
        let links: Vec<&String> = lines.iter().filter(|l| l.starts_with("Link")).collect();
        assert_eq!(links.len(), 2, "{lines:#?}");
        assert!(
            links[0].ends_with("edge-two at 10.0.0.12:4443, QUIC, 1.2 ms"),
            "{}",
            links[0]
        );
        assert!(
            links[1].ends_with("edge-three at 10.0.0.13:4443, TLS over TCP, - ms"),
            "{}",
            links[1]
        );
    }

    #[test]
    fn shows_counters_and_newest_requests_that_fit() {
        let lines = text(&view(), 100, 30);
        let numbers = &lines[lines
            .iter()
            .position(|l| l.contains("ttl"))
            .expect("header")
            + 1];
        let cells: Vec<&str> = numbers.split_whitespace().collect();
        assert_eq!(cells, ["1234", "2", "0.50", "0.25", "3.0", "8.8"]);
        let first = find(&lines, "/hook/0 ");
        assert!(
            first.starts_with("GET")
                && first.contains("502 Bad Gateway")
                && first.ends_with("1.5 ms"),
            "{first}"
        );
        // 30 rows: the info block, counters and list header leave room for only some requests.
        let shown = lines.iter().filter(|l| l.contains("/hook/")).count();
        assert!(shown > 5 && shown < 30, "{shown}");
        assert!(
            !lines.iter().any(|l| l.contains("/hook/29")),
            "oldest do not fit"
        );
    }

    #[test]
    fn tcp_endpoints_list_connections_and_no_requests() {
        let mut v = view();
        v.forwarding = vec![("tcp://example.com:20001".into(), "localhost:22".into())];
        v.traffic = Snapshot::default();
        let client = |port| std::net::SocketAddr::from(([203, 0, 113, 9], port));
        v.traffic.connections = Connections {
            total: 7,
            open: 1,
            lines: vec![
                ConnectionLine {
                    client: client(50001),
                    bytes: (2048, 0),
                    duration: Duration::from_millis(2500),
                    state: ConnectionState::Open,
                },
                ConnectionLine {
                    client: client(50000),
                    bytes: (512, 3 * 1024 * 1024 + 1024 * 1024 / 2),
                    duration: Duration::from_millis(40),
                    state: ConnectionState::Failed("upstream unreachable: refused".into()),
                },
            ],
        };
        let lines = text(&v, 100, 30);
        assert!(!lines.iter().any(|l| l.contains("HTTP Requests")));
        let numbers = &lines[lines
            .iter()
            .position(|l| l.starts_with("Connections"))
            .expect("counters")
            + 1];
        assert_eq!(numbers.split_whitespace().collect::<Vec<_>>(), ["7", "1"]);
        let open = find(&lines, "203.0.113.9:50001");
        assert_eq!(
            open.split_whitespace().collect::<Vec<_>>(),
            [
                "203.0.113.9:50001",
                "open",
                "2.0",
                "KiB",
                "0",
                "B",
                "2.5",
                "s"
            ]
        );
        let failed = find(&lines, "203.0.113.9:50000");
        assert!(
            failed.contains("failed")
                && failed.contains("512 B")
                && failed.contains("3.5 MiB")
                && failed.contains("40 ms")
                && failed.ends_with("upstream unreachable: refused"),
            "{failed}"
        );
        // An agent with both kinds shows both lists (`find` panics when one is missing).
        v.forwarding
            .push(("https://a.example.com".into(), "http://localhost:80".into()));
        let lines = text(&v, 100, 30);
        find(&lines, "HTTP Requests");
        find(&lines, "TCP Connections");
    }

    #[test]
    fn redraws_for_a_smaller_terminal_and_other_states() {
        let mut v = view();
        v.session = Session::Reconnecting("timed out".into());
        v.latency = None;
        v.traffic.recent[1].path = format!("/{}", "x".repeat(200));
        let lines = text(&v, 60, 12);
        assert!(find(&lines, "Session Status").contains("reconnecting (timed out)"));
        assert!(find(&lines, "Latency").ends_with('-'));
        assert!(lines.iter().all(|l| l.chars().count() <= 60));
        v.session = Session::Connecting;
        v.traffic = Snapshot::default();
        let lines = text(&v, 80, 20);
        assert!(find(&lines, "Session Status").ends_with("connecting"));
        assert!(find(&lines, "ttl").contains("p90 ms"));
    }
}
