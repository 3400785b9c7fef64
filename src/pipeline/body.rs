//! Bodies stream through the pipeline; features watch them through taps. A [`Tap`] sees
//! each chunk and says what may leave (the chunk unchanged, a rewritten one, nothing yet)
//! and how the body ends; [`TapBody`] is the one `http_body::Body` that runs a tap over a
//! body stream, so no feature writes its own `poll_frame`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// The error a blocked body ends with (the upstream or the client sees the stream break).
#[derive(Debug, thiserror::Error)]
#[error("blocked by airlock: {0}")]
pub struct BlockedError(pub String);

/// What a tap lets out, in order, and how the body ends after it.
#[derive(Default)]
pub struct Outlet {
    frames: VecDeque<Frame<Bytes>>,
    bytes: usize,
    end: Option<Result<(), BoxError>>,
}

impl Outlet {
    /// Lets `data` out after what is already waiting.
    pub fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.bytes += data.len();
            self.frames.push_back(Frame::data(data));
        }
    }

    /// Ends the body cleanly once what is waiting has been read.
    pub fn end(&mut self) {
        if self.end.is_none() {
            self.end = Some(Ok(()));
        }
    }

    /// Ends the body with `error` at once: what is waiting is dropped, nothing more leaves.
    pub fn abort(&mut self, error: BoxError) {
        self.frames.clear();
        self.bytes = 0;
        self.end = Some(Err(error));
    }

    /// Data bytes waiting to be read.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// What becomes of the unread rest of a body dropped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    Drop,
    /// Read and discarded in the background (bounded): a client still sending a refused
    /// request then gets to read the refusal instead of a reset connection.
    Drain,
}

/// How much of a refused request's unread body is drained, and for how long.
pub const DRAIN_BYTES: u64 = 64 << 20;
pub const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads and discards `body` until it ends, `max_bytes` were read, or `max_time` passed.
pub async fn drain<B>(mut body: B, max_bytes: u64, max_time: std::time::Duration)
where
    B: Body<Data = Bytes> + Unpin,
{
    use http_body_util::BodyExt;
    let read_all = async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > max_bytes {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(max_time, read_all).await;
}

/// Something that watches a body pass and may hold, rewrite or end it.
pub trait Tap: Send + Sync + Unpin + 'static {
    /// A chunk arrived; put what may leave now in `out` (usually the chunk itself).
    fn on_data(&mut self, data: Bytes, out: &mut Outlet);
    /// The body's data is complete: let out what is held.
    fn on_end(&mut self, _out: &mut Outlet) {}
    /// The last chunk (the inner body says nothing follows it): `on_data` then `on_end`,
    /// unless the tap does both at once (a scan then reads the end once, not twice).
    fn on_last(&mut self, data: Bytes, out: &mut Outlet) {
        self.on_data(data, out);
        if out.end.is_none() {
            self.on_end(out);
        }
    }
    /// The body broke off with `error` (passed on after `out` unless the tap ends the body
    /// itself).
    fn on_error(&mut self, _error: &BoxError, _out: &mut Outlet) {}
    /// The body was dropped before its end (the reader went away, or a block ended it). The
    /// answer says what becomes of the unread rest of the inner body.
    fn on_abandon(&mut self) -> Rest {
        Rest::Drop
    }
    /// Bytes read but held back (not in the outlet yet).
    fn held(&self) -> usize {
        0
    }
    /// Whether the body keeps its length (its size hint stays true).
    fn keeps_length(&self) -> bool {
        true
    }
    /// Whether the body may report its end as soon as the inner body does. A tap that must
    /// see the end to judge the body (a scan) says no, so it is read to its end.
    fn ends_with_inner(&self) -> bool {
        true
    }
    /// The most bytes of a chunk to hand over at once, for a tap whose output can be far
    /// larger than its input (a decompressing scan): the rest of the chunk waits until the
    /// reader has taken what came out, so a decompression bomb never sits in memory whole.
    fn input_slice(&self) -> Option<usize> {
        None
    }
}

/// A body stream with a tap on it.
pub struct TapBody<T: Tap, B: Body<Data = Bytes> + Send + Unpin + 'static = ProxyBody> {
    /// Taken only when the body is dropped and its rest drained.
    inner: Option<B>,
    tap: T,
    out: Outlet,
    /// The inner body has ended (or failed) and the tap was told.
    inner_done: bool,
    /// The end was delivered.
    done: bool,
    /// The rest of an inner chunk not handed to the tap yet (see [`Tap::input_slice`]), and
    /// whether it ends the body.
    backlog: Option<(Bytes, bool)>,
}

impl<T: Tap, B> TapBody<T, B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    pub fn new(inner: B, tap: T) -> Self {
        TapBody {
            inner: Some(inner),
            tap,
            out: Outlet::default(),
            inner_done: false,
            done: false,
            backlog: None,
        }
    }

    pub fn tap(&self) -> &T {
        &self.tap
    }

    pub fn tap_mut(&mut self) -> &mut T {
        &mut self.tap
    }

    /// Reads the body through the tap until `limit` bytes are held or ready, the body ends,
    /// or the tap ends it, before anything is sent.
    pub async fn fill(&mut self, limit: usize) {
        std::future::poll_fn(|cx| {
            while !self.inner_done
                && self.out.end.is_none()
                && self.out.bytes + self.tap.held() < limit
            {
                if self.pull(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            Poll::Ready(())
        })
        .await
    }

    /// The whole body was read by `fill` and ends cleanly: `ready_len` is its length.
    pub fn complete(&self) -> bool {
        self.inner_done && matches!(self.out.end, Some(Ok(()))) && self.tap.held() == 0
    }

    /// The inner body broke off with an error while `fill` read it (its sender went away).
    pub fn broke_off(&self) -> bool {
        matches!(self.out.end, Some(Err(_)))
    }

    /// Data bytes ready to leave.
    pub fn ready_len(&self) -> usize {
        self.out.bytes
    }

    fn inner(&self) -> &B {
        self.inner
            .as_ref()
            .expect("the inner body is taken only on drop")
    }

    /// Hands `data` (`last`: nothing follows it) to the tap, a slice at a time when the
    /// tap asks for that.
    fn feed(&mut self, mut data: Bytes, last: bool) {
        if let Some(n) = self.tap.input_slice()
            && data.len() > n
        {
            let rest = data.split_off(n);
            self.backlog = Some((rest, last));
            self.tap.on_data(data, &mut self.out);
        } else if last {
            self.inner_done = true;
            self.tap.on_last(data, &mut self.out);
            self.out.end();
        } else {
            self.tap.on_data(data, &mut self.out);
        }
    }

    /// Polls the inner body once (or takes the next slice of the chunk it gave last) and
    /// hands what it gives to the tap.
    fn pull(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some((data, last)) = self.backlog.take() {
            self.feed(data, last);
            return Poll::Ready(());
        }
        let inner = self
            .inner
            .as_mut()
            .expect("the inner body is taken only on drop");
        match Pin::new(&mut *inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    let last = inner.is_end_stream();
                    self.feed(data, last);
                }
                Err(trailers) => {
                    // Trailers close the data: what is held goes first.
                    self.inner_done = true;
                    self.tap.on_end(&mut self.out);
                    if self.out.end.is_none() {
                        self.out.frames.push_back(trailers);
                        self.out.end();
                    }
                }
            },
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                self.inner_done = true;
                self.tap.on_error(&e, &mut self.out);
                if self.out.end.is_none() {
                    self.out.end = Some(Err(e));
                }
            }
            Poll::Ready(None) => {
                self.inner_done = true;
                self.tap.on_end(&mut self.out);
                self.out.end();
            }
            Poll::Pending => return Poll::Pending,
        }
        Poll::Ready(())
    }
}

impl<T: Tap, B> Body for TapBody<T, B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(frame) = this.out.frames.pop_front() {
                if let Some(d) = frame.data_ref() {
                    this.out.bytes -= d.len();
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            if let Some(end) = this.out.end.take() {
                this.done = true;
                return Poll::Ready(end.err().map(Err));
            }
            if this.done {
                return Poll::Ready(None);
            }
            if this.pull(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.done {
            return true;
        }
        if !self.out.frames.is_empty() || self.backlog.is_some() {
            return false;
        }
        match &self.out.end {
            Some(end) => end.is_ok(),
            None => {
                self.tap.ends_with_inner() && self.tap.held() == 0 && self.inner().is_end_stream()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.tap.keeps_length() {
            self.inner().size_hint()
        } else {
            SizeHint::default()
        }
    }
}

impl<T: Tap, B: Body<Data = Bytes> + Send + Unpin + 'static> Drop for TapBody<T, B> {
    fn drop(&mut self) {
        // Told of the end already, or the tap ended the body itself.
        if self.inner_done || self.done || self.out.end.is_some() {
            return;
        }
        let Some(inner) = self.inner.take() else {
            return;
        };
        // A reader that stops at the body's known length never asks for its end; one that
        // goes away (a client closing an SSE stream) abandons it.
        if self.backlog.is_none() && inner.is_end_stream() {
            self.tap.on_end(&mut Outlet::default());
        } else if self.tap.on_abandon() == Rest::Drain
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(drain(inner, DRAIN_BYTES, DRAIN_TIME));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    /// Upper-cases what passes and counts the ends it saw.
    #[derive(Default)]
    struct Upper {
        ends: usize,
        abandoned: bool,
    }

    impl Tap for Upper {
        fn on_data(&mut self, data: Bytes, out: &mut Outlet) {
            out.push(Bytes::from(data.to_ascii_uppercase()));
        }
        fn on_end(&mut self, _out: &mut Outlet) {
            self.ends += 1;
        }
        fn on_abandon(&mut self) -> Rest {
            self.abandoned = true;
            Rest::Drop
        }
    }

    /// A body that gives its chunks one poll at a time.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    fn chunks(parts: &[&'static str]) -> Chunks {
        Chunks(
            parts
                .iter()
                .map(|p| Bytes::from_static(p.as_bytes()))
                .collect(),
        )
    }

    #[tokio::test]
    async fn a_tap_rewrites_every_chunk_and_sees_the_end_once() {
        let body = TapBody::new(chunks(&["ab", "cd"]), Upper::default());
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"ABCD");
    }

    #[tokio::test]
    async fn fill_reads_ahead_and_reports_a_complete_body() {
        let mut body = TapBody::new(Full::new(Bytes::from_static(b"xyz")), Upper::default());
        body.fill(usize::MAX).await;
        assert!(body.complete());
        assert_eq!(body.ready_len(), 3);
        assert_eq!(body.tap().ends, 1);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"XYZ");
    }
}
