//! Draws the status screen from a [`View`]: session, edge latency, forwarding lines, request
//! counters and the last requests. Pure drawing, tested on ratatui's `TestBackend`.

use super::stats::Snapshot;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;
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
    /// Inspector URL, if running.
    pub inspector: Option<String>,
    /// `(public URL, upstream)` per endpoint.
    pub forwarding: Vec<(String, String)>,
    /// Traffic numbers.
    pub traffic: Snapshot,
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
        "Latency",
        Span::raw(match view.latency {
            Some(_) => format!("{} ms", ms(view.latency)),
            None => "-".to_string(),
        }),
    ));
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
    let [top, counters, requests] = Layout::vertical([
        Constraint::Length(info_height),
        Constraint::Length(3),
        Constraint::Min(0),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(info), top);

    let t = &view.traffic;
    let header = Row::new(["Requests", "ttl", "opn", "rt1", "rt5", "p50 ms", "p90 ms"])
        .style(Style::new().fg(Color::DarkGray));
    let numbers = Row::new([
        String::new(),
        t.total.to_string(),
        t.open.to_string(),
        format!("{:.2}", t.rate1),
        format!("{:.2}", t.rate5),
        ms(t.p50),
        ms(t.p90),
    ]);
    let widths = [Constraint::Length(LABEL as u16 - 1)]
        .into_iter()
        .chain([Constraint::Length(8); 6]);
    frame.render_widget(Table::new([numbers], widths).header(header), counters);

    let title = Line::styled("HTTP Requests", Style::new().add_modifier(Modifier::BOLD));
    let mut lines = vec![title, Line::from("-".repeat(13))];
    let room = requests.height.saturating_sub(2) as usize;
    // Method (9) + path + space + status (16) + duration (12) fill the width.
    let path_width = (requests.width as usize)
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
    frame.render_widget(Paragraph::new(lines), requests);
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
        assert!(find(&lines, "Web Interface").ends_with("http://127.0.0.1:4040"));
        assert!(find(&lines, "http://a.example.com").contains("-> http://localhost:8080"));
        assert!(find(&lines, "http://b.example.com").contains("-> http://localhost:9090"));
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
