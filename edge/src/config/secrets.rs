//! `edge.yaml` `secret_vaults:` (where `secrets.get(vault, name)` reads) and `login_apps:`
//! (the default apps of oauth / openid-connect without client credentials), as written and
//! resolved.

use super::error::ConfigError;
use serde::Deserialize;
use sluice_policy::{LoginApp, LoginApps, Secret as PolicySecret};
use sluice_proto::control::Secret;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where one vault's secrets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultSource {
    /// One file per secret: the file name is the secret's name, its content (one trailing
    /// newline removed) the value.
    Dir(PathBuf),
    /// Environment variables: secret `name` is the variable `<prefix><name>`.
    Env {
        /// The variables' common prefix.
        prefix: String,
    },
    /// One file of `NAME=value` lines (blank lines and `#` comments skipped).
    File(PathBuf),
}

/// One `secret_vaults:` entry, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVault {
    /// The name policies give `secrets.get` first.
    pub name: String,
    /// Where its values are read from, each time a policy that names one compiles.
    pub source: VaultSource,
    /// Whether agents' policies may read it too; otherwise only `edge.yaml`'s own policies
    /// (`endpoints:`, `cloud_endpoints:`) can.
    pub agents: bool,
}

/// `secret_vaults: {NAME: {dir | env_prefix | file, agents}}` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileVault {
    dir: Option<PathBuf>,
    env_prefix: Option<String>,
    file: Option<PathBuf>,
    #[serde(default)]
    agents: bool,
}

impl FileVault {
    /// Resolves the entry; relative paths are relative to the config file's folder. A
    /// directory or file that is not there is an error now, not at the first policy.
    pub(crate) fn resolve(self, name: String, base: &Path) -> Result<SecretVault, ConfigError> {
        let at = |msg: String| ConfigError::Vault {
            name: name.clone(),
            msg,
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(at("a vault name is a non-empty word".to_string()));
        }
        let source = match (self.dir, self.env_prefix, self.file) {
            (Some(dir), None, None) => {
                let dir = base.join(dir);
                if !dir.is_dir() {
                    return Err(at(format!("dir {}: not a directory", dir.display())));
                }
                VaultSource::Dir(dir)
            }
            (None, Some(prefix), None) if !prefix.is_empty() => VaultSource::Env { prefix },
            (None, None, Some(file)) => {
                let file = base.join(file);
                read_pairs(&file).map_err(at)?;
                VaultSource::File(file)
            }
            _ => {
                return Err(at(
                    "give exactly one of dir, env_prefix (not empty), file".to_string()
                ))
            }
        };
        Ok(SecretVault {
            name,
            source,
            agents: self.agents,
        })
    }
}

/// The largest vault file or secret file read.
pub(crate) const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Reads a file of `NAME=value` lines; errors name the file and line, never a value.
pub(crate) fn read_pairs(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let shown = path.display();
    let len = std::fs::metadata(path)
        .map_err(|e| format!("file {shown}: {e}"))?
        .len();
    if len > MAX_SECRET_FILE {
        return Err(format!("file {shown}: larger than {MAX_SECRET_FILE} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("file {shown}: {e}"))?;
    parse_pairs(&text).map_err(|(line, msg)| format!("file {shown}:{line}: {msg}"))
}

/// `NAME=value` lines: the name trimmed, the value everything after the first `=` as it is;
/// blank lines and lines starting with `#` skipped. The error is a line number and a message.
fn parse_pairs(text: &str) -> Result<BTreeMap<String, String>, (usize, &'static str)> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=').ok_or((i + 1, "expected NAME=value"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err((i + 1, "the name before `=` is empty"));
        }
        if out.insert(name.to_string(), value.to_string()).is_some() {
            return Err((i + 1, "this name was given before"));
        }
    }
    Ok(out)
}

/// `login_apps:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLoginApps {
    #[serde(default)]
    oauth: BTreeMap<String, FileApp>,
    #[serde(default)]
    oidc: Vec<FileOidcApp>,
}

/// An oauth preset's app.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApp {
    client_id: String,
    client_secret: Secret,
}

/// An OpenID provider's app, by issuer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOidcApp {
    issuer_url: String,
    client_id: String,
    client_secret: Secret,
}

/// The oauth presets an app may be given for (the policy crate's).
const OAUTH_PRESETS: &[&str] = &["google", "github", "gitlab", "microsoft"];

impl FileLoginApps {
    /// Validates the apps: known presets, issuer URLs over http(s), nothing empty.
    pub(crate) fn resolve(self) -> Result<LoginApps, ConfigError> {
        let at = |key: String, msg: &str| ConfigError::LoginApp {
            key,
            msg: msg.to_string(),
        };
        let app = |key: &str, id: String, secret: Secret| {
            if id.trim().is_empty() || secret.expose().trim().is_empty() {
                return Err(at(
                    key.to_string(),
                    "client_id and client_secret must not be empty",
                ));
            }
            Ok(LoginApp {
                client_id: id,
                client_secret: PolicySecret::new(secret.0),
            })
        };
        let mut apps = LoginApps::default();
        for (provider, a) in self.oauth {
            let key = format!("oauth.{provider}");
            let name = provider.to_ascii_lowercase();
            if !OAUTH_PRESETS.contains(&name.as_str()) {
                return Err(at(
                    key,
                    &format!(
                        "unknown oauth provider, expected one of: {}",
                        OAUTH_PRESETS.join(", ")
                    ),
                ));
            }
            apps.oauth
                .insert(name, app(&key, a.client_id, a.client_secret)?);
        }
        for (i, a) in self.oidc.into_iter().enumerate() {
            let key = format!("oidc[{i}]");
            let url = a.issuer_url.trim().to_string();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(at(key, "issuer_url must be an http(s) URL"));
            }
            if apps.oidc.contains_key(&url) {
                return Err(at(key, "issuer_url is given twice"));
            }
            let resolved = app(&key, a.client_id, a.client_secret)?;
            apps.oidc.insert(url, resolved);
        }
        Ok(apps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(yaml: &str, base: &Path) -> Result<SecretVault, String> {
        let v: FileVault = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        v.resolve("prod".into(), base).map_err(|e| e.to_string())
    }

    #[test]
    fn a_vault_has_exactly_one_source_that_exists() {
        let dir = std::env::temp_dir().join(format!("sluice-vault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test setup");
        std::fs::write(dir.join("team.env"), "# c\nA=1\n").expect("test setup");
        assert_eq!(
            vault("{file: team.env}", dir.as_path())
                .expect("test setup")
                .source,
            VaultSource::File(dir.as_path().join("team.env"))
        );
        assert!(
            vault("{env_prefix: P_, agents: true}", dir.as_path())
                .expect("test setup")
                .agents
        );
        for bad in [
            "{}",
            "{dir: ., env_prefix: X}",
            "{env_prefix: ''}",
            "{dir: nope}",
            "{file: nope}",
        ] {
            let e = vault(bad, dir.as_path()).expect_err("refused");
            assert!(e.starts_with("secret_vaults.prod: "), "{bad}: {e}");
        }
    }

    #[test]
    fn pairs_files_keep_values_as_written() {
        let p = parse_pairs("# comment\n\nA=1\n B = x=y \r\n").expect("test setup");
        assert_eq!(p["A"], "1");
        assert_eq!(p["B"], " x=y ");
        assert_eq!(
            parse_pairs("A=1\nsecret-without-equals\n"),
            Err((2, "expected NAME=value"))
        );
        assert_eq!(
            parse_pairs("A=1\nA=2"),
            Err((2, "this name was given before"))
        );
    }

    #[test]
    fn login_apps_are_checked_and_their_secrets_masked() {
        let apps: FileLoginApps = serde_yaml::from_str(
            "{oauth: {Google: {client_id: gid, client_secret: gsecret-value}}, oidc: [{issuer_url: 'https://idp.example/', client_id: o, client_secret: s}]}",
        )
        .expect("test setup");
        let apps = apps.resolve().expect("test setup");
        assert_eq!(apps.oauth["google"].client_id, "gid");
        assert!(!format!("{apps:?}").contains("gsecret-value"));
        let bad: FileLoginApps =
            serde_yaml::from_str("{oauth: {myspace: {client_id: a, client_secret: b}}}")
                .expect("test setup");
        let e = bad.resolve().expect_err("refused").to_string();
        assert!(
            e.starts_with("login_apps.oauth.myspace: unknown oauth provider"),
            "{e}"
        );
    }
}
