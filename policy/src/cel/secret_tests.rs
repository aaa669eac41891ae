//! `secrets.get` / `security.secret` through `Policy::parse_with` and the engine: resolved at
//! load, refused when missing or not literal, and never in what the engine reports.

use crate::secrets::{LoadEnv, Secret, SecretMap, REDACTED};
use crate::testutil::*;

/// An engine over `yaml` whose vault `prod` holds `api-key` = `s3cr3t-value`.
fn with_vault(yaml: &str) -> Result<crate::Engine, String> {
    let mut m = SecretMap::new("no such vault in this test");
    m.insert("prod", "api-key", Secret::new("s3cr3t-value"));
    m.insert("prod", "password", Secret::new("pa55word-value"));
    let env = LoadEnv::default().with_secrets(std::sync::Arc::new(m));
    crate::Policy::parse_with(yaml, "p.yml", &env)
        .map(|p| crate::Engine::new(vec![p]))
        .map_err(|e| e.to_string())
}

#[test]
fn secrets_are_read_when_the_policy_loads_and_never_reported() {
    let e = with_vault(
        r#"
on_http_request:
  - expressions: ["secrets.get('prod', 'api-key') != ''"]
    actions:
      - type: add-headers
        config: {headers: {x-key: "${secrets.get('prod', 'api-key')}", x-alias: "${security.secret('prod', 'api-key')}"}}
      - type: log
        config: {metadata: {leak: "${secrets.get('prod', 'api-key')}"}}
      - type: basic-auth
        config: {credentials: ["admin:${secrets.get('prod', 'password')}"]}
"#,
    )
    .unwrap();
    let mut st = state(&e, "1.1.1.1");
    st.enable_trace();
    let auth = basic("admin", "pa55word-value");
    let mut r = req("GET /", &[("authorization", &auth)]);
    let v = e.on_http_request(&mut st, &mut r);
    assert!(
        matches!(v, crate::RequestVerdict::Continue),
        "{:?}",
        st.errors()
    );
    assert_eq!(r.headers["x-key"], "s3cr3t-value");
    assert_eq!(r.headers["x-alias"], "s3cr3t-value");
    assert_eq!(st.logs()[0]["leak"], REDACTED);
    let trace = format!("{:?}", st.trace());
    assert!(!trace.contains("s3cr3t"), "{trace}");
    // The dry run (`agent policy test`) shows `<secret>` in the upstream request.
    let dry = crate::dry_run::DryRunRequest::parse(
        "GET /",
        &[format!("authorization: {auth}")],
        "1.1.1.1".parse().unwrap(),
    )
    .unwrap();
    let report = crate::dry_run::run(&e, &dry).unwrap().to_string();
    assert!(report.contains("x-key: <secret>"), "{report}");
    assert!(!report.contains("s3cr3t"), "{report}");
    let shown = format!("{:?}", e.layers());
    assert!(!shown.contains("s3cr3t"), "{shown}");
}

#[test]
fn a_missing_secret_is_a_load_error_naming_vault_and_name() {
    let e = with_vault(
        "on_http_request:\n  - actions:\n      - type: add-headers\n        config: {headers: {x-k: \"${secrets.get('prod', 'nope')}\"}}\n",
    )
    .map(|_| ())
    .unwrap_err();
    assert!(e.starts_with("p.yml:4:"), "{e}");
    assert!(e.contains("secret `nope` not found in vault `prod`"), "{e}");
    let e = with_vault("on_http_request: [{expressions: [\"secrets.get('dev', 'api-key') == 'x'\"], actions: [{type: deny}]}]")
        .map(|_| ())
        .unwrap_err();
    assert!(
        e.contains("no secret vault `dev` (for secret `api-key`)"),
        "{e}"
    );
    // Arguments must be literals: the value is resolved once, at load.
    let e = with_vault("on_http_request: [{expressions: [\"secrets.get('prod', req.url.path) == 'x'\"], actions: [{type: deny}]}]")
        .map(|_| ())
        .unwrap_err();
    assert!(e.contains("`secrets.get` takes two string literals"), "{e}");
    // Without a source (`Policy::parse`), secrets.get is refused; deferred accepts it.
    let yaml = "on_http_request: [{expressions: [\"secrets.get('prod', 'k') == 'x'\"], actions: [{type: deny}]}]";
    assert!(crate::Policy::parse(yaml, "p.yml").is_err());
    assert!(crate::Policy::parse_with(yaml, "p.yml", &LoadEnv::deferred()).is_ok());
}
