//! Records leaving the process: OTLP log export (`export.otlp`) and threat webhooks
//! (`alerts.webhook_url`).
//!
//! The writer thread hands each record it has written to the [`Outlets`] with `try_send` on
//! a bounded channel: the request path never waits, and a full buffer drops the record and
//! counts the drop (`airlock_export_records_total{result="dropped"}`,
//! `airlock_alerts_total{result="dropped"}`). One task per destination takes records from its
//! channel, sends them (a batch per `interval_secs` or per [`OTLP_MAX_BATCH`] records; one POST
//! per threat) and retries with exponential backoff on connection errors, 408, 429 and 5xx,
//! honouring `Retry-After`. The HTTP client is the server's ([`Transport`]): this module knows
//! what to send and when, not how to dial.

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::Uri;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::events::{ThreatRecord, ThreatType};
use super::metrics::Metrics;
use super::otlp::{self, ExportRecord, ResourceInfo};
use crate::config::{AlertSettings, OtlpSettings, url_origin};

/// Records waiting for the OTLP exporter (the bounded buffer): past it, records are dropped.
pub const OTLP_BUFFER: usize = 10_000;
/// Records in one export request.
pub const OTLP_MAX_BATCH: usize = 512;
/// Threats waiting for the webhook.
pub const ALERT_BUFFER: usize = 1_000;
/// Time allowed for one POST, answer included.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The OTLP exporter's retries: 0.5, 1, 2, 4, 8 s between six attempts (about 15 s) before a
/// batch is given up on; the buffer keeps filling meanwhile.
pub const OTLP_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(500),
    max: Duration::from_secs(30),
    attempts: 6,
};
/// The webhook's: 1, 2, 4 s between four attempts.
pub const ALERT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(10),
    attempts: 4,
};

/// One POST for the transport.
#[derive(Debug)]
pub struct Post {
    pub url: Uri,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// What the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After`, when the server sent one that parses.
    pub retry_after: Option<Duration>,
}

/// Sends a POST and reports the status (the server's HTTP client; a fake one in tests). An
/// error is a connection failure or a timeout, described in one line without the URL's path.
pub trait Transport: Send + Sync + 'static {
    fn post(&self, post: Post) -> BoxFuture<'static, Result<Answer, String>>;
}

/// Exponential backoff: `initial`, doubling, at most `max`, with ±20 % jitter so that a fleet
/// does not retry in step; `attempts` in all.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub attempts: u32,
}

impl Backoff {
    /// The wait before retry number `retry` (0 for the first retry). `jitter` is in [0, 1).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
            .min(self.max);
        let jittered = exp.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0));
        match retry_after {
            Some(after) => jittered.max(after.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }
}

/// A number in [0, 1) without a random-number crate: the standard hasher's per-process keys.
fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// What to do after one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Done,
    Retry(Option<Duration>),
    GiveUp(String),
}

fn judge(result: &Result<Answer, String>) -> Next {
    match result {
        Ok(a) if (200..300).contains(&a.status) => Next::Done,
        Ok(a) if a.status == 408 || a.status == 429 || a.status >= 500 => {
            Next::Retry(a.retry_after)
        }
        Ok(a) => Next::GiveUp(format!(
            "the server answered {} (not retried: check the URL and the credentials)",
            a.status
        )),
        Err(_) => Next::Retry(None),
    }
}

/// Sends `post` until it is accepted, refused for good, or the attempts run out. The error
/// says why the last attempt failed.
pub async fn deliver(
    transport: &dyn Transport,
    post: Post,
    backoff: Backoff,
    mut on_retry: impl FnMut(&str),
) -> Result<(), String> {
    let mut retry = 0;
    loop {
        let attempt = Post {
            url: post.url.clone(),
            headers: post.headers.clone(),
            body: post.body.clone(),
        };
        let result = transport.post(attempt).await;
        let why = match &result {
            Ok(a) => format!("the server answered {}", a.status),
            Err(e) => e.clone(),
        };
        match judge(&result) {
            Next::Done => return Ok(()),
            Next::GiveUp(why) => return Err(why),
            Next::Retry(_) if retry + 1 >= backoff.attempts => {
                return Err(format!("{why} ({} attempts)", backoff.attempts));
            }
            Next::Retry(after) => {
                on_retry(&why);
                tokio::time::sleep(backoff.delay(retry, after, jitter())).await;
                retry += 1;
            }
        }
    }
}

/// Where the writer thread hands the records it has written. Empty when nothing is exported.
#[derive(Default)]
pub struct Outlets {
    pub otlp: Option<mpsc::Sender<ExportRecord>>,
    pub alerts: Option<mpsc::Sender<ThreatRecord>>,
}

impl Outlets {
    /// Offers a written record to each destination, never waiting: a full buffer drops it
    /// (counted).
    pub fn offer(&self, record: ExportRecord, metrics: &Metrics) {
        if let (Some(tx), ExportRecord::Threat(t)) = (&self.alerts, &record) {
            match tx.try_send((**t).clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                    metrics.alert("dropped", 1);
                }
            }
        }
        if let Some(tx) = &self.otlp {
            match tx.try_send(record) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Closed(_)) => {
                    metrics.export("dropped", 1);
                }
            }
        }
    }
}

/// Logs a destination's health on changes only: one warning when it starts failing, one
/// line when it works again (a collector down for an hour is two lines, not thousands).
struct Health {
    what: &'static str,
    origin: String,
    failing: bool,
}

impl Health {
    fn ok(&mut self) {
        if std::mem::take(&mut self.failing) {
            tracing::info!(destination = %self.origin, "{} works again", self.what);
        }
    }

    fn failed(&mut self, why: &str, consequence: &str) {
        if !self.failing {
            self.failing = true;
            tracing::warn!(destination = %self.origin, error = %why, "{} is failing: {consequence}", self.what);
        }
    }
}

/// The OTLP exporter: takes records from its channel and sends them in batches until the
/// channel is closed (then sends what is left, once).
pub struct OtlpExporter {
    pub settings: OtlpSettings,
    pub resource: ResourceInfo,
    pub transport: Arc<dyn Transport>,
    pub metrics: Arc<Metrics>,
}

impl OtlpExporter {
    pub fn channel() -> (mpsc::Sender<ExportRecord>, mpsc::Receiver<ExportRecord>) {
        mpsc::channel(OTLP_BUFFER)
    }

    pub async fn run(self, mut rx: mpsc::Receiver<ExportRecord>) {
        let mut health = Health {
            what: "OTLP export",
            origin: url_origin(&self.settings.logs_url),
            failing: false,
        };
        let mut batch = Vec::with_capacity(OTLP_MAX_BATCH);
        loop {
            let closed = collect(&mut rx, &mut batch, self.settings.interval).await;
            if !batch.is_empty() {
                self.send(&batch, &mut health, !closed).await;
                batch.clear();
            }
            if closed {
                return;
            }
        }
    }

    async fn send(&self, batch: &[ExportRecord], health: &mut Health, retry: bool) {
        let observed = chrono::Utc::now()
            .timestamp_nanos_opt()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        let raw = otlp::encode(&self.resource, batch, observed);
        let mut headers = self.settings.headers.clone();
        headers.push((
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        ));
        let body = match gzip(&raw) {
            Some(z) => {
                headers.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
                z
            }
            None => raw,
        };
        let post = Post {
            url: self.settings.logs_url.clone(),
            headers,
            body: Bytes::from(body),
        };
        let backoff = if retry {
            OTLP_BACKOFF
        } else {
            // Stopping: one try, the process is on its way out.
            Backoff {
                attempts: 1,
                ..OTLP_BACKOFF
            }
        };
        let n = batch.len() as u64;
        let consequence = format!(
            "records wait in a buffer of {OTLP_BUFFER} and are dropped past it (airlock_export_records_total)"
        );
        match deliver(&*self.transport, post, backoff, |why| {
            health.failed(why, &consequence)
        })
        .await
        {
            Ok(()) => {
                health.ok();
                self.metrics.export("sent", n);
            }
            Err(why) => {
                health.failed(&why, &consequence);
                tracing::debug!(records = n, error = %why, "an OTLP batch was given up on");
                self.metrics.export("failed", n);
            }
        }
    }
}

/// Waits for a first record, then collects until the batch is full or `interval` has passed
/// since it. True when the channel is closed (nothing more will come).
async fn collect<T>(rx: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, interval: Duration) -> bool {
    match rx.recv().await {
        Some(first) => batch.push(first),
        None => return true,
    }
    let deadline = tokio::time::Instant::now() + interval;
    while batch.len() < OTLP_MAX_BATCH {
        tokio::select! {
            next = rx.recv() => match next {
                Some(r) => batch.push(r),
                None => return true,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    false
}

fn gzip(raw: &[u8]) -> Option<Vec<u8>> {
    let mut z = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4),
        flate2::Compression::fast(),
    );
    z.write_all(raw).ok()?;
    z.finish().ok()
}

/// The webhook sender: one POST per threat, in order.
pub struct AlertSender {
    pub settings: AlertSettings,
    pub transport: Arc<dyn Transport>,
    pub metrics: Arc<Metrics>,
}

impl AlertSender {
    pub fn channel() -> (mpsc::Sender<ThreatRecord>, mpsc::Receiver<ThreatRecord>) {
        mpsc::channel(ALERT_BUFFER)
    }

    pub async fn run(self, mut rx: mpsc::Receiver<ThreatRecord>) {
        let mut health = Health {
            what: "the alert webhook",
            origin: url_origin(&self.settings.webhook_url),
            failing: false,
        };
        let consequence = format!(
            "threats wait in a queue of {ALERT_BUFFER} and are dropped past it (airlock_alerts_total)"
        );
        while let Some(threat) = rx.recv().await {
            let post = Post {
                url: self.settings.webhook_url.clone(),
                headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body: Bytes::from(alert_body(&threat)),
            };
            match deliver(&*self.transport, post, ALERT_BACKOFF, |why| {
                health.failed(why, &consequence)
            })
            .await
            {
                Ok(()) => {
                    health.ok();
                    self.metrics.alert("sent", 1);
                }
                Err(why) => {
                    health.failed(&why, &consequence);
                    self.metrics.alert("failed", 1);
                }
            }
        }
    }
}

/// The webhook's JSON: the threat record as `threats.jsonl` has it (masked), plus `text`.
pub fn alert_body(threat: &ThreatRecord) -> Vec<u8> {
    let mut value = serde_json::to_value(threat).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("text".into(), serde_json::Value::String(alert_text(threat)));
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

/// A Slack-compatible one-liner: `airlock: EXFIL blocked github_pat_classic → api.example.com:443
/// (POST /gists)`. Built from the record's fields only, never the secret.
pub fn alert_text(t: &ThreatRecord) -> String {
    let kind = match t.threat_type {
        ThreatType::Exfil => "EXFIL",
        ThreatType::Secret => "SECRET",
        ThreatType::Injection => "INJECTION",
        ThreatType::Policy => "POLICY",
        ThreatType::Bypass => "BYPASS",
    };
    let action = serde_json::to_value(t.action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let arrow = if t.direction == "inbound" {
        "←"
    } else {
        "→"
    };
    let mut text = format!("airlock: {kind} {action} {} {arrow} {}", t.pattern, t.dest);
    let mut context = Vec::new();
    if !t.method.is_empty() || !t.path.is_empty() {
        let path: String = t.path.chars().take(80).collect();
        let more = if t.path.chars().count() > 80 {
            "…"
        } else {
            ""
        };
        context.push(format!("{} {path}{more}", t.method).trim().to_string());
    }
    if let Some(p) = &t.program {
        context.push(format!("program {p}"));
    }
    if !t.source.is_empty() {
        context.push(format!("from {}", t.source));
    }
    if !context.is_empty() {
        text.push_str(&format!(" ({})", context.join(", ")));
    }
    slack_escape(&text)
}

/// Slack's three control characters in message text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::events::ThreatAction;
    use std::sync::Mutex;

    #[test]
    fn backoff_doubles_to_its_cap_and_honours_retry_after() {
        let b = Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(4),
            attempts: 6,
        };
        let mid = |r| b.delay(r, None, 0.5);
        assert_eq!(mid(0), Duration::from_millis(500));
        assert_eq!(mid(1), Duration::from_secs(1));
        assert_eq!(mid(3), Duration::from_secs(4));
        assert_eq!(mid(40), Duration::from_secs(4));
        assert!(b.delay(0, None, 0.0) >= Duration::from_millis(400));
        assert!(b.delay(0, None, 0.999) <= Duration::from_millis(600));
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(7)), 0.5),
            Duration::from_secs(7)
        );
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(3600)), 0.5),
            MAX_RETRY_AFTER
        );
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }

    #[test]
    fn what_is_retried() {
        let answer = |status| {
            Ok(Answer {
                status,
                retry_after: None,
            })
        };
        assert_eq!(judge(&answer(200)), Next::Done);
        assert_eq!(judge(&answer(204)), Next::Done);
        assert_eq!(judge(&answer(429)), Next::Retry(None));
        assert_eq!(judge(&answer(503)), Next::Retry(None));
        assert_eq!(judge(&answer(500)), Next::Retry(None));
        assert!(matches!(judge(&answer(400)), Next::GiveUp(_)));
        assert!(matches!(judge(&answer(401)), Next::GiveUp(_)));
        assert_eq!(judge(&Err("refused".into())), Next::Retry(None));
    }

    /// Answers from a script, and records what it was sent.
    struct Scripted {
        answers: Mutex<Vec<Result<Answer, String>>>,
        seen: Mutex<Vec<Post>>,
    }

    impl Transport for Scripted {
        fn post(&self, post: Post) -> BoxFuture<'static, Result<Answer, String>> {
            self.seen.lock().unwrap().push(post);
            let mut answers = self.answers.lock().unwrap();
            let next = if answers.is_empty() {
                Ok(Answer {
                    status: 200,
                    retry_after: None,
                })
            } else {
                answers.remove(0)
            };
            Box::pin(async move { next })
        }
    }

    fn scripted(answers: Vec<Result<Answer, String>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            answers: Mutex::new(answers),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn post() -> Post {
        Post {
            url: "http://c/v1/logs".parse().unwrap(),
            headers: vec![],
            body: Bytes::from_static(b"x"),
        }
    }

    const FAST: Backoff = Backoff {
        initial: Duration::from_millis(1),
        max: Duration::from_millis(4),
        attempts: 4,
    };

    #[tokio::test]
    async fn deliver_retries_until_accepted_or_out_of_attempts() {
        let unavailable = Ok(Answer {
            status: 503,
            retry_after: None,
        });
        let t = scripted(vec![
            unavailable.clone(),
            Err("refused".into()),
            unavailable.clone(),
        ]);
        let mut retries = 0;
        assert!(deliver(&*t, post(), FAST, |_| retries += 1).await.is_ok());
        assert_eq!((retries, t.seen.lock().unwrap().len()), (3, 4));

        let t = scripted(vec![unavailable.clone(); 10]);
        let err = deliver(&*t, post(), FAST, |_| {}).await.unwrap_err();
        assert!(err.contains("503") && err.contains("4 attempts"), "{err}");
        assert_eq!(t.seen.lock().unwrap().len(), 4);

        let t = scripted(vec![Ok(Answer {
            status: 401,
            retry_after: None,
        })]);
        assert!(deliver(&*t, post(), FAST, |_| {}).await.is_err());
        assert_eq!(t.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn batches_go_out_when_full_or_when_the_interval_passes() {
        let interval = Duration::from_millis(200);
        let (tx, mut rx) = mpsc::channel(OTLP_BUFFER);
        for i in 0..OTLP_MAX_BATCH + 3 {
            tx.send(i).await.unwrap();
        }
        let mut batch = Vec::new();
        let started = std::time::Instant::now();
        assert!(!collect(&mut rx, &mut batch, interval).await);
        assert_eq!(batch.len(), OTLP_MAX_BATCH);
        assert!(started.elapsed() < interval, "a full batch does not wait");
        batch.clear();
        let started = std::time::Instant::now();
        assert!(!collect(&mut rx, &mut batch, interval).await);
        assert_eq!(batch.len(), 3);
        assert!(
            started.elapsed() >= interval,
            "a partial batch waits for the interval"
        );
        batch.clear();
        drop(tx);
        assert!(collect(&mut rx, &mut batch, interval).await);
        assert!(batch.is_empty());
    }

    fn threat() -> ThreatRecord {
        ThreatRecord {
            timestamp: "2026-02-19T13:41:59+00:00".into(),
            direction: "outbound".into(),
            protocol: "https".into(),
            threat_type: ThreatType::Exfil,
            pattern: "github_pat_classic".into(),
            family: "vcs_token".into(),
            snippet: "token ghp_[REDACTED]".into(),
            source: "127.0.0.1".into(),
            dest: "api.example.com:443".into(),
            action: ThreatAction::Blocked,
            method: "POST".into(),
            path: "/gists?a=<b>".into(),
            flow_id: None,
            location: None,
            pid: None,
            program: None,
        }
    }

    #[test]
    fn the_alert_is_the_threat_record_plus_text() {
        let t = threat();
        let body: serde_json::Value = serde_json::from_slice(&alert_body(&t)).unwrap();
        let mut record = serde_json::to_value(&t).unwrap();
        record
            .as_object_mut()
            .unwrap()
            .insert("text".into(), body["text"].clone());
        assert_eq!(body, record);
        assert_eq!(
            body["text"],
            "airlock: EXFIL blocked github_pat_classic → api.example.com:443 (POST /gists?a=&lt;b&gt;, from 127.0.0.1)"
        );
    }

    #[tokio::test]
    async fn outlets_drop_and_count_when_full() {
        let metrics = Metrics::new();
        let (tx, _rx) = mpsc::channel(1);
        let (atx, _arx) = mpsc::channel(1);
        let outlets = Outlets {
            otlp: Some(tx),
            alerts: Some(atx),
        };
        for _ in 0..3 {
            outlets.offer(ExportRecord::Threat(Box::new(threat())), &metrics);
        }
        let text = metrics.encode();
        assert!(
            text.contains("airlock_export_records_total{result=\"dropped\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("airlock_alerts_total{result=\"dropped\"} 2"),
            "{text}"
        );
    }
}
