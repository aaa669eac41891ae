//! `agent policy check` and `agent policy test`: a traffic-policy file, offline.

use super::args::PolicyCommand;
use anyhow::Context;
use sluice_agent::policy_input;
use sluice_policy::{dry_run, LoadEnv, Secret, SecretMap};
use std::sync::Arc;

/// Validates the policy file, or evaluates it against one request and prints what it would do.
pub fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Check { file } => {
            let (_, policy) = policy_input::load_file(&file)?;
            let (request, response) = policy.rule_counts();
            println!(
                "{}: ok ({request} request rules, {response} response rules)",
                file.display()
            );
        }
        PolicyCommand::Test {
            file,
            request,
            headers,
            client_ip,
            upstream_status,
            secrets,
        } => {
            let (_, policy) = policy_input::load_file_with(&file, &test_env(&secrets)?)?;
            let engine = sluice_policy::Engine::new(vec![policy]);
            let mut req = dry_run::DryRunRequest::parse(&request, &headers, client_ip)?;
            req.upstream_status = upstream_status;
            print!("{}", dry_run::run(&engine, &req)?);
        }
    }
    Ok(())
}

/// The dry run's environment: `--secret VAULT.NAME=VALUE` values for `secrets.get`, and a
/// placeholder default app for oauth / openid-connect without credentials (sign-in needs the
/// edge anyway). A secret the policy names but no flag gives is an error naming it.
fn test_env(flags: &[String]) -> anyhow::Result<LoadEnv> {
    let mut map = SecretMap::new("give it with --secret VAULT.NAME=VALUE");
    for flag in flags {
        // The message quotes only the part before `=`: the rest is the secret.
        let (key, value) = flag
            .split_once('=')
            .context("--secret: expected VAULT.NAME=VALUE")?;
        let (vault, name) = key
            .split_once('.')
            .with_context(|| format!("--secret {key}=…: expected VAULT.NAME=VALUE"))?;
        map.insert(vault, name, Secret::new(value));
    }
    Ok(LoadEnv::deferred().with_secrets(Arc::new(map)))
}
