//! terminate-tls's configuration: checked at load (versions, PEM, key against certificate,
//! mutual TLS), and handed to the edge as settings that cannot be invalid.

use crate::run::engine::{ready, ConnectVerdict};
use crate::secrets::{LoadEnv, Secret, SecretMap};
use crate::testutil::*;
use crate::{MtlsStrategy, Policy, TerminateTls, TlsVersion};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use std::sync::Arc;

/// A CA, and a server certificate with its key.
struct Pems {
    ca: String,
    server_cert: String,
    server_key: String,
    other_key: String,
}

fn pems() -> Pems {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let server_key = KeyPair::generate().expect("key");
    let server = CertificateParams::new(vec!["app.example.com".to_string()])
        .expect("params")
        .signed_by(&server_key, &ca_cert, &ca_key)
        .expect("server");
    Pems {
        ca: ca_cert.pem(),
        server_cert: server.pem(),
        server_key: server_key.serialize_pem(),
        other_key: KeyPair::generate().expect("key").serialize_pem(),
    }
}

/// A YAML block scalar holding `text`, indented for a config field.
fn block(text: &str) -> String {
    block_at(text, 12)
}

fn block_at(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let lines: Vec<String> = text.lines().map(|l| format!("{pad}{l}")).collect();
    format!("|\n{}", lines.join("\n"))
}

fn policy(config: &str) -> String {
    format!(
        "on_tcp_connect:\n  - actions:\n      - type: terminate-tls\n        config:\n{config}\n"
    )
}

/// The settings a policy with this terminate-tls config hands the edge.
fn settings(config: &str) -> Arc<TerminateTls> {
    let e = engine(&policy(config));
    let mut st = state(&e, "1.2.3.4");
    match ready(e.on_tcp_connect_async(&mut st)) {
        ConnectVerdict::Continue {
            terminate_tls: Some(t),
        } => t,
        other => panic!("{other:?}"),
    }
}

fn refused(config: &str) -> Vec<String> {
    errors(&policy(config))
}

#[test]
fn a_full_configuration_compiles_into_checked_settings() {
    let p = pems();
    let t = settings(&format!(
        "          min_version: \"1.2\"\n          max_version: \"1.3\"\n          server_certificate: {}\n          server_private_key: {}\n          mutual_tls_certificate_authorities:\n            - {}\n          mutual_tls_verification_strategy: require-and-verify",
        block(&p.server_cert),
        block(&p.server_key),
        block_at(&p.ca, 14),
    ));
    assert_eq!(
        (t.min_version(), t.max_version()),
        (TlsVersion::Tls12, TlsVersion::Tls13)
    );
    let server = t.server_identity().expect("server identity");
    assert_eq!(server.cert_chain().len(), 1);
    assert!(server.certified_key().keys_match().is_ok());
    let debug = format!("{t:?}");
    assert!(!debug.contains("PRIVATE KEY") && !debug.contains(&p.server_key[40..80]));
    let mtls = t.mutual_tls().expect("mutual TLS");
    assert_eq!(mtls.strategy(), MtlsStrategy::RequireAndVerify);
    assert_eq!(mtls.authorities().len(), 1);
}

#[test]
fn defaults_and_strategies() {
    let t = settings("          {}");
    assert_eq!(t.versions(), vec![TlsVersion::Tls12, TlsVersion::Tls13]);
    assert!(t.server_identity().is_none() && t.mutual_tls().is_none());
    for (name, strategy) in [
        ("require-any", MtlsStrategy::RequireAny),
        ("request", MtlsStrategy::Request),
    ] {
        let t = settings(&format!(
            "          mutual_tls_verification_strategy: {name}"
        ));
        let m = t.mutual_tls().expect("mutual TLS");
        assert_eq!((m.strategy(), m.authorities().len()), (strategy, 0));
    }
}

#[test]
fn bad_versions_are_refused_with_their_place() {
    let errs = refused("          min_version: \"1.0\"");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("test.yml:5:24: on_tcp_connect[0].actions[0].config.min_version: TLS 1.0 is not supported: the edge's TLS library (rustls) has only TLS 1.2 and 1.3"), "{errs:?}");
    let errs = refused("          max_version: \"1.4\"");
    assert!(
        errs[0].contains("config.max_version: expected \"1.2\" or \"1.3\", got `1.4`"),
        "{errs:?}"
    );
    let errs = refused("          min_version: \"1.3\"\n          max_version: \"1.2\"");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("config.min_version: `min_version` 1.3 is above `max_version` 1.2"),
        "{errs:?}"
    );
}

#[test]
fn bad_pem_and_mismatched_keys_are_refused() {
    let p = pems();
    let cert = block(&p.server_cert);
    let key = block(&p.server_key);
    let errs = refused(&format!(
        "          server_certificate: \"not a certificate\"\n          server_private_key: {key}"
    ));
    assert!(errs[0].contains("config.server_certificate: `server_certificate`: no `-----BEGIN CERTIFICATE-----` block"), "{errs:?}");
    let garbled = p.server_cert.replace("\n", "\n@@").replacen("@@", "", 1);
    let errs = refused(&format!(
        "          server_certificate: {}\n          server_private_key: {key}",
        block(&garbled)
    ));
    assert!(
        errs[0].contains("config.server_certificate: `server_certificate`: certificate 1"),
        "{errs:?}"
    );
    let errs = refused(&format!(
        "          server_certificate: {cert}\n          server_private_key: {}",
        block(&p.other_key)
    ));
    assert!(errs[0].contains("config.server_private_key: `server_private_key` does not belong to the first certificate"), "{errs:?}");
    assert!(
        !errs[0].contains("PRIVATE"),
        "the key is never quoted: {errs:?}"
    );
    let errs = refused(&format!(
        "          server_certificate: {cert}\n          server_private_key: {cert}"
    ));
    assert!(
        errs[0].contains("`server_private_key`: no private key in the PEM text"),
        "{errs:?}"
    );
    let errs = refused(&format!("          server_certificate: {cert}"));
    assert!(
        errs[0].contains("`server_certificate` needs `server_private_key`"),
        "{errs:?}"
    );
    let errs = refused("          mutual_tls_certificate_authorities: [\"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"]");
    assert!(errs[0].contains("config.mutual_tls_certificate_authorities[0]: certificate 1 is not a valid X.509 certificate"), "{errs:?}");
}

#[test]
fn mutual_tls_needs_authorities_to_verify_against() {
    let errs = refused("          mutual_tls_verification_strategy: require-and-verify");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("`require-and-verify` needs `mutual_tls_certificate_authorities`"),
        "{errs:?}"
    );
    let errs = refused("          mutual_tls_verification_strategy: verify-if-given");
    assert!(
        errs[0].contains(
            "expected one of require-and-verify, require-any, request, got `verify-if-given`"
        ),
        "{errs:?}"
    );
}

#[test]
fn pem_fields_take_secrets_but_not_connection_values() {
    let p = pems();
    let mut m = SecretMap::new("no such vault");
    m.insert("tls", "key", Secret::new(&p.server_key));
    let env = LoadEnv::default().with_secrets(Arc::new(m));
    let yaml = policy(&format!(
        "          server_certificate: {}\n          server_private_key: \"${{secrets.get('tls', 'key')}}\"",
        block(&p.server_cert)
    ));
    let policy_ok = Policy::parse_with(&yaml, "test.yml", &env).unwrap_or_else(|e| panic!("{e}"));
    let e = crate::Engine::new(vec![policy_ok]);
    let mut st = state(&e, "1.2.3.4");
    let ConnectVerdict::Continue {
        terminate_tls: Some(t),
    } = ready(e.on_tcp_connect_async(&mut st))
    else {
        panic!("terminate-tls ran")
    };
    assert!(t.server_identity().is_some());

    let errs = refused("          mutual_tls_certificate_authorities: [\"${conn.tls.sni}\"]");
    assert!(
        errs[0].contains("terminate-tls reads its certificates and keys when the policy loads"),
        "{errs:?}"
    );
}
