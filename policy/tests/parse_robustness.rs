//! A few thousand mutated policies through `Policy::parse`: rejected or accepted, never a panic.
//! (The cargo-fuzz target in fuzz/ does the same with coverage guidance.)

use sluice_policy::Policy;
use std::path::Path;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ":",
    "-",
    "\n",
    "  ",
    "'",
    "\"",
    "${",
    "${req.method}",
    "&a",
    "*a",
    "!!str",
    "#",
    "on_http_request",
    "actions",
    "type",
    "config",
    "deny",
    "expressions",
    "req.headers['x']",
    "matches('(')",
    "0.0.0.0/0",
    "status_code",
    "99999999999999999999",
    "\u{0}",
    "é",
    "\t",
    "? ",
    "|\n",
    ">-\n",
];

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("../examples/policies"),
        root.join("tests/fixtures/invalid"),
    ] {
        for entry in std::fs::read_dir(dir).expect("corpus dir") {
            let path = entry.expect("entry").path();
            if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yml" | "json")
            ) {
                out.push(std::fs::read_to_string(path).expect("corpus file"));
            }
        }
    }
    out
}

fn mutate(rng: &mut Rng, input: &str) -> String {
    let mut chars: Vec<char> = input.chars().collect();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(chars.len() + 1);
        match rng.below(4) {
            0 if !chars.is_empty() => {
                let end = (at + rng.below(20)).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                chars.splice(at..at, token.chars());
            }
            2 if !chars.is_empty() => {
                let i = rng.below(chars.len());
                chars[i] = char::from_u32(rng.below(0x250) as u32).unwrap_or('?');
            }
            _ => {
                let from = rng.below(chars.len());
                let piece: Vec<char> = chars
                    .iter()
                    .skip(from)
                    .take(rng.below(40))
                    .copied()
                    .collect();
                chars.splice(at..at, piece);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mutated_policies_never_panic() {
    let corpus = corpus();
    assert!(corpus.len() >= 30, "corpus has {} files", corpus.len());
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let mut accepted = 0;
    for i in 0..4000 {
        let base = &corpus[i % corpus.len()];
        let input = mutate(&mut rng, base);
        if Policy::parse(&input, "mutated.yml").is_ok() {
            accepted += 1;
        }
    }
    assert!(accepted > 0 && accepted < 4000, "accepted {accepted}");
}

#[test]
fn deep_nesting_is_rejected_or_accepted_without_overflow() {
    let inputs = [
        "[".repeat(200_000),
        format!("{}1{}", "[".repeat(50_000), "]".repeat(50_000)),
        format!(
            "on_http_request: [{{expressions: [\"{}true{}\"], actions: [{{type: deny}}]}}]",
            "(".repeat(5000),
            ")".repeat(5000)
        ),
        format!(
            "on_http_request: [{{expressions: [\"{}true\"], actions: [{{type: deny}}]}}]",
            "!".repeat(20_000)
        ),
    ];
    for input in inputs {
        let _ = Policy::parse(&input, "deep.yml");
    }
}
