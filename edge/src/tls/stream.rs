//! [`TerminatedStream`]: a client connection whose TLS the edge terminated itself (tls/front.rs),
//! dressed as a pingora stream that did TLS: it reports the TLS version and cipher
//! (`SslDigest`, read by `conn.tls.version` and the `https` scheme) and the ALPN the handshake
//! picked (h2 goes to pingora's HTTP/2 server). Addresses and ids are the TCP connection's.

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::any::Any;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_rustls::server::TlsStream;

/// Whatever must live exactly as long as a connection (front.rs: what its on_tcp_connect
/// rules registered).
pub type Keep = Box<dyn Any + Send + Sync>;

/// A TLS connection after its handshake, over pingora's TCP stream.
pub struct TerminatedStream {
    tls: TlsStream<Stream>,
    digest: Arc<SslDigest>,
    alpn: Option<ALPN>,
    /// What the connection's on_tcp_connect rules keep while it is open (front.rs).
    _keep: Option<Keep>,
}

impl TerminatedStream {
    /// Wraps a finished handshake, reading version, cipher and ALPN from it once.
    pub fn new(tls: TlsStream<Stream>) -> Self {
        let (_, conn) = tls.get_ref();
        let cipher = conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or_default();
        // rustls' names (`TLSv1_3`), as pingora's own TLS reports them.
        let version = conn
            .protocol_version()
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let alpn = match conn.alpn_protocol() {
            Some(b"h2") => Some(ALPN::H2),
            Some(b"http/1.1") => Some(ALPN::H1),
            _ => None,
        };
        Self {
            digest: Arc::new(SslDigest::new(cipher, version, None, None, Vec::new())),
            alpn,
            tls,
            _keep: None,
        }
    }

    /// Keeps `keep` alive until the connection is dropped.
    pub fn keeping(mut self, keep: Option<Keep>) -> Self {
        self._keep = keep;
        self
    }

    fn tcp(&self) -> &Stream {
        self.tls.get_ref().0
    }
}

impl std::fmt::Debug for TerminatedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminatedStream")
            .field("tcp", self.tcp())
            .field("version", &self.digest.version)
            .field("alpn", &self.alpn)
            .finish()
    }
}

impl AsyncRead for TerminatedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for TerminatedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tls).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for TerminatedStream {
    async fn shutdown(&mut self) {
        // close_notify, then the TCP write side; a peer already gone is not an error here.
        let _ = AsyncWriteExt::shutdown(&mut self.tls).await;
    }
}

impl UniqueID for TerminatedStream {
    fn id(&self) -> UniqueIDType {
        self.tcp().id()
    }
}

impl Ssl for TerminatedStream {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        Some(self.digest.clone())
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.alpn.clone()
    }
}

impl GetTimingDigest for TerminatedStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.tcp().get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.tcp().get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.tcp().get_write_pending_time()
    }
}

impl GetProxyDigest for TerminatedStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.tcp().get_proxy_digest()
    }
}

impl GetSocketDigest for TerminatedStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.tcp().get_socket_digest()
    }
}

/// Peeking under TLS is not offered (pingora only peeks plain connections for h2c).
#[async_trait]
impl Peek for TerminatedStream {}
