//! The session's control stream on the agent's side: its own task answers the edge's liveness
//! pings and, when the agent stops, tells the edge it is leaving so that no new request is
//! sent its way while the ones in flight finish.

use sluice_proto::codec::{decode, write_frame};
use sluice_proto::control::ControlFrame;
use sluice_proto::link::{RecvHalf, SendHalf};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{debug, Instrument};

/// The agent's handle on a session's control stream.
pub(crate) struct Control {
    leave: oneshot::Sender<oneshot::Sender<()>>,
}

impl Control {
    /// Holds the control stream (`send`, `recv`) on a task of its own for the session's life:
    /// closing it would end the session.
    pub(crate) fn hold(send: SendHalf, recv: RecvHalf) -> Self {
        let (leave, asked) = oneshot::channel();
        tokio::spawn(run(send, recv, asked).in_current_span());
        Self { leave }
    }

    /// Tells the edge this agent is leaving and waits (at most `limit`) until it has stopped
    /// picking this session for new requests.
    pub(crate) async fn leave(self, limit: Duration) {
        let (acked, ack) = oneshot::channel();
        if self.leave.send(acked).is_ok() && tokio::time::timeout(limit, ack).await.is_err() {
            debug!("the edge did not acknowledge the leave in {limit:?}");
        }
    }
}

/// Reads control frames (reads of whole chunks, so nothing is lost when the leave request
/// wins the race) and answers them until the stream or the session ends.
async fn run(
    mut send: SendHalf,
    mut recv: RecvHalf,
    mut asked: oneshot::Receiver<oneshot::Sender<()>>,
) {
    let mut buf = Vec::new();
    let mut waiting: Option<oneshot::Sender<()>> = None;
    let mut leave_asked = false;
    loop {
        tokio::select! {
            chunk = recv.read_chunk(4096) => match chunk {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                Ok(None) | Err(_) => return,
            },
            acked = &mut asked, if !leave_asked => {
                leave_asked = true;
                if let Ok(acked) = acked {
                    if write_frame(&mut send, &ControlFrame::Leaving).await.is_err() {
                        return;
                    }
                    waiting = Some(acked);
                }
                continue;
            }
        }
        loop {
            match decode::<ControlFrame>(&buf) {
                Ok(Some((frame, used))) => {
                    buf.drain(..used);
                    match frame {
                        ControlFrame::Ping(n) => {
                            if write_frame(&mut send, &ControlFrame::Pong(n))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        ControlFrame::LeaveAck => {
                            if let Some(acked) = waiting.take() {
                                let _ = acked.send(());
                            }
                        }
                        ControlFrame::Pong(_) | ControlFrame::Leaving => {}
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!("malformed control message from the edge: {e}");
                    return;
                }
            }
        }
    }
}
