//! The admin API's routes: one [`Op`] per operation, with its method and path template, and
//! [`route`], which finds the operation a request names. The OpenAPI document lists the same
//! table (a unit test in `listener.rs` holds the two together).

use http::Method;

/// One operation of the admin API. `name()` is its `operationId` in the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    ListCredentials,
    CreateCredential,
    GetCredential,
    UpdateCredential,
    DeleteCredential,
    ListReservedDomains,
    CreateReservedDomain,
    GetReservedDomain,
    DeleteReservedDomain,
    ListReservedAddrs,
    CreateReservedAddr,
    GetReservedAddr,
    DeleteReservedAddr,
    ListTunnelSessions,
    GetTunnelSession,
    StopTunnelSession,
    ListEndpoints,
    CreateEndpoint,
    GetEndpoint,
    DeleteEndpoint,
    OpenApi,
}

impl Op {
    /// Every operation.
    pub(crate) const ALL: [Op; 21] = [
        Op::ListCredentials,
        Op::CreateCredential,
        Op::GetCredential,
        Op::UpdateCredential,
        Op::DeleteCredential,
        Op::ListReservedDomains,
        Op::CreateReservedDomain,
        Op::GetReservedDomain,
        Op::DeleteReservedDomain,
        Op::ListReservedAddrs,
        Op::CreateReservedAddr,
        Op::GetReservedAddr,
        Op::DeleteReservedAddr,
        Op::ListTunnelSessions,
        Op::GetTunnelSession,
        Op::StopTunnelSession,
        Op::ListEndpoints,
        Op::CreateEndpoint,
        Op::GetEndpoint,
        Op::DeleteEndpoint,
        Op::OpenApi,
    ];

    /// Its method and path template (`{id}` stands for one path segment).
    pub(crate) fn route(self) -> (Method, &'static str) {
        use Op::*;
        let (get, post, patch, delete) = (Method::GET, Method::POST, Method::PATCH, Method::DELETE);
        match self {
            ListCredentials => (get, "/credentials"),
            CreateCredential => (post, "/credentials"),
            GetCredential => (get, "/credentials/{id}"),
            UpdateCredential => (patch, "/credentials/{id}"),
            DeleteCredential => (delete, "/credentials/{id}"),
            ListReservedDomains => (get, "/reserved_domains"),
            CreateReservedDomain => (post, "/reserved_domains"),
            GetReservedDomain => (get, "/reserved_domains/{id}"),
            DeleteReservedDomain => (delete, "/reserved_domains/{id}"),
            ListReservedAddrs => (get, "/reserved_addrs"),
            CreateReservedAddr => (post, "/reserved_addrs"),
            GetReservedAddr => (get, "/reserved_addrs/{id}"),
            DeleteReservedAddr => (delete, "/reserved_addrs/{id}"),
            ListTunnelSessions => (get, "/tunnel_sessions"),
            GetTunnelSession => (get, "/tunnel_sessions/{id}"),
            StopTunnelSession => (post, "/tunnel_sessions/{id}/stop"),
            ListEndpoints => (get, "/endpoints"),
            CreateEndpoint => (post, "/endpoints"),
            GetEndpoint => (get, "/endpoints/{id}"),
            DeleteEndpoint => (delete, "/endpoints/{id}"),
            OpenApi => (get, "/openapi.json"),
        }
    }

    /// Its `operationId`: the variant's name in snake case (`list_credentials`).
    pub(crate) fn name(self) -> String {
        let mut out = String::new();
        for (i, c) in format!("{self:?}").chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        }
        out
    }

    /// Whether anyone may call it without an admin token: only the OpenAPI document, which is
    /// the same public text for every edge (docs/admin-api.openapi.json) and which API tools
    /// fetch before they know about tokens.
    pub(crate) fn is_public(self) -> bool {
        self == Op::OpenApi
    }

    /// Whether it changes something (and so is logged at info and audited).
    pub(crate) fn is_change(self) -> bool {
        self.route().0 != Method::GET
    }
}

/// Why no operation answers a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No path of the API looks like this one.
    NoPath,
    /// The path exists, for these other methods.
    NoMethod(Vec<Method>),
}

/// The operation `method` on `path` names, and the `{id}` segment when its template has one.
pub(crate) fn route(method: &Method, path: &str) -> Result<(Op, Option<String>), Miss> {
    let mut allowed = Vec::new();
    for op in Op::ALL {
        let (op_method, template) = op.route();
        let Some(id) = matches(template, path) else {
            continue;
        };
        if op_method == method {
            return Ok((op, id));
        }
        allowed.push(op_method);
    }
    match allowed.is_empty() {
        true => Err(Miss::NoPath),
        false => Err(Miss::NoMethod(allowed)),
    }
}

/// Whether `path` fits `template`: `Some(id)` when it does (`None` inside when the template
/// has no `{id}`), `None` when it does not. An `{id}` segment must not be empty; it is passed
/// on as sent (percent-encoding included: ids are plain ASCII).
fn matches(template: &str, path: &str) -> Option<Option<String>> {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    let mut id = None;
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(id),
            (Some("{id}"), Some(seg)) if !seg.is_empty() => id = Some(seg.to_string()),
            (Some(a), Some(b)) if a == b => {}
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods_find_their_operation() {
        assert_eq!(
            route(&Method::GET, "/credentials"),
            Ok((Op::ListCredentials, None))
        );
        assert_eq!(
            route(&Method::POST, "/tunnel_sessions/ses_1/stop"),
            Ok((Op::StopTunnelSession, Some("ses_1".into())))
        );
        assert_eq!(
            route(&Method::PATCH, "/credentials/cr_9"),
            Ok((Op::UpdateCredential, Some("cr_9".into())))
        );
        assert_eq!(
            route(&Method::PUT, "/credentials/cr_9"),
            Err(Miss::NoMethod(vec![
                Method::GET,
                Method::PATCH,
                Method::DELETE
            ]))
        );
        for missing in [
            "/",
            "/credentials/",
            "/credentials/a/b",
            "/credentialsx",
            "//credentials",
        ] {
            assert_eq!(route(&Method::GET, missing), Err(Miss::NoPath), "{missing}");
        }
        assert_eq!(Op::StopTunnelSession.name(), "stop_tunnel_session");
        assert_eq!(Op::OpenApi.name(), "open_api");
    }
}
