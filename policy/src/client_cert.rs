//! A mutual-TLS client certificate as `conn.tls.client.*` shows it: read once from DER when the
//! edge hands it over, answered field by field to expressions.

use cel::Value;
use chrono::{DateTime, FixedOffset};
use rustls_pki_types::pem::PemObject;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_X509_POSTAL_CODE, OID_X509_STREET_ADDRESS};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};
use x509_parser::x509::AttributeTypeAndValue;

/// Why bytes are not a client certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an X.509 certificate: {0}")]
pub struct ClientCertError(String);

/// A distinguished name (subject or issuer): the whole name as text and its usual parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DistinguishedName {
    /// The whole name, most specific part first, as Go prints it: `CN=client,O=Acme,C=DE`.
    pub text: String,
    /// The first common name (`CN`), empty without one.
    pub common_name: String,
    /// `C` values.
    pub country: Vec<String>,
    /// `L` values.
    pub locality: Vec<String>,
    /// `O` values.
    pub organization: Vec<String>,
    /// `OU` values.
    pub organizational_unit: Vec<String>,
    /// `postalCode` values.
    pub postal_code: Vec<String>,
    /// `ST` values.
    pub province: Vec<String>,
    /// `street` values.
    pub street_address: Vec<String>,
}

/// The subject alternative names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubjectAltNames {
    /// DNS names.
    pub dns_names: Vec<String>,
    /// E-mail addresses (rfc822Name).
    pub email_addresses: Vec<String>,
    /// IP addresses, as text.
    pub ip_addresses: Vec<String>,
    /// URIs.
    pub uris: Vec<String>,
}

/// One certificate extension.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertExtension {
    /// The OID, dotted (`2.5.29.17`).
    pub id: String,
    /// Whether it is marked critical.
    pub critical: bool,
    /// The DER value.
    pub value: Vec<u8>,
}

/// A client certificate's facts (`conn.tls.client.*`). Build it with
/// [`ClientCertificate::from_der`]; hand it to the engine in
/// [`TlsInfo::client_certificate`](crate::TlsInfo::client_certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCertificate {
    /// The subject.
    pub subject: DistinguishedName,
    /// The issuer.
    pub issuer: DistinguishedName,
    /// The subject alternative names.
    pub san: SubjectAltNames,
    /// The serial number, in decimal (as Go's `big.Int` prints it).
    pub serial_number: String,
    /// The signature algorithm, in Go's spelling (`SHA256-RSA`, `ECDSA-SHA256`, `Ed25519`),
    /// else the dotted OID.
    pub signature_algorithm: String,
    /// `notBefore`.
    pub not_before: Option<DateTime<FixedOffset>>,
    /// `notAfter`.
    pub not_after: Option<DateTime<FixedOffset>>,
    /// The certificate, PEM encoded.
    pub pem: String,
    /// The extensions, in certificate order.
    pub extensions: Vec<CertExtension>,
}

impl ClientCertificate {
    /// Reads a DER certificate (the first of the client's chain, as the TLS library gives it).
    pub fn from_der(der: &[u8]) -> Result<Self, ClientCertError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| ClientCertError(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| ClientCertError(e.to_string()))?
            .map(|ext| alt_names(&ext.value.general_names))
            .unwrap_or_default();
        let validity = cert.validity();
        Ok(Self {
            subject: name(cert.subject()),
            issuer: name(cert.issuer()),
            san,
            serial_number: cert.serial.to_string(),
            signature_algorithm: signature_algorithm(
                &cert.signature_algorithm.algorithm.to_id_string(),
            ),
            not_before: timestamp(validity.not_before.timestamp()),
            not_after: timestamp(validity.not_after.timestamp()),
            pem: pem(der),
            extensions: cert
                .extensions()
                .iter()
                .map(|e| CertExtension {
                    id: e.oid.to_id_string(),
                    critical: e.critical,
                    value: e.value.to_vec(),
                })
                .collect(),
        })
    }

    /// Reads the first certificate of a PEM text (for tests and tools).
    pub fn from_pem(text: &str) -> Result<Self, ClientCertError> {
        let der = rustls_pki_types::CertificateDer::from_pem_slice(text.as_bytes())
            .map_err(|e| ClientCertError(e.to_string()))?;
        Self::from_der(&der)
    }

    /// `conn.tls.client.<path>`: `None` for a path that is not a field.
    pub(crate) fn field(&self, path: &str) -> Option<Value> {
        if let Some(rest) = path.strip_prefix("subject") {
            return name_field(&self.subject, rest);
        }
        if let Some(rest) = path.strip_prefix("issuer") {
            return name_field(&self.issuer, rest);
        }
        Some(match path {
            // ngrok documents `san` as a string: every name, comma separated.
            "san" => Value::from(
                [
                    &self.san.dns_names,
                    &self.san.email_addresses,
                    &self.san.ip_addresses,
                    &self.san.uris,
                ]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(","),
            ),
            "san.dns_names" => strings(&self.san.dns_names),
            "san.email_addresses" => strings(&self.san.email_addresses),
            "san.ip_addresses" => strings(&self.san.ip_addresses),
            "san.uris" => strings(&self.san.uris),
            "serial_number" => Value::from(self.serial_number.as_str()),
            "signature_algorithm" => Value::from(self.signature_algorithm.as_str()),
            "validity.not_before" => self.not_before.map_or(Value::Null, Value::Timestamp),
            "validity.not_after" => self.not_after.map_or(Value::Null, Value::Timestamp),
            "pem" => Value::from(self.pem.as_str()),
            "extensions" => Value::List(Arc::new(
                self.extensions
                    .iter()
                    .map(|e| {
                        HashMap::from([
                            ("id".to_string(), Value::from(e.id.as_str())),
                            ("critical".to_string(), Value::Bool(e.critical)),
                            ("value".to_string(), Value::Bytes(Arc::new(e.value.clone()))),
                        ])
                        .into()
                    })
                    .collect(),
            )),
            _ => return None,
        })
    }

    /// The certificate as one map, for results (`actions.ngrok.terminate_tls.client`): the
    /// fields of `conn.tls.client.*` nested by their dots. `subject` and `issuer` are maps of
    /// their parts there (a CEL value cannot be text and map at once); their whole text is
    /// `subject.text`.
    pub(crate) fn to_value(&self) -> Value {
        let field = |path: &str| self.field(path).unwrap_or(Value::Null);
        let map = |prefix: &str, keys: &[&str]| -> Value {
            keys.iter()
                .map(|k| ((*k).to_string(), field(&format!("{prefix}{k}"))))
                .collect::<HashMap<_, _>>()
                .into()
        };
        let name = |n: &DistinguishedName| -> Value {
            let mut m: HashMap<String, Value> = NAME_PARTS
                .iter()
                .filter_map(|p| Some(((*p).to_string(), name_field(n, &format!(".{p}"))?)))
                .collect();
            m.insert("text".to_string(), Value::from(n.text.as_str()));
            m.into()
        };
        let san = ["dns_names", "email_addresses", "ip_addresses", "uris"];
        HashMap::from([
            ("subject".to_string(), name(&self.subject)),
            ("issuer".to_string(), name(&self.issuer)),
            ("san".to_string(), map("san.", &san)),
            (
                "validity".to_string(),
                map("validity.", &["not_before", "not_after"]),
            ),
            ("serial_number".to_string(), field("serial_number")),
            (
                "signature_algorithm".to_string(),
                field("signature_algorithm"),
            ),
            ("pem".to_string(), field("pem")),
            ("extensions".to_string(), field("extensions")),
        ])
        .into()
    }

    /// The fields of a connection without a client certificate: empty text and lists, null
    /// timestamps, so a rule reading them is false rather than failing.
    pub(crate) fn none() -> &'static Self {
        static NONE: LazyLock<ClientCertificate> = LazyLock::new(ClientCertificate::default);
        &NONE
    }
}

/// The parts of a distinguished name, as `conn.tls.client.subject.<part>` names them.
const NAME_PARTS: &[&str] = &[
    "common_name",
    "country",
    "locality",
    "organization",
    "organizational_unit",
    "postal_code",
    "province",
    "street_address",
];

/// The `conn.tls.client.*` names under `subject` / `issuer`; `rest` is `""` or `.<part>`.
fn name_field(n: &DistinguishedName, rest: &str) -> Option<Value> {
    Some(match rest {
        "" => Value::from(n.text.as_str()),
        ".common_name" => Value::from(n.common_name.as_str()),
        ".country" => strings(&n.country),
        ".locality" => strings(&n.locality),
        ".organization" => strings(&n.organization),
        ".organizational_unit" => strings(&n.organizational_unit),
        ".postal_code" => strings(&n.postal_code),
        ".province" => strings(&n.province),
        ".street_address" => strings(&n.street_address),
        _ => return None,
    })
}

fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value::List(Arc::new(
        items.into_iter().map(|s| Value::from(s.as_str())).collect(),
    ))
}

fn texts<'a, 'b: 'a>(attrs: impl Iterator<Item = &'a AttributeTypeAndValue<'b>>) -> Vec<String> {
    attrs.map(attr_text).collect()
}

/// An attribute's value as text; a value of a string type x509-parser does not decode
/// (BMPString, ...) is shown lossily rather than dropped.
fn attr_text(a: &AttributeTypeAndValue<'_>) -> String {
    a.as_str().map_or_else(
        |_| String::from_utf8_lossy(a.as_slice()).into_owned(),
        str::to_string,
    )
}

fn name(n: &X509Name<'_>) -> DistinguishedName {
    DistinguishedName {
        text: name_text(n),
        common_name: n
            .iter_common_name()
            .next()
            .map(attr_text)
            .unwrap_or_default(),
        country: texts(n.iter_country()),
        locality: texts(n.iter_locality()),
        organization: texts(n.iter_organization()),
        organizational_unit: texts(n.iter_organizational_unit()),
        postal_code: texts(n.iter_by_oid(&OID_X509_POSTAL_CODE)),
        province: texts(n.iter_state_or_province()),
        street_address: texts(n.iter_by_oid(&OID_X509_STREET_ADDRESS)),
    }
}

/// The name as Go's `pkix.Name.String()` prints it (RFC 2253: last RDN first, `,` between
/// RDNs, `+` inside one, special characters escaped), which ngrok's `conn.tls.client.subject`
/// is.
fn name_text(n: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = n
        .iter_rdn()
        .map(|rdn| {
            let parts: Vec<String> = rdn
                .iter()
                .map(|a| {
                    let oid = a.attr_type();
                    let key = match x509_parser::objects::oid2abbrev(oid, registry) {
                        Ok("stateOrProvinceName") => "ST".to_string(),
                        Ok(k) => k.to_string(),
                        Err(_) => oid.to_id_string(),
                    };
                    format!("{key}={}", escape(&attr_text(a)))
                })
                .collect();
            parts.join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// RFC 2253 escaping of an attribute value.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn alt_names(names: &[GeneralName<'_>]) -> SubjectAltNames {
    let mut san = SubjectAltNames::default();
    for n in names {
        match n {
            GeneralName::DNSName(d) => san.dns_names.push((*d).to_string()),
            GeneralName::RFC822Name(e) => san.email_addresses.push((*e).to_string()),
            GeneralName::URI(u) => san.uris.push((*u).to_string()),
            GeneralName::IPAddress(b) => {
                let ip = match b.len() {
                    4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                    _ => None,
                };
                san.ip_addresses.extend(ip.map(|ip| ip.to_string()));
            }
            _ => {}
        }
    }
    san
}

/// Go's names for the common signature algorithms (`x509.SignatureAlgorithm.String()`).
fn signature_algorithm(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.5" => "SHA1-RSA",
        "1.2.840.113549.1.1.11" => "SHA256-RSA",
        "1.2.840.113549.1.1.12" => "SHA384-RSA",
        "1.2.840.113549.1.1.13" => "SHA512-RSA",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        "1.2.840.10045.4.1" => "ECDSA-SHA1",
        "1.2.840.10045.4.3.2" => "ECDSA-SHA256",
        "1.2.840.10045.4.3.3" => "ECDSA-SHA384",
        "1.2.840.10045.4.3.4" => "ECDSA-SHA512",
        "1.3.101.112" => "Ed25519",
        other => other,
    }
    .to_string()
}

fn timestamp(secs: i64) -> Option<DateTime<FixedOffset>> {
    DateTime::from_timestamp(secs, 0).map(|t| t.fixed_offset())
}

/// A DER certificate as PEM, 64 base64 characters a line.
fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
#[path = "client_cert_tests.rs"]
mod tests;
