//! The audit chain (tamper evidence). Every JSONL record line ends with `"chain":"<hex>"`, the
//! sha256 of the previous line's hash followed by the line itself without that field, so a
//! line edited, removed or moved changes every hash after it. The first line of a file, and
//! the first line written after a start, also carry `"chain_prev":"<hex>"` (inside what is
//! hashed): the hash they continue from, so a file can be checked on its own and a missing
//! file or a resumed chain is named where it happens. The newest hash of each kind is kept in
//! `logs/chain-head.json`, which is how removing the newest lines is seen too.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ring::digest;
use serde::{Deserialize, Serialize};

pub type Hash = [u8; 32];

/// What the first line of a brand-new chain continues from.
pub const GENESIS: Hash = [0; 32];

pub const HEAD_FILE: &str = "chain-head.json";

const HEX_LEN: usize = 64;

pub fn to_hex(h: &Hash) -> String {
    crate::config::hex(h)
}

pub fn from_hex(s: &[u8]) -> Option<Hash> {
    if s.len() != HEX_LEN {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// The first 12 hex digits, enough to tell hashes apart in a message.
pub fn short(h: &Hash) -> String {
    to_hex(h)[..12].to_string()
}

/// sha256(prev || content), where content is `body` followed by `}`.
fn link(prev: &Hash, body: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev);
    ctx.update(body);
    ctx.update(b"}");
    ctx.finish()
        .as_ref()
        .try_into()
        .expect("sha256 is 32 bytes")
}

/// `obj` (a JSON object's text) with `"key":"hex"` added as its last member.
fn with_field(obj: &str, key: &str, hex: &str) -> String {
    let body = obj.trim_end();
    let body = body.strip_suffix('}').unwrap_or(body);
    let sep = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    format!("{body}{sep}\"{key}\":\"{hex}\"}}")
}

/// Chains one record (`json`, a serialized JSON object) to `prev`: the line to write and its
/// hash. `name_prev`: the line says what it continues from (first of a file or of a run).
pub fn chain_record(prev: &Hash, json: &str, name_prev: bool) -> (String, Hash) {
    let content = if name_prev {
        with_field(json, "chain_prev", &to_hex(prev))
    } else {
        json.trim_end().to_string()
    };
    let body = &content.as_bytes()[..content.len() - 1];
    let hash = link(prev, body);
    (with_field(&content, "chain", &to_hex(&hash)), hash)
}

/// `s` ends with the member `"<key>":"<64 hex>"`: what comes before it (its separating comma
/// removed) and the hash.
fn member_at_end<'a>(s: &'a [u8], key: &str) -> Option<(&'a [u8], Hash)> {
    let member = key.len() + 5 + HEX_LEN; // "key":"<hex>"
    if s.len() <= member || !s.ends_with(b"\"") {
        return None;
    }
    let (before, m) = s.split_at(s.len() - member);
    if m[0] != b'"'
        || &m[1..=key.len()] != key.as_bytes()
        || &m[key.len() + 1..key.len() + 4] != b"\":\""
    {
        return None;
    }
    let hash = from_hex(&m[key.len() + 4..key.len() + 4 + HEX_LEN])?;
    match before.last() {
        Some(b',') => Some((&before[..before.len() - 1], hash)),
        Some(b'{') => Some((before, hash)),
        _ => None,
    }
}

/// One chained line, taken apart.
#[derive(Debug, Clone, Copy)]
pub struct Chained<'a> {
    /// What was hashed, without its closing brace.
    body: &'a [u8],
    pub hash: Hash,
    /// `chain_prev`, when the line names what it continues from.
    pub prev: Option<Hash>,
}

impl<'a> Chained<'a> {
    pub fn parse(line: &'a [u8]) -> Option<Chained<'a>> {
        let (body, hash) = member_at_end(line.strip_suffix(b"}")?, "chain")?;
        if body.first() != Some(&b'{') {
            return None;
        }
        // `chain_prev`, when present, is the last member of what was hashed.
        let prev = member_at_end(body, "chain_prev").map(|(_, p)| p);
        Some(Chained { body, hash, prev })
    }

    /// Whether the line's hash is what `prev` and its content give.
    pub fn follows(&self, prev: &Hash) -> bool {
        link(prev, self.body) == self.hash
    }
}

// --------------------------------------------------------------------------- chain-head.json

/// `logs/chain-head.json`: per kind, the newest line written and its hash.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChainHead {
    /// Rotated audit files removed by `log_keep`, since the log directory was created.
    #[serde(default)]
    pub deleted_files: u64,
    /// The Ed25519 signature of the rest of the head (see [`ChainHead::signed_bytes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<HeadSignature>,
    #[serde(flatten)]
    pub kinds: BTreeMap<String, KindHead>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeadSignature {
    /// Hex of the 32-byte Ed25519 public key (`chain-head.pub` holds the same as PEM).
    pub public_key: String,
    /// Hex of the signature of [`ChainHead::signed_bytes`].
    pub signature: String,
}

impl ChainHead {
    /// What the signature covers: the head without its signature, as compact JSON (fields in
    /// their declared order, kinds sorted: the same bytes wherever it is computed).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = ChainHead {
            signed: None,
            ..self.clone()
        };
        serde_json::to_vec(&unsigned).expect("a chain head serializes")
    }

    /// Whether the head carries a signature that holds for its content and its own key.
    pub fn signature_holds(&self) -> bool {
        self.signed.as_ref().is_some_and(|s| {
            super::signing::verify(&s.public_key, &self.signed_bytes(), &s.signature)
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KindHead {
    /// The file written now (a name in the log directory).
    pub file: String,
    /// Its last line (1-based; 0: none yet, `hash` then ends the previous file).
    pub line: u64,
    pub hash: String,
    /// The newest rotated file `log_keep` removed: the oldest file left continues from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned: Option<Pruned>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pruned {
    pub file: String,
    pub hash: String,
    pub at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a chain head ({message}); it was damaged or edited")]
    Parse { path: PathBuf, message: String },
}

impl ChainHead {
    /// The head in `dir`, `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<ChainHead>, HeadError> {
        let path = dir.join(HEAD_FILE);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(HeadError::Read { path, source }),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| HeadError::Parse {
                path,
                message: e.to_string(),
            })
    }
}

/// The head of a log directory, shared by the files' writers and the retention thread; each
/// change is written to a temporary file and renamed over the old one, so a reader never finds
/// it half written.
pub struct HeadStore {
    dir: PathBuf,
    head: Mutex<ChainHead>,
    /// Signs the head each time it is written (`None` in tests of the files alone).
    signer: Option<super::signing::HeadSigner>,
}

impl HeadStore {
    /// The head in `dir` (an unreadable one is started afresh, with a warning: what it held
    /// is still checked against the files by `audit verify`'s view of them).
    pub fn open(dir: &Path) -> HeadStore {
        let head = match ChainHead::load(dir) {
            // Its old signature is of its old content: each save signs anew.
            Ok(h) => ChainHead {
                signed: None,
                ..h.unwrap_or_default()
            },
            Err(e) => {
                tracing::warn!(error = %e, "audit chain head unreadable; starting a new one");
                ChainHead::default()
            }
        };
        HeadStore {
            dir: dir.to_path_buf(),
            head: Mutex::new(head),
            signer: None,
        }
    }

    /// [`HeadStore::open`], the head signed with `signer` from now on.
    pub fn open_signed(dir: &Path, signer: super::signing::HeadSigner) -> HeadStore {
        HeadStore {
            signer: Some(signer),
            ..HeadStore::open(dir)
        }
    }

    pub fn get(&self, kind: &str) -> Option<KindHead> {
        self.lock().kinds.get(kind).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChainHead> {
        self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records where `kind`'s chain is now (and writes the head when it moved).
    pub fn set(&self, kind: &str, file: &str, line: u64, hash: &Hash) -> io::Result<()> {
        let mut head = self.lock();
        let entry = head.kinds.entry(kind.to_string()).or_default();
        let hash = to_hex(hash);
        if entry.file == file && entry.line == line && entry.hash == hash {
            return Ok(());
        }
        entry.file = file.to_string();
        entry.line = line;
        entry.hash = hash;
        self.save(&head)
    }

    /// A rotated file of `kind` was deleted by `log_keep`; `hash` ended it.
    pub fn pruned(&self, kind: &str, file: &str, hash: Option<&Hash>) -> io::Result<()> {
        let mut head = self.lock();
        head.deleted_files += 1;
        if let Some(hash) = hash {
            head.kinds.entry(kind.to_string()).or_default().pruned = Some(Pruned {
                file: file.to_string(),
                hash: to_hex(hash),
                at: super::events::now_rfc3339(),
            });
        }
        self.save(&head)
    }

    fn save(&self, head: &ChainHead) -> io::Result<()> {
        let path = self.dir.join(HEAD_FILE);
        let text = match &self.signer {
            Some(signer) => {
                let signed = ChainHead {
                    signed: Some(HeadSignature {
                        public_key: signer.public_key_hex(),
                        signature: signer.sign(&head.signed_bytes()),
                    }),
                    ..head.clone()
                };
                serde_json::to_vec_pretty(&signed)
            }
            None => serde_json::to_vec_pretty(head),
        }
        .map_err(io::Error::other)?;
        crate::config::replace_private_file(&path, &text)
    }
}

// --------------------------------------------------------------------------- reading files

/// A JSONL audit file's bytes, gunzipped when its name ends in `.gz`.
pub fn read_audit_file(path: &Path) -> io::Result<Vec<u8>> {
    let raw = std::fs::read(path)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::with_capacity(raw.len() * 8);
        flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// The lines of a file: each without its newline, and whether the last one lacked it.
pub fn split_lines(bytes: &[u8]) -> (Vec<&[u8]>, bool) {
    if bytes.is_empty() {
        return (Vec::new(), false);
    }
    let ends_whole = bytes.ends_with(b"\n");
    let body = if ends_whole {
        &bytes[..bytes.len() - 1]
    } else {
        bytes
    };
    (body.split(|&b| b == b'\n').collect(), !ends_whole)
}

/// What the end of a file says about its chain, for resuming it.
#[derive(Debug, Clone, Default)]
pub struct FileEnd {
    /// Lines, the last one counted even without its newline.
    pub lines: u64,
    /// The hash of the last chained line.
    pub last: Option<Hash>,
    /// The last line has no newline.
    pub unterminated: bool,
    /// … and is not a whole chained record: torn by a crash mid-write.
    pub torn: bool,
}

impl FileEnd {
    pub fn of(bytes: &[u8]) -> FileEnd {
        let (lines, unterminated) = split_lines(bytes);
        let torn = unterminated && lines.last().is_some_and(|l| Chained::parse(l).is_none());
        let last = lines
            .iter()
            .rev()
            .find_map(|l| Chained::parse(l).map(|c| c.hash));
        FileEnd {
            lines: lines.len() as u64,
            last,
            unterminated,
            torn,
        }
    }
}

/// Whether `bytes` hold a line ending in `hash`, or one continuing from it.
pub fn mentions(bytes: &[u8], hash: &Hash) -> bool {
    let hex = to_hex(hash);
    [
        format!("\"chain\":\"{hex}\"}}"),
        format!("\"chain_prev\":\"{hex}\""),
    ]
    .iter()
    .any(|needle| memchr::memmem::find(bytes, needle.as_bytes()).is_some())
}

// --------------------------------------------------------------------------- verification

/// How the first line of a set of files may start.
#[derive(Debug, Clone)]
pub enum Start {
    /// From anything (a file checked on its own continues a chain we do not have).
    Any,
    /// From one of these (the genesis, the end of the last file `log_keep` removed).
    OneOf(Vec<Hash>),
}

/// One file to check, in chain order.
pub struct Source {
    /// How messages name it.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// What the head says the chain must reach.
#[derive(Debug, Clone)]
pub struct HeadCheck {
    /// Index into the sources of the file the head names.
    pub source: usize,
    pub line: u64,
    pub hash: Hash,
}

/// A checked file.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub name: String,
    /// Chained lines whose hash holds.
    pub lines: u64,
    pub warnings: Vec<String>,
}

/// The first bad line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}:{line}: {message}")]
pub struct BadLine {
    pub name: String,
    pub line: u64,
    pub message: String,
}

const REMOVED: &str = "hash mismatch (line edited, removed or reordered)";

/// Checks the chain through `sources` (one kind, oldest first): the files' reports, or the
/// first line where it breaks.
pub fn verify(
    sources: &[Source],
    start: &Start,
    head: Option<&HeadCheck>,
) -> Result<Vec<FileReport>, BadLine> {
    let mut running: Option<Hash> = None;
    // An unchained line waiting for its explanation: a restart naming what it continues from.
    let mut loose: Option<(usize, u64)> = None;
    let mut reports = Vec::with_capacity(sources.len());
    let last_source = sources.len().saturating_sub(1);
    for (si, source) in sources.iter().enumerate() {
        let bad = |line: u64, message: String| BadLine {
            name: source.name.clone(),
            line,
            message,
        };
        let mut report = FileReport {
            name: source.name.clone(),
            ..Default::default()
        };
        let (lines, unterminated) = split_lines(&source.bytes);
        let head_here = head.filter(|h| h.source == si);
        if let Some(h) = head_here
            && h.line == 0
            && running.is_some_and(|r| r != h.hash)
        {
            return Err(bad(
                0,
                format!(
                    "the chain head says the previous file ends with {}, it ends with {}: its newest lines were removed",
                    short(&h.hash),
                    short(&running.unwrap_or(GENESIS))
                ),
            ));
        }
        for (i, line) in lines.iter().enumerate() {
            let n = i as u64 + 1;
            let Some(c) = Chained::parse(line) else {
                let final_line = si == last_source && i + 1 == lines.len();
                if final_line && unterminated {
                    report.warnings.push(format!(
                        "line {n} is torn (no newline: a crash mid-write); the chain holds up to line {}",
                        n - 1
                    ));
                    break;
                }
                if let Some((lsi, ln)) = loose {
                    return Err(BadLine {
                        name: sources[lsi].name.clone(),
                        line: ln,
                        message: "not a chained record (edited or inserted)".into(),
                    });
                }
                loose = Some((si, n));
                continue;
            };
            let prev = match (running, c.prev) {
                (Some(r), Some(p)) if r != p => {
                    return Err(bad(
                        n,
                        format!(
                            "continues from {} but the line before it ends with {}: lines or a file before it were removed or reordered",
                            short(&p),
                            short(&r)
                        ),
                    ));
                }
                (Some(r), _) => r,
                (None, Some(p)) => {
                    if let Start::OneOf(allowed) = start
                        && !allowed.contains(&p)
                    {
                        return Err(bad(
                            n,
                            format!(
                                "the chain continues from {}, which no file here ends with and log_keep did not remove: an earlier audit file is missing",
                                short(&p)
                            ),
                        ));
                    }
                    p
                }
                (None, None) => match start {
                    Start::OneOf(_) => {
                        return Err(bad(
                            n,
                            "the chain does not start here: lines before it were removed".into(),
                        ));
                    }
                    Start::Any => {
                        // Checked from the next line on: nothing here says what this one follows.
                        report.warnings.push(format!(
                            "line {n} continues a chain that is not in the files given: checked from line {}",
                            n + 1
                        ));
                        running = Some(c.hash);
                        continue;
                    }
                },
            };
            if let Some((lsi, ln)) = loose.take() {
                if c.prev.is_none() {
                    return Err(BadLine {
                        name: sources[lsi].name.clone(),
                        line: ln,
                        message: "not a chained record (edited or inserted)".into(),
                    });
                }
                let at = if lsi == si {
                    String::new()
                } else {
                    format!(" of {}", sources[lsi].name)
                };
                report.warnings.push(format!(
                    "line {ln}{at} was torn by a crash; the chain resumed after it at line {n}"
                ));
            }
            if !c.follows(&prev) {
                return Err(bad(n, REMOVED.into()));
            }
            running = Some(c.hash);
            report.lines += 1;
            if let Some(h) = head_here
                && h.line == n
                && h.hash != c.hash
            {
                return Err(bad(
                    n,
                    format!(
                        "differs from the chain head ({}): the newest lines were rewritten",
                        short(&h.hash)
                    ),
                ));
            }
        }
        if let Some(h) = head_here {
            let whole = lines.len() as u64 - u64::from(unterminated);
            if h.line > whole {
                return Err(bad(
                    whole,
                    format!(
                        "truncated: the chain head names line {}, the file ends at line {whole}",
                        h.line
                    ),
                ));
            }
        }
        reports.push(report);
    }
    if let Some((lsi, ln)) = loose {
        // An unchained last line that a restart terminated and nothing followed yet.
        let whole_tail = lsi == last_source
            && split_lines(&sources[lsi].bytes).0.len() as u64 == ln
            && head.is_none_or(|h| h.source != lsi || h.line < ln);
        if !whole_tail {
            return Err(BadLine {
                name: sources[lsi].name.clone(),
                line: ln,
                message: "not a chained record (edited or inserted)".into(),
            });
        }
        reports[lsi].warnings.push(format!(
            "line {ln} is torn (a crash mid-write); the chain holds up to line {}",
            ln - 1
        ));
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(records: &[&str]) -> Vec<String> {
        let mut prev = GENESIS;
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (line, h) = chain_record(&prev, r, i == 0);
                prev = h;
                line
            })
            .collect()
    }

    fn source(lines: &[String]) -> Source {
        Source {
            name: "flows.jsonl".into(),
            bytes: lines
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                .into(),
        }
    }

    #[test]
    fn a_chained_line_is_json_with_the_hash_last() {
        let lines = chain(&[r#"{"a":1}"#, r#"{"b":"x"}"#]);
        let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["chain_prev"], to_hex(&GENESIS));
        assert!(
            lines[1].starts_with(r#"{"b":"x","chain":""#),
            "{}",
            lines[1]
        );
        let c = Chained::parse(lines[1].as_bytes()).unwrap();
        assert!(c.prev.is_none());
        let first = Chained::parse(lines[0].as_bytes()).unwrap();
        assert_eq!(first.prev, Some(GENESIS));
        assert!(first.follows(&GENESIS));
        assert!(c.follows(&first.hash));
    }

    #[test]
    fn an_empty_object_chains_too() {
        let (line, h) = chain_record(&GENESIS, "{}", true);
        let c = Chained::parse(line.as_bytes()).unwrap();
        assert_eq!(c.hash, h);
        assert!(c.follows(&GENESIS));
        serde_json::from_str::<serde_json::Value>(&line).unwrap();
    }

    #[test]
    fn truncation_is_seen_through_the_head() {
        let lines = chain(&[r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]);
        let last = Chained::parse(lines[2].as_bytes()).unwrap().hash;
        let head = HeadCheck {
            source: 0,
            line: 3,
            hash: last,
        };
        let start = Start::OneOf(vec![GENESIS]);
        assert!(verify(&[source(&lines)], &start, Some(&head)).is_ok());
        let err = verify(&[source(&lines[..2])], &start, Some(&head)).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("truncated"), "{err}");
    }

    #[test]
    fn a_torn_last_line_is_a_warning() {
        let lines = chain(&[r#"{"n":1}"#, r#"{"n":2}"#]);
        let mut s = source(&lines);
        s.bytes.extend_from_slice(br#"{"n":3,"tor"#);
        let reports = verify(&[s], &Start::Any, None).unwrap();
        assert_eq!(reports[0].lines, 2);
        assert!(reports[0].warnings[0].contains("torn"), "{:?}", reports[0]);
    }

    #[test]
    fn a_torn_line_then_a_restart_resumes() {
        let mut lines = chain(&[r#"{"n":1}"#, r#"{"n":2}"#]);
        let last = Chained::parse(lines[1].as_bytes()).unwrap().hash;
        lines.push(r#"{"n":3,"tor"#.into());
        lines.push(chain_record(&last, r#"{"n":4}"#, true).0);
        let reports = verify(&[source(&lines)], &Start::OneOf(vec![GENESIS]), None).unwrap();
        assert_eq!(reports[0].lines, 3);
        // Without the restart's chain_prev the same line is an insertion.
        lines[3] = chain_record(&last, r#"{"n":4}"#, false).0;
        let err = verify(&[source(&lines)], &Start::OneOf(vec![GENESIS]), None).unwrap_err();
        assert_eq!(err.line, 3);
    }

    #[test]
    fn a_missing_middle_file_is_named() {
        let (l1, h1) = chain_record(&GENESIS, r#"{"n":1}"#, true);
        let (l2, h2) = chain_record(&h1, r#"{"n":2}"#, true);
        let (l3, _) = chain_record(&h2, r#"{"n":3}"#, true);
        let files = [source(&[l1]), source(&[l2]), source(&[l3])];
        let start = Start::OneOf(vec![GENESIS]);
        assert_eq!(verify(&files, &start, None).unwrap().len(), 3);
        let [a, _, c] = files;
        let err = verify(&[a, c], &start, None).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("removed"), "{err}");
    }
}
