//! The texts to scan in a request's path and query. A URL hides a credential in more ways
//! than a body: percent-encoded once or several times (`%253D`), base64 or hex in a query
//! value or a path segment, percent-encoded base64, hex with delimiters. [`views`] gives
//! every text worth scanning:
//!
//! - the path and query as sent;
//! - the whole of it percent-decoded, one layer at a time, up to three;
//! - each path segment and each query value on its own, percent-decoded (`+` as a space in
//!   a query), then decoded again as base64 / base64url / hex / delimited hex where that
//!   gives mostly printable text or private key material, to three layers in all. A query
//!   value's view is `name=value`, so rules that need the name (`aws_secret_access_key=`)
//!   still see it.
//!
//! [`scan`] runs an [`Engine`] over the views and keeps one finding per (rule, secret),
//! the first view that shows it (the URL as sent comes first); each finding says which
//! bytes of the URL hold it ([`UrlFinding::source`]), for [`mask`]. Pure: no I/O, and the
//! views of a URL are bounded by `max_bytes` in all.
//!
//! ```no_run
//! use airlock_scan::{Catalogue, Engine, RuleKind, url};
//!
//! let secrets = Engine::new(Catalogue::builtin(), |r| r.kind == RuleKind::Secret);
//! let path_and_query = "/sync?d=QUtJQVo3UFE0UjVTVDZVVjJXWFk%3D";
//! let views = url::views(path_and_query.as_bytes(), 16 << 20);
//! let found = url::scan(&secrets, &views);
//! for f in &found {
//!     let view = &views[f.view];
//!     // What to record: the rule, where (`query parameter 1 (percent, base64)`), and a
//!     // snippet cut from the view's text around `f.finding`, the secret masked.
//!     println!("{} in {}", secrets.catalogue().rules[f.finding.rule].id, view.describe());
//! }
//! // The URL for the records, each secret's bytes (encoded or not) masked.
//! let masked = url::mask(path_and_query.as_bytes(), &found, |_| "[REDACTED]".into());
//! # let _ = masked;
//! ```

use std::ops::Range;

use crate::decode::{BlobDecoder, has_percent_escape};
use crate::engine::{Engine, Finding};

/// Decoding layers of a URL part: percent-encoding three times over, or base64 inside
/// percent-encoding inside percent-encoding.
const DEPTH: usize = 3;

/// Which part of the URL a view shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// The whole path and query.
    Whole,
    /// A path segment, counted from 1.
    Segment(usize),
    /// A query parameter, counted from 1, with its name percent-decoded (the name may hold
    /// anything the agent put there: not for messages as it is).
    Query { index: usize, name: Vec<u8> },
}

/// One text to scan.
#[derive(Debug, Clone)]
pub struct UrlView {
    pub text: Vec<u8>,
    pub part: Part,
    /// The decodings applied, outermost first: `percent`, `base64`, `hex`. Empty for the
    /// path and query as sent.
    pub decodings: Vec<&'static str>,
    /// The bytes of the path and query this view was decoded from.
    pub source: Range<usize>,
    /// For views made by percent-decoding only: the offset in the path and query of each
    /// byte of `text` (so a finding masks exactly its own bytes).
    map: Option<Vec<u32>>,
}

impl UrlView {
    /// The path and query as sent.
    pub fn is_raw(&self) -> bool {
        self.decodings.is_empty() && self.part == Part::Whole
    }

    /// What the view is, for a record: `url`, `url (percent ×2)`, `query parameter 2
    /// (percent, base64)`, `path segment 3 (hex)`. Holds no byte of the URL.
    pub fn describe(&self) -> String {
        let what = match &self.part {
            Part::Whole => "url".to_string(),
            Part::Segment(n) => format!("path segment {n}"),
            Part::Query { index, .. } => format!("query parameter {index}"),
        };
        if self.decodings.is_empty() {
            return what;
        }
        let mut steps: Vec<String> = Vec::new();
        for d in &self.decodings {
            match steps.last_mut() {
                Some(last) if last.split(' ').next() == Some(*d) => {
                    let n = last
                        .rsplit('×')
                        .next()
                        .and_then(|n| n.parse::<usize>().ok())
                        .unwrap_or(1);
                    *last = format!("{d} ×{}", n + 1);
                }
                _ => steps.push((*d).to_string()),
            }
        }
        format!("{what} ({})", steps.join(", "))
    }

    /// The bytes of the path and query that hold `text[start..end]`.
    pub fn source_of(&self, start: usize, end: usize) -> Range<usize> {
        match &self.map {
            Some(map) if start < end && end <= map.len() => {
                let from = map[start] as usize;
                let to = map
                    .get(end)
                    .map_or(self.source.end, |&m| m as usize)
                    .max(from + 1);
                from..to.min(self.source.end)
            }
            _ => self.source.clone(),
        }
    }
}

/// A finding in one of the views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlFinding {
    /// Index into the views.
    pub view: usize,
    /// Offsets into that view's text.
    pub finding: Finding,
    /// The bytes of the path and query that hold the secret (to mask them).
    pub source: Range<usize>,
}

/// The texts to scan in `path_and_query` (at most about `max_bytes` of them in all; the
/// URL as sent always).
pub fn views(path_and_query: &[u8], max_bytes: usize) -> Vec<UrlView> {
    let len = path_and_query.len();
    let mut out = Views {
        views: vec![UrlView {
            text: path_and_query.to_vec(),
            part: Part::Whole,
            decodings: Vec::new(),
            source: 0..len,
            map: Some((0..len as u32).collect()),
        }],
        room: max_bytes.saturating_sub(len),
    };
    // The whole, one percent layer at a time (`+` stays: it is literal in a path).
    let mut text = path_and_query.to_vec();
    let mut map: Vec<u32> = (0..len as u32).collect();
    for layers in 1..=DEPTH {
        let Some((t, m)) = percent_mapped(&text, &map, false) else {
            break;
        };
        (text, map) = (t, m);
        if !out.push(UrlView {
            text: text.clone(),
            part: Part::Whole,
            decodings: vec!["percent"; layers],
            source: 0..len,
            map: Some(map.clone()),
        }) {
            return out.views;
        }
    }
    // Each part on its own.
    let (path_end, query) = match memchr::memchr(b'?', path_and_query) {
        Some(q) => (q, Some(q + 1)),
        None => (len, None),
    };
    let mut segment = 0;
    for range in split(path_and_query, 0..path_end, b'/') {
        if range.is_empty() {
            continue;
        }
        segment += 1;
        if !part_views(
            path_and_query,
            Part::Segment(segment),
            b"",
            range,
            false,
            &mut out,
        ) {
            return out.views;
        }
    }
    if let Some(q) = query {
        let mut index = 0;
        for range in split(path_and_query, q..len, b'&') {
            if range.is_empty() {
                continue;
            }
            index += 1;
            let param = &path_and_query[range.clone()];
            let (name, value) = match memchr::memchr(b'=', param) {
                Some(eq) => (
                    range.start..range.start + eq,
                    range.start + eq + 1..range.end,
                ),
                None => (range.start..range.start, range.clone()),
            };
            let mut name_text = Vec::new();
            crate::decode::percent_decode(&path_and_query[name.clone()], true, &mut name_text);
            let mut prefix = name_text.clone();
            if !name.is_empty() {
                prefix.push(b'=');
            }
            let part = Part::Query {
                index,
                name: name_text,
            };
            if !part_views(path_and_query, part, &prefix, value, true, &mut out) {
                return out.views;
            }
        }
    }
    out.views
}

struct Views {
    views: Vec<UrlView>,
    room: usize,
}

impl Views {
    /// Adds a view unless it would go past the budget; false once the budget is spent.
    fn push(&mut self, view: UrlView) -> bool {
        if view.text.len() > self.room {
            self.room = 0;
            return false;
        }
        self.room -= view.text.len();
        if !self
            .views
            .iter()
            .any(|v| v.text == view.text && v.part == view.part)
        {
            self.views.push(view);
        }
        true
    }
}

/// The ranges of `src[range]` between `sep` bytes.
fn split(src: &[u8], range: Range<usize>, sep: u8) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = range.start;
    for i in memchr::memchr_iter(sep, &src[range.clone()]) {
        out.push(start..range.start + i);
        start = range.start + i + 1;
    }
    out.push(start..range.end);
    out
}

/// The decoded views of one part (`src[range]`), each text prefixed by `prefix` (a query
/// value's `name=`). False once the budget is spent.
fn part_views(
    src: &[u8],
    part: Part,
    prefix: &[u8],
    range: Range<usize>,
    form: bool,
    out: &mut Views,
) -> bool {
    let value = &src[range.clone()];
    let map: Vec<u32> = (range.start as u32..range.end as u32).collect();
    // The part as it is first: rules that end a secret at the end of the text (or start one
    // at a line's start) see it whole here, not before `&` or after `name=`.
    let mut found: Vec<Decoded> = vec![(value.to_vec(), Vec::new(), Some(map.clone()))];
    decode_part(value, Some(map), form, Vec::new(), DEPTH, &mut found);
    // The fewest decodings first: a finding is described by the simplest view that shows it.
    found.sort_by_key(|(_, decodings, _)| decodings.len());
    let source = range.start.saturating_sub(prefix.len())..range.end;
    for (text, decodings, map) in found {
        // `name=value` for the rules that need the name, and the value alone for those that
        // need its start.
        let named = (!prefix.is_empty()).then(|| {
            let mut full = prefix.to_vec();
            full.extend_from_slice(&text);
            // A prefix byte maps to the start of the part: masking it masks the value.
            let map = map.as_ref().map(|m| {
                std::iter::repeat_n(range.start as u32, prefix.len())
                    .chain(m.iter().copied())
                    .collect()
            });
            (full, map)
        });
        for (text, map) in named.into_iter().chain([(text, map)]) {
            let pushed = out.push(UrlView {
                text,
                part: part.clone(),
                decodings: decodings.clone(),
                source: source.clone(),
                map,
            });
            if !pushed {
                return false;
            }
        }
    }
    true
}

/// A decoded text, the decodings that made it, and its offset map (percent-decoding only).
type Decoded = (Vec<u8>, Vec<&'static str>, Option<Vec<u32>>);

/// Decodes `text` layer by layer (percent first, then blobs), collecting each result with
/// its decodings, and its offset map while only percent-decoding was applied.
fn decode_part(
    text: &[u8],
    map: Option<Vec<u32>>,
    form: bool,
    decodings: Vec<&'static str>,
    depth: usize,
    out: &mut Vec<Decoded>,
) {
    if depth == 0 {
        return;
    }
    let percent = match &map {
        Some(m) => percent_mapped(text, m, form).map(|(t, m)| (t, Some(m))),
        None => {
            let mut t = Vec::new();
            (has_percent_escape(text) || (form && text.contains(&b'+')))
                .then(|| crate::decode::percent_decode(text, form, &mut t))
                .filter(|&changed| changed)
                .map(|_| (t, None))
        }
    };
    if let Some((t, m)) = percent {
        let mut d = decodings.clone();
        d.push("percent");
        out.push((t.clone(), d.clone(), m.clone()));
        decode_part(&t, m, false, d, depth - 1, out);
    }
    let mut blobs: Vec<(&'static str, Vec<u8>)> = Vec::new();
    BlobDecoder::default().feed(text, true, &mut |kind, blob| {
        blobs.push((kind, blob.to_vec()));
    });
    for (kind, blob) in blobs {
        let mut d = decodings.clone();
        d.push(kind);
        out.push((blob.clone(), d.clone(), None));
        decode_part(&blob, None, false, d, depth - 1, out);
    }
}

/// Percent-decodes `text` (each byte at `map[i]` in the source), giving the decoded text
/// and its map; `None` when there is nothing to decode.
fn percent_mapped(text: &[u8], map: &[u32], form: bool) -> Option<(Vec<u8>, Vec<u32>)> {
    if !(has_percent_escape(text) || form && text.contains(&b'+')) {
        return None;
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut out_map = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b == b'%'
            && i + 2 < text.len()
            && let (Some(h), Some(l)) = (hex(text[i + 1]), hex(text[i + 2]))
        {
            out.push(h << 4 | l);
            out_map.push(map[i]);
            i += 3;
            continue;
        }
        out.push(if form && b == b'+' { b' ' } else { b });
        out_map.push(map[i]);
        i += 1;
    }
    Some((out, out_map))
}

/// Scans every view with `engine`, keeping one finding per (rule, secret): the first view
/// that shows it.
pub fn scan(engine: &Engine, views: &[UrlView]) -> Vec<UrlFinding> {
    let mut out: Vec<UrlFinding> = Vec::new();
    let mut seen: Vec<(usize, &[u8])> = Vec::new();
    let mut found = Vec::new();
    for (index, view) in views.iter().enumerate() {
        found.clear();
        engine.scan(&view.text, &mut found);
        found.sort_by_key(|f| (f.start, f.rule));
        for f in &found {
            let secret = &view.text[f.start..f.end];
            if seen.iter().any(|&(r, s)| r == f.rule && s == secret) {
                continue;
            }
            seen.push((f.rule, secret));
            out.push(UrlFinding {
                view: index,
                finding: *f,
                source: view.source_of(f.start, f.end),
            });
        }
    }
    out
}

/// `path_and_query` with the bytes of each finding replaced by `replacement(finding)`
/// (overlapping ones replaced once, by the first).
pub fn mask(
    path_and_query: &[u8],
    findings: &[UrlFinding],
    replacement: impl Fn(&UrlFinding) -> String,
) -> String {
    let mut spans: Vec<(Range<usize>, &UrlFinding)> =
        findings.iter().map(|f| (f.source.clone(), f)).collect();
    spans.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
    let mut out = Vec::with_capacity(path_and_query.len());
    let mut pos = 0;
    for (range, f) in spans {
        if range.end <= pos {
            continue;
        }
        let start = range.start.max(pos);
        out.extend_from_slice(&path_and_query[pos..start]);
        if start == range.start {
            out.extend_from_slice(replacement(f).as_bytes());
        }
        pos = range.end.min(path_and_query.len());
    }
    out.extend_from_slice(&path_and_query[pos.min(path_and_query.len())..]);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::fixtures::{INJECTIONS, SECRETS, TOKEN};
    use crate::{Catalogue, RuleKind};

    fn engine() -> Engine {
        let cat = Arc::new(Catalogue::from_yaml(SECRETS, INJECTIONS).unwrap());
        Engine::new(cat, |r| r.kind == RuleKind::Secret)
    }

    fn hex(b: &[u8], sep: &str) -> String {
        b.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(sep)
    }

    fn b64(b: &[u8]) -> String {
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

    fn pct(s: &str) -> String {
        s.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    /// (description of the view, source text) of each finding.
    fn found(url: &str) -> Vec<(String, String)> {
        let e = engine();
        let v = views(url.as_bytes(), 1 << 16);
        scan(&e, &v)
            .into_iter()
            .map(|f| (v[f.view].describe(), url[f.source.clone()].to_string()))
            .collect()
    }

    #[test]
    fn a_token_is_found_however_the_url_encodes_it() {
        let t = TOKEN.as_bytes();
        let cases = [
            (format!("/x?k={TOKEN}"), "url"),
            (format!("/x?k={}", pct(TOKEN)), "url (percent)"),
            (
                format!("/x?k={}", pct(TOKEN).replace('%', "%25")),
                "url (percent ×2)",
            ),
            (format!("/x?d={}", b64(t)), "query parameter 1 (base64)"),
            (
                format!(
                    "/x?a=1&d={}",
                    b64(t).replace('=', "%3D").replace('+', "%2B")
                ),
                "query parameter 2 (base64)",
            ),
            (
                format!("/x?d={}", pct(&b64(t))),
                "query parameter 1 (percent, base64)",
            ),
            (format!("/upload/{}/x", hex(t, "")), "path segment 2 (hex)"),
            (format!("/x?k={}", hex(t, "-")), "query parameter 1 (hex)"),
            (format!("/x?k={}", hex(t, ":")), "query parameter 1 (hex)"),
            (
                format!("/x?k={}", hex(t, "%20")),
                "query parameter 1 (percent, hex)",
            ),
            (
                format!("/x?k={}", hex(t, "+")),
                "query parameter 1 (percent, hex)",
            ),
        ];
        for (url, how) in cases {
            let f = found(&url);
            assert_eq!(f.len(), 1, "{url}: {f:?}");
            assert_eq!(f[0].0, how, "{url}");
            assert!(!f[0].1.is_empty());
        }
    }

    #[test]
    fn a_finding_maps_to_the_bytes_that_hold_it() {
        let url = format!("/a/b?x=1&k={}&z=2", pct(TOKEN));
        let e = engine();
        let v = views(url.as_bytes(), 1 << 16);
        let f = scan(&e, &v);
        assert_eq!(f.len(), 1);
        assert_eq!(&url[f[0].source.clone()], pct(TOKEN));
        assert_eq!(
            mask(url.as_bytes(), &f, |_| "[REDACTED]".into()),
            "/a/b?x=1&k=[REDACTED]&z=2"
        );
        let url = format!("/up/{}?q=1", hex(TOKEN.as_bytes(), ""));
        let v = views(url.as_bytes(), 1 << 16);
        let f = scan(&e, &v);
        assert_eq!(mask(url.as_bytes(), &f, |_| "X".into()), "/up/X?q=1");
    }

    #[test]
    fn views_stay_within_the_budget() {
        let url = format!("/x?{}", "k=%2541%2541&".repeat(200));
        let v = views(url.as_bytes(), 4096);
        let total: usize = v.iter().map(|v| v.text.len()).sum();
        assert!(total <= 4096 + url.len(), "{total}");
        assert!(v[0].is_raw());
        let nothing = views(b"/plain/path?q=hello+world", 1 << 16);
        assert!(nothing.len() <= 8, "{}", nothing.len());
    }
}
