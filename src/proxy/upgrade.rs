//! The upgrade bridge: once the upstream has answered `101 Switching Protocols` to a
//! WebSocket upgrade, both connections are taken over and bridged — message by message and
//! scanned when detection is on, byte by byte otherwise.

use http::Response;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::context::ProxyContext;
use super::splice::splice;
use super::websocket;
use crate::pipeline::request::Forwarding;
use crate::pipeline::response::upgrade_head;
use crate::pipeline::{ProxyBody, Side};

/// Answers the client's upgrade with the upstream's `101` and bridges the two connections
/// in a task of their own.
pub fn bridge(
    ctx: &ProxyContext,
    mut fwd: Forwarding,
    mut resp: Response<Incoming>,
) -> Response<ProxyBody> {
    let Some(client_upgrade) = fwd.upgrade.take() else {
        return fwd.unasked_upgrade();
    };
    let upstream_upgrade = hyper::upgrade::on(&mut resp);
    let idle = ctx.config.limits.idle_timeout;
    let tracker = fwd.tracker.clone();
    let detector = fwd.live.detector.clone();
    let scan_messages = detector.scans_outbound() || detector.scans_inbound();
    ctx.tasks.spawn(async move {
        match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok((client_io, upstream_io)) if scan_messages => {
                tracker.mark_websocket();
                let (client_io, upstream_io) = (TokioIo::new(client_io), TokioIo::new(upstream_io));
                websocket::relay(client_io, upstream_io, detector, tracker, idle).await;
            }
            Ok((client_io, upstream_io)) => {
                let (up, down) =
                    splice(TokioIo::new(client_io), TokioIo::new(upstream_io), idle).await;
                tracker.add_bytes(Side::Request, up);
                tracker.add_bytes(Side::Response, down);
            }
            Err(e) => tracker.fail(Some(101), format!("protocol upgrade failed: {e}")),
        }
    });
    ctx.note_open_tasks();
    upgrade_head(resp.into_parts().0)
}
