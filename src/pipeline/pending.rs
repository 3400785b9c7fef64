//! Requests held by `ask` rules until a person decides (`airlock approve ID`, `airlock deny
//! ID`, the dashboard): who waits, and the channel each one's answer comes through. The wait
//! itself, and what an answer does to the exchange, are `decide::ask`'s.
//!
//! An entry lives exactly as long as its [`Hold`]: when the exchange stops waiting (answered,
//! timed out, or dropped because its client left), the entry goes with it.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{oneshot, watch};

/// What `/api/pending` shows of one held request. The URL is the flow record's, masked the
/// same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingRequest {
    pub id: String,
    pub method: String,
    pub url: String,
    pub rule: String,
    /// When it was held (RFC 3339).
    pub since: String,
}

/// A person's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approved,
    Denied,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Denied => "denied",
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PendingError {
    #[error("no request is held with id {0:?} (it was decided, it timed out, or its client left)")]
    Unknown(String),
    #[error("airlock is stopping: no request is held any more")]
    Closed,
}

struct Entry {
    request: PendingRequest,
    answer: oneshot::Sender<Decision>,
}

#[derive(Default)]
struct Held {
    /// Oldest first; a handful at most, so a list is the right map.
    entries: Vec<Entry>,
    /// Set when the proxy stops: the held are denied and nothing new is held.
    closed: bool,
}

/// The registry every exchange and the admin server share. Outlives a reload.
pub struct PendingRequests {
    held: Mutex<Held>,
    /// Bumped on every change, so the event stream can push the new list.
    changes: watch::Sender<u64>,
}

impl Default for PendingRequests {
    fn default() -> Self {
        PendingRequests {
            held: Mutex::default(),
            changes: watch::channel(0).0,
        }
    }
}

/// One held request's side of the registry. Dropping it takes the entry out.
pub struct Hold {
    registry: Arc<PendingRequests>,
    request: PendingRequest,
    answer: oneshot::Receiver<Decision>,
}

impl Hold {
    pub fn request(&self) -> &PendingRequest {
        &self.request
    }

    /// The person's answer; `None` when the registry closed first (the proxy is stopping),
    /// which the caller must treat as a denial.
    pub async fn answer(&mut self) -> Option<Decision> {
        (&mut self.answer).await.ok()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.registry.remove(&self.request.id);
    }
}

impl PendingRequests {
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // The entries stay consistent whatever panicked while holding the lock.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Holds a request: it is listed until [`Hold`] is dropped or answered.
    pub fn hold(
        self: &Arc<Self>,
        method: &str,
        url: &str,
        rule: &str,
        since: String,
    ) -> Result<Hold, PendingError> {
        let (tx, rx) = oneshot::channel();
        let request = {
            let mut held = self.lock();
            if held.closed {
                return Err(PendingError::Closed);
            }
            let id = loop {
                let id = new_id();
                if !held.entries.iter().any(|e| e.request.id == id) {
                    break id;
                }
            };
            let request = PendingRequest {
                id,
                method: method.to_string(),
                url: url.to_string(),
                rule: rule.to_string(),
                since,
            };
            held.entries.push(Entry {
                request: request.clone(),
                answer: tx,
            });
            request
        };
        self.changed();
        Ok(Hold {
            registry: self.clone(),
            request,
            answer: rx,
        })
    }

    /// The held requests, oldest first.
    pub fn list(&self) -> Vec<PendingRequest> {
        self.lock()
            .entries
            .iter()
            .map(|e| e.request.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers the held request `id`. An id is answered once: the entry leaves the list.
    pub fn decide(&self, id: &str, decision: Decision) -> Result<PendingRequest, PendingError> {
        let entry = {
            let mut held = self.lock();
            let at = held
                .entries
                .iter()
                .position(|e| e.request.id == id)
                .ok_or_else(|| PendingError::Unknown(id.to_string()))?;
            held.entries.remove(at)
        };
        self.changed();
        // A waiter that is gone (its client left a moment ago) has nothing left to decide.
        entry
            .answer
            .send(decision)
            .map_err(|_| PendingError::Unknown(id.to_string()))?;
        Ok(entry.request)
    }

    /// The proxy stops: every held request is denied (its answer channel closes) and no new
    /// one is held.
    pub fn close(&self) {
        let entries = {
            let mut held = self.lock();
            held.closed = true;
            std::mem::take(&mut held.entries)
        };
        if !entries.is_empty() {
            self.changed();
        }
    }

    /// Notified on every change of the list.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn remove(&self, id: &str) {
        let removed = {
            let mut held = self.lock();
            let before = held.entries.len();
            held.entries.retain(|e| e.request.id != id);
            held.entries.len() != before
        };
        if removed {
            self.changed();
        }
    }
}

/// 64 random bits as 16 hex digits: short enough to type, and a page on another origin
/// cannot guess one to approve it in the few seconds it is held.
fn new_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // The system's generator failing is no reason to hold a request under a guessable id.
        bytes = uuid::Uuid::now_v7().as_bytes()[8..16]
            .try_into()
            .unwrap_or_default();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(r: &Arc<PendingRequests>, rule: &str) -> Hold {
        r.hold("GET", "http://h.test/x", rule, "t".into()).unwrap()
    }

    #[tokio::test]
    async fn an_answer_reaches_the_waiter_and_the_entry_leaves() {
        let r = Arc::new(PendingRequests::default());
        let mut h = hold(&r, "ask-x");
        let id = h.request().id.clone();
        assert_eq!(id.len(), 16);
        assert_eq!(r.list().len(), 1);
        let decided = r.decide(&id, Decision::Approved).unwrap();
        assert_eq!(decided.rule, "ask-x");
        assert!(r.is_empty());
        assert_eq!(h.answer().await, Some(Decision::Approved));
        assert_eq!(
            r.decide(&id, Decision::Denied),
            Err(PendingError::Unknown(id))
        );
    }

    #[test]
    fn a_dropped_hold_is_no_longer_listed_nor_decidable() {
        let r = Arc::new(PendingRequests::default());
        let a = hold(&r, "a");
        let b = hold(&r, "b");
        assert_ne!(a.request().id, b.request().id);
        let id = a.request().id.clone();
        let changes = r.subscribe();
        drop(a);
        assert!(changes.has_changed().unwrap());
        assert_eq!(r.list().len(), 1);
        assert_eq!(r.list()[0].rule, "b");
        assert!(matches!(
            r.decide(&id, Decision::Approved),
            Err(PendingError::Unknown(_))
        ));
    }

    #[tokio::test]
    async fn closing_denies_the_held_and_refuses_new_ones() {
        let r = Arc::new(PendingRequests::default());
        let mut h = hold(&r, "a");
        r.close();
        assert_eq!(h.answer().await, None);
        assert!(r.is_empty());
        assert!(matches!(
            r.hold("GET", "u", "a", "t".into()),
            Err(PendingError::Closed)
        ));
    }
}
