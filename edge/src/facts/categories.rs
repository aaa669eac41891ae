//! `facts.ip_categories`: operator lists of addresses (`conn.client_ip.categories`), one CIDR
//! or address a line, `#` comments, read once at start.

use ipnet::IpNet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Why a category list is unusable; file:line for a bad entry.
#[derive(Debug, thiserror::Error)]
pub enum CategoryError {
    /// The file could not be read.
    #[error("facts.ip_categories.{name}: {path}")]
    Read {
        /// The category.
        name: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not an address or CIDR.
    #[error("facts.ip_categories.{name}: {}:{line}: `{text}` is not an IP address or CIDR", path.display())]
    Entry {
        /// The category.
        name: String,
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The entry as written.
        text: String,
    },
    /// A category name that policies could not match literally.
    #[error("facts.ip_categories: `{0}` is not a category name (letters, digits, `.`, `_`, `-`)")]
    Name(String),
}

/// The categories and their networks, in name order.
#[derive(Debug, Default)]
pub(crate) struct Categories {
    lists: Vec<(String, Vec<IpNet>)>,
}

impl Categories {
    /// Reads each `(name, file)`.
    pub fn load(files: &[(String, PathBuf)]) -> Result<Self, CategoryError> {
        let mut lists = Vec::with_capacity(files.len());
        for (name, path) in files {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !valid {
                return Err(CategoryError::Name(name.clone()));
            }
            lists.push((name.clone(), read(name, path)?));
        }
        Ok(Self { lists })
    }

    /// Whether any category is configured.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// The names of the categories holding `ip`.
    pub fn of(&self, ip: IpAddr) -> Vec<String> {
        self.lists
            .iter()
            .filter(|(_, nets)| nets.iter().any(|n| n.contains(&ip)))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// One file's networks.
fn read(name: &str, path: &Path) -> Result<Vec<IpNet>, CategoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| CategoryError::Read {
        name: name.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let mut nets = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let entry = raw.split('#').next().unwrap_or_default().trim();
        if entry.is_empty() {
            continue;
        }
        let net = entry
            .parse::<IpNet>()
            .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| CategoryError::Entry {
                name: name.to_string(),
                path: path.to_path_buf(),
                line: i + 1,
                text: entry.to_string(),
            })?;
        nets.push(net.trunc());
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_with_comments_and_bad_lines_are_located() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("sluice-cat-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let good = dir.join("office.txt");
        std::fs::write(
            &good,
            "# office\n10.1.0.0/16\n\n192.0.2.7  # printer\n2001:db8::/32\n",
        )?;
        let cats = Categories::load(&[("office".into(), good.clone())])?;
        for ip in ["10.1.2.3", "192.0.2.7", "2001:db8::1"] {
            assert_eq!(cats.of(ip.parse()?), vec!["office"], "{ip}");
        }
        assert!(cats.of("192.0.2.8".parse()?).is_empty());

        let bad = dir.join("bad.txt");
        std::fs::write(&bad, "10.0.0.0/8\n# ok\n10.0.0.0/33\n")?;
        let err = Categories::load(&[("vpn".into(), bad.clone())]).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some(format!(
                "facts.ip_categories.vpn: {}:3: `10.0.0.0/33` is not an IP address or CIDR",
                bad.display()
            ))
        );
        let err = Categories::load(&[("has space".into(), good)]).err();
        assert!(err.is_some_and(|e| e.to_string().contains("`has space` is not a category name")));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
