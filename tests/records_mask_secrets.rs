//! Snippets (and every other record) never carry a secret: a property test. Requests hold
//! several credentials of the built-in catalogue, in several places (query, path, header,
//! body) and encodings (as they are, percent-encoded once or twice, JSON-escaped, base64,
//! hex); every
//! record written for them — threats, flows — must be free of each credential airlock found,
//! in every form.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use airlock::config::{Config, DetectSettings, Overrides};
use airlock::detect::Detector;
use airlock::pipeline::{Exchange, Guards, Live, Pipeline, Scheme, request};
use airlock::record::RecordSink;
use airlock_scan::{Catalogue, Engine, RuleKind};
use base64::Engine as _;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use proptest::prelude::*;

/// A credential from the catalogue's examples: its rule, its value, and the part of it that
/// is secret material (after the literal prefix a masked value may keep).
#[derive(Debug, Clone)]
struct Credential {
    rule: String,
    value: String,
    core: String,
}

fn credentials() -> &'static [Credential] {
    static ALL: OnceLock<Vec<Credential>> = OnceLock::new();
    ALL.get_or_init(|| {
        let catalogue = Catalogue::builtin();
        let engine = Engine::new(catalogue.clone(), |r| r.kind == RuleKind::Secret);
        let mut out = Vec::new();
        for rule in &catalogue.rules {
            if rule.kind != RuleKind::Secret || rule.fallback || rule.id.ends_with("_ref") {
                continue;
            }
            let Some(example) = rule.examples.positive.first() else {
                continue;
            };
            let mut found = Vec::new();
            engine.scan(example.as_bytes(), &mut found);
            let Some(f) = found.iter().find(|f| catalogue.rules[f.rule].id == rule.id) else {
                continue;
            };
            let value = &example[f.start..f.end];
            // URL-safe, single-line values (the placements below put them in URLs and headers).
            if value.len() < 16 || !value.bytes().all(|b| b.is_ascii_graphic()) {
                continue;
            }
            let prefix = rule
                .keywords
                .iter()
                .filter(|k| value.len() > k.len() + 8 && value[..k.len()].eq_ignore_ascii_case(k))
                .map(|k| k.len())
                .max()
                .unwrap_or(0);
            out.push(Credential {
                rule: rule.id.clone(),
                value: value.to_string(),
                core: value[prefix..].to_string(),
            });
        }
        assert!(out.len() > 50, "only {} usable examples", out.len());
        out
    })
}

#[derive(Debug, Clone, Copy)]
enum Place {
    Query,
    Path,
    Header,
    Body,
}

#[derive(Debug, Clone, Copy)]
enum Encoding {
    Plain,
    Percent,
    JsonEscaped,
    Base64,
    Hex,
    DoublePercent,
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn encode(value: &str, encoding: Encoding) -> String {
    match encoding {
        Encoding::Plain => value.to_string(),
        Encoding::Percent => percent(value),
        Encoding::JsonEscaped => value.replace('/', "\\/"),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(value),
        Encoding::Hex => value.bytes().map(|b| format!("{b:02x}")).collect(),
        Encoding::DoublePercent => percent(&percent(value)),
    }
}

/// Every form in which a record would still give the value away.
fn forms(c: &Credential) -> Vec<String> {
    let mut forms = vec![
        c.value.clone(),
        percent(&c.value),
        percent(&percent(&c.value)),
        c.value.replace('/', "\\/"),
    ];
    forms.push(
        encode(&c.value, Encoding::Base64)
            .trim_end_matches('=')
            .to_string(),
    );
    forms.push(encode(&c.value, Encoding::Hex));
    let core = c.core.as_bytes();
    let width = 12.min(core.len());
    for w in core.windows(width) {
        forms.push(String::from_utf8_lossy(w).into_owned());
    }
    forms
}

fn placement() -> impl Strategy<Value = (Place, Encoding)> {
    prop_oneof![
        Just((Place::Query, Encoding::Plain)),
        Just((Place::Query, Encoding::Percent)),
        Just((Place::Query, Encoding::DoublePercent)),
        Just((Place::Query, Encoding::Base64)),
        Just((Place::Path, Encoding::Hex)),
        Just((Place::Path, Encoding::Plain)),
        Just((Place::Path, Encoding::Percent)),
        Just((Place::Header, Encoding::Plain)),
        Just((Place::Body, Encoding::Plain)),
        Just((Place::Body, Encoding::Percent)),
        Just((Place::Body, Encoding::JsonEscaped)),
        Just((Place::Body, Encoding::Base64)),
        Just((Place::Body, Encoding::Hex)),
    ]
}

/// The detector, built once (it compiles the whole catalogue).
fn first_live() -> &'static Live {
    static LIVE: OnceLock<Live> = OnceLock::new();
    LIVE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("airlock-mask-{}", uuid::Uuid::now_v7()));
        let config = Config::load(
            None,
            &Overrides {
                data_dir: Some(dir),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(Detector::new(&DetectSettings::default()).scans_outbound());
        Live::build(Arc::new(config), None, "now".into()).unwrap()
    })
}

fn records(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in ["threats.jsonl", "flows.jsonl", "llm.jsonl"] {
        let text = std::fs::read_to_string(dir.join("logs").join(name)).unwrap_or_default();
        for line in text.lines() {
            out.push((name.to_string(), line.to_string()));
        }
    }
    out
}

fn run_case(picked: &[(usize, (Place, Encoding))]) -> Result<(), TestCaseError> {
    let all = credentials();
    let creds: Vec<&Credential> = picked.iter().map(|(i, _)| &all[*i % all.len()]).collect();
    let dir = std::env::temp_dir().join(format!("airlock-mask-{}", uuid::Uuid::now_v7()));
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("airlock.yaml");
    // No deduplication: every threat of the case is written.
    std::fs::write(&file, "dedup_window_secs: 0\n").unwrap();
    let overrides = Overrides {
        data_dir: Some(data.clone()),
        ..Default::default()
    };
    let config = Arc::new(Config::load(Some(&file), &overrides).unwrap());
    let (records_sink, writer) = RecordSink::start(&config).unwrap();
    let live = Live::build(config, Some(first_live()), "now".into()).unwrap();
    let pipeline = Pipeline {
        live: Arc::new(arc_swap::ArcSwap::from_pointee(live)),
        guards: Guards::default(),
        records: records_sink,
        prices: Arc::new(airlock_llm::PriceTable::with_overrides(std::iter::empty())),
        gateway: None,
        sessions: Default::default(),
    };

    let mut path = String::from("/v1/upload");
    let mut query = vec!["a=1".to_string()];
    let mut headers = vec![];
    let mut body = serde_json::Map::new();
    for (n, (c, (_, (place, encoding)))) in creds.iter().zip(picked).enumerate() {
        let v = encode(&c.value, *encoding);
        match place {
            Place::Query => query.push(format!("k{n}={v}")),
            Place::Path => path.push_str(&format!("/{v}")),
            Place::Header => headers.push((format!("x-note-{n}"), v)),
            Place::Body => {
                body.insert(format!("field{n}"), serde_json::Value::String(v));
            }
        }
    }
    let mut builder = Request::post(format!(
        "https://paste.example.com{path}?{}",
        query.join("&")
    ))
    .header("content-type", "application/json");
    for (k, v) in &headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let raw_body = serde_json::Value::Object(body).to_string();
    // JSON-escaped placements: the serializer writes `\/` as `\\/`; undo for the wire form.
    let raw_body = raw_body.replace("\\\\/", "\\/");
    let req = builder.body(Full::new(Bytes::from(raw_body))).unwrap();
    let exchange = Exchange {
        listener: "proxy".into(),
        client_ip: "127.0.0.1".parse().unwrap(),
        scheme: Scheme::Https,
        host: "paste.example.com".into(),
        port: 443,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(request::phase(&pipeline, exchange, req));
    drop(result);
    drop(pipeline);
    writer.finish();

    let written = records(&data);
    let threats: Vec<serde_json::Value> = written
        .iter()
        .filter(|(f, _)| f == "threats.jsonl")
        .map(|(_, l)| serde_json::from_str(l).unwrap())
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    for c in &creds {
        // Only what airlock found is known to it; detection itself is tested elsewhere.
        if !threats.iter().any(|t| t["pattern"] == c.rule.as_str()) {
            continue;
        }
        for form in forms(c) {
            for (file, line) in &written {
                prop_assert!(
                    !line.contains(&form),
                    "{file} carries credential {} (form of {} bytes) for placements {:?}",
                    c.rule,
                    form.len(),
                    picked.iter().map(|(_, p)| p).collect::<Vec<_>>()
                );
            }
        }
    }
    Ok(())
}

fn seed() -> proptest::test_runner::RngSeed {
    match std::env::var("PROPTEST_RNG_SEED").as_deref() {
        Ok("random") => proptest::test_runner::RngSeed::Random,
        Ok(n) => n
            .parse()
            .map_or(proptest::test_runner::RngSeed::Fixed(20261204), |n| {
                proptest::test_runner::RngSeed::Fixed(n)
            }),
        Err(_) => proptest::test_runner::RngSeed::Fixed(20261204),
    }
}

proptest! {
    // A fixed seed in CI, so that a run is the same every time (and main stays green or
    // red for a reason); PROPTEST_RNG_SEED=random explores other cases by hand.
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: seed(),
        .. ProptestConfig::default()
    })]

    #[test]
    fn no_record_carries_a_found_credential(
        picked in proptest::collection::vec((0usize..10_000, placement()), 1..4)
    ) {
        run_case(&picked)?;
    }
}
