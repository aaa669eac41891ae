//! [`Acl`]: a credential's `bind:` rules (ngrok's form), which names and TCP addresses its
//! agents may bring online. No rule allows everything.
//!
//! - `bind:*` allows every name and address;
//! - `bind:PATTERN` a hostname, `*` matching any run of characters (`bind:*.example.com`,
//!   `bind:ci-*.example.com`, `bind:api.internal`);
//! - `bind:HOST:PORT` a TCP address (`bind:tunnel.example.com:20001`, `bind:*:20001`,
//!   `bind:tunnel.example.com:*`).

use std::fmt;

/// A compiled list of `bind:` rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// A hostname pattern (lowercase).
    Host(String),
    /// A TCP address: host pattern and port (`None`: any).
    Addr(String, Option<u16>),
    /// Matches nothing: what rules that cannot be read become ([`Acl::nothing`]).
    Nothing,
}

/// A rule that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("acl[{index}]: '{rule}': {why}")]
pub struct AclError {
    /// Its place in the list.
    pub index: usize,
    /// The rule as given.
    pub rule: String,
    /// What is wrong.
    pub why: String,
}

impl Acl {
    /// Compiles `rules`; the first bad one is the error.
    pub fn parse(rules: &[String]) -> Result<Self, AclError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| {
                Rule::parse(rule).map_err(|why| AclError {
                    index,
                    rule: rule.clone(),
                    why: why.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Rules that allow nothing, for stored rules that no longer compile: a credential whose
    /// rules cannot be read fails closed.
    pub fn nothing() -> Self {
        Self {
            rules: vec![Rule::Nothing],
        }
    }

    /// Whether the credential may bring `hostname` online (HTTP, TLS and internal endpoints).
    pub fn allows_host(&self, hostname: &str) -> bool {
        let host = hostname.to_ascii_lowercase();
        self.rules.is_empty()
            || self.rules.iter().any(|r| match r {
                Rule::Host(p) => glob(p, &host),
                Rule::Addr(..) | Rule::Nothing => false,
            })
    }

    /// Whether the credential may bring the TCP address `host:port` online.
    pub fn allows_addr(&self, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.rules.is_empty()
            || self.rules.iter().any(|r| match r {
                Rule::Host(p) => p == "*",
                Rule::Addr(h, p) => glob(h, &host) && p.is_none_or(|p| p == port),
                Rule::Nothing => false,
            })
    }
}

impl Rule {
    fn parse(rule: &str) -> Result<Self, &'static str> {
        let pattern = rule
            .strip_prefix("bind:")
            .ok_or("a rule starts with 'bind:'")?
            .to_ascii_lowercase();
        if pattern.is_empty() {
            return Err("the pattern after 'bind:' is empty");
        }
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*' | '_'))
        };
        match pattern.rsplit_once(':') {
            Some((host, port)) => {
                if !valid(host) {
                    return Err("the host may hold letters, digits, '-', '.', '_' and '*'");
                }
                let port = match port {
                    "*" => None,
                    p => Some(
                        p.parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .ok_or("the port is a number from 1 to 65535, or *")?,
                    ),
                };
                Ok(Rule::Addr(host.to_string(), port))
            }
            None if valid(&pattern) => Ok(Rule::Host(pattern)),
            None => Err("a hostname pattern holds letters, digits, '-', '.', '_' and '*'"),
        }
    }
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|r| match r {
                Rule::Host(h) => format!("bind:{h}"),
                Rule::Addr(h, Some(p)) => format!("bind:{h}:{p}"),
                Rule::Addr(h, None) => format!("bind:{h}:*"),
                Rule::Nothing => "none (the stored rules cannot be read)".to_string(),
            })
            .collect();
        write!(f, "{}", rules.join(", "))
    }
}

/// Whether `text` matches `pattern`, `*` matching any run of characters (dots included).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // The last star's position in the pattern and the text position it resumes from.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rules: &[&str]) -> Acl {
        Acl::parse(&rules.iter().map(|r| r.to_string()).collect::<Vec<_>>()).expect("valid acl")
    }

    #[test]
    fn host_rules_match_by_glob_case_insensitively() {
        let a = acl(&["bind:ci-*.example.com", "bind:api.internal"]);
        assert!(a.allows_host("ci-42.example.com"));
        assert!(a.allows_host("CI-x.Example.com"));
        assert!(!a.allows_host("prod.example.com"));
        assert!(!a.allows_host("ci-1.example.com.evil.net"));
        assert!(a.allows_host("api.internal"));
        assert!(!a.allows_addr("example.com", 20001));
    }

    #[test]
    fn address_rules_and_the_catch_all() {
        let a = acl(&["bind:*.example.com:20001", "bind:tcp.example.com:*"]);
        assert!(a.allows_addr("x.example.com", 20001));
        assert!(!a.allows_addr("x.example.com", 20002));
        assert!(a.allows_addr("tcp.example.com", 9));
        assert!(!a.allows_host("x.example.com"));
        let none = Acl::nothing();
        assert!(!none.allows_host("x") && !none.allows_addr("x", 1));
        let all = acl(&["bind:*"]);
        assert!(all.allows_host("anything.example.com") && all.allows_addr("h", 1));
        assert!(Acl::default().allows_host("x") && Acl::default().allows_addr("x", 1));
    }

    #[test]
    fn bad_rules_are_located() {
        let err = Acl::parse(&["bind:*".into(), "*.example.com".into()]).expect_err("no bind:");
        assert_eq!(err.index, 1);
        assert!(
            err.to_string().starts_with("acl[1]: '*.example.com'"),
            "{err}"
        );
        for bad in ["bind:", "bind:a b", "bind:x:0", "bind:x:http"] {
            assert!(Acl::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn glob_backtracks() {
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b*c", "aXbYbZ"));
        assert!(glob("*", ""));
    }
}
