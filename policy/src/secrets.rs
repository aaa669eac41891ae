//! Values a policy takes from its host when it loads: `secrets.get(vault, name)` from secret
//! vaults, and the operator's default sign-in apps for oauth / openid-connect without client
//! credentials. The host (the edge, `agent policy test`) supplies them in a [`LoadEnv`]; the
//! crate does no I/O, and a [`Secret`] never prints its value.

use crate::intel::Supplies;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

/// What a [`Secret`] shows in `Debug` and `Display` output.
pub const REDACTED: &str = "<secret>";

/// A secret value: shows as `<secret>` in `Debug` and `Display`, so it cannot leak through
/// a log line or a `{:?}` by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value; call it only where the value is used (compared, sent to a provider).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Why `secrets.get(vault, name)` has no value. Names the vault and the secret, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The host has no vault by that name; `hint` says where vaults are configured.
    #[error("no secret vault `{vault}` (for secret `{name}`): {hint}")]
    UnknownVault {
        /// The vault asked for.
        vault: String,
        /// The secret asked for.
        name: String,
        /// Where the host's vaults come from (`edge.yaml secret_vaults`, `--secret`).
        hint: String,
    },
    /// The vault has no secret by that name.
    #[error("secret `{name}` not found in vault `{vault}`")]
    UnknownName {
        /// The vault.
        vault: String,
        /// The secret asked for.
        name: String,
    },
    /// The vault has the secret but it could not be read (a file's permissions, not UTF-8).
    #[error("secret `{name}` of vault `{vault}` could not be read: {reason}")]
    Unreadable {
        /// The vault.
        vault: String,
        /// The secret.
        name: String,
        /// Why, without the value.
        reason: String,
    },
}

/// Where `secrets.get` values come from; the edge implements it over its configured vaults.
/// Asked once per `secrets.get` call when a policy compiles, never per request.
pub trait SecretSource: Send + Sync {
    /// The value of secret `name` in `vault`.
    fn secret(&self, vault: &str, name: &str) -> Result<Secret, SecretError>;
}

/// Secrets held in memory, by vault and name: `agent policy test --secret vault.name=value`,
/// and tests.
#[derive(Clone, Debug, Default)]
pub struct SecretMap {
    values: BTreeMap<(String, String), Secret>,
    hint: String,
}

impl SecretMap {
    /// An empty map; `hint` ends the message for an unknown vault (how to supply one).
    pub fn new(hint: impl Into<String>) -> Self {
        Self {
            values: BTreeMap::new(),
            hint: hint.into(),
        }
    }

    /// Adds (or replaces) secret `name` of `vault`.
    pub fn insert(&mut self, vault: &str, name: &str, value: Secret) {
        self.values
            .insert((vault.to_string(), name.to_string()), value);
    }
}

impl SecretSource for SecretMap {
    fn secret(&self, vault: &str, name: &str) -> Result<Secret, SecretError> {
        if let Some(v) = self.values.get(&(vault.to_string(), name.to_string())) {
            return Ok(v.clone());
        }
        if self.values.keys().any(|(v, _)| v == vault) {
            return Err(SecretError::UnknownName {
                vault: vault.to_string(),
                name: name.to_string(),
            });
        }
        Err(SecretError::UnknownVault {
            vault: vault.to_string(),
            name: name.to_string(),
            hint: self.hint.clone(),
        })
    }
}

/// An application registered at an identity provider: what oauth / openid-connect use when a
/// policy gives no `client_id` and `client_secret`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginApp {
    /// The application's client id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: Secret,
}

/// The operator's default sign-in apps: oauth presets by provider name (`google`), OpenID
/// providers by issuer URL. ngrok's managed apps, run by whoever runs the edge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginApps {
    /// By oauth provider name, lowercase.
    pub oauth: BTreeMap<String, LoginApp>,
    /// By OpenID issuer URL, as the policy's `issuer_url` spells it (a trailing `/` aside).
    pub oidc: BTreeMap<String, LoginApp>,
}

impl LoginApps {
    /// The default app for oauth preset `provider`.
    pub(crate) fn oauth(&self, provider: &str) -> Option<&LoginApp> {
        self.oauth.get(provider)
    }

    /// The default app for the OpenID provider at `issuer_url`.
    pub(crate) fn oidc(&self, issuer_url: &str) -> Option<&LoginApp> {
        let trimmed = issuer_url.trim_end_matches('/');
        self.oidc
            .iter()
            .find(|(k, _)| k.trim_end_matches('/') == trimmed)
            .map(|(_, app)| app)
    }
}

/// What a policy may take from its host when it compiles. [`LoadEnv::default`] has no vault and
/// no default app (a policy that needs one is refused); [`LoadEnv::deferred`] accepts every
/// reference with a placeholder, for checking a policy where another host resolves it later.
#[derive(Clone, Default)]
pub struct LoadEnv {
    secrets: Option<Arc<dyn SecretSource>>,
    login_apps: LoginApps,
    deferred: bool,
    /// The facts the host can answer (edge.yaml `facts:`); all of them unless told.
    supplies: Supplies,
}

impl fmt::Debug for LoadEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadEnv")
            .field("secrets", &self.secrets.is_some())
            .field("login_apps", &self.login_apps)
            .field("deferred", &self.deferred)
            .field("supplies", &self.supplies)
            .finish()
    }
}

impl LoadEnv {
    /// Accepts every `secrets.get` and every login action without credentials, with
    /// placeholder values: the agent checks a policy this way before the edge, which holds the
    /// vaults and default apps, compiles it for real. A source given with
    /// [`LoadEnv::with_secrets`] (or apps with [`LoadEnv::with_login_apps`]) is asked first.
    pub fn deferred() -> Self {
        Self {
            deferred: true,
            ..Self::default()
        }
    }

    /// Which edge facts the host can answer: a policy reading another is refused, naming the
    /// edge.yaml setting that would supply it.
    pub fn with_supplies(mut self, supplies: Supplies) -> Self {
        self.supplies = supplies;
        self
    }

    /// The facts the host can answer.
    pub(crate) fn supplies(&self) -> Supplies {
        self.supplies
    }

    /// Where `secrets.get` reads.
    pub fn with_secrets(mut self, secrets: Arc<dyn SecretSource>) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// The default sign-in apps.
    pub fn with_login_apps(mut self, apps: LoginApps) -> Self {
        self.login_apps = apps;
        self
    }

    /// The value of `secrets.get(vault, name)`.
    fn secret(&self, vault: &str, name: &str) -> Result<Secret, SecretError> {
        match &self.secrets {
            Some(s) => s.secret(vault, name),
            None if self.deferred => Ok(Secret::new(format!("placeholder-for-{vault}.{name}"))),
            None => Err(SecretError::UnknownVault {
                vault: vault.to_string(),
                name: name.to_string(),
                hint: "no secret vault is configured here".to_string(),
            }),
        }
    }

    /// The default app for a login action without credentials, `None` when there is none.
    pub(crate) fn login_app(&self, oauth: Option<&str>, issuer: Option<&str>) -> Option<LoginApp> {
        let configured = oauth
            .and_then(|p| self.login_apps.oauth(p))
            .or_else(|| issuer.and_then(|i| self.login_apps.oidc(i)))
            .cloned();
        configured.or_else(|| {
            self.deferred.then(|| LoginApp {
                client_id: "placeholder-client-id".to_string(),
                client_secret: Secret::new("placeholder-client-secret"),
            })
        })
    }
}

/// The secrets one policy resolved while compiling, kept so the engine can redact their values
/// from traces, logs and errors.
pub(crate) struct Resolver<'e> {
    env: &'e LoadEnv,
    used: Mutex<Vec<Secret>>,
}

impl<'e> Resolver<'e> {
    pub fn new(env: &'e LoadEnv) -> Self {
        Self {
            env,
            used: Mutex::new(Vec::new()),
        }
    }

    /// The host's environment.
    pub fn env(&self) -> &'e LoadEnv {
        self.env
    }

    /// Resolves `secrets.get(vault, name)` and remembers the value.
    pub fn get(&self, vault: &str, name: &str) -> Result<Secret, SecretError> {
        let s = self.env.secret(vault, name)?;
        self.remember(&s);
        Ok(s)
    }

    /// Remembers a value to redact (a default app's client secret).
    pub fn remember(&self, s: &Secret) {
        if let Ok(mut used) = self.used.lock() {
            used.push(s.clone());
        }
    }

    /// Every value resolved so far.
    pub fn into_used(self) -> Vec<Secret> {
        self.used.into_inner().unwrap_or_default()
    }
}

/// Replaces every occurrence of the `secrets`' values in `text` with `<secret>`. Empty values
/// are skipped (they would match everywhere and hide nothing).
pub(crate) fn redact(secrets: &[Secret], text: String) -> String {
    let mut out = text;
    for s in secrets {
        if !s.expose().is_empty() && out.contains(s.expose()) {
            out = out.replace(s.expose(), REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2-value");
        let app = LoginApp {
            client_id: "id".into(),
            client_secret: s.clone(),
        };
        for shown in [format!("{s:?}"), format!("{s}"), format!("{app:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(
            redact(&[s, Secret::new("")], "a hunter2-value b".into()),
            "a <secret> b"
        );
    }

    #[test]
    fn map_names_vault_and_secret() {
        let mut m = SecretMap::new("give --secret VAULT.NAME=VALUE");
        m.insert("prod", "token", Secret::new("v"));
        assert_eq!(m.secret("prod", "token").unwrap().expose(), "v");
        let e = m.secret("prod", "other").unwrap_err().to_string();
        assert_eq!(e, "secret `other` not found in vault `prod`");
        let e = m.secret("dev", "token").unwrap_err().to_string();
        assert!(e.contains("`dev`") && e.contains("--secret"), "{e}");
    }

    #[test]
    fn oidc_apps_match_with_or_without_trailing_slash() {
        let app = LoginApp {
            client_id: "id".into(),
            client_secret: Secret::new("s"),
        };
        let apps = LoginApps {
            oidc: BTreeMap::from([("https://idp.example/".to_string(), app.clone())]),
            ..LoginApps::default()
        };
        assert_eq!(apps.oidc("https://idp.example"), Some(&app));
        assert_eq!(apps.oidc("https://other.example"), None);
    }
}
