//! The native fast path (`native`) and the CEL interpreter must never disagree about a
//! rule: a property test. Rules are drawn from exactly the shapes `Native::compile` takes
//! (string fields compared with literals, `startsWith` / `endsWith` / `contains`, `in`
//! lists, `"name" in request.headers`, port and body size against integers, `true`,
//! `false`, joined by `&&`, `||`, `!`), and requests from values near the rules' literals
//! (case, trailing dots, punycode and Unicode hosts, odd methods, missing headers). Each
//! rule is asked both ways — `CelRule::matches` (host guards, then native, then the
//! interpreter) against the interpreter alone — and must get the same answer, an error
//! included (an error blocks). The seed is fixed so that a run is the same every time;
//! `PROPTEST_RNG_SEED=random` (or a number) explores other cases by hand.

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

use super::cel::{CelRule, Evaluation};
use super::facts::Facts;

/// Values the literals and the requests share, so that comparisons come out both ways.
const HOSTS: &[&str] = &[
    "api.example.com",
    "API.Example.com",
    "api.example.com.",
    "example.com",
    ".example.com",
    "gist.github.com",
    "github.com",
    "xn--bcher-kva.example",
    "bücher.example",
    "ＡＰＩ.example.com",
    "127.0.0.1",
    "::1",
    "",
];
const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "get", "Post", "BREW",
    "",
];
const PATHS: &[&str] = &[
    "/",
    "/v1/items",
    "/v1/items/",
    "/admin",
    "/admin/users",
    "/ADMIN",
    "/v1/%61dmin",
    "",
];
const QUERIES: &[&str] = &["", "a=1", "x=1&y=2", "token=abc", "é=1"];
const HEADERS: &[&str] = &[
    "x-tool",
    "user-agent",
    "content-type",
    "X-Tool",
    "authorization",
];
const HEADER_VALUES: &[&str] = &["curl", "Curl", "", "application/json", "Bearer x"];
/// Expressions the native path does not take (methods, functions, arithmetic, `has`).
const FOREIGN: &[&str] = &[
    r#"request.path.matches("^/v[0-9]+/")"#,
    "size(request.query) > 2",
    "request.port + 1 == 444",
    r#"has(request.headers.authorization)"#,
    r#"request.headers["x-tool"].size() > 3"#,
    r#"request.host == "api.example.com" ? true : false"#,
    r#"request.method in ["GET", 1]"#,
];
const OTHER: &[&str] = &[
    "https",
    "http",
    "proxy",
    "gateway",
    "127.0.0.1",
    "10.0.0.7",
    "http.get",
    "http.post",
    "http.brew",
    "https://",
    "api",
    "com",
    ".com",
    "items",
    "\"",
    "\\",
    "a\nb",
];

#[derive(Debug, Clone)]
enum Field {
    Method,
    Scheme,
    Host,
    Path,
    Query,
    Url,
    SourceIp,
    Listener,
    ToolName,
    HttpUrl,
    Header(&'static str),
}

impl Field {
    fn cel(&self) -> String {
        match self {
            Field::Method => "request.method".into(),
            Field::Scheme => "request.scheme".into(),
            Field::Host => "request.host".into(),
            Field::Path => "request.path".into(),
            Field::Query => "request.query".into(),
            Field::Url => "request.url".into(),
            Field::SourceIp => "source.ip".into(),
            Field::Listener => "listener".into(),
            Field::ToolName => r#"attrs["tool.name"]"#.into(),
            Field::HttpUrl => r#"attrs["http.url"]"#.into(),
            Field::Header(name) => format!("request.headers[{}]", quote(name)),
        }
    }
}

/// A rule in the native subset, as an expression tree.
#[derive(Debug, Clone)]
enum Shape {
    Const(bool),
    Eq {
        field: Field,
        value: String,
        equal: bool,
        flipped: bool,
    },
    Test {
        field: Field,
        method: &'static str,
        value: String,
    },
    In {
        field: Field,
        values: Vec<String>,
    },
    HasHeader(&'static str),
    Compare {
        port: bool,
        op: &'static str,
        value: i64,
        flipped: bool,
    },
    /// An expression outside the subset: the rule is the interpreter's, and only the host
    /// guards read off its conjuncts run natively.
    Foreign(&'static str),
    Not(Box<Shape>),
    And(Box<Shape>, Box<Shape>),
    Or(Box<Shape>, Box<Shape>),
}

impl Shape {
    fn is_native(&self) -> bool {
        match self {
            Shape::Foreign(_) => false,
            Shape::Not(a) => a.is_native(),
            Shape::And(a, b) | Shape::Or(a, b) => a.is_native() && b.is_native(),
            _ => true,
        }
    }

    fn cel(&self) -> String {
        match self {
            Shape::Const(b) => b.to_string(),
            Shape::Eq {
                field,
                value,
                equal,
                flipped,
            } => {
                let op = if *equal { "==" } else { "!=" };
                if *flipped {
                    format!("{} {op} {}", quote(value), field.cel())
                } else {
                    format!("{} {op} {}", field.cel(), quote(value))
                }
            }
            Shape::Test {
                field,
                method,
                value,
            } => format!("{}.{method}({})", field.cel(), quote(value)),
            Shape::In { field, values } => {
                let list: Vec<String> = values.iter().map(|v| quote(v)).collect();
                format!("{} in [{}]", field.cel(), list.join(", "))
            }
            Shape::HasHeader(name) => format!("{} in request.headers", quote(name)),
            Shape::Compare {
                port,
                op,
                value,
                flipped,
            } => {
                let field = if *port {
                    "request.port"
                } else {
                    "request.body_size"
                };
                if *flipped {
                    format!("{value} {op} {field}")
                } else {
                    format!("{field} {op} {value}")
                }
            }
            Shape::Foreign(expr) => (*expr).into(),
            Shape::Not(a) => format!("!({})", a.cel()),
            Shape::And(a, b) => format!("({}) && ({})", a.cel(), b.cel()),
            Shape::Or(a, b) => format!("({}) || ({})", a.cel(), b.cel()),
        }
    }
}

/// A CEL string literal of `s`.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(list)
}

fn text_value() -> impl Strategy<Value = String> {
    prop_oneof![
        pick(HOSTS).prop_map(String::from),
        pick(METHODS).prop_map(String::from),
        pick(PATHS).prop_map(String::from),
        pick(QUERIES).prop_map(String::from),
        pick(HEADER_VALUES).prop_map(String::from),
        pick(OTHER).prop_map(String::from),
        "[a-zA-Z0-9./:-]{0,6}",
    ]
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        Just(Field::Method),
        Just(Field::Scheme),
        Just(Field::Host),
        Just(Field::Host),
        Just(Field::Path),
        Just(Field::Query),
        Just(Field::Url),
        Just(Field::SourceIp),
        Just(Field::Listener),
        Just(Field::ToolName),
        Just(Field::HttpUrl),
        pick(HEADERS).prop_map(Field::Header),
    ]
}

fn int_value() -> impl Strategy<Value = i64> {
    prop_oneof![
        proptest::sample::select(&[0i64, 1, 80, 443, 444, 8443, 65535, 65536, 5, 2, 10, -1][..]),
        0i64..70_000,
        Just(i64::MAX),
    ]
}

fn leaf() -> impl Strategy<Value = Shape> {
    prop_oneof![
        1 => pick(FOREIGN).prop_map(Shape::Foreign),
        10 => native_leaf(),
    ]
}

fn native_leaf() -> impl Strategy<Value = Shape> {
    prop_oneof![
        any::<bool>().prop_map(Shape::Const),
        (field(), text_value(), any::<bool>(), any::<bool>()).prop_map(
            |(field, value, equal, flipped)| Shape::Eq {
                field,
                value,
                equal,
                flipped
            }
        ),
        (
            field(),
            pick(&["startsWith", "endsWith", "contains"]),
            text_value()
        )
            .prop_map(|(field, method, value)| Shape::Test {
                field,
                method,
                value
            }),
        (field(), proptest::collection::vec(text_value(), 0..4))
            .prop_map(|(field, values)| Shape::In { field, values }),
        pick(HEADERS).prop_map(Shape::HasHeader),
        (
            any::<bool>(),
            pick(&["==", "!=", "<", "<=", ">", ">="]),
            int_value(),
            any::<bool>()
        )
            .prop_map(|(port, op, value, flipped)| Shape::Compare {
                port,
                op,
                value,
                flipped
            }),
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    leaf().prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| Shape::Not(Box::new(a))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Shape::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Shape::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn facts() -> impl Strategy<Value = Facts> {
    (
        (
            pick(METHODS),
            pick(&["https", "http", "HTTPS"]),
            pick(HOSTS),
            proptest::sample::select(&[443u16, 80, 8443, 0, 65535][..]),
            pick(PATHS),
            pick(QUERIES),
        ),
        (
            proptest::sample::subsequence(HEADERS, 0..=HEADERS.len()),
            proptest::collection::vec(pick(HEADER_VALUES), HEADERS.len()),
            proptest::sample::select(&[-1i64, 0, 2, 5, 10, 1 << 40][..]),
            pick(&["127.0.0.1", "10.0.0.7", "::1"]),
            pick(&["proxy", "gateway", "llm", ""]),
        ),
    )
        .prop_map(
            |(
                (method, scheme, host, port, path, query),
                (names, values, body_size, source_ip, listener),
            )| {
                let sep = if query.is_empty() { "" } else { "?" };
                Facts {
                    method: method.into(),
                    scheme: scheme.into(),
                    host: host.into(),
                    port,
                    path: path.into(),
                    query: query.into(),
                    url: format!("{scheme}://{host}:{port}{path}{sep}{query}"),
                    // Names are unique, as the pipeline joins repeated headers.
                    headers: names
                        .iter()
                        .zip(&values)
                        .map(|(n, v)| (n.to_string(), v.to_string()))
                        .collect(),
                    body_size,
                    source_ip: source_ip.into(),
                    listener: listener.into(),
                }
            },
        )
}

fn seed() -> RngSeed {
    match std::env::var("PROPTEST_RNG_SEED").as_deref() {
        Ok("random") => RngSeed::Random,
        Ok(n) => n.parse().map_or(RngSeed::Fixed(20260107), RngSeed::Fixed),
        Err(_) => RngSeed::Fixed(20260107),
    }
}

/// The answer both ways for one request: `Ok(matched)` or an error (which blocks).
fn verdicts(rule: &CelRule, facts: &Facts) -> (Result<bool, ()>, Result<bool, ()>) {
    let fast = rule.matches(&Evaluation::new(facts)).map_err(|_| ());
    let slow = rule.interpreted(facts).map_err(|_| ());
    (fast, slow)
}

#[test]
fn native_and_the_interpreter_agree_on_every_rule_shape() {
    let natives = AtomicUsize::new(0);
    let compiled = AtomicUsize::new(0);
    let cases = 2500;
    let mut runner = TestRunner::new(Config {
        cases,
        rng_seed: seed(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(
        &(shape(), proptest::collection::vec(facts(), 4)),
        |(shape, requests)| {
            let expr = shape.cel();
            let rule = match CelRule::compile(&expr) {
                Ok(rule) => rule,
                // Loading refuses it (its one trial evaluation failed): nothing to compare.
                Err(_) => return Ok(()),
            };
            if shape.is_native() {
                compiled.fetch_add(1, Ordering::Relaxed);
                natives.fetch_add(usize::from(rule.has_native()), Ordering::Relaxed);
            }
            for facts in &requests {
                let (fast, slow) = verdicts(&rule, facts);
                prop_assert_eq!(fast, slow, "{} on {:?}", expr, facts);
                if let Some(native) = rule.native_only(facts) {
                    prop_assert_eq!(Ok(native), slow, "native alone: {} on {:?}", expr, facts);
                }
            }
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    let (natives, compiled) = (natives.into_inner(), compiled.into_inner());
    // Every shape drawn is one native.rs takes: the fast path must be what is compared.
    assert_eq!(
        natives,
        compiled,
        "rules the native path declined: {}",
        compiled - natives
    );
    // About one rule in four draws a foreign leaf; nearly all the rest must compile.
    assert!(
        compiled * 2 >= cases as usize,
        "only {compiled} native rules compiled"
    );
}
