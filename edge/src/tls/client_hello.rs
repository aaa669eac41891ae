//! The first flight of a TLS connection read before any TLS is done: rustls' own `Acceptor`
//! parses the ClientHello, so SNI and ALPN offers are known before the edge decides whether to
//! terminate TLS or pass the raw bytes through.
//!
//! This module depends on rustls alone (no pingora, no tokio): the fuzz target compiles it on
//! its own (`fuzz/fuzz_targets/client_hello.rs`).

use rustls::server::{Accepted, Acceptor};

/// Most bytes read while waiting for a whole ClientHello. Real ones are 0.5–2 KiB (a
/// post-quantum key share included); rustls itself refuses a handshake message over 64 KiB.
pub const MAX_HELLO_BYTES: usize = 16 * 1024;

/// A complete ClientHello: what the client asked for, and rustls' state to continue the
/// handshake from (so terminating TLS does not parse the hello twice).
pub struct Hello {
    /// The SNI name as sent (rustls checked it is a DNS name), if any.
    pub sni: Option<String>,
    /// ALPN protocols offered, in the client's order.
    pub alpn: Vec<Vec<u8>>,
    /// rustls' accepted hello, for `tokio_rustls::StartHandshake::from_parts`.
    pub accepted: Accepted,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("sni", &self.sni)
            .field("alpn", &self.alpn)
            .finish_non_exhaustive()
    }
}

/// Bytes that cannot start a TLS connection, with the alert rustls would send for them.
#[derive(Debug)]
pub struct Refusal {
    /// Why (not TLS, a malformed hello, too large).
    pub error: rustls::Error,
    /// The encoded TLS alert to write to the client before closing (may be empty).
    pub alert: Vec<u8>,
}

/// What the bytes read so far amount to.
#[derive(Debug)]
pub enum Step {
    /// A prefix of a ClientHello: read more.
    More,
    /// A whole ClientHello.
    Hello(Box<Hello>),
    /// Not a ClientHello rustls accepts.
    Refused(Refusal),
}

/// Reads a ClientHello from bytes fed in as they arrive (all of them are kept by rustls, so
/// bytes after the hello are not lost when TLS is terminated).
#[derive(Default)]
pub struct HelloReader {
    acceptor: Acceptor,
    fed: usize,
}

impl HelloReader {
    /// Feeds the next bytes of the connection; call again with more after [`Step::More`].
    /// Never call after [`Step::Hello`] or [`Step::Refused`].
    pub fn feed(&mut self, mut bytes: &[u8]) -> Step {
        self.fed = self.fed.saturating_add(bytes.len());
        if self.fed > MAX_HELLO_BYTES {
            return too_large();
        }
        while !bytes.is_empty() {
            match self.acceptor.read_tls(&mut bytes) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return refused(rustls::Error::General(e.to_string()), Vec::new()),
            }
        }
        match self.acceptor.accept() {
            Ok(None) => Step::More,
            Ok(Some(accepted)) => {
                let hello = accepted.client_hello();
                let sni = hello.server_name().map(str::to_string);
                let alpn = hello
                    .alpn()
                    .map(|offers| offers.map(<[u8]>::to_vec).collect())
                    .unwrap_or_default();
                Step::Hello(Box::new(Hello {
                    sni,
                    alpn,
                    accepted,
                }))
            }
            Err((error, mut alert)) => {
                let mut bytes = Vec::new();
                // Writing into a Vec cannot fail short of allocation failure.
                let _ = alert.write(&mut bytes);
                refused(error, bytes)
            }
        }
    }
}

fn refused(error: rustls::Error, alert: Vec<u8>) -> Step {
    Step::Refused(Refusal { error, alert })
}

fn too_large() -> Step {
    refused(
        rustls::Error::General(format!(
            "no complete ClientHello in the first {MAX_HELLO_BYTES} bytes"
        )),
        Vec::new(),
    )
}

/// [`HelloReader::feed`] on one buffer: what `bytes` say about a connection that starts with
/// them. Pure; the fuzz target's entry point (which compiles this file on its own, so the
/// edge itself never calls it).
#[allow(dead_code)]
pub fn parse(bytes: &[u8]) -> Step {
    HelloReader::default().feed(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use std::sync::Arc;

    /// The first flight a rustls client sends for `sni` offering `alpn`.
    fn client_hello(sni: &str, alpn: &[&[u8]]) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = ServerName::try_from(sni.to_string()).expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("conn");
        let mut out = Vec::new();
        conn.write_tls(&mut out).expect("write hello");
        out
    }

    #[test]
    fn a_whole_hello_gives_sni_and_alpn() {
        let bytes = client_hello("App.Example.com", &[b"h2", b"http/1.1"]);
        let Step::Hello(hello) = parse(&bytes) else {
            panic!("not a hello");
        };
        assert_eq!(hello.sni.as_deref(), Some("app.example.com"));
        assert_eq!(hello.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    #[test]
    fn an_ip_address_is_sent_without_sni() {
        let bytes = client_hello("127.0.0.1", &[]);
        let Step::Hello(hello) = parse(&bytes) else {
            panic!("not a hello");
        };
        assert_eq!(hello.sni, None);
        assert!(hello.alpn.is_empty());
    }

    #[test]
    fn every_prefix_asks_for_more_and_pieces_add_up() {
        let bytes = client_hello("a.example.com", &[b"h2"]);
        for cut in 0..bytes.len() {
            assert!(matches!(parse(&bytes[..cut]), Step::More), "prefix {cut}");
        }
        let mut reader = HelloReader::default();
        let (first, rest) = bytes.split_at(3);
        assert!(matches!(reader.feed(first), Step::More));
        assert!(matches!(reader.feed(rest), Step::Hello(_)));
    }

    #[test]
    fn plain_http_is_refused() {
        let Step::Refused(r) = parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") else {
            panic!("plain HTTP accepted as TLS");
        };
        assert!(!r.error.to_string().is_empty());
    }

    #[test]
    fn a_hello_longer_than_the_cap_is_refused_at_the_cap() {
        // Handshake records carrying the start of a 64 KiB ClientHello (rustls would wait for
        // all of it): the reader gives up once it has held MAX_HELLO_BYTES.
        let record = |payload: &[u8]| {
            let mut r = vec![0x16, 0x03, 0x01, 0x20, 0x00];
            r.extend_from_slice(payload);
            r.resize(5 + 0x2000, 0);
            r
        };
        let mut reader = HelloReader::default();
        assert!(matches!(
            reader.feed(&record(&[0x01, 0x00, 0xff, 0xff, 0x03, 0x03])),
            Step::More
        ));
        let Step::Refused(r) = reader.feed(&record(&[])) else {
            panic!("no cap");
        };
        assert!(r.error.to_string().contains("16384 bytes"), "{}", r.error);
    }
}
