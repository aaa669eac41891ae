//! `--upstream-protocol http2`: a real gRPC call (tonic client, tonic's server-side gRPC
//! handling on hyper's HTTP/2 server) through edge and agent, with `grpc-status` arriving in
//! the HTTP/2 trailers at the client.

use bytes::{Buf, BufMut, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_agent::UpstreamProtocol;
use sluice_e2e::{any_port, TestAgent, TestEdge, TOKEN};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use tokio::net::TcpListener;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Request, Response, Status};

/// Messages are raw bytes: no protobuf codegen needed for a real gRPC exchange.
#[derive(Clone, Default)]
struct RawCodec;

struct RawCoder;

impl Encoder for RawCoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCoder;
    type Decoder = RawCoder;
    fn encoder(&mut self) -> RawCoder {
        RawCoder
    }
    fn decoder(&mut self) -> RawCoder {
        RawCoder
    }
}

/// `/echo.Echo/Say` answers `hello <name>`; the name `missing` is a NOT_FOUND status.
struct Say;

impl tonic::server::UnaryService<Bytes> for Say {
    type Response = Bytes;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Status>> + Send>>;
    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        Box::pin(async move {
            let name = req.into_inner();
            if &name[..] == b"missing" {
                return Err(Status::not_found("no such greeting"));
            }
            let mut out = b"hello ".to_vec();
            out.extend_from_slice(&name);
            Ok(Response::new(Bytes::from(out)))
        })
    }
}

/// A gRPC server speaking h2c on a loopback port.
async fn grpc_server() -> anyhow::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(any_port()).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let resp = if req.uri().path() == "/echo.Echo/Say" {
                        tonic::server::Grpc::new(RawCodec).unary(Say, req).await
                    } else {
                        Status::unimplemented("unknown method").into_http()
                    };
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn say(
    edge: &TestEdge,
    host: &str,
    name: &'static [u8],
) -> anyhow::Result<Result<Bytes, Status>> {
    let channel = tonic::transport::Endpoint::from_shared(format!(
        "http://127.0.0.1:{}",
        edge.http_addr.port()
    ))?
    .origin(edge.url(host).parse()?)
    .connect()
    .await?;
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await?;
    Ok(client
        .unary(
            Request::new(Bytes::from_static(name)),
            "/echo.Echo/Say".parse()?,
            RawCodec,
        )
        .await
        .map(Response::into_inner))
}

#[tokio::test]
async fn grpc_call_through_the_tunnel_keeps_its_trailers() -> anyhow::Result<()> {
    let server = grpc_server().await?;
    let edge = TestEdge::start().await?;
    let mut config = edge.agent_config(TOKEN, "grpc", server);
    config.endpoints[0].upstream_protocol = UpstreamProtocol::Http2;
    let agent = TestAgent::start(config).await?;
    let host = &agent.hostnames[0];

    // A successful unary call: tonic fails the call if grpc-status is missing from trailers.
    let reply = say(&edge, host, b"sluice").await??;
    assert_eq!(&reply[..], b"hello sluice");
    // An error status with its message.
    let status = say(&edge, host, b"missing").await?.expect_err("NOT_FOUND");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "no such greeting");
    // Several calls in a row, each on its own QUIC stream.
    for _ in 0..5 {
        assert_eq!(&say(&edge, host, b"again").await??[..], b"hello again");
    }

    // The same call by hand, to see the trailers frame itself.
    let tcp = tokio::net::TcpStream::connect(edge.http_addr).await?;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let mut framed = vec![0u8];
    framed.extend_from_slice(&5u32.to_be_bytes());
    framed.extend_from_slice(b"trail");
    let req = http::Request::post(format!("{}/echo.Echo/Say", edge.url(host)))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(framed)))?;
    let resp = send.send_request(req).await?;
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await?;
    let trailers = collected.trailers().cloned().expect("response trailers");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    let body = collected.to_bytes();
    assert_eq!(&body[5..], b"hello trail");
    agent.stop().await
}
