//! The edge's secret vaults (`edge.yaml` `secret_vaults:`) as the policy crate's
//! [`SecretSource`]: read each time a policy that names a secret compiles, so a rotated file
//! or variable takes effect when the endpoint next comes online.

use crate::config::secrets::{read_pairs, MAX_SECRET_FILE};
use crate::config::{SecretVault, VaultSource};
use sluice_policy::{Secret, SecretError, SecretSource};
use std::io::Read;
use std::path::Path;

/// The configured vaults, as one kind of policy sees them.
pub struct Vaults {
    vaults: Vec<SecretVault>,
    /// Agents' view: only vaults marked `agents: true`.
    agents_only: bool,
}

impl Vaults {
    /// Every vault: what `edge.yaml`'s own policies read.
    pub fn operator(vaults: &[SecretVault]) -> Self {
        Self {
            vaults: vaults.to_vec(),
            agents_only: false,
        }
    }

    /// The vaults agents' policies may read (`agents: true`).
    pub fn agents(vaults: &[SecretVault]) -> Self {
        Self {
            vaults: vaults.iter().filter(|v| v.agents).cloned().collect(),
            agents_only: true,
        }
    }
}

impl SecretSource for Vaults {
    fn secret(&self, vault: &str, name: &str) -> Result<Secret, SecretError> {
        let Some(v) = self.vaults.iter().find(|v| v.name == vault) else {
            let hint = if self.agents_only {
                "agents' policies read the vaults edge.yaml `secret_vaults:` marks `agents: true`"
            } else {
                "vaults are configured in edge.yaml `secret_vaults:`"
            };
            return Err(SecretError::UnknownVault {
                vault: vault.to_string(),
                name: name.to_string(),
                hint: hint.to_string(),
            });
        };
        let unknown = || SecretError::UnknownName {
            vault: vault.to_string(),
            name: name.to_string(),
        };
        let unreadable = |reason: String| SecretError::Unreadable {
            vault: vault.to_string(),
            name: name.to_string(),
            reason,
        };
        let value = match &v.source {
            VaultSource::Dir(dir) => {
                if !is_file_name(name) {
                    return Err(unknown());
                }
                read_secret_file(&dir.join(name)).map_err(|e| match e {
                    None => unknown(),
                    Some(reason) => unreadable(reason),
                })?
            }
            VaultSource::Env { prefix } => match std::env::var(format!("{prefix}{name}")) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => return Err(unknown()),
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(unreadable("the variable is not UTF-8".to_string()))
                }
            },
            VaultSource::File(path) => read_pairs(path)
                .map_err(unreadable)?
                .remove(name)
                .ok_or_else(unknown)?,
        };
        Ok(Secret::new(value))
    }
}

/// A plain file name: no path separator, not hidden (so `..` cannot leave the directory).
fn is_file_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

/// A secret file's value without one trailing newline; `Err(None)` when there is no such file.
fn read_secret_file(path: &Path) -> Result<String, Option<String>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(None),
        Err(e) => return Err(Some(e.to_string())),
    };
    if !file.metadata().map_err(|e| Some(e.to_string()))?.is_file() {
        return Err(None);
    }
    let mut text = String::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| Some(e.to_string()))?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(Some(format!("larger than {MAX_SECRET_FILE} bytes")));
    }
    if let Some(t) = text.strip_suffix('\n') {
        let t = t.strip_suffix('\r').unwrap_or(t);
        text.truncate(t.len());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(name: &str, source: VaultSource, agents: bool) -> SecretVault {
        SecretVault {
            name: name.into(),
            source,
            agents,
        }
    }

    #[test]
    fn each_kind_of_vault_reads_its_secrets() {
        let dir = std::env::temp_dir().join(format!("sluice-vaults-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).expect("test setup");
        std::fs::write(dir.join("d/token"), "tok-value\n\n").expect("test setup");
        std::fs::write(dir.join("d/.hidden"), "x").expect("test setup");
        std::fs::write(dir.join("pairs.env"), "K=pair-value\n").expect("test setup");
        std::env::set_var("SLUICE_TEST_VAULT_K", "env-value");
        let all = [
            vault("d", VaultSource::Dir(dir.join("d")), false),
            vault("f", VaultSource::File(dir.join("pairs.env")), true),
            vault(
                "e",
                VaultSource::Env {
                    prefix: "SLUICE_TEST_VAULT_".into(),
                },
                false,
            ),
        ];
        let v = Vaults::operator(&all);
        let get = |vault, name| v.secret(vault, name).map(|s| s.expose().to_string());
        // One trailing newline goes, the rest of the content stays.
        assert_eq!(get("d", "token").expect("test setup"), "tok-value\n");
        assert_eq!(get("f", "K").expect("test setup"), "pair-value");
        assert_eq!(get("e", "K").expect("test setup"), "env-value");
        for (vault, name) in [
            ("d", "../pairs.env"),
            ("d", ".hidden"),
            ("d", "none"),
            ("f", "X"),
            ("e", "X"),
        ] {
            assert!(
                matches!(v.secret(vault, name), Err(SecretError::UnknownName { .. })),
                "{vault}.{name}"
            );
        }
        let agents = Vaults::agents(&all);
        assert!(agents.secret("f", "K").is_ok());
        let e = agents
            .secret("d", "token")
            .expect_err("refused")
            .to_string();
        assert!(e.contains("agents: true"), "{e}");
    }
}
