//! `req.user_agent.*`: a `User-Agent` header parsed with ua-parser over uap-core's regexes.
//!
//! The regexes are data the operator installs (Debian's `uap-core` package) and the edge reads;
//! this crate only compiles the text it is given, so it stays free of I/O.

use std::fmt;

/// A compiled user-agent parser: uap-core's `regexes.yaml`, built once per edge.
pub struct UserAgentParser {
    extractor: ua_parser::Extractor<'static>,
}

impl fmt::Debug for UserAgentParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserAgentParser")
    }
}

/// Why a `regexes.yaml` text does not make a parser.
#[derive(Debug, thiserror::Error)]
pub enum UserAgentDataError {
    /// Not the uap-core YAML layout.
    #[error("not a uap-core regexes.yaml: {0}")]
    Yaml(String),
    /// A regex in it does not compile.
    #[error("a regex in it does not compile: {0}")]
    Regex(String),
}

/// What a user-agent string says, as the `req.user_agent.*` variables read it. Unknown parts
/// are empty strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UserAgentFacts {
    pub name: String,
    pub version: String,
    pub os: String,
    pub os_version: String,
    pub device: String,
    pub url: String,
    pub is_bot: bool,
    pub is_mobile: bool,
    pub is_tablet: bool,
    pub is_desktop: bool,
}

/// uap-core's device family for crawlers and other robots.
const BOT_DEVICE: &str = "Spider";
/// uap-core's name for what it could not identify.
const OTHER: &str = "Other";
/// Device families (prefixes) uap-core gives tablets.
const TABLET_DEVICES: &[&str] = &[
    "iPad",
    "Kindle",
    "Generic Tablet",
    "Samsung SM-T",
    "Nexus 7",
];
/// Operating systems of desktop computers, as uap-core names them.
const DESKTOP_OS: &[&str] = &[
    "Windows",
    "Mac OS X",
    "Linux",
    "Ubuntu",
    "Chrome OS",
    "Fedora",
    "Debian",
    "FreeBSD",
    "OpenBSD",
    "NetBSD",
];

impl UserAgentParser {
    /// Compiles the text of uap-core's `regexes.yaml` (about 0.2 s: build it once).
    pub fn from_yaml(text: &str) -> Result<Self, UserAgentDataError> {
        let regexes: ua_parser::Regexes<'static> =
            serde_yaml::from_str(text).map_err(|e| UserAgentDataError::Yaml(e.to_string()))?;
        let extractor = ua_parser::Extractor::try_from(regexes)
            .map_err(|e| UserAgentDataError::Regex(e.to_string()))?;
        Ok(Self { extractor })
    }

    /// Parses one header value.
    pub(crate) fn parse(&self, ua: &str) -> UserAgentFacts {
        let (client, os, device) = self.extractor.extract(ua);
        let known = |s: &str| {
            if s == OTHER {
                String::new()
            } else {
                s.to_string()
            }
        };
        let name = client
            .as_ref()
            .map_or_else(String::new, |c| known(&c.family));
        let version = client.as_ref().map_or_else(String::new, |c| {
            dotted(&[c.major, c.minor, c.patch, c.patch_minor])
        });
        let (os_name, os_version) = os.as_ref().map_or_else(Default::default, |o| {
            let parts = [&o.major, &o.minor, &o.patch, &o.patch_minor];
            (known(&o.os), dotted(&parts.map(|p| p.as_deref())))
        });
        let device = device.map_or_else(String::new, |d| known(&d.device));
        classify(
            UserAgentFacts {
                name,
                version,
                os: os_name,
                os_version,
                device,
                url: bot_url(ua),
                ..UserAgentFacts::default()
            },
            ua,
        )
    }
}

/// Sets the flags from the parsed names: a bot is what uap-core calls a spider; a tablet is a
/// tablet device or an Android device without `Mobile` in its string (Android's convention);
/// a phone says `Mobi` (the convention browsers follow) or is an iPhone/iPod; a desktop is
/// none of these, on a desktop operating system.
fn classify(mut f: UserAgentFacts, ua: &str) -> UserAgentFacts {
    f.is_bot = f.device == BOT_DEVICE;
    let android = f.os == "Android";
    f.is_tablet = !f.is_bot
        && (TABLET_DEVICES.iter().any(|t| f.device.starts_with(t))
            || (android && !ua.contains("Mobile")));
    f.is_mobile = !f.is_bot
        && !f.is_tablet
        && (ua.contains("Mobi") || f.device.starts_with("iPhone") || f.device.starts_with("iPod"));
    f.is_desktop =
        !f.is_bot && !f.is_tablet && !f.is_mobile && DESKTOP_OS.iter().any(|o| f.os.starts_with(o));
    f
}

/// `1.2.3` from the version parts present, up to the first missing one.
fn dotted(parts: &[Option<&str>]) -> String {
    parts
        .iter()
        .map_while(|p| p.filter(|s| !s.is_empty()))
        .collect::<Vec<_>>()
        .join(".")
}

/// The first `http(s)://` URL in the string, as bots give their info page
/// (`(compatible; Googlebot/2.1; +http://www.google.com/bot.html)`); empty when none.
fn bot_url(ua: &str) -> String {
    let start = ["https://", "http://"]
        .iter()
        .filter_map(|s| ua.find(s))
        .min();
    start.map_or_else(String::new, |i| {
        ua[i..]
            .split(|c: char| c.is_whitespace() || matches!(c, ')' | ';' | ',' | '"'))
            .next()
            .unwrap_or_default()
            .to_string()
    })
}

/// uap-core's regexes as Debian's `uap-core` package installs them (scripts/setup.d), compiled
/// once for all tests.
#[cfg(test)]
pub(crate) fn user_agents() -> std::sync::Arc<UserAgentParser> {
    use std::sync::{Arc, LazyLock};
    static PARSER: LazyLock<Arc<UserAgentParser>> = LazyLock::new(|| {
        let path = "/usr/share/uap-core/regexes.yaml";
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{path}: {e} (scripts/setup.d installs uap-core)"));
        Arc::new(UserAgentParser::from_yaml(&text).expect("uap-core regexes compile"))
    });
    PARSER.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_phones_tablets_and_bots() {
        let p = user_agents();
        let chrome = p.parse("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36");
        assert_eq!(chrome.name, "Chrome");
        assert_eq!(chrome.version, "120.0.6099.109");
        assert_eq!(chrome.os, "Windows");
        assert!(chrome.is_desktop && !chrome.is_mobile && !chrome.is_tablet && !chrome.is_bot);

        let iphone = p.parse("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1");
        assert_eq!(iphone.os, "iOS");
        assert_eq!(iphone.os_version, "17.1");
        assert_eq!(iphone.device, "iPhone");
        assert!(iphone.is_mobile && !iphone.is_desktop && !iphone.is_tablet);

        let ipad = p.parse("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1");
        assert!(ipad.is_tablet && !ipad.is_mobile && !ipad.is_desktop);

        let tab = p.parse("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36");
        assert!(tab.is_tablet && !tab.is_mobile);

        let bot =
            p.parse("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)");
        assert_eq!(bot.name, "Googlebot");
        assert_eq!(bot.url, "http://www.google.com/bot.html");
        assert!(bot.is_bot && !bot.is_desktop && !bot.is_mobile);

        let empty = p.parse("");
        assert_eq!(empty, UserAgentFacts::default());
    }

    #[test]
    fn bad_data_is_refused() {
        assert!(matches!(
            UserAgentParser::from_yaml("user_agent_parsers: 3"),
            Err(UserAgentDataError::Yaml(_))
        ));
        let bad =
            "user_agent_parsers: [{regex: '(unclosed'}]\nos_parsers: []\ndevice_parsers: []\n";
        assert!(matches!(
            UserAgentParser::from_yaml(bad),
            Err(UserAgentDataError::Regex(_))
        ));
    }
}
