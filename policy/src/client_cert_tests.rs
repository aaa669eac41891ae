//! `ClientCertificate` from a certificate rcgen makes, and `conn.tls.client.*` in rules.

use super::ClientCertificate;
use crate::run::engine::{ready, ConnectVerdict};
use crate::testutil::*;
use crate::TlsInfo;
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType,
    SerialNumber,
};
use std::sync::Arc;

/// A client certificate signed by a CA named `Test CA`, with every field set.
fn client_der() -> Vec<u8> {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "Test CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "Sluice Tests");
    let ca_cert = ca.self_signed(&ca_key).expect("ca");

    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CountryName, "DE");
    p.distinguished_name
        .push(DnType::OrganizationName, "Acme, Inc.");
    p.distinguished_name
        .push(DnType::OrganizationalUnitName, "Ops");
    p.distinguished_name.push(DnType::LocalityName, "Berlin");
    p.distinguished_name.push(DnType::StateOrProvinceName, "BE");
    p.distinguished_name.push(DnType::CommonName, "alice");
    p.subject_alt_names = vec![
        SanType::DnsName("alice.example.com".try_into().expect("dns")),
        SanType::Rfc822Name("alice@example.com".try_into().expect("email")),
        SanType::IpAddress("192.0.2.7".parse().expect("ip")),
        SanType::URI("spiffe://example.com/alice".try_into().expect("uri")),
    ];
    p.serial_number = Some(SerialNumber::from(4242u64));
    p.not_before = date_time_ymd(2026, 1, 2);
    p.not_after = date_time_ymd(2027, 3, 4);
    p.signed_by(&key, &ca_cert, &ca_key)
        .expect("client")
        .der()
        .to_vec()
}

#[test]
fn fields_are_read_from_the_certificate() {
    let der = client_der();
    let c = ClientCertificate::from_der(&der).expect("certificate");
    assert_eq!(c.subject.common_name, "alice");
    assert_eq!(c.subject.organization, ["Acme, Inc."]);
    assert_eq!(c.subject.organizational_unit, ["Ops"]);
    assert_eq!(c.subject.country, ["DE"]);
    assert_eq!(c.subject.locality, ["Berlin"]);
    assert_eq!(c.subject.province, ["BE"]);
    assert_eq!(
        c.subject.text,
        "ST=BE,L=Berlin,OU=Ops,O=Acme\\, Inc.,C=DE,CN=alice"
    );
    assert_eq!(c.issuer.common_name, "Test CA");
    assert_eq!(c.issuer.text, "O=Sluice Tests,CN=Test CA");
    assert_eq!(c.san.dns_names, ["alice.example.com"]);
    assert_eq!(c.san.email_addresses, ["alice@example.com"]);
    assert_eq!(c.san.ip_addresses, ["192.0.2.7"]);
    assert_eq!(c.san.uris, ["spiffe://example.com/alice"]);
    assert_eq!(c.serial_number, "4242");
    assert_eq!(c.signature_algorithm, "ECDSA-SHA256");
    assert_eq!(
        c.not_before.map(|t| t.to_rfc3339()).as_deref(),
        Some("2026-01-02T00:00:00+00:00")
    );
    assert_eq!(
        c.not_after.map(|t| t.to_rfc3339()).as_deref(),
        Some("2027-03-04T00:00:00+00:00")
    );
    assert!(c.pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(ClientCertificate::from_pem(&c.pem).expect("pem"), c);
    assert!(
        c.extensions.iter().any(|e| e.id == "2.5.29.17"),
        "{:?}",
        c.extensions
    );

    assert!(ClientCertificate::from_der(b"not a certificate").is_err());
    assert!(ClientCertificate::from_der(&der[..der.len() / 2]).is_err());
}

#[test]
fn rules_read_the_certificate_in_every_phase() {
    let e = engine(
        r#"
on_tcp_connect:
  - expressions:
      - "conn.tls.client.subject.common_name != 'alice'"
    actions: [{type: close-connection}]
on_http_request:
  - expressions:
      - "conn.tls.client.subject.common_name == 'alice'"
      - "'Acme, Inc.' in conn.tls.client.subject.organization"
      - "conn.tls.client.issuer.common_name == 'Test CA'"
      - "'192.0.2.7' in conn.tls.client.san.ip_addresses"
      - "conn.tls.client.san == 'alice.example.com,alice@example.com,192.0.2.7,spiffe://example.com/alice'"
      - "conn.tls.client.serial_number == '4242'"
      - "conn.tls.client.validity.not_after > timestamp('2027-01-01T00:00:00Z')"
      - "conn.tls.client.pem.startsWith('-----BEGIN CERTIFICATE-----')"
      - "conn.tls.client.extensions.exists(x, x.id == '2.5.29.17' && !x.critical)"
    actions:
      - type: custom-response
        config: {status_code: 200, body: "${conn.tls.client.subject}"}
"#,
    );
    let mut tls = TlsInfo {
        version: Some("1.3".into()),
        ..TlsInfo::default()
    };
    // Without a certificate: empty values, so the connection closes (no error).
    let mut st = state(&e, "1.2.3.4");
    st.set_tls(tls.clone());
    assert!(matches!(
        ready(e.on_tcp_connect_async(&mut st)),
        ConnectVerdict::Close
    ));
    assert!(st.errors().is_empty(), "{:?}", st.errors());

    tls.client_certificate = Some(Arc::new(
        ClientCertificate::from_der(&client_der()).expect("certificate"),
    ));
    let mut st = state(&e, "1.2.3.4");
    st.set_tls(tls);
    assert!(matches!(
        ready(e.on_tcp_connect_async(&mut st)),
        ConnectVerdict::Continue { .. }
    ));
    let mut r = req("GET /", &[]);
    match e.on_http_request(&mut st, &mut r) {
        crate::RequestVerdict::Respond(res) => assert_eq!(
            res.body().as_ref(),
            b"ST=BE,L=Berlin,OU=Ops,O=Acme\\, Inc.,C=DE,CN=alice"
        ),
        other => panic!("{other:?} {:?} {:?}", st.errors(), st.trace()),
    }
}

/// The edge's side of terminate-tls in these tests: the handshake "finishes" with `tls`, or
/// fails with `Err`.
struct Finished(Result<TlsInfo, String>, usize);

impl crate::Handshake for Finished {
    fn terminate<'a>(
        &'a mut self,
        settings: &'a crate::TerminateTls,
    ) -> crate::HandshakeFuture<'a> {
        assert_eq!(settings.min_version(), crate::TlsVersion::Tls13);
        self.1 += 1;
        let done = self.0.clone();
        Box::pin(async move { done })
    }
}

const TERMINATE_THEN_READ: &str = r#"
on_tcp_connect:
  - expressions: ["conn.tls.version == null"]
    actions:
      - type: terminate-tls
        config: {min_version: "1.3"}
  - expressions:
      - "actions.ngrok.terminate_tls.client.subject.common_name != 'alice'"
    actions: [{type: deny}]
  - expressions: ["conn.tls.client.subject.common_name == 'alice'"]
    actions:
      - type: terminate-tls
        config: {min_version: "1.3"}
      - type: set-vars
        config: {vars: [{who: "${conn.tls.client.subject.common_name}"}]}
"#;

#[test]
fn terminate_tls_finishes_the_handshake_where_it_runs_and_later_rules_read_it() {
    let e = engine(TERMINATE_THEN_READ);
    let alice = TlsInfo {
        version: Some("1.3".into()),
        client_certificate: Some(Arc::new(
            ClientCertificate::from_der(&client_der()).expect("certificate"),
        )),
        ..TlsInfo::default()
    };
    // Before the handshake nothing of TLS is known.
    let fresh = || {
        let mut st = state(&e, "1.2.3.4");
        st.set_tls(TlsInfo::default());
        st
    };
    let mut st = fresh();
    let mut handshake = Finished(Ok(alice), 0);
    let verdict = ready(e.on_tcp_connect_tls(&mut st, &mut handshake));
    assert!(
        matches!(
            verdict,
            ConnectVerdict::Continue {
                terminate_tls: None
            }
        ),
        "{verdict:?}"
    );
    assert_eq!(
        handshake.1, 1,
        "a second terminate-tls keeps the first handshake"
    );
    assert_eq!(st.conn().tls.version.as_deref(), Some("1.3"));
    assert_eq!(st.conn_vars.get("who"), Some(&cel::Value::from("alice")));

    // Another common name: the rule after terminate-tls closes the connection.
    let bob = TlsInfo {
        version: Some("1.3".into()),
        ..TlsInfo::default()
    };
    let mut st = fresh();
    let verdict = ready(e.on_tcp_connect_tls(&mut st, &mut Finished(Ok(bob), 0)));
    assert!(matches!(verdict, ConnectVerdict::Close), "{verdict:?}");

    // A failed handshake closes it, and says why.
    let mut st = fresh();
    let failed = Finished(Err("no certificate".into()), 0);
    let verdict = ready(e.on_tcp_connect_tls(&mut st, &mut { failed }));
    assert!(matches!(verdict, ConnectVerdict::Close), "{verdict:?}");
    assert!(
        st.errors()
            .iter()
            .any(|e| e.contains("terminate-tls: the client's handshake failed: no certificate")),
        "{:?}",
        st.errors()
    );
}
