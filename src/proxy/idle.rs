//! Closing idle client connections (`limits.idle_timeout`). A connection is idle when no
//! exchange on it is in flight and no byte moved either way for the timeout; a request that
//! waits minutes for an LLM's answer is in flight, not idle.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Exchanges in flight on one connection, shared by its IO and its service.
#[derive(Clone, Default)]
pub struct ConnActivity {
    in_flight: Arc<AtomicUsize>,
    /// Whether the client has sent any byte (after the TLS handshake, on a tunnel).
    received: Arc<AtomicBool>,
}

/// Held while an exchange is in flight (until its response body is done, or for a tunnel,
/// until the tunnel closes).
pub struct InFlight {
    in_flight: Arc<AtomicUsize>,
}

impl ConnActivity {
    pub fn begin(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            in_flight: self.in_flight.clone(),
        }
    }

    /// Whether the client sent anything on the connection.
    pub fn received_any(&self) -> bool {
        self.received.load(Ordering::Acquire)
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Wraps a client connection: reads report end-of-stream once it has been idle for `idle`,
/// which makes the HTTP server close it cleanly.
pub struct IdleIo<T> {
    inner: T,
    activity: ConnActivity,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, activity: ConnActivity, idle: Duration) -> Self {
        let now = Instant::now();
        IdleIo {
            inner,
            activity,
            idle,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle)),
        }
    }

    /// True when the connection should be closed; otherwise arms the timer for later.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.activity.busy() {
                self.last = Instant::now();
            }
            let deadline = self.last + self.idle;
            if Instant::now() >= deadline {
                return true;
            }
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.last = Instant::now();
                if r.is_ok() && buf.filled().len() > before {
                    this.activity.received.store(true, Ordering::Release);
                }
                Poll::Ready(r)
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if r.is_ready() {
            this.last = Instant::now();
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if r.is_ready() {
            this.last = Instant::now();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
