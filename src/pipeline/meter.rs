//! Counting taps: [`Metered`] counts a body into the flow record as it passes and, at
//! `log: 2`, keeps a bounded preview for the egress events; [`BudgetCharge`] charges a
//! host's byte budget for what streams on after the first charge. Neither holds a body back.

use std::sync::Arc;

use bytes::Bytes;

use super::body::{BoxError, Outlet, Rest, Tap};
use super::exchange::Side;
use super::tracker::FlowTracker;
use crate::config::Config;
use crate::policy::BudgetLedger;

/// How much of each body the level-2 events show.
const PREVIEW_BYTES: usize = 64 * 1024;

pub struct Metered {
    tracker: Arc<FlowTracker>,
    side: Side,
    seen: u64,
    preview: Option<Vec<u8>>,
    finished: bool,
}

impl Metered {
    pub fn new(tracker: Arc<FlowTracker>, side: Side) -> Self {
        let preview = tracker.wants_bodies().then(Vec::new);
        Metered {
            tracker,
            side,
            seen: 0,
            preview,
            finished: false,
        }
    }

    fn finish(&mut self) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if let Some(preview) = self.preview.take() {
            let truncated = self.seen > preview.len() as u64;
            self.tracker
                .body_event(self.side, &preview, self.seen, truncated);
        }
    }
}

impl Tap for Metered {
    fn on_data(&mut self, data: Bytes, out: &mut Outlet) {
        let n = data.len();
        self.seen += n as u64;
        self.tracker.add_bytes(self.side, n as u64);
        if let Some(p) = &mut self.preview
            && p.len() < PREVIEW_BYTES
        {
            let take = n.min(PREVIEW_BYTES - p.len());
            p.extend_from_slice(&data[..take]);
        }
        out.push(data);
    }

    fn on_end(&mut self, _out: &mut Outlet) {
        self.finish();
    }

    fn on_error(&mut self, error: &BoxError, _out: &mut Outlet) {
        let what = match self.side {
            Side::Request => "request body from the client",
            Side::Response => "response body from the upstream",
        };
        self.tracker.fail(
            None,
            format!("{what} broke off after {} bytes: {error}", self.seen),
        );
        self.finished = true;
    }

    fn on_abandon(&mut self) -> Rest {
        // Dropped before its end (an empty body ends, it is not abandoned): a reader that went
        // away (a client closing an SSE stream, or leaving before the first byte of a stalled
        // body), or an upstream answering before reading all of a request.
        if !self.finished && self.side == Side::Response {
            self.tracker.note(format!(
                "client stopped reading the response after {} bytes",
                self.seen
            ));
        }
        self.finish();
        // A client still sending a refused request reads the 403 only once what it sends
        // has been read: an unread body makes the connection close under it (a reset, or
        // an "EOF" in TLS, where the client cannot tell a block from a network failure).
        if self.side == Side::Request && self.tracker.blocked().is_some() {
            Rest::Drain
        } else {
            Rest::Drop
        }
    }
}

/// Charges a host's budget for the bytes of a body past those already charged, as they go.
pub struct BudgetCharge {
    ledger: Arc<BudgetLedger>,
    config: Arc<Config>,
    host: String,
    /// Bytes still covered by the first charge.
    prepaid: u64,
}

impl BudgetCharge {
    pub fn new(ledger: Arc<BudgetLedger>, config: Arc<Config>, host: String, prepaid: u64) -> Self {
        BudgetCharge {
            ledger,
            config,
            host,
            prepaid,
        }
    }
}

impl Tap for BudgetCharge {
    fn on_data(&mut self, data: Bytes, out: &mut Outlet) {
        let n = data.len() as u64;
        let covered = n.min(self.prepaid);
        self.prepaid -= covered;
        self.ledger.add(&self.config, &self.host, n - covered);
        out.push(data);
    }
}
