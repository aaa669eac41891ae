//! The QUIC listener's UDP socket, told when an agent's address stops existing.
//!
//! When an agent process dies, its host answers the edge's next packet with an ICMP "port
//! unreachable". Linux reports that only to sockets with `IP_RECVERR` set, on the socket's error
//! queue, and it also fails the socket's next send or receive once. [`UnreachableAware`] wraps
//! quinn's socket so that one-off failure never reaches quinn (whose endpoint would stop on a
//! receive error), and [`ErrorQueue`] reads the queue whenever the socket signals an error (a
//! thread of its own waits in `poll`, so the packet path pays nothing), reporting each
//! unreachable address. A report only makes the session a suspect to be pinged
//! at once ([`super::liveness`]): a forged ICMP message cannot end a live session.

use nix::poll::{poll, PollFd, PollFlags};
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, TokioRuntime, UdpPoller};
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tracing::debug;

/// quinn's tokio socket, with the one-off failures `IP_RECVERR` causes kept from quinn.
pub struct UnreachableAware {
    inner: Arc<dyn AsyncUdpSocket>,
}

/// The socket's error queue, read by [`ErrorQueue::spawn`]'s thread; unreachable destinations
/// go to `report`.
pub struct ErrorQueue {
    /// The same socket, through another descriptor.
    socket: UdpSocket,
    report: mpsc::UnboundedSender<SocketAddr>,
}

/// How long the queue's thread waits before checking whether the edge still listens.
const WAIT: u16 = 1_000;

impl fmt::Debug for UnreachableAware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnreachableAware")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl UnreachableAware {
    /// Wraps `socket` (bound, non-blocking) for quinn's tokio runtime, turning on the error
    /// queue for IPv4 and IPv6; the queue's reader reports to `report`.
    pub fn new(
        socket: UdpSocket,
        report: mpsc::UnboundedSender<SocketAddr>,
    ) -> io::Result<(Self, ErrorQueue)> {
        let v6 = socket.local_addr()?.is_ipv6();
        if v6 {
            setsockopt(&socket, sockopt::Ipv6RecvErr, &true).map_err(io::Error::from)?;
        }
        // A dual-stack socket reports IPv4 peers through the IPv4 option.
        let v4 = setsockopt(&socket, sockopt::Ipv4RecvErr, &true);
        if !v6 {
            v4.map_err(io::Error::from)?;
        }
        let errors = socket.try_clone()?;
        let queue = ErrorQueue {
            socket: errors,
            report,
        };
        let socket = Self {
            inner: TokioRuntime.wrap_udp_socket(socket)?,
        };
        Ok((socket, queue))
    }
}

impl ErrorQueue {
    /// Reads the error queue on its own thread every time the socket signals an error, until
    /// the reports' receiver is gone. Costs nothing while no ICMP error arrives.
    pub fn spawn(self) -> io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("sluice-icmp".into())
            .spawn(move || self.run())
    }

    fn run(self) {
        while !self.report.is_closed() {
            // No events asked for: `poll` reports errors (POLLERR) whatever is asked.
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::empty())];
            match poll(&mut fds, WAIT) {
                Ok(0) => {}
                Ok(_) => self.drain(),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    debug!("error queue wait failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reads the error queue empty, reporting every destination an ICMP message called
    /// unreachable (other messages, such as "packet too big", are left to quinn's path MTU
    /// discovery and dropped here).
    fn drain(&self) {
        let fd = self.socket.as_raw_fd();
        loop {
            let mut payload = [0u8; 64];
            let mut iov = [IoSliceMut::new(&mut payload)];
            // Room for the error and the other ancillary data quinn's socket options add to
            // every message (packet info, ECN).
            let mut control = [0u8; 512];
            let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
            let Ok(msg) = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut control), flags)
            else {
                return;
            };
            let destination = msg.address.and_then(|a| to_socket_addr(&a));
            let unreachable = msg.cmsgs().ok().into_iter().flatten().any(|c| match c {
                ControlMessageOwned::Ipv4RecvErr(e, _) | ControlMessageOwned::Ipv6RecvErr(e, _) => {
                    is_unreachable_errno(e.ee_errno as i32)
                }
                _ => false,
            });
            if let (true, Some(addr)) = (unreachable, destination) {
                debug!(%addr, "agent address reported unreachable");
                let _ = self.report.send(addr);
            }
        }
    }
}

fn to_socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

fn is_unreachable_errno(errno: i32) -> bool {
    matches!(
        errno,
        libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH
    )
}

/// The one-off failure a socket with `IP_RECVERR` returns after an ICMP error.
fn is_icmp_failure(e: &io::Error) -> bool {
    e.raw_os_error().is_some_and(is_unreachable_errno)
}

impl AsyncUdpSocket for UnreachableAware {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        match self.inner.try_send(transmit) {
            // The failure belonged to an earlier packet (its report is on the error queue);
            // this one was not sent. UDP may lose it anyway: quinn's loss recovery resends.
            Err(e) if is_icmp_failure(&e) => Ok(()),
            other => other,
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.inner.poll_recv(cx, bufs, meta) {
                // Reported on the error queue; try again.
                Poll::Ready(Err(e)) if is_icmp_failure(&e) => continue,
                other => return other,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_closed_port_is_reported_from_the_error_queue() {
        let socket = sluice_proto::transport::udp_socket(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        let sender = socket.try_clone().expect("clone");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let (_wrapped, queue) = UnreachableAware::new(socket, tx).expect("wrap");
        let _thread = queue.spawn().expect("thread");
        // A port nobody listens on: bound, then released.
        let closed = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("probe");
        sender.send_to(b"anyone?", closed).expect("send");
        let reported = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("reported in time");
        assert_eq!(reported, Some(closed));
    }
}
