//! The carrier matrix: every positive example of every credential rule of the built-in
//! catalogue, wrapped in every way an agent may send it — a JSON string, a form field, a
//! query parameter, a path segment, a header value, a multipart part, a YAML value, a diff
//! line, gzip, base64, hex, double percent-encoding, and the shapes issue 10 measured as
//! misses (values split across JSON fields or array elements, hard-wrapped lines, delimited
//! hex) — is found through the view that applies: body carriers through `BodyScanner` (as a
//! request, and as a response with redaction and injection rules on), URL carriers through
//! `url::views`, header values through `Engine::scan`.
//!
//! What is looked for is the secret as the engine finds it in the example. The carrier
//! holds the bare secret when the rule finds it alone, else the whole example (assignment
//! rules need their `NAME=`). A find counts when it is the rule itself, or a rule that
//! claims the same secret in the example alone (a vendor rule inside an assignment).
//!
//! A carrier that cannot hold a payload says why ([`cannot_hold`]: not run), and so does
//! one that hides it by design ([`known_limit`]: excused only when it is indeed not
//! found); those pairs are listed, not skipped silently. Failures are reported as one list
//! (rule × carrier).

use std::io::Write;
use std::sync::Arc;

use airlock_scan::body::BodyScanner;
use airlock_scan::{Catalogue, Engine, Rule, RuleKind};

struct Engines {
    catalogue: Arc<Catalogue>,
    secrets: Arc<Engine>,
    injections: (Arc<Engine>, Arc<Engine>),
}

fn engines() -> Engines {
    let catalogue = Catalogue::builtin();
    Engines {
        secrets: Arc::new(Engine::new(catalogue.clone(), |r| {
            r.kind == RuleKind::Secret
        })),
        injections: (
            Arc::new(Engine::new(catalogue.clone(), |r| {
                r.kind == RuleKind::Injection && !r.raw
            })),
            Arc::new(Engine::new(catalogue.clone(), |r| {
                r.kind == RuleKind::Injection && r.raw
            })),
        ),
        catalogue,
    }
}

/// One positive example, as a carrier will hold it.
struct Case {
    rule: usize,
    example: usize,
    /// The bare secret, or the whole example when the rule needs its context.
    payload: String,
    whole: bool,
    /// Rules whose find counts (the rule, and those claiming the same secret).
    accept: Vec<usize>,
}

#[derive(Clone, Copy, Debug)]
enum Via {
    /// A body, with this Content-Encoding.
    Body(Option<&'static str>),
    /// A request's path and query.
    Url,
    /// A header value.
    Header,
}

struct Carrier {
    name: &'static str,
    via: Via,
    /// Wraps a payload (`true`: the whole example, `false`: the bare secret).
    wrap: fn(&str, bool) -> Result<Vec<u8>, &'static str>,
}

const UNRESERVED: &[u8] = b"-._~";

fn percent(s: &str, keep: &[u8], space_plus: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else if space_plus && b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `application/x-www-form-urlencoded`, as browsers and `curl --data-urlencode` write it.
fn form(s: &str) -> String {
    percent(s, UNRESERVED, true)
}

fn json_string(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn base64(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for g in b.chunks(3) {
        let v = (u32::from(g[0]) << 16)
            | (u32::from(*g.get(1).unwrap_or(&0)) << 8)
            | u32::from(*g.get(2).unwrap_or(&0));
        for k in 0..4 {
            out.push(if k <= g.len() {
                A[(v >> (18 - 6 * k) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn hex(b: &[u8], sep: &str) -> String {
    b.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn chat(content: &str) -> Vec<u8> {
    format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":1024,"messages":[{{"role":"user","content":"here it is:\n{}\nthanks"}}]}}"#,
        json_string(content)
    )
    .into_bytes()
}

fn multiline(p: &str) -> bool {
    let p = p.trim_end();
    p.contains('\n') || p.contains('\r')
}

/// Why a carrier cannot hold a payload at all (the pair is listed, not run).
fn cannot_hold(carrier: &str, payload: &str) -> Option<&'static str> {
    match carrier {
        "header value" if multiline(payload) => {
            Some("a header value cannot hold a line break (RFC 9110 5.5)")
        }
        "hard-wrapped (64)" if multiline(payload) => Some("already several lines"),
        "hard-wrapped (64)" if payload.len() <= 64 => {
            Some("shorter than one wrapped line: nothing to wrap")
        }
        _ => None,
    }
}

/// Why a carrier may hide a payload from `rule` by design; a pair that is not found is a
/// failure unless this explains it.
fn known_limit(carrier: &str, payload: &str, rule: &Rule) -> Option<&'static str> {
    // A rule for a file's lines (`.pgpass`, `.htpasswd`) matches at a line's start (or
    // after a space); a carrier that puts `name=` before the value on its line hides that.
    let pattern = rule.regex.as_str().trim_start_matches("(?-u)");
    let at_line_start = pattern.starts_with("(?:^|\\n)");
    let after_space = pattern.starts_with("(?:^|\\n|\\s)");
    match carrier {
        "form field" | "double %-encoding (body)" if at_line_start || after_space => {
            Some("the rule matches at a line's start; a form field's value follows `name=`")
        }
        "YAML value" if at_line_start => {
            Some("the rule matches at a line's start; a YAML value follows `key: `")
        }
        "hard-wrapped (64)" if payload.trim().contains(char::is_whitespace) => Some(
            "words, not a token: a break at a space reads as prose wrapped, which is not joined",
        ),
        "base64" | "%-encoded base64 (query)" if payload.trim().len() < 18 => Some(
            "under 18 bytes: its base64 is shorter than the blob decoder's floor (24 \
             characters, about the shortest credential's)",
        ),
        "hex" | "delimited hex (query)" if payload.trim().len() < 16 => {
            Some("under 16 bytes: its hex is shorter than the blob decoder's floor (32 digits)")
        }
        _ => None,
    }
}

fn carriers() -> Vec<Carrier> {
    vec![
        Carrier {
            name: "JSON string",
            via: Via::Body(None),
            wrap: |p, _| Ok(chat(p)),
        },
        Carrier {
            name: "form field",
            via: Via::Body(None),
            wrap: |p, _| Ok(format!("a=1&k={}&b=2", form(p)).into_bytes()),
        },
        Carrier {
            name: "query parameter",
            via: Via::Url,
            wrap: |p, _| Ok(format!("/v1/sync?a=1&k={}&b=2", form(p)).into_bytes()),
        },
        Carrier {
            name: "path segment",
            via: Via::Url,
            wrap: |p, _| {
                Ok(format!("/upload/{}/done?x=1", percent(p, UNRESERVED, false)).into_bytes())
            },
        },
        Carrier {
            name: "header value",
            via: Via::Header,
            wrap: |p, _| Ok(p.as_bytes().to_vec()),
        },
        Carrier {
            name: "multipart part",
            via: Via::Body(None),
            wrap: |p, _| {
                Ok(format!(
                    "--XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\n\r\n{{\"a\":1}}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\nContent-Type: text/plain\r\n\r\n{p}\r\n--XyZ--\r\n"
                )
                .into_bytes())
            },
        },
        Carrier {
            name: "YAML value",
            via: Via::Body(None),
            wrap: |p, _| {
                let mut y = String::from("service:\n  name: api\n  value: ");
                if multiline(p) {
                    y.push_str("|\n");
                    for line in p.lines() {
                        y.push_str("    ");
                        y.push_str(line);
                        y.push('\n');
                    }
                } else {
                    y.push_str(p);
                    y.push('\n');
                }
                y.push_str("  port: 8080\n");
                Ok(y.into_bytes())
            },
        },
        Carrier {
            name: "diff line",
            via: Via::Body(None),
            wrap: |p, whole| {
                let mut d = String::from(
                    "diff --git a/config b/config\n--- a/config\n+++ b/config\n@@ -1,3 +1,3 @@\n context\n-OLD=1\n",
                );
                if multiline(p) {
                    for line in p.lines() {
                        d.push('+');
                        d.push_str(line);
                        d.push('\n');
                    }
                } else if whole {
                    // The example is the line (`+admin:$apr1$…`).
                    d.push_str(&format!("+{p}\n"));
                } else {
                    d.push_str(&format!("+KEY={p}\n"));
                }
                d.push_str(" more context\n");
                Ok(d.into_bytes())
            },
        },
        Carrier {
            name: "gzip",
            via: Via::Body(Some("gzip")),
            wrap: |p, _| {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(format!("some notes\n{p}\nmore notes\n").as_bytes())
                    .unwrap();
                Ok(gz.finish().unwrap())
            },
        },
        Carrier {
            name: "base64",
            via: Via::Body(None),
            wrap: |p, _| Ok(format!(r#"{{"data":"{}"}}"#, base64(p.as_bytes())).into_bytes()),
        },
        Carrier {
            name: "hex",
            via: Via::Body(None),
            wrap: |p, _| Ok(format!(r#"{{"data":"{}"}}"#, hex(p.as_bytes(), "")).into_bytes()),
        },
        Carrier {
            name: "double %-encoding (body)",
            via: Via::Body(None),
            wrap: |p, _| Ok(format!("a=1&k={}", form(p).replace('%', "%25")).into_bytes()),
        },
        Carrier {
            name: "double %-encoding (query)",
            via: Via::Url,
            wrap: |p, _| Ok(format!("/v1/x?k={}", form(p).replace('%', "%25")).into_bytes()),
        },
        Carrier {
            name: "%-encoded base64 (query)",
            via: Via::Url,
            wrap: |p, _| Ok(format!("/v1/x?d={}", form(&base64(p.as_bytes()))).into_bytes()),
        },
        Carrier {
            name: "delimited hex (query)",
            via: Via::Url,
            wrap: |p, _| Ok(format!("/v1/x?d={}", hex(p.as_bytes(), "-")).into_bytes()),
        },
        Carrier {
            name: "split JSON values",
            via: Via::Body(None),
            wrap: |p, _| {
                // Lines as array elements; a one-line payload as two adjacent fields.
                if multiline(p) {
                    let lines: Vec<String> = p
                        .lines()
                        .map(|l| format!("\"{}\"", json_string(l)))
                        .collect();
                    Ok(format!(r#"{{"key":[{}]}}"#, lines.join(",")).into_bytes())
                } else {
                    let mut cut = p.len() / 2;
                    while !p.is_char_boundary(cut) {
                        cut += 1;
                    }
                    Ok(format!(
                        r#"{{"k1":"{}","k2":"{}"}}"#,
                        json_string(&p[..cut]),
                        json_string(&p[cut..])
                    )
                    .into_bytes())
                }
            },
        },
        Carrier {
            name: "hard-wrapped (64)",
            via: Via::Body(None),
            wrap: |p, _| {
                let mut out = String::from("token: |\n");
                let mut rest = p;
                while !rest.is_empty() {
                    let mut cut = rest.len().min(64);
                    while !rest.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    out.push_str("  ");
                    out.push_str(&rest[..cut]);
                    out.push('\n');
                    rest = &rest[cut..];
                }
                Ok(out.into_bytes())
            },
        },
    ]
}

/// The examples as carriers hold them, and the examples the engine misses on their own.
fn cases(e: &Engines) -> (Vec<Case>, Vec<String>) {
    let mut cases = Vec::new();
    let mut missed = Vec::new();
    for (index, rule) in e.catalogue.rules.iter().enumerate() {
        if rule.kind != RuleKind::Secret {
            continue;
        }
        let alone = Engine::new(e.catalogue.clone(), |r| std::ptr::eq(r, rule));
        for (n, example) in rule.examples.positive.iter().enumerate() {
            let mut own = Vec::new();
            alone.scan(example.as_bytes(), &mut own);
            let Some(f) = own.iter().find(|f| f.rule == index) else {
                missed.push(format!("{} #{n}: not found alone", rule.id));
                continue;
            };
            let secret = &example[f.start..f.end];
            let mut bare = Vec::new();
            alone.scan(secret.as_bytes(), &mut bare);
            let whole = !bare.iter().any(|b| b.rule == index);
            let payload = if whole {
                example.clone()
            } else {
                secret.to_string()
            };
            // Which rules the whole engine reports for this secret in the payload alone.
            let at = payload.find(secret).unwrap_or(0);
            let span = at..at + secret.len();
            let mut all = Vec::new();
            e.secrets.scan(payload.as_bytes(), &mut all);
            let mut accept = vec![index];
            for f in &all {
                if f.start < span.end && span.start < f.end && !accept.contains(&f.rule) {
                    accept.push(f.rule);
                }
            }
            if !all.iter().any(|f| accept.contains(&f.rule)) {
                missed.push(format!("{} #{n}: the whole engine misses it", rule.id));
                continue;
            }
            cases.push(Case {
                rule: index,
                example: n,
                payload,
                whole,
                accept,
            });
        }
    }
    (cases, missed)
}

/// The rules found in a body, fed in chunks of `chunk` bytes.
fn body_rules(
    e: &Engines,
    body: &[u8],
    encoding: Option<&str>,
    response: bool,
    chunk: usize,
) -> Vec<usize> {
    let mut s = BodyScanner::new(
        e.secrets.clone(),
        response.then(|| e.injections.clone()),
        encoding,
        16 << 20,
        response,
    );
    let mut rules = Vec::new();
    let pieces: Vec<&[u8]> = body.chunks(chunk).collect();
    for (i, piece) in pieces.iter().enumerate() {
        s.feed(piece, i + 1 == pieces.len(), &mut |f| {
            rules.push(f.local.rule)
        });
    }
    rules
}

#[test]
fn every_credential_is_found_in_every_carrier() {
    let e = engines();
    let (cases, missed) = cases(&e);
    assert!(
        missed.is_empty(),
        "examples missed on their own:\n{}",
        missed.join("\n")
    );
    let mut failures = Vec::new();
    let mut impossible = Vec::new();
    for carrier in carriers() {
        for case in &cases {
            let id = &e.catalogue.rules[case.rule].id;
            let rule = &e.catalogue.rules[case.rule];
            if let Some(why) = cannot_hold(carrier.name, &case.payload) {
                impossible.push(format!("{id} #{} × {}: {why}", case.example, carrier.name));
                continue;
            }
            let limit = known_limit(carrier.name, &case.payload, rule);
            let mut fail = |what: String| match limit {
                Some(why) => impossible.push(format!("{what}: {why}")),
                None => failures.push(what),
            };
            let wrapped = match (carrier.wrap)(&case.payload, case.whole) {
                Ok(w) => w,
                Err(why) => {
                    impossible.push(format!("{id} #{} × {}: {why}", case.example, carrier.name));
                    continue;
                }
            };
            let hit = |rules: &[usize]| rules.iter().any(|r| case.accept.contains(r));
            match carrier.via {
                Via::Body(encoding) => {
                    for (mode, response, chunk) in [
                        ("request", false, wrapped.len().max(1)),
                        ("response", true, wrapped.len().max(1)),
                        ("request, 7-byte chunks", false, 7),
                    ] {
                        if !hit(&body_rules(&e, &wrapped, encoding, response, chunk)) {
                            fail(format!(
                                "{id} #{} × {} ({mode})",
                                case.example, carrier.name
                            ));
                        }
                    }
                }
                Via::Url => {
                    let views = airlock_scan::url::views(&wrapped, 1 << 20);
                    let found: Vec<usize> = airlock_scan::url::scan(&e.secrets, &views)
                        .iter()
                        .map(|f| f.finding.rule)
                        .collect();
                    if !hit(&found) {
                        fail(format!("{id} #{} × {}", case.example, carrier.name));
                    }
                }
                Via::Header => {
                    let mut found = Vec::new();
                    e.secrets.scan(&wrapped, &mut found);
                    let rules: Vec<usize> = found.iter().map(|f| f.rule).collect();
                    if !hit(&rules) {
                        fail(format!("{id} #{} × {}", case.example, carrier.name));
                    }
                }
            }
        }
    }
    eprintln!(
        "{} examples × {} carriers; {} pairs a carrier cannot hold (or hides by design):\n{}",
        cases.len(),
        carriers().len(),
        impossible.len(),
        impossible.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} rule × carrier pairs not found:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The misses measured for issue 10, as they were sent.
#[test]
fn the_measured_misses_are_found() {
    let e = engines();
    let groq = "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";
    assert_eq!(groq.len(), 56);
    let rule = |id: &str| {
        e.catalogue
            .rules
            .iter()
            .position(|r| r.id == id)
            .expect("rule")
    };
    let bodies = [
        format!("content=GROQ_API_KEY%3D{groq}"),
        format!("content=GROQ_API_KEY%3D%0A{groq}"),
        format!("content=GROQ_API_KEY%3D%20{groq}"),
        format!("content=GROQ_API_KEY%253D{groq}"),
    ];
    for body in &bodies {
        for response in [false, true] {
            for chunk in [1, 5, body.len()] {
                let rules = body_rules(&e, body.as_bytes(), None, response, chunk);
                assert!(
                    rules.contains(&rule("groq_api_key")),
                    "{body} (chunks of {chunk}): {rules:?}"
                );
            }
        }
    }
}
