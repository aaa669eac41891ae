//! Which `actions.ngrok.<key>` results a policy's expressions read; actions build only those.
//!
//! Most policies read none, and building them would cost more than the actions do.

/// A set of result keys, or all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Wanted {
    all: bool,
    keys: Vec<&'static str>,
}

impl Wanted {
    /// The results a policy's expressions may read, found in its source text:
    /// `actions.ngrok.<key>` marks that key when it is one of `known`; any other use of the
    /// `actions` root (or an unknown key) marks all.
    pub fn scan(source: &str, known: &'static [&'static str]) -> Self {
        let mut wanted = Self::default();
        for (i, _) in source.match_indices("actions") {
            let rest = &source[i + "actions".len()..];
            if rest.starts_with(':') || rest.starts_with('"') || rest.starts_with('\'') {
                continue; // the rule's `actions:` key
            }
            let Some(key_part) = rest.strip_prefix(".ngrok.") else {
                if rest.starts_with('.') || rest.starts_with('[') || rest.starts_with(')') {
                    wanted.all = true;
                }
                continue;
            };
            let key: String = key_part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            match known.iter().find(|k| **k == key) {
                Some(k) => wanted.add(k),
                None => wanted.all = true,
            }
        }
        wanted
    }

    /// Adds the results `other` wants (the engine's layers read one another's results).
    pub fn merge(&mut self, other: &Self) {
        self.all |= other.all;
        for k in &other.keys {
            self.add(k);
        }
    }

    /// Whether some expression may read `actions.ngrok.<key>`.
    pub fn contains(&self, key: &str) -> bool {
        self.all || self.keys.contains(&key)
    }

    fn add(&mut self, key: &'static str) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Wanted;

    const KNOWN: &[&str] = &["deny", "oidc"];

    #[test]
    fn keys_read_are_wanted_and_other_uses_want_all() {
        let w = Wanted::scan(
            "on_http_request: [{actions: [], expressions: ['actions.ngrok.oidc.x']}]",
            KNOWN,
        );
        assert!(w.contains("oidc") && !w.contains("deny"));
        assert!(Wanted::scan("${actions.ngrok}", KNOWN).contains("deny"));
        assert!(Wanted::scan("${actions.ngrok.nope}", KNOWN).contains("deny"));
        let mut none = Wanted::scan("actions: []", KNOWN);
        assert!(!none.contains("deny"));
        none.merge(&w);
        assert!(none.contains("oidc"));
    }
}
