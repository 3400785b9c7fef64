//! Byte-for-byte relaying between two connections (blind tunnels, WebSocket after the
//! upgrade), with byte counts for the record and an idle timeout so nothing hangs forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const BUF_BYTES: usize = 16 * 1024;

/// Relays until both directions end, either side fails, or nothing moves for `idle`.
/// Returns (bytes a→b, bytes b→a).
pub async fn splice<A, B>(a: A, b: B, idle: Duration) -> (u64, u64)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let last_activity = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let a_to_b = AtomicU64::new(0);
    let b_to_a = AtomicU64::new(0);

    let relay = async {
        tokio::join!(
            pump(&mut ar, &mut bw, &a_to_b, &last_activity, started, &failed),
            pump(&mut br, &mut aw, &b_to_a, &last_activity, started, &failed),
        )
    };
    let watchdog = async {
        let tick = (idle / 4).max(Duration::from_millis(50));
        loop {
            tokio::time::sleep(tick).await;
            if failed.load(Ordering::Relaxed) {
                return;
            }
            let last = Duration::from_millis(last_activity.load(Ordering::Relaxed));
            if started.elapsed().saturating_sub(last) >= idle {
                return;
            }
        }
    };
    tokio::select! {
        _ = relay => {}
        _ = watchdog => {}
    }
    (
        a_to_b.load(Ordering::Relaxed),
        b_to_a.load(Ordering::Relaxed),
    )
}

async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    count: &AtomicU64,
    last_activity: &AtomicU64,
    started: Instant,
    failed: &AtomicBool,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF_BYTES];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) => {
                // Half-close: the peer may still be sending the other way.
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
            Err(_) => {
                failed.store(true, Ordering::Relaxed);
                return;
            }
        };
        if to.write_all(&buf[..n]).await.is_err() || to.flush().await.is_err() {
            failed.store(true, Ordering::Relaxed);
            return;
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
        last_activity.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}
