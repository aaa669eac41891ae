//! Turning the agent's policy inputs (shorthand flags, `--traffic-policy-file`) into the layers
//! sent to the edge, validated locally first so mistakes show before anything goes online.

use sluice_policy::{LoadEnv, Policy, Shorthand};
use sluice_proto::control::{PolicyKind, PolicySource};
use std::path::Path;

/// Why the policy inputs were refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyInputError {
    /// The policy file could not be read.
    #[error("--traffic-policy-file {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// One or more layers do not compile; one line per problem.
    #[error("invalid traffic policy:\n{0}")]
    Invalid(String),
}

/// Reads and compiles a policy file; the origin in messages is the path as given. Secrets and
/// the default sign-in apps are the edge's: here they are accepted unresolved
/// ([`LoadEnv::deferred`]), and the edge resolves them when the endpoint comes online.
pub fn load_file(path: &Path) -> Result<(PolicySource, Policy), PolicyInputError> {
    load_file_with(path, &LoadEnv::deferred())
}

/// [`load_file`] with secrets and default apps from `env` (`agent policy test --secret`).
pub fn load_file_with(
    path: &Path,
    env: &LoadEnv,
) -> Result<(PolicySource, Policy), PolicyInputError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PolicyInputError::Read {
        path: shown.clone(),
        source,
    })?;
    let policy = Policy::parse_with(&text, &shown, env)
        .map_err(|e| PolicyInputError::Invalid(e.to_string()))?;
    let source = PolicySource {
        origin: shown,
        kind: PolicyKind::Document,
        text,
    };
    Ok((source, policy))
}

/// The layers for one endpoint: shorthand flags first (as ngrok places them), then the file.
/// Every layer is compiled here; all problems are reported together.
pub fn layers(
    flags: &Shorthand,
    file: Option<&Path>,
) -> Result<Vec<PolicySource>, PolicyInputError> {
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    if !flags.is_empty() {
        match flags.compile_with(&LoadEnv::deferred()) {
            Ok(_) => sources.push(PolicySource {
                origin: "flags".to_string(),
                kind: PolicyKind::Shorthand,
                // Serialising a struct of string lists cannot fail.
                text: serde_json::to_string(flags).unwrap_or_default(),
            }),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if let Some(path) = file {
        match load_file(path) {
            Ok((source, _)) => sources.push(source),
            Err(PolicyInputError::Invalid(e)) => problems.push(e),
            Err(read) => return Err(read),
        }
    }
    if problems.is_empty() {
        Ok(sources)
    } else {
        Err(PolicyInputError::Invalid(problems.join("\n")))
    }
}

/// An inline policy (from a config file) as a layer, compiled here; errors name `origin` and
/// the place inside the policy.
pub fn inline(text: String, origin: &str) -> Result<PolicySource, PolicyInputError> {
    Policy::parse_with(&text, origin, &LoadEnv::deferred()).map_err(|e| {
        let lines: Vec<String> = e
            .errors()
            .iter()
            .map(|p| match p.path.as_str() {
                "" => format!("{origin}: {}", p.message),
                path => format!("{origin}: {path}: {}", p.message),
            })
            .collect();
        PolicyInputError::Invalid(lines.join("\n"))
    })?;
    Ok(PolicySource {
        origin: origin.to_string(),
        kind: PolicyKind::Document,
        text,
    })
}
