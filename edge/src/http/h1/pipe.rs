//! [`Pipe`]: one request's meeting point between pingora's proxy, which writes the response
//! through the bridge session, and hyper, which takes the head and then the body frames to
//! write them to the client. Also [`ResponseBody`], the body hyper reads from it.
//!
//! Both sides are polled by the same connection task (`connection.rs`), so the pipe only keeps
//! state and wakers; a write waits until hyper took the previous one, which is how a slow
//! client slows the proxy down.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Why a response could not go through the pipe.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum PipeError {
    /// The client connection ended before the response did.
    #[error("the client connection closed")]
    Closed,
    /// The proxy gave the response up part-way: the client must not see it as complete.
    #[error("the response was abandoned")]
    Abandoned,
    /// The proxy finished without writing a response.
    #[error("no response was written")]
    NoResponse,
}

/// The response head as hyper takes it.
pub struct Head {
    /// Status, headers.
    pub parts: http::response::Parts,
    /// A 101 that hands the connection to the request (the session reads and writes it raw).
    pub upgrade: bool,
}

#[derive(Default)]
struct State {
    /// The final head, written and not yet taken by hyper.
    head: Option<Head>,
    /// The head was written (taken or not).
    head_written: bool,
    /// Frames written and not yet taken by hyper.
    frames: VecDeque<Frame<Bytes>>,
    /// The last frame was written.
    ended: bool,
    /// The proxy gave up on the response.
    abandoned: bool,
    /// The connection should close once this response is out.
    close_after: bool,
    /// hyper dropped the response body: it wants no more (the length was reached, a HEAD or
    /// 204/304, the message ended) or the connection is gone; later writes go nowhere.
    released: bool,
    /// The client connection ended.
    closed: bool,
    /// hyper wrote a 101: the connection now belongs to this request.
    upgraded: bool,
    /// The proxy dropped its session.
    session_gone: bool,
    /// hyper's side, waiting for the head or a frame.
    hyper: Option<Waker>,
    /// The proxy's side, waiting for room or for the connection's end.
    session: Option<Waker>,
}

fn park(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn wake(slot: &mut Option<Waker>) {
    if let Some(w) = slot.take() {
        w.wake();
    }
}

/// One request's response on its way from the proxy to hyper.
#[derive(Default)]
pub struct Pipe {
    state: Mutex<State>,
}

impl Pipe {
    /// An empty pipe.
    pub fn new() -> Self {
        Self::default()
    }

    // The proxy's side.

    /// Writes the final head; `end` when no body follows.
    pub fn put_head(
        &self,
        parts: http::response::Parts,
        end: bool,
        upgrade: bool,
    ) -> Result<(), PipeError> {
        let mut s = self.state.lock();
        if s.closed {
            return Err(PipeError::Closed);
        }
        s.head = Some(Head { parts, upgrade });
        s.head_written = true;
        s.ended |= end;
        wake(&mut s.hyper);
        Ok(())
    }

    /// Waits until hyper took what was written before, then writes `frames` (`end` when the
    /// body ends with them). Writes after hyper released the body are dropped.
    pub async fn send(&self, frames: Vec<Frame<Bytes>>, end: bool) -> Result<(), PipeError> {
        let mut frames = Some(frames);
        std::future::poll_fn(|cx| {
            let mut s = self.state.lock();
            if s.released {
                return Poll::Ready(Ok(()));
            }
            if s.closed {
                return Poll::Ready(Err(PipeError::Closed));
            }
            if !s.frames.is_empty() {
                park(&mut s.session, cx);
                return Poll::Pending;
            }
            s.frames.extend(frames.take().into_iter().flatten());
            s.ended |= end;
            wake(&mut s.hyper);
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Ends the body (no more frames follow).
    pub fn end(&self) {
        let mut s = self.state.lock();
        if s.head_written && !s.ended {
            s.ended = true;
            wake(&mut s.hyper);
        }
    }

    /// Gives the response up: a response still incomplete is cut off (hyper drops the
    /// connection rather than finishing the message); a complete one goes out and the
    /// connection closes after it.
    pub fn abandon(&self) {
        let mut s = self.state.lock();
        if s.ended {
            s.close_after = true;
        } else {
            s.abandoned = true;
        }
        wake(&mut s.hyper);
    }

    /// Waits until the client connection ended before hyper had the whole response (a client
    /// that closes after reading a complete response ends nothing).
    pub async fn closed(&self) {
        std::future::poll_fn(|cx| {
            let mut s = self.state.lock();
            if s.closed && !s.released {
                Poll::Ready(())
            } else {
                park(&mut s.session, cx);
                Poll::Pending
            }
        })
        .await
    }

    /// Whether the client connection ended.
    #[cfg(test)]
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Whether hyper wants no more of the body: it has the whole response (or the connection
    /// is gone).
    pub fn is_released(&self) -> bool {
        self.state.lock().released
    }

    /// The proxy is done with the request: without a head, hyper answers nothing; with an
    /// unfinished body, the response is cut off.
    pub fn session_gone(&self) {
        let mut s = self.state.lock();
        s.session_gone = true;
        if s.head_written && !s.ended {
            s.abandoned = true;
        }
        wake(&mut s.hyper);
    }

    // The connection's side.

    /// The client connection ended (not when it was handed to this request by a 101).
    pub fn connection_ended(&self) {
        let mut s = self.state.lock();
        if !s.upgraded && !s.closed {
            s.closed = true;
            wake(&mut s.session);
        }
    }

    /// Whether the connection should close after this response (asked once).
    pub fn take_close_request(&self) -> bool {
        std::mem::take(&mut self.state.lock().close_after)
    }

    // hyper's side.

    /// The head once written; `Err` when the proxy finished without one.
    pub fn poll_head(&self, cx: &mut Context<'_>) -> Poll<Result<Head, PipeError>> {
        let mut s = self.state.lock();
        if let Some(head) = s.head.take() {
            s.upgraded = head.upgrade;
            return Poll::Ready(Ok(head));
        }
        if s.session_gone {
            return Poll::Ready(Err(PipeError::NoResponse));
        }
        park(&mut s.hyper, cx);
        Poll::Pending
    }

    fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, PipeError>>> {
        let mut s = self.state.lock();
        if let Some(frame) = s.frames.pop_front() {
            if s.frames.is_empty() {
                wake(&mut s.session);
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if s.abandoned {
            return Poll::Ready(Some(Err(PipeError::Abandoned)));
        }
        if s.ended {
            return Poll::Ready(None);
        }
        park(&mut s.hyper, cx);
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let s = self.state.lock();
        s.ended && s.frames.is_empty() && !s.abandoned
    }

    fn release(&self) {
        let mut s = self.state.lock();
        s.released = true;
        s.frames.clear();
        wake(&mut s.session);
    }
}

/// The body of a response hyper writes: the proxy's, through a [`Pipe`], or one the bridge
/// wrote whole.
pub enum ResponseBody {
    /// The proxy's response body.
    Piped(std::sync::Arc<Pipe>),
    /// A whole body (the bridge's own refusals).
    Whole(Option<Bytes>),
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = PipeError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, PipeError>>> {
        match self.get_mut() {
            ResponseBody::Piped(pipe) => pipe.poll_frame(cx),
            ResponseBody::Whole(body) => Poll::Ready(body.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Piped(pipe) => pipe.is_end_stream(),
            ResponseBody::Whole(body) => body.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Piped(pipe) if pipe.is_end_stream() => SizeHint::with_exact(0),
            ResponseBody::Piped(_) => SizeHint::default(),
            ResponseBody::Whole(body) => {
                SizeHint::with_exact(body.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let ResponseBody::Piped(pipe) = self {
            pipe.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::Arc;
    use std::task::Waker;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    fn head() -> http::response::Parts {
        http::Response::new(()).into_parts().0
    }

    fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
        let mut f = std::pin::pin!(f);
        f.as_mut().poll(&mut cx())
    }

    fn next(body: &mut ResponseBody) -> Poll<Option<Result<Frame<Bytes>, PipeError>>> {
        Pin::new(body).poll_frame(&mut cx())
    }

    #[test]
    fn head_then_frames_then_end() {
        let pipe = Arc::new(Pipe::new());
        assert!(pipe.poll_head(&mut cx()).is_pending());
        pipe.put_head(head(), false, false).expect("head");
        let taken = pipe.poll_head(&mut cx());
        assert!(matches!(
            taken,
            Poll::Ready(Ok(Head { upgrade: false, .. }))
        ));
        let mut body = ResponseBody::Piped(pipe.clone());
        assert!(!body.is_end_stream());
        assert!(next(&mut body).is_pending());
        let sent = poll_once(pipe.send(vec![Frame::data(Bytes::from_static(b"a"))], false));
        assert_eq!(sent, Poll::Ready(Ok(())));
        // Room only once hyper took the frame.
        assert!(
            poll_once(pipe.send(vec![Frame::data(Bytes::from_static(b"b"))], true)).is_pending()
        );
        let frame = next(&mut body);
        assert!(
            matches!(frame, Poll::Ready(Some(Ok(f))) if f.data_ref() == Some(&Bytes::from_static(b"a")))
        );
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", http::HeaderValue::from_static("1"));
        assert_eq!(
            poll_once(pipe.send(vec![Frame::trailers(trailers)], true)),
            Poll::Ready(Ok(()))
        );
        assert!(matches!(next(&mut body), Poll::Ready(Some(Ok(f))) if f.is_trailers()));
        assert!(body.is_end_stream());
        assert!(matches!(next(&mut body), Poll::Ready(None)));
    }

    #[test]
    fn a_head_that_ends_the_response_is_an_empty_body() {
        let pipe = Arc::new(Pipe::new());
        pipe.put_head(head(), true, false).expect("head");
        let body = ResponseBody::Piped(pipe.clone());
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }

    #[test]
    fn writes_after_hyper_released_the_body_go_nowhere() {
        let pipe = Arc::new(Pipe::new());
        pipe.put_head(head(), false, false).expect("head");
        drop(ResponseBody::Piped(pipe.clone()));
        let sent = poll_once(pipe.send(vec![Frame::data(Bytes::from_static(b"late"))], true));
        assert_eq!(sent, Poll::Ready(Ok(())));
    }

    #[test]
    fn a_closed_connection_fails_writes_and_wakes_the_idle_wait() {
        let pipe = Arc::new(Pipe::new());
        assert!(poll_once(pipe.closed()).is_pending());
        pipe.connection_ended();
        assert!(poll_once(pipe.closed()).is_ready());
        assert_eq!(
            pipe.put_head(head(), false, false).err(),
            Some(PipeError::Closed)
        );
        let sent = poll_once(pipe.send(vec![], true));
        assert_eq!(sent, Poll::Ready(Err(PipeError::Closed)));
    }

    #[test]
    fn an_upgraded_request_keeps_its_connection() {
        let pipe = Arc::new(Pipe::new());
        pipe.put_head(head(), true, true).expect("head");
        assert!(matches!(
            pipe.poll_head(&mut cx()),
            Poll::Ready(Ok(Head { upgrade: true, .. }))
        ));
        pipe.connection_ended();
        assert!(!pipe.is_closed());
    }

    #[test]
    fn abandoning_an_unfinished_body_cuts_it_off() {
        let pipe = Arc::new(Pipe::new());
        pipe.put_head(head(), false, false).expect("head");
        let mut body = ResponseBody::Piped(pipe.clone());
        pipe.abandon();
        assert!(matches!(
            next(&mut body),
            Poll::Ready(Some(Err(PipeError::Abandoned)))
        ));
        assert!(!pipe.take_close_request());
    }

    #[test]
    fn abandoning_a_finished_response_closes_the_connection_after_it() {
        let pipe = Arc::new(Pipe::new());
        pipe.put_head(head(), true, false).expect("head");
        pipe.abandon();
        assert!(pipe.take_close_request());
        assert!(!pipe.take_close_request());
        let mut body = ResponseBody::Piped(pipe.clone());
        assert!(matches!(next(&mut body), Poll::Ready(None)));
    }

    #[test]
    fn a_session_gone_without_a_head_answers_nothing() {
        let pipe = Arc::new(Pipe::new());
        pipe.session_gone();
        assert!(matches!(
            pipe.poll_head(&mut cx()),
            Poll::Ready(Err(PipeError::NoResponse))
        ));
    }

    #[test]
    fn a_session_gone_mid_body_cuts_the_body_off() {
        let pipe = Arc::new(Pipe::new());
        pipe.put_head(head(), false, false).expect("head");
        let mut body = ResponseBody::Piped(pipe.clone());
        pipe.session_gone();
        assert!(matches!(
            next(&mut body),
            Poll::Ready(Some(Err(PipeError::Abandoned)))
        ));
    }
}
