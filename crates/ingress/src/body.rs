//! Bodies as the proxy passes them on: boxed, with nginx's size limit and idle timeouts.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn empty() -> Body {
    http_body_util::Empty::new().map_err(|never| match never {}).boxed_unsync()
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than {0} bytes")]
    TooLarge(u64),
    #[error("no data for {0:?}")]
    Idle(Duration),
}

/// Wraps a body: fails once more than `limit` bytes went through (`proxy-body-size` for bodies
/// without a Content-Length), and when no frame arrives for `idle` (nginx's proxy timeouts are
/// between two successive reads or writes, not for the whole transfer).
pub struct Guarded<B> {
    inner: B,
    limit: Option<u64>,
    seen: u64,
    idle: Duration,
    /// Armed only when the inner body makes the reader wait: most bodies are ready at once,
    /// and a timer per body is a measurable share of a proxied request.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> Guarded<B> {
    pub fn new(inner: B, limit: Option<u64>, idle: Duration) -> Guarded<B> {
        Guarded { inner, limit, seen: 0, idle, sleep: None }
    }
}

impl<B> HttpBody for Guarded<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                let frame = match frame {
                    Some(Ok(f)) => f,
                    Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    None => return Poll::Ready(None),
                };
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if let Some(limit) = this.limit.filter(|l| this.seen > *l) {
                        return Poll::Ready(Some(Err(BodyError::TooLarge(limit).into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(sleep.as_mut().poll(cx));
                Poll::Ready(Some(Err(BodyError::Idle(this.idle).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts the bytes of a response body on their way to the client, and reports them when the
/// body ends or is dropped (the access log line and the metrics are written then).
pub struct Counted<B, F: FnOnce(u64)> {
    inner: B,
    bytes: u64,
    done: Option<F>,
}

impl<B, F: FnOnce(u64)> Counted<B, F> {
    pub fn new(inner: B, done: F) -> Counted<B, F> {
        Counted { inner, bytes: 0, done: Some(done) }
    }
}

impl<B, F: FnOnce(u64)> Drop for Counted<B, F> {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(self.bytes);
        }
    }
}

impl<B, F> HttpBody for Counted<B, F>
where
    B: HttpBody<Data = Bytes> + Unpin,
    F: FnOnce(u64) + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    this.bytes += d.len() as u64;
                }
            }
            None | Some(Err(_)) => {
                if let Some(done) = this.done.take() {
                    done(this.bytes);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
