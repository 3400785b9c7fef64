//! Running the exporters (`export.otlp`, `alerts.webhook_url`): their tasks, started at
//! start, restarted by a reload that changes their settings, and given a moment to send what
//! they hold at stop. The server owns the HTTP client they send with (the internal client:
//! the system's roots plus `upstream_ca`, `resolve` applied, not the destination guard, which
//! is for agents' traffic and not for the operator's own collector).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::Request;
use http_body_util::BodyExt;
use tokio::task::JoinHandle;

use crate::config::{Config, url_origin};
use crate::pipeline::respond::full_body;
use crate::proxy::upstream::{PooledClient, describe_client_error};
use crate::record::RecordSink;
use crate::record::export::{
    AlertSender, Answer, MAX_RETRY_AFTER, OtlpExporter, Outlets, POST_TIMEOUT, Post, Transport,
};
use crate::record::otlp::ResourceInfo;

/// How long the exporters get at stop to send what they hold (one try each). With the drain's
/// 3 s, it stays under the 5 s `airlock stop` waits before SIGKILL.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The writer groups records for up to 50 ms: the drain's last ones reach the exporters
/// before these are closed.
const WRITER_CATCH_UP: Duration = Duration::from_millis(100);
/// What is read of an answer's body (then it is dropped): enough to keep the connection.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The internal HTTP client as the exporters' transport.
struct HttpTransport {
    client: PooledClient,
}

impl Transport for HttpTransport {
    fn post(&self, post: Post) -> BoxFuture<'static, Result<Answer, String>> {
        let client = self.client.clone();
        Box::pin(async move {
            let origin = url_origin(&post.url);
            let mut request = Request::post(post.url)
                .body(full_body(post.body))
                .map_err(|e| format!("cannot build the request: {e}"))?;
            for (name, value) in post.headers {
                request.headers_mut().append(name, value);
            }
            let response = tokio::time::timeout(POST_TIMEOUT, client.request(request))
                .await
                .map_err(|_| {
                    format!(
                        "{origin} did not answer within {} s",
                        POST_TIMEOUT.as_secs()
                    )
                })?
                .map_err(|e| format!("{origin}: {}", describe_client_error(&e).2))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            // The answer's body is read (and dropped) so that the connection can be reused.
            let _ = tokio::time::timeout(
                POST_TIMEOUT,
                http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect(),
            )
            .await;
            Ok(Answer {
                status,
                retry_after,
            })
        })
    }
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or_default().min(MAX_RETRY_AFTER))
}

/// This machine's name (`host.name`).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which gethostname writes at most
    // `len` bytes into.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The OTLP resource of this instance. `service.instance.id` is derived from the host name
/// and the data directory, so it stays the same across restarts (a UUID-shaped digest).
fn resource(config: &Config) -> ResourceInfo {
    let host = host_name();
    let digest = crate::config::sha256_hex(
        format!("airlock\0{host}\0{}", config.data_dir.display()).as_bytes(),
    );
    let instance_id = format!(
        "{}-{}-{}-{}-{}",
        &digest[0..8],
        &digest[8..12],
        &digest[12..16],
        &digest[16..20],
        &digest[20..32]
    );
    ResourceInfo {
        instance_id,
        host_name: host,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// A running destination: the settings it runs with, the sender the outlets clone, its task.
struct Running<S, T> {
    settings: S,
    tx: tokio::sync::mpsc::Sender<T>,
    task: JoinHandle<()>,
}

/// The exporters of a running instance.
pub struct Exports {
    transport: Arc<dyn Transport>,
    resource: ResourceInfo,
    otlp: Option<Running<crate::config::OtlpSettings, crate::record::otlp::ExportRecord>>,
    alerts: Option<Running<crate::config::AlertSettings, crate::record::events::ThreatRecord>>,
}

impl Exports {
    /// Starts what `config` asks for and hands the records their outlets.
    pub fn start(config: &Config, records: &RecordSink, client: &PooledClient) -> Exports {
        let mut exports = Exports {
            transport: Arc::new(HttpTransport {
                client: client.clone(),
            }),
            resource: resource(config),
            otlp: None,
            alerts: None,
        };
        exports.update(config, records);
        exports
    }

    /// Applies the export settings of a (re)loaded config: a destination whose settings
    /// changed is restarted; the old task sends what it holds and ends.
    pub fn update(&mut self, config: &Config, records: &RecordSink) {
        let otlp_changed = self.otlp.as_ref().map(|r| &r.settings) != config.otlp.as_ref();
        let alerts_changed = self.alerts.as_ref().map(|r| &r.settings) != config.alerts.as_ref();
        if !otlp_changed && !alerts_changed {
            return;
        }
        if otlp_changed {
            self.otlp = config.otlp.clone().map(|settings| {
                tracing::info!(
                    destination = %url_origin(&settings.logs_url),
                    headers = settings.headers.len(),
                    interval_secs = settings.interval.as_secs(),
                    "exporting records as OTLP logs"
                );
                let (tx, rx) = OtlpExporter::channel();
                let exporter = OtlpExporter {
                    settings: settings.clone(),
                    resource: self.resource.clone(),
                    transport: self.transport.clone(),
                    metrics: records.metrics.clone(),
                };
                Running {
                    settings,
                    tx,
                    task: tokio::spawn(exporter.run(rx)),
                }
            });
        }
        if alerts_changed {
            self.alerts = config.alerts.clone().map(|settings| {
                tracing::info!(
                    destination = %url_origin(&settings.webhook_url),
                    "threats are POSTed to the alert webhook"
                );
                let (tx, rx) = AlertSender::channel();
                let sender = AlertSender {
                    settings: settings.clone(),
                    transport: self.transport.clone(),
                    metrics: records.metrics.clone(),
                };
                Running {
                    settings,
                    tx,
                    task: tokio::spawn(sender.run(rx)),
                }
            });
        }
        records
            .metrics
            .announce(self.otlp.is_some(), self.alerts.is_some());
        // The previous outlets drop their senders with this swap: a replaced task drains its
        // channel and ends.
        records.set_outlets(Outlets {
            otlp: self.otlp.as_ref().map(|r| r.tx.clone()),
            alerts: self.alerts.as_ref().map(|r| r.tx.clone()),
        });
    }

    /// At stop: closes the channels and gives the tasks a moment to send what they hold.
    pub async fn close(self, records: &RecordSink) {
        if self.otlp.is_none() && self.alerts.is_none() {
            return;
        }
        tokio::time::sleep(WRITER_CATCH_UP).await;
        records.set_outlets(Outlets::default());
        let mut tasks = Vec::new();
        if let Some(r) = self.otlp {
            drop(r.tx);
            tasks.push(r.task);
        }
        if let Some(r) = self.alerts {
            drop(r.tx);
            tasks.push(r.task);
        }
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(CLOSE_TIMEOUT, task).await.is_err() {
                tracing::info!(
                    "an exporter did not finish sending in time; what it held is dropped"
                );
                abort.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("99999"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn the_instance_id_is_stable_and_uuid_shaped() {
        let config = Config::load(None, &Default::default()).unwrap();
        let a = resource(&config);
        let b = resource(&config);
        assert_eq!(a.instance_id, b.instance_id);
        assert_eq!(a.instance_id.len(), 36);
        assert!(!a.host_name.is_empty());
    }
}
