//! verify-webhook through a real edge and agent: signed deliveries reach the app with their
//! body intact and the result visible to later rules; forged, replayed and oversized ones
//! are refused at the edge.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_e2e::upstream::{self, Seen};
use sluice_e2e::{client, error_code, TestAgent, TestEdge, TOKEN};
use sluice_proto::control::{PolicyKind, PolicySource};
use std::time::{SystemTime, UNIX_EPOCH};

const POLICY: &str = r#"
on_http_request:
  - expressions: ["req.url.path == '/github'"]
    actions:
      - type: verify-webhook
        config: {provider: github, secret: "It's a Secret to Everybody"}
  - expressions: ["req.url.path == '/stripe'"]
    actions:
      - type: verify-webhook
        config: {provider: stripe, secret: whsec_e2e}
  - expressions: ["req.url.path == '/generic'"]
    actions:
      - type: verify-webhook
        config: {provider: hmac-sha256, secret: s3cret, header: x-signature}
  - expressions: ["actions.ngrok.verify_webhook.verified"]
    actions:
      - type: add-headers
        config: {headers: {x-webhook-verified: "yes"}}
"#;

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> anyhow::Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())?;
    for p in parts {
        mac.update(p);
    }
    Ok(hex_lower(&mac.finalize().into_bytes()))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn webhook_endpoint() -> anyhow::Result<(TestEdge, TestAgent, upstream::Upstream)> {
    let edge = TestEdge::start().await?;
    let app = upstream::app("hooks").await?;
    let mut config = edge.agent_config(TOKEN, "hooks", app.addr);
    config.endpoints[0].policies = vec![PolicySource {
        origin: "webhooks.yml".into(),
        kind: PolicyKind::Document,
        text: POLICY.into(),
    }];
    let agent = TestAgent::start(config).await?;
    Ok((edge, agent, app))
}

#[tokio::test]
async fn signed_webhooks_pass_and_forged_ones_are_refused() -> anyhow::Result<()> {
    let (_edge, agent, _app) = webhook_endpoint().await?;
    let base = agent.url().to_string();
    let http = client();

    // GitHub's documented example delivery.
    let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let r = http
        .post(format!("{base}/github"))
        .header("x-hub-signature-256", good)
        .body("Hello, World!")
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let seen = Seen::parse(&r.text().await?)?;
    assert_eq!(seen.body, "Hello, World!");
    assert_eq!(seen.header("x-webhook-verified").as_deref(), Some("yes"));

    let r = http
        .post(format!("{base}/github"))
        .header("x-hub-signature-256", good)
        .body("Hello, World?")
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3204"));
    assert!(r.text().await?.contains("signature does not match"));

    // Stripe: signed now passes; the same signature scheme six minutes old is a replay.
    let body = br#"{"id":"evt_e2e","type":"charge.succeeded"}"#;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    for (t, status) in [(now, 200), (now - 360, 403)] {
        let sig = hmac_hex("whsec_e2e", &[format!("{t}.").as_bytes(), body])?;
        let r = http
            .post(format!("{base}/stripe"))
            .header("stripe-signature", format!("t={t},v1={sig}"))
            .body(body.to_vec())
            .send()
            .await?;
        assert_eq!(r.status(), status, "t={t}");
        if status == 200 {
            assert_eq!(Seen::parse(&r.text().await?)?.body.as_bytes(), body);
        }
    }

    // Paths without a verify-webhook rule are not affected.
    let r = http.post(format!("{base}/other")).body("x").send().await?;
    assert_eq!(r.status(), 200);
    let seen = Seen::parse(&r.text().await?)?;
    assert_eq!(seen.body, "x");
    assert_eq!(seen.header("x-webhook-verified"), None);
    Ok(())
}

#[tokio::test]
async fn bodies_up_to_the_buffer_limit_are_verified_and_forwarded_whole() -> anyhow::Result<()> {
    let (_edge, agent, _app) = webhook_endpoint().await?;
    let base = agent.url().to_string();
    let http = client();
    let limit = sluice_edge::MAX_BUFFERED_BODY;

    let body = "a".repeat(limit);
    let sig = hmac_hex("s3cret", &[body.as_bytes()])?;
    let r = http
        .post(format!("{base}/generic"))
        .header("x-signature", &sig)
        .body(body.clone())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(Seen::parse(&r.text().await?)?.body.len(), limit);

    // One byte more, declared up front or streamed without a length: 413 before any upstream.
    let big = "a".repeat(limit + 1);
    let sig = hmac_hex("s3cret", &[big.as_bytes()])?;
    let r = http
        .post(format!("{base}/generic"))
        .header("x-signature", &sig)
        .body(big.clone())
        .send()
        .await?;
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3223"));

    let chunks: Vec<Result<String, std::io::Error>> = vec![
        Ok(big[..limit / 2].to_string()),
        Ok(big[limit / 2..].to_string()),
    ];
    let r = http
        .post(format!("{base}/generic"))
        .header("x-signature", &sig)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await?;
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3223"));
    Ok(())
}
