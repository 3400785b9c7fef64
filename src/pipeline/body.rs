//! Bodies stream through; this wrapper counts them into the flow record as they pass and,
//! at `log: 2`, keeps a bounded preview for the egress events. It never holds a body back.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::exchange::{FlowTracker, Side};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ProxyBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// How much of each body the level-2 events show.
const PREVIEW_BYTES: usize = 64 * 1024;

pub struct MeteredBody<B> {
    inner: B,
    tracker: Arc<FlowTracker>,
    side: Side,
    seen: u64,
    preview: Option<Vec<u8>>,
    finished: bool,
}

impl<B> MeteredBody<B> {
    pub fn new(inner: B, tracker: Arc<FlowTracker>, side: Side) -> Self {
        let preview = tracker.wants_bodies().then(Vec::new);
        MeteredBody {
            inner,
            tracker,
            side,
            seen: 0,
            preview,
            finished: false,
        }
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(preview) = self.preview.take() {
            let truncated = self.seen > preview.len() as u64;
            self.tracker
                .body_event(self.side, &preview, self.seen, truncated);
        }
    }
}

impl<B> Body for MeteredBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len();
                    this.seen += n as u64;
                    this.tracker.add_bytes(this.side, n as u64);
                    if let Some(p) = &mut this.preview
                        && p.len() < PREVIEW_BYTES
                    {
                        let take = n.min(PREVIEW_BYTES - p.len());
                        p.extend_from_slice(&data[..take]);
                    }
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                let what = match this.side {
                    Side::Request => "request body from the client",
                    Side::Response => "response body from the upstream",
                };
                this.tracker.fail(
                    None,
                    format!("{what} broke off after {} bytes: {e}", this.seen),
                );
                this.finished = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Dropped before its end: an empty body nobody needed to poll, or a reader that went
        // away (a client closing an SSE stream, an upstream answering before reading it all).
        if self.seen > 0 && self.side == Side::Response {
            self.tracker.note(format!(
                "client stopped reading the response after {} bytes",
                self.seen
            ));
        }
        self.finish();
    }
}
