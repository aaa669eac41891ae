//! `agent policy check` and `agent policy test`: a traffic-policy file, offline.

use super::args::PolicyCommand;
use sluice_agent::policy_input;
use sluice_policy::dry_run;

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
        } => {
            let (_, policy) = policy_input::load_file(&file)?;
            let engine = sluice_policy::Engine::new(vec![policy]);
            let mut req = dry_run::DryRunRequest::parse(&request, &headers, client_ip)?;
            req.upstream_status = upstream_status;
            print!("{}", dry_run::run(&engine, &req)?);
        }
    }
    Ok(())
}
