//! `edge admin …`: one admin API call per command, printed as a table (or the API's JSON with
//! `--json`).

use super::admin_args::{
    AdminArgs, AdminCommand, CredentialsCommand, EndpointsCommand, Limit, Notes,
    ReservedAddrsCommand, ReservedDomainsCommand, SessionsCommand,
};
use super::client::{AdminClient, Answer};
use super::table::{render, Row};
use anyhow::{anyhow, Context};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use sluice_edge::admin::model::{
    Credential, CredentialCreate, Endpoint, EndpointCreate, Page, ReservedAddr, ReservedAddrCreate,
    ReservedDomain, ReservedDomainCreate, TunnelSession,
};

/// A call: method, path, body.
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
}

impl Call {
    fn get(path: &str) -> Self {
        Self::new(Method::GET, path.to_string(), None)
    }

    fn new(method: Method, path: String, body: Option<Value>) -> Self {
        Self { method, path, body }
    }
}

/// How a successful answer is shown as text.
enum Show {
    /// A list of the collection `name`.
    List(&'static str, fn(&str, &str) -> anyhow::Result<String>),
    /// One object.
    One(fn(&str) -> anyhow::Result<String>),
    /// No body: this sentence.
    Done(String),
}

/// Runs one `edge admin` command.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let token = args
        .token
        .ok_or_else(|| anyhow!("no admin token: pass --token TOKEN or set SLUICE_ADMIN_TOKEN"))?;
    let client = AdminClient::new(&args.url, token)?;
    let (call, show) = plan(args.what)?;
    let answer = client
        .call(call.method, &call.path, call.body.as_ref())
        .await?;
    print!("{}", output(&answer, &show, args.json)?);
    Ok(())
}

/// The text printed for `answer`.
fn output(answer: &Answer, show: &Show, raw: bool) -> anyhow::Result<String> {
    if raw {
        return Ok(match answer.body.is_empty() {
            true => String::new(),
            false => format!("{}\n", answer.body.trim_end()),
        });
    }
    match show {
        Show::List(name, table) => table(name, &answer.body),
        Show::One(table) => table(&answer.body),
        Show::Done(sentence) => Ok(format!("{sentence}\n")),
    }
}

/// A list answer as a table.
fn list<T: Row + DeserializeOwned>(name: &str, body: &str) -> anyhow::Result<String> {
    let mut page: Page<T> = parse(body)?;
    Ok(render(&page.items.remove(name).unwrap_or_default()))
}

/// A one-object answer as a one-row table.
fn one<T: Row + DeserializeOwned>(body: &str) -> anyhow::Result<String> {
    Ok(render(&[parse::<T>(body)?]))
}

/// A new credential: its row, then its token, which no later answer repeats.
fn new_credential(body: &str) -> anyhow::Result<String> {
    let credential: Credential = parse(body)?;
    let token = credential.token.clone().unwrap_or_default();
    Ok(format!(
        "{}\nToken (shown only now; store it): {token}\n",
        render(&[credential])
    ))
}

fn parse<T: DeserializeOwned>(body: &str) -> anyhow::Result<T> {
    serde_json::from_str(body).context("the admin API's answer is not what this edge expects")
}

/// The call a command makes and how its answer is shown.
fn plan(what: AdminCommand) -> anyhow::Result<(Call, Show)> {
    Ok(match what {
        AdminCommand::Credentials(c) => credentials(c)?,
        AdminCommand::Sessions(SessionsCommand::List) => (
            Call::get("/tunnel_sessions"),
            Show::List("tunnel_sessions", list::<TunnelSession>),
        ),
        AdminCommand::Sessions(SessionsCommand::Stop { id }) => (
            Call::new(Method::POST, format!("/tunnel_sessions/{id}/stop"), None),
            Show::Done(format!("Stopped session {id}")),
        ),
        AdminCommand::ReservedDomains(c) => reserved_domains(c)?,
        AdminCommand::ReservedAddrs(c) => reserved_addrs(c)?,
        AdminCommand::Endpoints(c) => endpoints(c)?,
    })
}

fn create<T: serde::Serialize>(path: &str, body: &T, show: Show) -> anyhow::Result<(Call, Show)> {
    let body = serde_json::to_value(body)?;
    Ok((Call::new(Method::POST, path.into(), Some(body)), show))
}

fn delete(collection: &str, id: &str, what: &str) -> (Call, Show) {
    (
        Call::new(Method::DELETE, format!("/{collection}/{id}"), None),
        Show::Done(format!("Deleted {what} {id}")),
    )
}

fn credentials(c: CredentialsCommand) -> anyhow::Result<(Call, Show)> {
    Ok(match c {
        CredentialsCommand::Create {
            notes,
            acl,
            max_sessions,
            max_endpoints,
        } => {
            let new = CredentialCreate {
                description: notes.description,
                metadata: notes.metadata,
                acl: (!acl.is_empty()).then_some(acl),
                max_sessions,
                max_endpoints,
            };
            create("/credentials", &new, Show::One(new_credential))?
        }
        CredentialsCommand::List => (
            Call::get("/credentials"),
            Show::List("credentials", list::<Credential>),
        ),
        CredentialsCommand::Update {
            id,
            notes,
            acl,
            clear_acl,
            max_sessions,
            max_endpoints,
        } => {
            let change = update(notes, acl, clear_acl, max_sessions, max_endpoints);
            let path = format!("/credentials/{id}");
            let call = Call::new(Method::PATCH, path, Some(change));
            (call, Show::One(one::<Credential>))
        }
        CredentialsCommand::Delete { id } => delete("credentials", &id, "credential"),
    })
}

/// The `PATCH` body: only the fields given, since an absent field stays as it is and a
/// `null` limit clears it (so the model's type, which writes every field, cannot be sent).
fn update(
    notes: Notes,
    acl: Vec<String>,
    clear_acl: bool,
    max_sessions: Option<Limit>,
    max_endpoints: Option<Limit>,
) -> Value {
    let mut change = Map::new();
    if let Some(d) = notes.description {
        change.insert("description".into(), json!(d));
    }
    if let Some(m) = notes.metadata {
        change.insert("metadata".into(), json!(m));
    }
    if clear_acl || !acl.is_empty() {
        change.insert("acl".into(), json!(acl));
    }
    for (name, limit) in [
        ("max_sessions", max_sessions),
        ("max_endpoints", max_endpoints),
    ] {
        if let Some(Limit(n)) = limit {
            change.insert(name.into(), json!(n));
        }
    }
    Value::Object(change)
}

fn reserved_domains(c: ReservedDomainsCommand) -> anyhow::Result<(Call, Show)> {
    Ok(match c {
        ReservedDomainsCommand::Create {
            domain,
            credential,
            notes,
        } => {
            let new = ReservedDomainCreate {
                domain,
                credential_id: credential,
                description: notes.description,
                metadata: notes.metadata,
            };
            create("/reserved_domains", &new, Show::One(one::<ReservedDomain>))?
        }
        ReservedDomainsCommand::List => (
            Call::get("/reserved_domains"),
            Show::List("reserved_domains", list::<ReservedDomain>),
        ),
        ReservedDomainsCommand::Delete { id } => delete("reserved_domains", &id, "reserved domain"),
    })
}

fn reserved_addrs(c: ReservedAddrsCommand) -> anyhow::Result<(Call, Show)> {
    Ok(match c {
        ReservedAddrsCommand::Create {
            addr,
            credential,
            notes,
        } => {
            let new = ReservedAddrCreate {
                addr,
                credential_id: credential,
                description: notes.description,
                metadata: notes.metadata,
            };
            create("/reserved_addrs", &new, Show::One(one::<ReservedAddr>))?
        }
        ReservedAddrsCommand::List => (
            Call::get("/reserved_addrs"),
            Show::List("reserved_addrs", list::<ReservedAddr>),
        ),
        ReservedAddrsCommand::Delete { id } => delete("reserved_addrs", &id, "reserved address"),
    })
}

fn endpoints(c: EndpointsCommand) -> anyhow::Result<(Call, Show)> {
    Ok(match c {
        EndpointsCommand::List => (
            Call::get("/endpoints"),
            Show::List("endpoints", list::<Endpoint>),
        ),
        EndpointsCommand::Create {
            url,
            traffic_policy,
            traffic_policy_file,
            pooling_enabled,
            credential,
            notes,
        } => {
            let traffic_policy = match (traffic_policy, traffic_policy_file) {
                (Some(text), _) => text,
                (None, Some(path)) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                (None, None) => anyhow::bail!("give --traffic-policy or --traffic-policy-file"),
            };
            let new = EndpointCreate {
                url,
                kind: None,
                traffic_policy,
                pooling_enabled,
                credential_id: credential,
                description: notes.description,
                metadata: notes.metadata,
            };
            create("/endpoints", &new, Show::One(one::<Endpoint>))?
        }
        EndpointsCommand::Delete { id } => delete("endpoints", &id, "endpoint"),
    })
}
