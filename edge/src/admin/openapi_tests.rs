//! Keeps docs/admin-api.openapi.json true: it lists exactly the listener's operations, and the
//! model's values, serialized, are valid against its schemas, field by field.

use super::api::AdminError;
use super::listener::OPENAPI;
use super::model::{
    Credential, CredentialCreate, CredentialUpdate, Endpoint, EndpointCreate, ErrorBody, Link,
    Page, Ref, ReservedAddr, ReservedAddrCreate, ReservedDomain, ReservedDomainCreate, Source,
    TunnelSession,
};
use super::routes::Op;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn doc() -> Value {
    serde_json::from_str(OPENAPI).expect("the OpenAPI document is JSON")
}

/// `value` checked against `#/components/schemas/{name}`: the errors, empty when valid.
fn errors(doc: &Value, name: &str, value: &Value) -> Vec<String> {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"],
    });
    let validator = jsonschema::draft202012::new(&schema).expect("the schemas compile");
    validator
        .iter_errors(value)
        .map(|e| format!("{name}: {e} at {}", e.instance_path()))
        .collect()
}

fn assert_fits<T: Serialize>(doc: &Value, name: &str, value: &T) {
    let value = serde_json::to_value(value).expect("serializes");
    let errs = errors(doc, name, &value);
    assert!(errs.is_empty(), "{value}\n{errs:#?}");
}

#[test]
fn the_document_lists_exactly_the_listeners_operations() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, methods) in doc["paths"].as_object().expect("paths") {
        for (method, op) in methods.as_object().expect("methods") {
            let id = op["operationId"].as_str().expect("operationId");
            documented.insert((method.to_uppercase(), path.clone(), id.to_string()));
        }
    }
    let served: BTreeSet<_> = Op::ALL
        .iter()
        .map(|op| {
            let (method, path) = op.route();
            (method.to_string(), path.to_string(), op.name())
        })
        .collect();
    assert_eq!(documented, served);
    for op in Op::ALL {
        let (method, path) = op.route();
        let entry = &doc["paths"][path][method.as_str().to_lowercase()];
        // Public operations (the document itself) say so; every other one needs the token.
        assert_eq!(
            entry["security"] == json!([]),
            op.is_public(),
            "{path} {method}"
        );
        if !op.is_public() {
            for status in ["401", "429", "503"] {
                assert!(
                    entry["responses"][status].is_object(),
                    "{path} {method} {status}"
                );
            }
        }
    }
    assert_eq!(doc["security"], json!([{"bearer": []}]));
}

fn reference(kind: &str, id: &str) -> Ref {
    Ref {
        id: id.into(),
        uri: format!("/{kind}/{id}"),
    }
}

fn credential(full: bool) -> Credential {
    Credential {
        id: "cr_1".into(),
        uri: "/credentials/cr_1".into(),
        created_at: "2026-01-02T03:04:05Z".into(),
        description: "ci".into(),
        metadata: "{\"team\":1}".into(),
        acl: vec!["bind:ci-*.example.com".into()],
        max_sessions: full.then_some(3),
        max_endpoints: full.then_some(u32::MAX),
        source: if full { Source::Api } else { Source::Config },
        token: full.then(|| "secret".into()),
    }
}

fn endpoint(agent: bool) -> Endpoint {
    Endpoint {
        id: "ep_1".into(),
        uri: "/endpoints/ep_1".into(),
        kind: if agent { "agent" } else { "cloud" }.into(),
        url: "https://a.example.com".into(),
        proto: "https".into(),
        binding: "public".into(),
        pooling_enabled: agent,
        tunnel_session: agent.then(|| reference("tunnel_sessions", "ses_1")),
        credential: agent.then(|| reference("credentials", "cr_1")),
        traffic_policy: (!agent).then(|| "on_http_request: []".into()),
        description: String::new(),
        metadata: String::new(),
        source: (!agent).then_some(Source::Api),
    }
}

fn reserved_domain() -> ReservedDomain {
    ReservedDomain {
        id: "rd_1".into(),
        uri: "/reserved_domains/rd_1".into(),
        created_at: "2026-01-02T03:04:05Z".into(),
        description: String::new(),
        metadata: String::new(),
        domain: "a.example.com".into(),
        credential: reference("credentials", "cr_1"),
    }
}

fn reserved_addr() -> ReservedAddr {
    ReservedAddr {
        id: "ra_1".into(),
        uri: "/reserved_addrs/ra_1".into(),
        created_at: "2026-01-02T03:04:05Z".into(),
        description: String::new(),
        metadata: String::new(),
        addr: "example.com:20001".into(),
        credential: reference("credentials", "cr_1"),
    }
}

fn session() -> TunnelSession {
    TunnelSession {
        id: "ses_1".into(),
        uri: "/tunnel_sessions/ses_1".into(),
        credential: reference("credentials", "cr_1"),
        agent_version: "0.1.0".into(),
        ip: "192.0.2.1".into(),
        started_at: "2026-01-02T03:04:05Z".into(),
        endpoints: vec!["https://a.example.com".into()],
        links: vec![Link {
            remote_addr: "192.0.2.1:50000".into(),
            transport: "quic".into(),
            edge_id: Some("edge-1".into()),
        }],
    }
}

#[test]
fn answers_fit_their_schemas() {
    let doc = doc();
    for full in [true, false] {
        assert_fits(&doc, "Credential", &credential(full));
        assert_fits(&doc, "Endpoint", &endpoint(full));
    }
    assert_fits(&doc, "ReservedDomain", &reserved_domain());
    assert_fits(&doc, "ReservedAddr", &reserved_addr());
    assert_fits(&doc, "TunnelSession", &session());
    let c = vec![credential(true), credential(false)];
    assert_fits(&doc, "CredentialList", &Page::all("credentials", c));
    let e = vec![endpoint(true), endpoint(false)];
    assert_fits(&doc, "EndpointList", &Page::all("endpoints", e));
    let d = vec![reserved_domain()];
    assert_fits(
        &doc,
        "ReservedDomainList",
        &Page::all("reserved_domains", d),
    );
    let a = vec![reserved_addr()];
    assert_fits(&doc, "ReservedAddrList", &Page::all("reserved_addrs", a));
    let s = vec![session()];
    assert_fits(&doc, "TunnelSessionList", &Page::all("tunnel_sessions", s));
    let empty: Vec<Credential> = Vec::new();
    assert_fits(&doc, "CredentialList", &Page::all("credentials", empty));
    for e in [
        AdminError::NotFound {
            kind: "credential",
            id: "cr_x".into(),
        },
        AdminError::Invalid("bad".into()),
        AdminError::Conflict("taken".into()),
        AdminError::Store("down".into()),
    ] {
        let body = ErrorBody {
            error_code: e.code().into(),
            status_code: e.status(),
            msg: e.to_string(),
        };
        assert_fits(&doc, "Error", &body);
    }
}

#[test]
fn requests_fit_their_schemas() {
    let doc = doc();
    let full_create = CredentialCreate {
        description: Some("d".into()),
        metadata: Some("m".into()),
        acl: Some(vec!["bind:*".into()]),
        max_sessions: Some(1),
        max_endpoints: Some(2),
    };
    assert_fits(&doc, "CredentialCreate", &full_create);
    assert_fits(&doc, "CredentialCreate", &CredentialCreate::default());
    let update = CredentialUpdate {
        max_sessions: Some(None),
        max_endpoints: Some(Some(4)),
        ..CredentialUpdate::default()
    };
    assert_fits(&doc, "CredentialUpdate", &update);
    let domain = ReservedDomainCreate {
        domain: "a".into(),
        credential_id: "cr_1".into(),
        description: Some("d".into()),
        metadata: None,
    };
    assert_fits(&doc, "ReservedDomainCreate", &domain);
    let addr = ReservedAddrCreate {
        addr: Some("20001".into()),
        credential_id: "cr_1".into(),
        ..ReservedAddrCreate::default()
    };
    assert_fits(&doc, "ReservedAddrCreate", &addr);
    let cloud = EndpointCreate {
        url: "https://a.example.com".into(),
        kind: Some("cloud".into()),
        traffic_policy: "on_http_request: []".into(),
        pooling_enabled: true,
        credential_id: Some("cr_1".into()),
        description: None,
        metadata: Some("m".into()),
    };
    assert_fits(&doc, "EndpointCreate", &cloud);
    assert_fits(&doc, "EndpointCreate", &EndpointCreate::default());
}

/// Every schema of an object names exactly the fields its type serializes (when all are
/// set), so a field added to the model and not to the document, or the reverse, fails here.
#[test]
fn schemas_name_exactly_the_models_fields() {
    let doc = doc();
    let full = CredentialCreate {
        max_sessions: Some(1),
        ..CredentialCreate::default()
    };
    let values: Vec<(&str, Value)> = vec![
        (
            "Credential",
            serde_json::to_value(credential(true)).expect("json"),
        ),
        (
            "CredentialCreate",
            serde_json::to_value(full).expect("json"),
        ),
        (
            "CredentialUpdate",
            serde_json::to_value(CredentialUpdate::default()).expect("json"),
        ),
        (
            "Endpoint",
            serde_json::to_value(endpoint(true)).expect("json"),
        ),
        (
            "EndpointCreate",
            serde_json::to_value(EndpointCreate::default()).expect("json"),
        ),
        (
            "ReservedDomain",
            serde_json::to_value(reserved_domain()).expect("json"),
        ),
        (
            "ReservedDomainCreate",
            serde_json::to_value(ReservedDomainCreate::default()).expect("json"),
        ),
        (
            "ReservedAddr",
            serde_json::to_value(reserved_addr()).expect("json"),
        ),
        (
            "ReservedAddrCreate",
            serde_json::to_value(ReservedAddrCreate::default()).expect("json"),
        ),
        (
            "TunnelSession",
            serde_json::to_value(session()).expect("json"),
        ),
        (
            "Link",
            serde_json::to_value(&session().links[0]).expect("json"),
        ),
        (
            "Ref",
            serde_json::to_value(reference("credentials", "cr_1")).expect("json"),
        ),
    ];
    for (name, value) in values {
        let fields: BTreeSet<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        let schema = &doc["components"]["schemas"][name];
        let documented: BTreeSet<&str> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, documented, "{name}");
        // serde refuses unknown fields in requests and Sluice adds none to answers.
        assert_eq!(schema["additionalProperties"], false, "{name}");
    }
}

/// The checks above can fail: a wrong type, a missing field and an unknown one are caught.
#[test]
fn the_schemas_refuse_what_the_model_would_not_produce() {
    let doc = doc();
    let mut wrong = serde_json::to_value(credential(true)).expect("json");
    wrong["max_sessions"] = json!("three");
    assert!(!errors(&doc, "Credential", &wrong).is_empty());
    let mut missing = serde_json::to_value(credential(false)).expect("json");
    missing.as_object_mut().expect("object").remove("acl");
    assert!(!errors(&doc, "Credential", &missing).is_empty());
    let extra = json!({"credential_id": "cr_1", "owner": "x"});
    assert!(!errors(&doc, "ReservedAddrCreate", &extra).is_empty());
    let bad_kind = json!({"url": "https://a", "traffic_policy": "", "type": "agent"});
    assert!(!errors(&doc, "EndpointCreate", &bad_kind).is_empty());
}
