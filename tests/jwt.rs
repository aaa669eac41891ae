//! jwt-validation through a real edge and agent, with tokens from a real OpenID provider
//! (node `oidc-provider`) and its JWKS fetched by the edge: real tokens pass and their claims
//! reach later rules; forged ones (another key, `alg: none`, a changed payload), expired ones
//! and ones for another audience are refused with their codes.

use base64::Engine as _;
use serde_json::json;
use sluice_e2e::oidc::{OidcClient, OidcProvider};
use sluice_e2e::upstream::{self, Seen};
use sluice_e2e::{client, error_code, TestAgent, TestEdge, TOKEN};
use sluice_proto::control::{PolicyKind, PolicySource};
use std::time::{SystemTime, UNIX_EPOCH};

const AUDIENCE: &str = "urn:sluice:api";

fn api_client() -> OidcClient {
    OidcClient {
        id: "api-client".into(),
        secret: "api-client-secret".into(),
        redirect_uris: vec!["http://unused.localhost/cb".into()],
    }
}

fn policy(issuer: &str, jwks: &str) -> String {
    format!(
        r#"
on_http_request:
  - expressions: ["req.url.path.startsWith('/api')"]
    actions:
      - type: jwt-validation
        config:
          issuer:
            allow_list: [{{value: "{issuer}"}}]
          audience:
            allow_list: [{{value: "{AUDIENCE}"}}]
          http:
            tokens: [{{type: jwt, method: header, name: Authorization, prefix: "Bearer "}}]
          jws:
            allowed_algorithms: [RS256]
            keys:
              sources:
                additional_jkus: ["{jwks}"]
      - type: add-headers
        config:
          headers:
            x-jwt-sub: "${{actions.ngrok.jwt_validation.tokens[0].payload.sub}}"
"#
    )
}

async fn endpoint(policy: String) -> anyhow::Result<(TestEdge, TestAgent, upstream::Upstream)> {
    let edge = TestEdge::start().await?;
    let app = upstream::app("jwt").await?;
    let mut config = edge.agent_config(TOKEN, "jwt", app.addr);
    config.endpoints[0].policies = vec![PolicySource {
        origin: "jwt.yml".into(),
        kind: PolicyKind::Document,
        text: policy,
    }];
    let agent = TestAgent::start(config).await?;
    Ok((edge, agent, app))
}

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn now() -> anyhow::Result<u64> {
    Ok(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())
}

#[tokio::test]
async fn provider_tokens_pass_and_forged_ones_are_refused() -> anyhow::Result<()> {
    let idp = OidcProvider::start(&[api_client()]).await?;
    let other_idp = OidcProvider::start(&[api_client()]).await?;
    let (_edge, agent, _app) = endpoint(policy(&idp.issuer, &idp.jwks_uri)).await?;
    let url = format!("{}/api/orders", agent.url());
    let http = client();
    let call = |token: Option<String>| {
        let mut req = http.get(&url);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.send()
    };

    // No token: 401 with a Bearer challenge.
    let r = call(None).await?;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3401"));
    assert!(r.headers()["www-authenticate"]
        .to_str()?
        .starts_with("Bearer"));

    // A real access token from the provider: through, with its subject for later actions.
    let good = idp
        .client_credentials_token(&api_client(), AUDIENCE)
        .await?;
    let r = call(Some(good.clone())).await?;
    assert_eq!(r.status(), 200);
    let seen = Seen::parse(&r.text().await?)?;
    assert_eq!(seen.header("x-jwt-sub").as_deref(), Some("api-client"));

    // A real token for another audience: authenticated but not for us, 403.
    let other_aud = idp
        .client_credentials_token(&api_client(), "urn:other:api")
        .await?;
    let r = call(Some(other_aud)).await?;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3403"));

    // Same claims, same kid, signed by another provider's key.
    let t = now()?;
    let claims =
        json!({"iss": idp.issuer, "aud": AUDIENCE, "sub": "mallory", "iat": t, "exp": t + 300});
    let wrong_key = other_idp.sign(&claims).await?;
    let r = call(Some(wrong_key)).await?;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3401"));
    assert!(r.text().await?.contains("signature does not verify"));

    // The real token's payload changed (sub), its signature kept.
    let parts: Vec<&str> = good.split('.').collect();
    let mut payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1])?,
    )?;
    payload["sub"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    assert_eq!(call(Some(tampered)).await?.status(), 401);

    // alg none with the real token's claims and no signature.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        parts[1]
    );
    let r = call(Some(none)).await?;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3401"));

    // Signed by the provider's key but expired (beyond the 30 s leeway), or not valid yet.
    let expired = idp
        .sign(&json!({"iss": idp.issuer, "aud": AUDIENCE, "sub": "late", "exp": t - 120}))
        .await?;
    let r = call(Some(expired)).await?;
    assert_eq!(r.status(), 401);
    assert!(r.text().await?.contains("expired"));
    let early = idp
        .sign(&json!({"iss": idp.issuer, "aud": AUDIENCE, "sub": "early", "nbf": t + 600, "exp": t + 900}))
        .await?;
    assert_eq!(call(Some(early)).await?.status(), 401);
    // ... while one inside the window passes (the key was used, not only the grant).
    let fresh = idp
        .sign(&json!({"iss": idp.issuer, "aud": [AUDIENCE, "x"], "sub": "fresh", "exp": t + 300}))
        .await?;
    let r = call(Some(fresh)).await?;
    assert_eq!(r.status(), 200);
    assert_eq!(
        Seen::parse(&r.text().await?)?
            .header("x-jwt-sub")
            .as_deref(),
        Some("fresh")
    );

    // Another issuer's real token (its own key, its own iss) is not allowed either.
    let foreign = other_idp
        .client_credentials_token(&api_client(), AUDIENCE)
        .await?;
    assert_eq!(call(Some(foreign)).await?.status(), 401);

    // Paths without the rule need no token.
    let r = http.get(format!("{}/public", agent.url())).send().await?;
    assert_eq!(r.status(), 200);
    Ok(())
}

#[tokio::test]
async fn unreachable_jwks_refuses_tokens() -> anyhow::Result<()> {
    let idp = OidcProvider::start(&[api_client()]).await?;
    let closed = sluice_e2e::closed_port()?;
    let (_edge, agent, _app) =
        endpoint(policy(&idp.issuer, &format!("http://{closed}/jwks"))).await?;
    let good = idp
        .client_credentials_token(&api_client(), AUDIENCE)
        .await?;
    let r = client()
        .get(format!("{}/api/x", agent.url()))
        .header("authorization", format!("Bearer {good}"))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3401"));
    Ok(())
}

#[tokio::test]
async fn jwks_on_the_edges_own_network_needs_the_operators_consent() -> anyhow::Result<()> {
    let idp = OidcProvider::start(&[api_client()]).await?;
    let good = idp
        .client_credentials_token(&api_client(), AUDIENCE)
        .await?;
    let answer = |agent: TestAgent| {
        let good = good.clone();
        async move {
            let r = client()
                .get(format!("{}/api/x", agent.url()))
                .header("authorization", format!("Bearer {good}"))
                .send()
                .await?;
            anyhow::Ok(r.status().as_u16())
        }
    };
    // An edge with the default rules: the provider's JWKS is on loopback, so the agent's
    // policy cannot make the edge fetch it, and the token cannot be checked.
    let edge =
        TestEdge::start_with(|c| c.outbound = sluice_edge::OutboundConfig::default()).await?;
    let app = upstream::app("jwt").await?;
    let mut config = edge.agent_config(TOKEN, "jwt", app.addr);
    config.endpoints[0].policies = vec![PolicySource {
        origin: "jwt.yml".into(),
        kind: PolicyKind::Document,
        text: policy(&idp.issuer, &idp.jwks_uri),
    }];
    assert_eq!(answer(TestAgent::start(config).await?).await?, 401);
    // The same token and policy where the operator allows loopback (the test kit's default).
    let (_edge, agent, _app) = endpoint(policy(&idp.issuer, &idp.jwks_uri)).await?;
    assert_eq!(answer(agent).await?, 200);
    Ok(())
}
