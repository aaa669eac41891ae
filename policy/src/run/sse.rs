//! Server-sent events on the wire: a stream cut into events at blank lines, and one event's
//! fields read and rewritten.
//!
//! Lines end in `\n` or `\r\n` (a stream using bare `\r` line ends is never cut and passes
//! through as it is). An event that grows past [`MAX_EVENT`] without ending is passed through
//! unchanged, so a stream never costs more than that much memory.

/// The longest event rewritten: 256 KiB. A longer one passes through unchanged.
pub const MAX_EVENT: usize = 256 * 1024;

/// What the framer hands on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// A whole event, its terminating blank line included.
    Event(Vec<u8>),
    /// Bytes to pass on as they are (an over-long event, an unterminated tail at the end).
    Raw(Vec<u8>),
}

/// Cuts a byte stream into events.
#[derive(Debug, Default)]
pub(crate) struct EventFramer {
    buf: Vec<u8>,
    /// Passing an over-long event through until its end.
    passing: bool,
}

/// Where the first event in `buf` ends: just past its blank line.
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = memchr_pair(buf, b"\n\n").map(|i| i + 2);
    let crlf = memchr_pair(buf, b"\n\r\n").map(|i| i + 3);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn memchr_pair(buf: &[u8], needle: &[u8]) -> Option<usize> {
    buf.windows(needle.len()).position(|w| w == needle)
}

impl EventFramer {
    /// Adds `chunk` and returns the pieces now complete; with `end`, everything left.
    pub fn push(&mut self, chunk: &[u8], end: bool) -> Vec<Piece> {
        self.buf.extend_from_slice(chunk);
        let mut pieces = Vec::new();
        loop {
            match event_end(&self.buf) {
                Some(at) => {
                    let rest = self.buf.split_off(at);
                    let piece = std::mem::replace(&mut self.buf, rest);
                    if std::mem::take(&mut self.passing) {
                        pieces.push(Piece::Raw(piece));
                    } else {
                        pieces.push(Piece::Event(piece));
                    }
                }
                None if end => {
                    if !self.buf.is_empty() {
                        pieces.push(Piece::Raw(std::mem::take(&mut self.buf)));
                    }
                    return pieces;
                }
                None => {
                    if self.passing || self.buf.len() > MAX_EVENT {
                        // Keep the last two bytes: they may start the blank line.
                        self.passing = true;
                        let keep = self.buf.split_off(self.buf.len().saturating_sub(2));
                        let out = std::mem::replace(&mut self.buf, keep);
                        if !out.is_empty() {
                            pieces.push(Piece::Raw(out));
                        }
                    }
                    return pieces;
                }
            }
        }
    }
}

/// One event, as received, possibly with fields rewritten.
#[derive(Debug)]
pub struct SseEvent {
    bytes: Vec<u8>,
}

/// The lines of an event (its terminating blank line excluded), without line ends.
fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

/// A line's field name and value (one space after the colon is not part of the value); a
/// comment line (`:` first) has none.
fn field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    if line.first() == Some(&b':') {
        return None;
    }
    match line.iter().position(|b| *b == b':') {
        Some(i) => {
            let v = &line[i + 1..];
            Some((&line[..i], v.strip_prefix(b" ").unwrap_or(v)))
        }
        None => Some((line, b"")),
    }
}

impl SseEvent {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self { bytes }
    }

    /// Whether the event has any field (blank lines and comments only are not an event).
    pub(crate) fn has_fields(&self) -> bool {
        lines(&self.bytes).into_iter().any(|l| field(l).is_some())
    }

    /// A field's value: `data` lines joined with `\n`, the last line of any other field.
    pub fn field(&self, name: &str) -> Option<Vec<u8>> {
        let mut values = lines(&self.bytes)
            .into_iter()
            .filter_map(field)
            .filter(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
            .peekable();
        values.peek()?;
        if name == "data" {
            Some(values.collect::<Vec<_>>().join(&b'\n'))
        } else {
            values.last().map(<[u8]>::to_vec)
        }
    }

    /// Rewrites a field: its lines are replaced, where the first of them stood, by `value`
    /// (one `data` line per line of it); other lines keep their order.
    pub fn set_field(&mut self, name: &str, value: &[u8]) {
        let mut out = Vec::with_capacity(self.bytes.len() + value.len());
        let mut written = false;
        for line in lines(&self.bytes) {
            if field(line).is_some_and(|(n, _)| n == name.as_bytes()) {
                if !written {
                    written = true;
                    let parts: Vec<&[u8]> = if name == "data" {
                        value.split(|b| *b == b'\n').collect()
                    } else {
                        vec![value]
                    };
                    for part in parts {
                        out.extend_from_slice(name.as_bytes());
                        out.extend_from_slice(b": ");
                        out.extend_from_slice(part);
                        out.push(b'\n');
                    }
                }
                continue;
            }
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.push(b'\n');
        self.bytes = out;
    }

    /// The event's bytes, blank line included.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines_across_chunks() {
        let mut f = EventFramer::default();
        assert!(f.push(b"data: one\n", false).is_empty());
        assert_eq!(
            f.push(b"\ndata: two\r\n\r\nda", false),
            [
                Piece::Event(b"data: one\n\n".to_vec()),
                Piece::Event(b"data: two\r\n\r\n".to_vec()),
            ]
        );
        assert_eq!(
            f.push(b"ta: tail", true),
            [Piece::Raw(b"data: tail".to_vec())]
        );
    }

    #[test]
    fn an_over_long_event_passes_through_and_framing_resumes() {
        let mut f = EventFramer::default();
        let long = vec![b'x'; MAX_EVENT + 10];
        let pieces = f.push(&long, false);
        assert!(matches!(&pieces[..], [Piece::Raw(r)] if r.len() == MAX_EVENT + 8));
        assert_eq!(
            f.push(b"\n\ndata: next\n\n", false),
            [
                Piece::Raw(b"xx\n\n".to_vec()),
                Piece::Event(b"data: next\n\n".to_vec()),
            ]
        );
    }

    #[test]
    fn data_lines_are_joined_and_rewritten_in_place() {
        let mut e =
            SseEvent::new(b"event: tick\r\ndata: a\r\n: note\r\ndata:b\r\nid: 7\r\n\r\n".to_vec());
        assert_eq!(e.field("data").unwrap(), b"a\nb");
        assert_eq!(e.field("id").unwrap(), b"7");
        assert!(e.field("retry").is_none());
        e.set_field("data", b"x\ny\nz");
        assert_eq!(
            e.into_bytes(),
            b"event: tick\ndata: x\ndata: y\ndata: z\n: note\nid: 7\n\n"
        );
    }
}
