//! The TCP link end to end over loopback: bytes both ways, resets, close codes.

use super::tcp::TcpLink;
use super::{Closed, Link, StreamError};
use crate::framed::{FrameReader, FrameWriter};
use bytes::Bytes;
use std::time::Duration;

/// An edge and an agent side over a loopback TCP connection (no TLS: the link does not
/// care what carries it).
async fn pair() -> (Link, Link) {
    pair_with_limit(8).await
}

/// [`pair`] where the edge may have `max_streams` request streams open at once.
async fn pair_with_limit(max_streams: u32) -> (Link, Link) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let dial = tokio::spawn(async move {
        let io = tokio::net::TcpStream::connect(addr).await.expect("dial");
        TcpLink::agent(io, addr, max_streams)
            .await
            .expect("agent side")
    });
    let (io, remote) = listener.accept().await.expect("accept");
    let edge = TcpLink::edge(io, remote).await.expect("edge side");
    let agent = dial.await.expect("joined");
    (Link::Tcp(edge), Link::Tcp(agent))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_carry_bytes_both_ways_and_end_cleanly() {
    let (edge, agent) = pair().await;
    let (send, recv) = edge.open_bi().await.expect("open");
    let (mut writer, mut reader) = (FrameWriter::new(send), FrameReader::new(recv));
    let big = Bytes::from(vec![7u8; 3 * 1024 * 1024 + 5]);
    let sent = big.clone();
    let upload = tokio::spawn(async move {
        writer.send_raw(sent).await.expect("write");
        writer.finish();
    });
    let (send, recv) = agent.accept_bi().await.expect("accept");
    let (mut a_writer, mut a_reader) = (FrameWriter::new(send), FrameReader::new(recv));
    let mut got = Vec::new();
    while let Some(chunk) = a_reader.next_raw().await.expect("read") {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len(), big.len());
    assert!(got == big[..]);
    upload.await.expect("uploaded");
    a_writer
        .send_raw(Bytes::from_static(b"back"))
        .await
        .expect("answer");
    a_writer.finish();
    assert_eq!(
        reader.next_raw().await.expect("read"),
        Some(Bytes::from_static(b"back"))
    );
    assert_eq!(reader.next_raw().await.expect("end"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_writer_is_a_reset_never_an_end() {
    let (edge, agent) = pair().await;
    let (send, _recv) = edge.open_bi().await.expect("open");
    let mut writer = FrameWriter::new(send);
    writer
        .send_raw(Bytes::from_static(b"partial"))
        .await
        .expect("write");
    let (_send, recv) = agent.accept_bi().await.expect("accept");
    let mut reader = FrameReader::new(recv);
    assert_eq!(
        reader.next_raw().await.expect("first"),
        Some(Bytes::from_static(b"partial"))
    );
    drop(writer);
    assert!(matches!(
        reader.next_raw().await,
        Err(StreamError::Reset(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_is_seen_without_reading_what_arrived() {
    let (edge, agent) = pair().await;
    let (send, _recv) = edge.open_bi().await.expect("open");
    let mut writer = FrameWriter::new(send);
    writer
        .send_raw(Bytes::from_static(b"kept"))
        .await
        .expect("write");
    let (_send, recv) = agent.accept_bi().await.expect("accept");
    let mut reader = FrameReader::new(recv);
    tokio::time::sleep(Duration::from_millis(50)).await;
    writer.abort();
    tokio::time::timeout(Duration::from_secs(5), reader.reset())
        .await
        .expect("reset seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_close_code_and_reason_reach_the_peer() {
    let (edge, agent) = pair().await;
    edge.close(crate::close_code::STOPPED, b"stopped by the operator");
    assert_eq!(edge.close_reason(), Some(Closed::Local));
    let closed = tokio::time::timeout(Duration::from_secs(5), agent.closed())
        .await
        .expect("closed in time");
    assert_eq!(
        closed,
        Closed::Peer {
            code: crate::close_code::STOPPED,
            reason: Bytes::from_static(b"stopped by the operator")
        }
    );
    assert!(agent.accept_bi().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_the_agents_limit_waits_until_one_closes() {
    // One request stream, plus the control stream both transports have.
    let (edge, agent) = pair_with_limit(1).await;
    let (control, _control_recv) = edge.open_bi().await.expect("control");
    let (mut first, _first_recv) = edge.open_bi().await.expect("first");
    let over = tokio::time::timeout(Duration::from_millis(300), edge.open_bi()).await;
    assert!(over.is_err(), "a stream over the limit was opened");
    first.reset();
    let (_third, _) = tokio::time::timeout(Duration::from_secs(5), edge.open_bi())
        .await
        .expect("a stream once one closed")
        .expect("opened");
    drop((control, agent));
}
