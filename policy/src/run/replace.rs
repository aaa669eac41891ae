//! Streaming find-and-replace: every rule keeps back a bounded tail of the body, so a match may
//! straddle chunks without the body ever being held whole.
//!
//! The bound: a rule decides a match once it has seen [`WINDOW`] bytes past the match's
//! start (or the body's end). A match shorter than the window is therefore found exactly as on
//! the whole body; a longer one is decided on what the window held: missed when its end had
//! not arrived yet, or cut short where the window ended (a greedy `.*` stops there). What
//! follows is searched afresh. Each rule holds at most `WINDOW` bytes plus the chunk
//! being fed, so a request costs `WINDOW` bytes per rule at most.

use crate::run::body::BodyTransform;
use bytes::Bytes;
use regex::bytes::Regex;
use std::sync::Arc;

/// How far past a match's start a rule looks before deciding it: 16 KiB.
pub const WINDOW: usize = 16 * 1024;

/// Bytes already sent that a rule keeps in front of its search, so `\b`, `^` and `(?m)^` see
/// the character before (one UTF-8 character is at most 4 bytes).
const LOOK_BEHIND: usize = 8;

/// At most this many replacements are remembered per value for `actions.ngrok.*` results.
const MAX_RECORDED: usize = 100;

/// At most this many bytes of a match are kept in its result.
const MAX_MATCH_TEXT: usize = 1024;

/// One replacement rule: a pattern, and its replacement with `$1`/`${name}` capture groups.
#[derive(Clone, Debug)]
pub struct ReplaceRule {
    /// The compiled `from`.
    pub from: Arc<Regex>,
    /// The rendered `to` (empty deletes the match).
    pub to: Vec<u8>,
}

/// One replacement made: the rule's index among the action's replacements, and what matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replaced {
    /// The index of the rule in `replacements`.
    pub index: usize,
    /// The matched text (lossy UTF-8, at most 1 KiB).
    pub matched: String,
}

/// Replaces every match in a whole value (an event's field): rules in order, each over the
/// previous one's result. Returns `None` when nothing matched.
pub fn replace_all(
    rules: &[ReplaceRule],
    value: &[u8],
    made: &mut Vec<Replaced>,
) -> Option<Vec<u8>> {
    let mut current: Option<Vec<u8>> = None;
    for (index, rule) in rules.iter().enumerate() {
        let input = current.as_deref().unwrap_or(value);
        let mut stage = Stage::new(index, rule.clone());
        let mut out = Vec::with_capacity(input.len());
        stage.feed(input, true, &mut out, Some(&mut *made));
        if stage.replaced {
            current = Some(out);
        }
    }
    current
}

/// A body's replacer: its rules as a pipeline of stages, each with its own window.
pub struct StreamReplacer {
    stages: Vec<Stage>,
}

impl StreamReplacer {
    /// A replacer applying `rules` in order.
    pub fn new(rules: Vec<ReplaceRule>) -> Self {
        let stages = rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| Stage::new(i, r))
            .collect();
        Self { stages }
    }
}

impl BodyTransform for StreamReplacer {
    fn transform(&mut self, chunk: &[u8], end_of_stream: bool) -> Bytes {
        let mut data = chunk.to_vec();
        for stage in &mut self.stages {
            let mut out = Vec::with_capacity(data.len());
            stage.feed(&data, end_of_stream, &mut out, None);
            data = out;
        }
        Bytes::from(data)
    }
}

/// One rule over a stream.
struct Stage {
    index: usize,
    rule: ReplaceRule,
    /// `pending[..sent]` is look-behind already sent; `pending[sent..]` is not sent yet.
    pending: Vec<u8>,
    sent: usize,
    /// Where the last match ended (in `pending`), so an empty match is not taken right there.
    last_end: Option<usize>,
    /// Whether any replacement was made.
    replaced: bool,
}

impl Stage {
    fn new(index: usize, rule: ReplaceRule) -> Self {
        Self {
            index,
            rule,
            pending: Vec::new(),
            sent: 0,
            last_end: None,
            replaced: false,
        }
    }

    /// Appends `input`, writes to `out` everything that can be decided now (all of it at the
    /// end), and keeps the undecided tail.
    fn feed(
        &mut self,
        input: &[u8],
        end: bool,
        out: &mut Vec<u8>,
        mut made: Option<&mut Vec<Replaced>>,
    ) {
        self.pending.extend_from_slice(input);
        let len = self.pending.len();
        // Matches must start before `limit`: past it, fewer than WINDOW bytes follow.
        let limit = if end {
            len
        } else if len - self.sent > WINDOW {
            len - WINDOW
        } else {
            return;
        };
        let mut copied = self.sent;
        let mut pos = self.sent;
        while pos <= len {
            let Some(caps) = self.rule.from.captures_at(&self.pending, pos) else {
                break;
            };
            let Some(m) = caps.get(0) else { break };
            if !end && m.start() >= limit {
                break;
            }
            if m.is_empty() && self.last_end == Some(m.start()) {
                // The regex crate's iterators never take an empty match where one just ended.
                pos = m.start() + 1;
                continue;
            }
            out.extend_from_slice(&self.pending[copied..m.start()]);
            caps.expand(&self.rule.to, out);
            self.replaced = true;
            if let Some(made) = made.as_deref_mut() {
                if made.len() < MAX_RECORDED {
                    let text = &m.as_bytes()[..m.len().min(MAX_MATCH_TEXT)];
                    made.push(Replaced {
                        index: self.index,
                        matched: String::from_utf8_lossy(text).into_owned(),
                    });
                }
            }
            copied = m.end();
            self.last_end = Some(m.end());
            pos = if m.is_empty() { m.end() + 1 } else { m.end() };
        }
        let decided = if end { len } else { limit.max(copied) };
        out.extend_from_slice(&self.pending[copied..decided]);
        // Keep a little of what was sent as look-behind, and the undecided tail.
        let keep_from = decided.saturating_sub(LOOK_BEHIND);
        self.pending.drain(..keep_from);
        self.sent = decided - keep_from;
        self.last_end = self
            .last_end
            .and_then(|e| e.checked_sub(keep_from))
            .filter(|e| *e == self.sent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(from: &str, to: &str) -> ReplaceRule {
        ReplaceRule {
            from: Arc::new(Regex::new(from).unwrap()),
            to: to.as_bytes().to_vec(),
        }
    }

    /// Feeds `body` in chunks of `size` and returns the whole output.
    fn streamed(rules: &[ReplaceRule], body: &[u8], size: usize) -> Vec<u8> {
        let mut r = StreamReplacer::new(rules.to_vec());
        let mut out = Vec::new();
        let chunks: Vec<&[u8]> = body.chunks(size.max(1)).collect();
        for c in &chunks {
            out.extend_from_slice(&r.transform(c, false));
        }
        out.extend_from_slice(&r.transform(b"", true));
        out
    }

    /// What the regex crate makes of the whole body, rules in order.
    fn whole(rules: &[ReplaceRule], body: &[u8]) -> Vec<u8> {
        let mut cur = body.to_vec();
        for r in rules {
            cur = r.from.replace_all(&cur, r.to.as_slice()).into_owned();
        }
        cur
    }

    #[test]
    fn a_match_straddling_every_chunk_boundary_is_replaced() {
        let rules = [rule("secret-([0-9]+)", "[redacted $1]")];
        let body = b"a secret-1234 and secret-99, no secret- here";
        for size in 1..=body.len() {
            assert_eq!(
                streamed(&rules, body, size),
                b"a [redacted 1234] and [redacted 99], no secret- here",
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn streaming_equals_the_whole_body_for_matches_shorter_than_the_window() {
        let rules = [
            rule("(?m)^line", "LINE"),
            rule(r"\bcat\b", "dog"),
            rule("x*", "-"),
            rule("ab|abc", "Z"),
        ];
        let mut body = Vec::new();
        for i in 0..3000 {
            body.extend_from_slice(format!("line {i} cat concat abc xx\n").as_bytes());
        }
        let expected = whole(&rules, &body);
        for size in [1, 7, 100, 4096, WINDOW, WINDOW + 3, body.len()] {
            assert_eq!(streamed(&rules, &body, size), expected, "chunks of {size}");
        }
    }

    #[test]
    fn later_rules_see_earlier_rules_output() {
        let rules = [rule("a", "b"), rule("bb", "c")];
        assert_eq!(streamed(&rules, b"ab ab", 1), b"c c");
    }

    #[test]
    fn start_anchor_matches_only_at_the_body_start() {
        let rules = [rule("^x", "Y")];
        let body = [b"x".as_slice(), &vec![b'x'; 3 * WINDOW]].concat();
        let out = streamed(&rules, &body, 1000);
        assert_eq!(out[0], b'Y');
        assert!(out[1..].iter().all(|b| *b == b'x'));
    }

    #[test]
    fn the_held_back_tail_is_bounded_by_the_window() {
        let mut r = StreamReplacer::new(vec![rule("never", "x")]);
        let chunk = vec![b'.'; 4096];
        let mut sent = 0;
        for i in 1..=40 {
            sent += r.transform(&chunk, false).len();
            let fed = i * chunk.len();
            assert!(fed - sent <= WINDOW, "held {} bytes", fed - sent);
        }
        sent += r.transform(b"", true).len();
        assert_eq!(sent, 40 * 4096);
    }

    #[test]
    fn a_match_longer_than_the_window_may_be_missed() {
        // `<.*>` over a body whose `>` comes 2 windows after `<`: the first decision is taken
        // a window past `<`, before the `>` arrived, so no match is made there.
        let rules = [rule("<[^>]*>", "T")];
        let body = [b"<".as_slice(), &vec![b'a'; 2 * WINDOW], b"> <b>"].concat();
        let out = streamed(&rules, &body, 512);
        assert_eq!(out.len(), body.len() - 2, "only `<b>` became `T`");
        assert!(out.ends_with(b"> T"));
        // Whole, the long one is replaced too.
        assert_eq!(whole(&rules, &body), b"T T");
    }

    #[test]
    fn replace_all_records_which_rule_matched_what() {
        let rules = [rule("a+", "b"), rule("c", "d")];
        let mut made = Vec::new();
        let out = replace_all(&rules, b"aa c a", &mut made).unwrap();
        assert_eq!(out, b"b d b");
        let got: Vec<(usize, &str)> = made.iter().map(|r| (r.index, r.matched.as_str())).collect();
        assert_eq!(got, [(0, "aa"), (0, "a"), (1, "c")]);
        assert!(replace_all(&rules, b"zzz", &mut made).is_none());
    }
}
