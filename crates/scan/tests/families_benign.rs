//! The benign-traffic measurement of `bench/families/measure` (ignored by default: it needs the
//! corpus that script downloads). Runs every family over every file of `$FAMILIES_CORPUS`:
//! the text families on each file as a stream (64 KiB chunks, as the proxy feeds bodies),
//! `check_hostname` on every distinct host and `check_url_path` on every distinct URL found in
//! the files. Writes `$FAMILIES_OUT/report.tsv` (each finding with its context) and
//! `$FAMILIES_OUT/summary.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use airlock_scan::context::{Context, judge};
use airlock_scan::families::{
    Family, FamilyScanner, FamilySet, FamilyStream, check_hostname, check_url_path,
};
use airlock_scan::normalize::{needs_normalization, normalize_for_injection};
use airlock_scan::{Catalogue, Engine, RuleKind};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn context(text: &[u8], start: usize, end: usize) -> String {
    let a = start.saturating_sub(60);
    let b = (end + 60).min(text.len());
    String::from_utf8_lossy(&text[a..b]).replace(['\n', '\r', '\t'], " ")
}

/// URLs in text: `http://` or `https://` up to a byte that cannot be in one (JSON escapes
/// `\/` undone first).
fn urls(text: &[u8], out: &mut BTreeSet<String>) {
    let text = String::from_utf8_lossy(text).replace("\\/", "/");
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(p) = text[i..].find("http") {
        let s = i + p;
        let rest = &text[s..];
        let skip = if rest.starts_with("https://") {
            8
        } else if rest.starts_with("http://") {
            7
        } else {
            i = s + 4;
            continue;
        };
        let mut e = s + skip;
        while e < b.len()
            && !b[e].is_ascii_whitespace()
            && !matches!(
                b[e],
                b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`' | b')' | b']' | b'}' | b'|' | b'^' | b'{'
            )
        {
            e += 1;
        }
        let url = text[s..e].trim_end_matches(['.', ',', ';', ':']);
        if url.len() > skip + 3 && url.len() < 4096 {
            out.insert(url.to_string());
        }
        i = e.max(s + 1);
    }
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let auth = rest.split(['/', '?', '#']).next()?;
    let auth = auth.rsplit('@').next()?;
    if auth.starts_with('[') {
        return None;
    }
    let host = auth.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |r| r.1);
    rest.find(['/', '?']).map_or("", |i| &rest[i..])
}

#[test]
#[ignore = "needs the corpus of bench/families/measure"]
fn benign_corpus() {
    let corpus = PathBuf::from(std::env::var("FAMILIES_CORPUS").expect("FAMILIES_CORPUS"));
    let out_dir = PathBuf::from(std::env::var("FAMILIES_OUT").expect("FAMILIES_OUT"));
    let mut list = Vec::new();
    files(&corpus, &mut list);
    assert!(!list.is_empty(), "no corpus in {}", corpus.display());
    let scanner = FamilyScanner::new(FamilySet::TEXT).report_test_values(true);
    let mut report = String::from("family\trule\tsource\toffset\ttest_value\tvalue\tcontext\n");
    let mut bytes_by_source: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut findings: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    let mut all_urls = BTreeSet::new();
    // The credential catalogue too (its catch-alls meet the same hashes, ids and names).
    let catalogue = std::sync::Arc::new(
        Catalogue::from_yaml(
            include_str!("../../../rules/secrets.yaml"),
            include_str!("../../../rules/injections.yaml"),
        )
        .expect("catalogue"),
    );
    let secrets = Engine::new(catalogue.clone(), |r| {
        r.kind == RuleKind::Secret && r.detector.is_none()
    });
    let mut catalogue_findings: BTreeMap<String, usize> = BTreeMap::new();
    // And the injection rules, as a response is read (normalised text, context judged): package
    // pages and READMEs are what agents fetch, full of install commands and examples.
    let injections = Engine::new(catalogue.clone(), |r| {
        r.kind == RuleKind::Injection && !r.raw
    });
    let mut injection_findings: BTreeMap<String, usize> = BTreeMap::new();
    let mut injection_dismissed = 0usize;
    let mut normalised = Vec::new();
    let mut catalogue_secs = 0.0;
    let started = std::time::Instant::now();
    let mut total = 0usize;
    for path in &list {
        let text = std::fs::read(path).expect("read");
        total += text.len();
        let source = path
            .strip_prefix(&corpus)
            .unwrap()
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let e = bytes_by_source.entry(source).or_default();
        e.0 += 1;
        e.1 += text.len();
        let mut stream = FamilyStream::new(scanner);
        let mut found = Vec::new();
        for chunk in text.chunks(64 * 1024) {
            stream.feed(chunk, &mut found);
        }
        stream.finish(&mut found);
        for f in found {
            let (s, e) = (f.start as usize, f.end as usize);
            let c = findings.entry(f.rule.id()).or_default();
            if f.test_value {
                c.1 += 1;
            } else {
                c.0 += 1;
            }
            let _ = writeln!(
                report,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                f.rule.family().key(),
                f.rule.id(),
                path.strip_prefix(&corpus).unwrap().display(),
                s,
                f.test_value,
                String::from_utf8_lossy(&text[s..e]),
                context(&text, s, e)
            );
        }
        urls(&text, &mut all_urls);
        let t = std::time::Instant::now();
        let mut hits = Vec::new();
        for chunk in text.chunks(64 * 1024) {
            hits.clear();
            secrets.scan(chunk, &mut hits);
            for f in &hits {
                let rule = &catalogue.rules[f.rule];
                *catalogue_findings.entry(rule.id.clone()).or_default() += 1;
                let _ = writeln!(
                    report,
                    "catalogue\t{}\t{}\t-\tfalse\t{}\t{}",
                    rule.id,
                    path.strip_prefix(&corpus).unwrap().display(),
                    String::from_utf8_lossy(&chunk[f.start..f.end]),
                    context(chunk, f.start, f.end)
                );
            }
        }
        for chunk in text.chunks(64 * 1024) {
            let hay: &[u8] = if needs_normalization(chunk) {
                normalised.clear();
                normalize_for_injection(chunk, &mut normalised);
                &normalised
            } else {
                chunk
            };
            hits.clear();
            injections.scan(hay, &mut hits);
            for f in &hits {
                let rule = &catalogue.rules[f.rule];
                if judge(rule, hay, f.match_start, f.match_end) != Context::Addressed {
                    injection_dismissed += 1;
                    continue;
                }
                *injection_findings.entry(rule.id.clone()).or_default() += 1;
                let _ = writeln!(
                    report,
                    "injection\t{}\t{}\t-\tfalse\t{}\t{}",
                    rule.id,
                    path.strip_prefix(&corpus).unwrap().display(),
                    String::from_utf8_lossy(&hay[f.match_start..f.match_end])
                        .replace(['\n', '\t'], " "),
                    context(hay, f.match_start, f.match_end)
                );
            }
        }
        catalogue_secs += t.elapsed().as_secs_f64();
    }
    let text_secs = started.elapsed().as_secs_f64() - catalogue_secs;
    let hosts: BTreeSet<&str> = all_urls.iter().filter_map(|u| host_of(u)).collect();
    let mut hosts_flagged = 0;
    for h in &hosts {
        let v = check_hostname(h);
        if v.flagged {
            hosts_flagged += 1;
            let _ = writeln!(
                report,
                "hostname_exfil\t-\t-\t-\tfalse\t{h}\t{}",
                v.explain(h)
            );
        }
    }
    let paths: BTreeSet<&str> = all_urls.iter().map(|u| path_of(u)).collect();
    let mut urls_flagged = 0;
    let mut url_findings = 0;
    for u in &all_urls {
        let v = check_url_path(path_of(u));
        if v.flagged() {
            urls_flagged += 1;
            url_findings += v.signals.len();
            let _ = writeln!(
                report,
                "url_entropy\t-\t-\t-\tfalse\t{u}\t{}",
                v.explain(path_of(u), false)
            );
        }
    }
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join("report.tsv"), &report).unwrap();

    let mut md = String::new();
    let _ = writeln!(md, "Corpus: {} files, {} bytes", list.len(), total);
    for (src, (n, b)) in &bytes_by_source {
        let _ = writeln!(md, "- {src}: {n} files, {b} bytes");
    }
    let _ = writeln!(
        md,
        "\nText families ({:.1} s, {:.0} MB/s in this build):\n",
        text_secs,
        total as f64 / text_secs / 1e6
    );
    let _ = writeln!(
        md,
        "| family | rule | bytes scanned | findings | test values (not reported by default) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for rule in airlock_scan::families::FamilyRule::ALL {
        let (n, t) = findings.get(rule.id()).copied().unwrap_or_default();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            rule.family().key(),
            rule.id(),
            total,
            n,
            t
        );
    }
    let _ = writeln!(md, "\nPlace families:\n");
    let _ = writeln!(md, "| family | scanned | flagged | rate |");
    let _ = writeln!(md, "|---|---|---|---|");
    let _ = writeln!(
        md,
        "| {} | {} distinct hostnames | {} | {:.3} % |",
        Family::HostnameExfil.key(),
        hosts.len(),
        hosts_flagged,
        100.0 * hosts_flagged as f64 / hosts.len().max(1) as f64
    );
    let _ = writeln!(
        md,
        "| {} | {} distinct URLs ({} distinct paths) | {} ({} signals) | {:.3} % |",
        Family::UrlEntropy.key(),
        all_urls.len(),
        paths.len(),
        urls_flagged,
        url_findings,
        100.0 * urls_flagged as f64 / all_urls.len().max(1) as f64
    );
    let _ = writeln!(
        md,
        "\nCredential catalogue ({} rules, 64 KiB chunks, no decoding): {} findings{}",
        catalogue
            .rules
            .iter()
            .filter(|r| r.kind == RuleKind::Secret && r.detector.is_none())
            .count(),
        catalogue_findings.values().sum::<usize>(),
        if catalogue_findings.is_empty() {
            ""
        } else {
            ":"
        }
    );
    for (rule, n) in &catalogue_findings {
        let _ = writeln!(md, "- {rule}: {n}");
    }
    let _ = writeln!(
        md,
        "\nInjection rules (normalised, context judged): {} findings, {} dismissed by context{}",
        injection_findings.values().sum::<usize>(),
        injection_dismissed,
        if injection_findings.is_empty() {
            ""
        } else {
            ":"
        }
    );
    for (rule, n) in &injection_findings {
        let _ = writeln!(md, "- {rule}: {n}");
    }
    std::fs::write(out_dir.join("summary.md"), &md).unwrap();
    println!("{md}");
}
