//! The pipeline in process: a request phase and a response phase run on made-up requests and
//! answers, no sockets, with the records written to a temporary data directory and read back
//! as a user would (`logs/threats.jsonl`, `logs/flows.jsonl`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use airlock::config::{Config, Overrides};
use airlock::pipeline::{Exchange, Guards, Live, Pipeline, ProxyBody, Scheme, request, response};
use airlock::record::{RecordSink, RecordWriter};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};

const GITHUB: &str = "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";

/// A pipeline on a temporary data directory, with `config` (YAML) as its settings.
struct Harness {
    dir: PathBuf,
    pipeline: Pipeline,
    writer: Option<RecordWriter>,
}

impl Harness {
    fn new(config: &str) -> Harness {
        let dir = std::env::temp_dir().join(format!("airlock-pipeline-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("airlock.yaml");
        std::fs::write(&file, config).unwrap();
        let overrides = Overrides {
            data_dir: Some(dir.join("data")),
            ..Default::default()
        };
        let config = Arc::new(Config::load(Some(&file), &overrides).unwrap());
        let (records, writer) = RecordSink::start(&config).unwrap();
        let live = Live::build(config, None, "now".into()).unwrap();
        Harness {
            dir,
            pipeline: Pipeline {
                live: Arc::new(arc_swap::ArcSwap::from_pointee(live)),
                guards: Guards::default(),
                records,
                prices: Arc::new(airlock_llm::PriceTable::with_overrides(std::iter::empty())),
                gateway: None,
                sessions: Default::default(),
            },
            writer: Some(writer),
        }
    }

    fn exchange(&self, host: &str) -> Exchange {
        Exchange {
            listener: "proxy".into(),
            client_ip: "127.0.0.1".parse().unwrap(),
            scheme: Scheme::Https,
            host: host.into(),
            port: 443,
        }
    }

    /// Flushes the records (every exchange must be over: its flow record is written when its
    /// last piece is dropped) and reads one log.
    fn records(mut self, name: &str) -> Vec<serde_json::Value> {
        self.writer.take().unwrap().finish();
        read_jsonl(&self.dir.join("data/logs").join(name))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn post(host: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(format!("https://{host}/upload"))
        .header("host", host)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

async fn text(body: ProxyBody) -> String {
    String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn a_leaking_request_is_refused_before_anything_is_sent_and_written_down() {
    let h = Harness::new("{}");
    let exchange = h.exchange("paste.example.com");
    let body = format!("{{\"text\":\"my token {GITHUB}\"}}");
    let refusal = match request::phase(&h.pipeline, exchange, post("paste.example.com", body)).await
    {
        Err(refusal) => refusal,
        Ok(_) => panic!("the request went on"),
    };
    assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        refusal.headers()["x-airlock-block-reason"],
        "credential-leak"
    );
    assert_eq!(refusal.headers()["x-airlock-rule"], "github_pat_classic");
    let said = text(refusal.into_body()).await;
    assert!(!said.contains(GITHUB), "{said}");

    let threats = h.records("threats.jsonl");
    assert_eq!(threats.len(), 1, "{threats:?}");
    let t = &threats[0];
    assert_eq!(t["threat_type"], "EXFIL");
    assert_eq!(t["action"], "blocked");
    assert_eq!(t["dest"], "paste.example.com:443");
    let snippet = t["snippet"].as_str().unwrap();
    assert!(
        snippet.contains("ghp_[REDACTED]") && !snippet.contains(GITHUB),
        "{snippet}"
    );
}

#[tokio::test]
async fn a_clean_request_goes_on_unchanged_and_its_flow_is_recorded() {
    let h = Harness::new("{}");
    let exchange = h.exchange("api.example.com");
    let (upstream, fwd) =
        request::phase(&h.pipeline, exchange, post("api.example.com", "{\"a\":1}"))
            .await
            .unwrap_or_else(|_| panic!("refused"));
    assert_eq!(upstream.uri(), "https://api.example.com/upload");
    assert!(
        upstream.headers().get("host").is_none(),
        "the client writes Host from the URI"
    );
    assert_eq!(text(upstream.into_body()).await, "{\"a\":1}");

    assert!(fwd.answered(StatusCode::OK).is_none());
    let answer = Response::builder()
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let resp = response::phase(fwd, answer).await;
    assert_eq!(text(resp.into_body()).await, "hello");

    let flows = h.records("flows.jsonl");
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert_eq!(flows[0]["action"], "allowed");
    assert_eq!(flows[0]["status"], 200);
    assert_eq!(flows[0]["request_bytes"], 7);
    assert_eq!(flows[0]["response_bytes"], 5);
}

#[tokio::test]
async fn a_secret_arriving_is_redacted_with_its_count_in_a_header() {
    let h = Harness::new("{}");
    let exchange = h.exchange("api.example.com");
    let req = Request::get("https://api.example.com/config")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (_, fwd) = request::phase(&h.pipeline, exchange, req)
        .await
        .unwrap_or_else(|_| panic!("refused"));
    assert!(fwd.answered(StatusCode::OK).is_none());
    let answer = Response::new(Full::new(Bytes::from(format!("token: {GITHUB}\n"))));
    let resp = response::phase(fwd, answer).await;
    assert_eq!(resp.headers()["x-airlock-redacted"], "1");
    assert_eq!(
        text(resp.into_body()).await,
        "token: [REDACTED:github_pat_classic]\n"
    );
    let threats = h.records("threats.jsonl");
    assert_eq!(threats[0]["threat_type"], "SECRET");
    assert_eq!(threats[0]["action"], "redacted");
}

/// `lines` lines of text with the token on every tenth one, and the same redacted.
fn text_with_tokens(lines: usize) -> (String, String) {
    const WORDS: [&str; 16] = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
        "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
    ];
    // words in an order that does not repeat, so the text does not compress to nothing
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut plain = String::new();
    for i in 0..lines {
        let words: Vec<&str> = (0..8)
            .map(|_| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                WORDS[(seed >> 60) as usize]
            })
            .collect();
        if i % 10 == 7 {
            plain.push_str(&format!(
                "{} {GITHUB} {}\n",
                words[..4].join(" "),
                words[4..].join(" ")
            ));
        } else {
            plain.push_str(&format!("{}\n", words.join(" ")));
        }
    }
    let redacted = plain.replace(GITHUB, "[REDACTED:github_pat_classic]");
    (plain, redacted)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// A gzip answer is decoded a slice of its compressed bytes at a time (a bomb never sits in
/// memory whole); every secret is redacted wherever the slices cut the decoded text, both
/// in a body held whole (small decoded) and in one that outgrows the hold once decoded
/// (its compressed size is under `max_hold_bytes`, its decoded size is not).
#[tokio::test]
async fn a_gzip_answer_is_redacted_across_the_decoding_slices() {
    for (lines, held) in [(2_000, true), (60_000, false)] {
        let h = Harness::new("{}");
        let (plain, redacted) = text_with_tokens(lines);
        let compressed = gzip(plain.as_bytes());
        assert!(compressed.len() < 1 << 20 && (held || plain.len() > 1 << 20));
        assert!(compressed.len() > 3 * 4096, "several decoding slices");
        let exchange = h.exchange("api.example.com");
        let req = Request::get("https://api.example.com/export")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (_, fwd) = request::phase(&h.pipeline, exchange, req)
            .await
            .unwrap_or_else(|_| panic!("refused"));
        assert!(fwd.answered(StatusCode::OK).is_none());
        let answer = Response::builder()
            .header("content-type", "text/plain")
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from(compressed)))
            .unwrap();
        let resp = response::phase(fwd, answer).await;
        assert!(resp.headers().get("content-encoding").is_none());
        let count = (lines / 10).to_string();
        if held {
            assert_eq!(resp.headers()["x-airlock-redacted"], count.as_str());
            assert_eq!(
                resp.headers()["content-length"],
                redacted.len().to_string().as_str()
            );
        } else {
            assert!(resp.headers().get("content-length").is_none());
        }
        let got = text(resp.into_body()).await;
        assert!(
            !got.contains(GITHUB),
            "a token went through ({lines} lines)"
        );
        assert!(got == redacted, "{lines} lines: the redacted text differs");
    }
}

#[tokio::test]
async fn a_policy_block_names_its_rule_and_writes_a_policy_threat() {
    let h = Harness::new("policy: {deny_hosts: ['*.pastebin.test']}\n");
    let exchange = h.exchange("www.pastebin.test");
    let refusal = request::phase(&h.pipeline, exchange, post("www.pastebin.test", "hi"))
        .await
        .err()
        .expect("refused");
    assert_eq!(refusal.headers()["x-airlock-block-reason"], "policy");
    assert_eq!(refusal.headers()["x-airlock-rule"], "deny_hosts");
    let threats = h.records("threats.jsonl");
    assert_eq!(threats[0]["threat_type"], "POLICY");
    assert_eq!(threats[0]["pattern"], "deny_hosts");
}

#[tokio::test]
async fn inside_a_tunnel_the_host_header_cannot_name_another_host() {
    let h = Harness::new("{}");
    let exchange = h.exchange("api.example.com");
    let req = Request::get("/")
        .header("host", "internal.example.net")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let refusal = request::phase(&h.pipeline, exchange, req)
        .await
        .err()
        .expect("refused");
    assert_eq!(refusal.headers()["x-airlock-rule"], "host-mismatch");
}

/// The undecodable-body refusal used to write neither a threat nor an `egress_block` line.
#[tokio::test]
async fn an_undecodable_request_body_is_refused_and_written_down() {
    let h = Harness::new("{}");
    let exchange = h.exchange("api.example.com");
    let req = Request::post("https://api.example.com/x")
        .header("content-encoding", "gzip")
        .body(Full::new(Bytes::from_static(b"this is not gzip at all")))
        .unwrap();
    let refusal = request::phase(&h.pipeline, exchange, req)
        .await
        .err()
        .expect("refused");
    assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
    assert_eq!(refusal.headers()["x-airlock-rule"], "undecodable-body");
    let threats = h.records("threats.jsonl");
    assert_eq!(threats.len(), 1, "{threats:?}");
    assert_eq!(threats[0]["pattern"], "undecodable-body");
    assert_eq!(threats[0]["action"], "blocked");
}

/// Regression: a URL carrying an AWS key id and its secret (`…&id=AKIA…&secret=zDhM%2FUNz…`)
/// produced an `aws_access_key_id` threat whose snippet masked the id but showed the
/// percent-encoded secret in full (the secret was found by another view of the URL).
#[tokio::test]
async fn a_snippet_masks_every_credential_of_the_exchange_in_every_form() {
    let h = Harness::new("dedup_window_secs: 0\n");
    let id = "AKIAQYLPMN5HFIQR7ABC";
    let secret = "zDhM/UNzq8TyJ+Kd0Xw4pLm2Rv5sEa7bNc1Fg3Hj";
    let encoded = secret.replace('/', "%2F").replace('+', "%2B");
    let url = format!("https://s3.example.com/upload?x=1&id={id}&secret={encoded}");
    let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let exchange = h.exchange("s3.example.com");
    let refusal = request::phase(&h.pipeline, exchange, req)
        .await
        .err()
        .expect("refused");
    assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
    let threats = h.records("threats.jsonl");
    assert!(threats.len() >= 2, "{threats:?}");
    for t in &threats {
        let snippet = t["snippet"].as_str().unwrap();
        for form in [
            secret,
            encoded.as_str(),
            &secret[..12],
            &encoded[..14],
            &id[4..],
        ] {
            assert!(!snippet.contains(form), "{}: {snippet}", t["pattern"]);
        }
    }
}
