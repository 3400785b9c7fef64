//! `airlock audit verify [FILE…]`: checks the hash chain of the JSONL audit files. Without
//! FILEs, every audit file of the log directory, each kind oldest first, up to the head kept
//! in `chain-head.json`; with FILEs, those, in the order given (files of one kind as one
//! chain), against the head beside them when it names one of them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::Failure;
use crate::config::Config;
use crate::record::chain::{self, BadLine, ChainHead, FileReport, HeadCheck, Source, Start};
use crate::record::jsonl::{KINDS, rotated_files};
use crate::record::signing;

pub fn verify(
    config: &Config,
    files: &[PathBuf],
    public_key: Option<&Path>,
) -> Result<ExitCode, Failure> {
    let expected = match public_key {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                Failure::usage(format!("--public-key: cannot read {}: {e}", p.display()))
            })?;
            Some(
                signing::parse_public_key(&text)
                    .map_err(|m| Failure::usage(format!("--public-key {}: {m}", p.display())))?,
            )
        }
        None => None,
    };
    let head_dir = if files.is_empty() {
        config.log_dir.clone()
    } else {
        dir_of(files.last().expect("files given"))
    };
    let signed_by = check_signature(&head_dir, expected.as_ref())?;
    let checked = if files.is_empty() {
        verify_log_dir(config)?
    } else {
        verify_files(files)?
    };
    if let Some(key) = signed_by {
        println!(
            "chain head signed by ed25519:{}{}",
            &key[..16],
            if expected.is_some() {
                " (the key given)"
            } else {
                " (its own key: give --public-key to check it is yours)"
            }
        );
    }
    let (n_files, n_lines) = checked
        .iter()
        .fold((0, 0), |(f, l), r| (f + 1, l + r.lines));
    if n_files == 0 {
        println!("no audit files in {}", config.log_dir.display());
    } else {
        println!("audit chain holds: {n_files} file(s), {n_lines} line(s)");
    }
    Ok(ExitCode::SUCCESS)
}

/// Every audit file of the log directory.
fn verify_log_dir(config: &Config) -> Result<Vec<FileReport>, Failure> {
    let dir = &config.log_dir;
    let head = ChainHead::load(dir).map_err(|e| Failure::runtime(e.to_string()))?;
    let mut all = Vec::new();
    for kind in KINDS {
        let current = config.audit_file(kind);
        let mut paths: Vec<PathBuf> = rotated_files(dir, kind, Some(&current))
            .into_iter()
            .map(|r| r.path)
            .collect();
        if current.exists() {
            paths.push(current);
        }
        let kind_head = head.as_ref().and_then(|h| h.kinds.get(kind));
        if paths.is_empty() {
            if let Some(h) = kind_head {
                return Err(Failure::runtime(format!(
                    "{}:{}: missing: the chain head names it, and no {kind} audit file is left in {}",
                    h.file,
                    h.line,
                    dir.display()
                )));
            }
            continue;
        }
        let sources = read_sources(&paths, file_name)?;
        let mut starts = vec![chain::GENESIS];
        if let Some(p) = kind_head.and_then(|h| h.pruned.as_ref())
            && let Some(hash) = chain::from_hex(p.hash.as_bytes())
        {
            starts.push(hash);
        }
        let check = match kind_head {
            Some(h) => Some(head_check(h, &sources)?),
            None => None,
        };
        all.extend(run(&sources, &Start::OneOf(starts), check.as_ref())?);
    }
    Ok(all)
}

/// The FILEs given: grouped by kind (the start of their names), each group in the order given.
fn verify_files(files: &[PathBuf]) -> Result<Vec<FileReport>, Failure> {
    let mut groups: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for f in files {
        let kind = kind_of(f);
        match groups.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, list)) => list.push(f.clone()),
            None => groups.push((kind, vec![f.clone()])),
        }
    }
    let mut all = Vec::new();
    for (kind, paths) in groups {
        let sources = read_sources(&paths, |p| p.display().to_string())?;
        // The head kept beside the newest file, when it speaks of one of the files given.
        let dir = dir_of(paths.last().expect("a group has files"));
        let head = ChainHead::load(&dir).map_err(|e| Failure::runtime(e.to_string()))?;
        let check = match head.as_ref().and_then(|h| h.kinds.get(&kind)) {
            Some(h) if paths.iter().any(|p| base_name(p) == h.file) => {
                Some(head_check(h, &sources)?)
            }
            _ => None,
        };
        all.extend(run(&sources, &Start::Any, check.as_ref())?);
    }
    Ok(all)
}

/// The directory a file is in (`.` for a bare name): where its chain head is.
fn dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks the head's signature, when it has one or `expected` asks for one; the signing key
/// (hex) when it holds.
fn check_signature(dir: &Path, expected: Option<&[u8; 32]>) -> Result<Option<String>, Failure> {
    let head = ChainHead::load(dir).map_err(|e| Failure::runtime(e.to_string()))?;
    let path = dir.join(chain::HEAD_FILE);
    let Some(head) = head else {
        return match expected {
            Some(_) => Err(Failure::runtime(format!(
                "{}: missing: --public-key asks for a signed chain head",
                path.display()
            ))),
            None => Ok(None),
        };
    };
    let Some(signed) = &head.signed else {
        return match expected {
            Some(_) => Err(Failure::runtime(format!(
                "{}: not signed: --public-key asks for a signed chain head (it was written by an airlock without a signing key, or the signature was removed)",
                path.display()
            ))),
            None => Ok(None),
        };
    };
    if !head.signature_holds() {
        return Err(Failure::runtime(format!(
            "{}: the signature does not match the head's content: the head was edited",
            path.display()
        )));
    }
    if let Some(want) = expected
        && signing::from_hex_bytes(&signed.public_key).as_deref() != Some(&want[..])
    {
        return Err(Failure::runtime(format!(
            "{}: signed by another key (ed25519:{}), not the one given: the head was replaced",
            path.display(),
            &signed.public_key[..16.min(signed.public_key.len())]
        )));
    }
    Ok(Some(signed.public_key.clone()))
}

fn read_sources(paths: &[PathBuf], name: impl Fn(&Path) -> String) -> Result<Vec<Source>, Failure> {
    paths
        .iter()
        .map(|p| {
            let bytes = chain::read_audit_file(p)
                .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", p.display())))?;
            Ok(Source {
                name: name(p),
                bytes,
            })
        })
        .collect()
}

/// Where in `sources` the head's line is.
fn head_check(h: &chain::KindHead, sources: &[Source]) -> Result<HeadCheck, Failure> {
    let hash = chain::from_hex(h.hash.as_bytes()).ok_or_else(|| {
        Failure::runtime(format!(
            "{}: the chain head's hash for {} is not a sha256; the head was damaged or edited",
            chain::HEAD_FILE,
            h.file
        ))
    })?;
    let source = sources
        .iter()
        .position(|s| base_name(Path::new(&s.name)) == h.file)
        .ok_or_else(|| {
            Failure::runtime(
                BadLine {
                    name: h.file.clone(),
                    line: h.line,
                    message: "missing: the chain head names this file".into(),
                }
                .to_string(),
            )
        })?;
    Ok(HeadCheck {
        source,
        line: h.line,
        hash,
    })
}

fn run(
    sources: &[Source],
    start: &Start,
    head: Option<&HeadCheck>,
) -> Result<Vec<FileReport>, Failure> {
    let reports =
        chain::verify(sources, start, head).map_err(|bad| Failure::runtime(bad.to_string()))?;
    for (i, r) in reports.iter().enumerate() {
        let at_head = head.is_some_and(|h| h.source == i);
        println!(
            "{}: {} line(s), chain holds{}",
            r.name,
            r.lines,
            if at_head {
                ", matches the chain head"
            } else {
                ""
            }
        );
        for w in &r.warnings {
            eprintln!("airlock: warning: {}: {w}", r.name);
        }
    }
    Ok(reports)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The name as the head records it: without `.gz` (the file may have been compressed since).
fn base_name(p: &Path) -> String {
    let name = file_name(p);
    name.strip_suffix(".gz").map(str::to_string).unwrap_or(name)
}

/// `flows` for flows.jsonl, flows.jsonl.<time>.gz and flows-2026-02-19.jsonl.
fn kind_of(p: &Path) -> String {
    let name = file_name(p);
    name.split(['.', '-'])
        .next()
        .unwrap_or_default()
        .to_string()
}
