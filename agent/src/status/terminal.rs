//! Runs the status screen on the terminal: alternate screen and raw mode while the agent runs,
//! a redraw every 250 ms and on resize, Ctrl-C (a key in raw mode) asks the agent to stop, and
//! the terminal is restored on exit and on panic.

use super::screen::{render, LinkLine, Session, View};
use super::stats::Stats;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::crossterm::{cursor, execute};
use ratatui::Terminal;
use sluice_agent::{AgentEvent, EdgeLink};
use sluice_proto::link::Link;
use std::collections::BTreeMap;
use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the screen is redrawn without input.
const REDRAW: Duration = Duration::from_millis(250);

struct Shared {
    view: Mutex<View>,
    /// The links online, by slot.
    links: Mutex<BTreeMap<usize, (EdgeLink, Link)>>,
    stats: Arc<Stats>,
    done: AtomicBool,
}

impl Shared {
    fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn links(&self) -> MutexGuard<'_, BTreeMap<usize, (EdgeLink, Link)>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running status screen; [`StatusScreen::finish`] restores the terminal.
pub struct StatusScreen {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl StatusScreen {
    /// Takes over the terminal. `stop` is called when the user presses Ctrl-C (or `q`).
    pub fn start(
        edge: String,
        inspector: Option<String>,
        stats: Arc<Stats>,
        stop: impl Fn() + Send + 'static,
    ) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            view: Mutex::new(View {
                session: Session::Connecting,
                edge,
                latency: None,
                transport: None,
                links: Vec::new(),
                inspector,
                forwarding: Vec::new(),
                traffic: Default::default(),
            }),
            links: Mutex::default(),
            stats,
            done: AtomicBool::new(false),
        });
        let terminal = enter()?;
        install_panic_restore();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("status-screen".into())
                .spawn(move || draw_loop(terminal, &shared, stop))?
        };
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Shows what the agent reported.
    pub fn event(&self, event: &AgentEvent) {
        let mut view = self.shared.view();
        let mut links = self.shared.links();
        match event {
            AgentEvent::Online {
                endpoints,
                link,
                edge,
                ..
            } => {
                view.session = Session::Online;
                view.forwarding = endpoints
                    .iter()
                    .map(|(bound, upstream)| (bound.url.clone(), upstream.clone()))
                    .collect();
                links.insert(edge.slot, (edge.clone(), link.clone()));
            }
            AgentEvent::Reconnecting {
                reason,
                slot,
                links_online,
                ..
            } => {
                links.remove(slot);
                if *links_online == 0 {
                    view.session = Session::Reconnecting(reason.clone());
                    view.latency = None;
                    view.transport = None;
                }
            }
        }
    }

    /// Stops drawing and gives the terminal back as it was.
    pub fn finish(mut self) -> io::Result<()> {
        self.stop_thread()
    }

    fn stop_thread(&mut self) -> io::Result<()> {
        self.shared.done.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("status screen thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for StatusScreen {
    fn drop(&mut self) {
        let _ = self.stop_thread();
    }
}

fn enter() -> io::Result<Terminal<CrosstermBackend<Stdout>>> {
    enable_raw_mode()?;
    let mut stdout = io::stdout();
    if let Err(e) = execute!(stdout, EnterAlternateScreen, cursor::Hide) {
        let _ = restore();
        return Err(e);
    }
    Terminal::new(CrosstermBackend::new(stdout))
}

fn restore() -> io::Result<()> {
    disable_raw_mode()?;
    execute!(io::stdout(), LeaveAlternateScreen, cursor::Show)
}

/// A panic must not leave the user's terminal in raw mode on the alternate screen.
fn install_panic_restore() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = restore();
        previous(info);
    }));
}

fn draw_loop(
    mut terminal: Terminal<CrosstermBackend<Stdout>>,
    shared: &Shared,
    stop: impl Fn(),
) -> io::Result<()> {
    let drawn = (|| {
        let mut stop_asked = false;
        while !shared.done.load(Ordering::Relaxed) {
            let view = snapshot(shared);
            terminal.draw(|f| render(&view, f))?;
            let deadline = Instant::now() + REDRAW;
            // Wait for input until the next redraw; a resize redraws at once.
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if !event::poll(left)? {
                    break;
                }
                match event::read()? {
                    Event::Key(k)
                        if k.kind != KeyEventKind::Release && is_quit(k.code, k.modifiers) =>
                    {
                        if !stop_asked {
                            stop_asked = true;
                            shared.view().session = Session::Closing;
                            stop();
                        }
                        break;
                    }
                    Event::Resize(..) => {
                        terminal.autoresize()?;
                        break;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    })();
    let restored = restore();
    drawn.and(restored)
}

fn is_quit(code: KeyCode, modifiers: KeyModifiers) -> bool {
    matches!(code, KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL))
        || code == KeyCode::Char('q')
}

fn snapshot(shared: &Shared) -> View {
    let mut view = shared.view().clone();
    let links = shared.links();
    view.links = links
        .values()
        .map(|(edge, link)| LinkLine {
            edge_id: edge.edge_id.clone(),
            addr: edge.addr.to_string(),
            transport: link.transport(),
            latency: Some(link.rtt()),
        })
        .collect();
    // The first link stands for them all in the Transport and Latency lines.
    let first = links.values().next().map(|(_, link)| link);
    view.transport = first.map(Link::transport);
    view.latency = first
        .filter(|_| view.session == Session::Online)
        .map(Link::rtt);
    view.traffic = shared.stats.snapshot(Instant::now());
    view
}
