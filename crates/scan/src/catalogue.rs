//! The rule catalogue: `rules/secrets.yaml` and `rules/injections.yaml`, compiled once.
//! Every rule names literal keywords (the prefilter), a bytes regex, a length bound, and
//! optionally an entropy floor and a checksum; each carries examples that tests check.

use std::sync::OnceLock;

use regex::bytes::{Regex, RegexBuilder};
use serde::Deserialize;

use crate::keywords::folds;
use crate::verify::Checksum;

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("rule catalogue {file} is not valid YAML: {message}")]
    Syntax { file: String, message: String },
    #[error("rule {id} in {file}: {message}")]
    Rule {
        file: String,
        id: String,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// A credential (EXFIL going out, SECRET coming in).
    Secret,
    /// Commands or instructions arriving (INJECTION).
    Injection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    name: String,
    family: String,
    keywords: Vec<String>,
    pattern: String,
    max_len: usize,
    #[serde(default)]
    lead: Option<usize>,
    #[serde(default)]
    entropy: Option<f64>,
    #[serde(default)]
    checksum: Option<String>,
    #[serde(default)]
    issuer_hosts: Vec<String>,
    #[serde(default)]
    auth_headers: Vec<String>,
    #[serde(default)]
    raw: bool,
    #[serde(default)]
    fallback: bool,
    #[serde(default)]
    hex_secrets: bool,
    #[serde(default)]
    default_action: Option<String>,
    #[serde(default)]
    examples: RawExamples,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExamples {
    #[serde(default)]
    pub positive: Vec<String>,
    #[serde(default)]
    pub negative: Vec<String>,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub family: String,
    pub kind: RuleKind,
    /// Literal keywords every match contains. One with an upper-case letter (`AKIA`) is
    /// matched case-sensitively; an all-lower-case one case-insensitively.
    pub keywords: Vec<String>,
    pub regex: LazyRegex,
    /// Index of the `secret` capture group, if the pattern has one.
    pub secret_group: Option<usize>,
    pub max_len: usize,
    /// How far before its first keyword a match can start, when known: stated by the rule
    /// (a keyword inside a bounded name, as in `encryption_key =`) or read off the
    /// pattern's literal prefixes (`sk-proj-…`: 0). Unknown, the engine assumes `max_len`.
    pub lead: Option<usize>,
    /// Every match starts with one of the keywords, at an ASCII word boundary, and every
    /// keyword starts with a word byte (`\b(?:nc|ncat|netcat) …` with `nc `, `ncat`): a
    /// keyword found right after a word byte (the `nc ` of `async `) cannot start a match,
    /// and a window holding only such keywords holds no match.
    pub word_start: bool,
    pub entropy: Option<f64>,
    pub checksum: Checksum,
    pub issuer_hosts: Vec<String>,
    pub auth_headers: Vec<String>,
    /// Injection rules that must see the text before normalisation (zero-width characters).
    pub raw: bool,
    /// A catch-all (generic assignments, credentials in URLs): reported only where no
    /// specific rule matched the same bytes.
    pub fallback: bool,
    /// A catch-all whose name says secret (`*_PASSWORD`, `*_SECRET`, `*_TOKEN`): a hex value
    /// of a digest's length there is a generated secret (`openssl rand -hex 32`), not a hash,
    /// and is reported. Other catch-alls drop hex digests and UUIDs as ids.
    pub hex_secrets: bool,
    pub default_action: Option<String>,
    pub examples: RawExamples,
    /// Found by a detector family (arithmetic or shape in a place), not by keywords and a
    /// pattern: the engine never runs it; the caller runs the family.
    pub detector: Option<FamilyDetector>,
}

/// What finds a family rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyDetector {
    /// `families::FamilyScanner` on text (bodies, URLs, headers).
    Text(crate::families::FamilyRule),
    /// `families::check_hostname` on the destination.
    Hostname,
    /// `families::check_url_path` on the path and query.
    UrlPath,
    /// A request header whose name says it holds a credential (`X-Twilio-Auth-Token`) and
    /// whose value looks like one, sent somewhere the name does not point to.
    HeaderName,
}

/// All rules, secrets first.
#[derive(Debug)]
pub struct Catalogue {
    pub rules: Vec<Rule>,
}

/// Regex size limit per rule: generous for PEM blocks, bounded against a pathological rule.
const REGEX_SIZE_LIMIT: usize = 4 << 20;

/// A rule's pattern, checked when the catalogue loads and compiled on first use: most rules
/// (vendor prefixes) never see a keyword of theirs in a given deployment's traffic, and their
/// compiled automata were most of an idle proxy's memory (18 MB for 356 rules).
#[derive(Debug)]
pub struct LazyRegex {
    pattern: String,
    compiled: OnceLock<Regex>,
}

impl LazyRegex {
    /// Compiles `pattern` once to check it (and returns that compilation for the caller's
    /// look at its groups); the rule keeps only the text until it is first used.
    fn checked(pattern: String) -> Result<(LazyRegex, Regex), regex::Error> {
        let regex = Self::build(&pattern)?;
        Ok((
            LazyRegex {
                pattern,
                compiled: OnceLock::new(),
            },
            regex,
        ))
    }

    fn build(pattern: &str) -> Result<Regex, regex::Error> {
        RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
    }

    /// The compiled pattern (compiled now if this is its first use).
    pub fn get(&self) -> &Regex {
        self.compiled.get_or_init(|| {
            Self::build(&self.pattern).expect("the pattern compiled when the catalogue loaded")
        })
    }

    /// A compilation of its own, dropped with it: for measuring at start-up without keeping
    /// the automaton.
    pub fn fresh(&self) -> Regex {
        self.compiled
            .get()
            .cloned()
            .unwrap_or_else(|| Self::build(&self.pattern).expect("the pattern compiled before"))
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

/// The catalogue shipped in the binary (`rules/` at the root of the repository).
const BUILTIN_SECRETS: &str = include_str!("../../../rules/secrets.yaml");
const BUILTIN_INJECTIONS: &str = include_str!("../../../rules/injections.yaml");

impl Catalogue {
    /// The built-in catalogue, loaded once. Its examples are checked by tests, so a failure
    /// to load it is a build defect, not a user error.
    pub fn builtin() -> std::sync::Arc<Catalogue> {
        static BUILTIN: std::sync::OnceLock<std::sync::Arc<Catalogue>> = std::sync::OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let mut catalogue = Catalogue::from_yaml(BUILTIN_SECRETS, BUILTIN_INJECTIONS)
                    .unwrap_or_else(|e| panic!("the built-in rule catalogue is broken: {e}"));
                catalogue.add_families();
                std::sync::Arc::new(catalogue)
            })
            .clone()
    }

    /// Adds the rules of the detector families (`financial`, `crypto_keys`, `pii`,
    /// `hostname_exfil`, `url_entropy`), after the catalogue's own.
    pub fn add_families(&mut self) {
        use crate::families::{Family, FamilyRule};
        for rule in FamilyRule::ALL {
            self.rules.push(family_rule(
                rule.id(),
                rule.name(),
                rule.family().key(),
                FamilyDetector::Text(rule),
            ));
        }
        self.rules.push(family_rule(
            "hostname_exfil",
            "data encoded in the destination's hostname",
            Family::HostnameExfil.key(),
            FamilyDetector::Hostname,
        ));
        self.rules.push(family_rule(
            "named_credential_header",
            "credential in a header named for it",
            "credential_header",
            FamilyDetector::HeaderName,
        ));
        self.rules.push(family_rule(
            "url_entropy",
            "data encoded in the URL's path or query",
            Family::UrlEntropy.key(),
            FamilyDetector::UrlPath,
        ));
    }

    /// The index of the rule with `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }

    /// True when `name` is a rule id or a family of this catalogue.
    pub fn names(&self, name: &str) -> bool {
        self.rules.iter().any(|r| r.id == name || r.family == name)
    }

    pub fn from_yaml(secrets: &str, injections: &str) -> Result<Self, CatalogueError> {
        let mut rules = Vec::new();
        for (file, text, kind) in [
            ("rules/secrets.yaml", secrets, RuleKind::Secret),
            ("rules/injections.yaml", injections, RuleKind::Injection),
        ] {
            let raw: RawFile =
                serde_saphyr::from_str(text).map_err(|e| CatalogueError::Syntax {
                    file: file.to_string(),
                    message: e.to_string(),
                })?;
            for r in raw.rules {
                rules.push(compile(file, kind, r)?);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for r in &rules {
            if !seen.insert(r.id.as_str()) {
                return Err(CatalogueError::Rule {
                    file: "rules/".into(),
                    id: r.id.clone(),
                    message: "the id is used twice".into(),
                });
            }
        }
        Ok(Catalogue { rules })
    }
}

fn compile(file: &str, kind: RuleKind, r: RawRule) -> Result<Rule, CatalogueError> {
    let err = |message: String| CatalogueError::Rule {
        file: file.to_string(),
        id: r.id.clone(),
        message,
    };
    if r.keywords.is_empty() {
        return Err(err("needs at least one keyword for the prefilter".into()));
    }
    if r.keywords.iter().any(|k| k.len() < 3) {
        return Err(err("keywords must be at least 3 bytes".into()));
    }
    if r.lead.is_some_and(|l| l >= r.max_len) {
        return Err(err("lead must be below max_len".into()));
    }
    if r.max_len == 0 {
        return Err(err("max_len must be positive".into()));
    }
    // Bytes semantics: `\b`, `\w` and classes are ASCII, which keeps the matcher fast next
    // to non-ASCII text (a Unicode `\b` there costs 50x).
    // Injection rules are written in lower case for normalised text; matching them ignoring
    // (ASCII) case lets plain ASCII text skip normalisation.
    let flags = if kind == RuleKind::Injection && !r.raw {
        "(?-u)(?i)"
    } else {
        "(?-u)"
    };
    let pattern = format!("{flags}{}", r.pattern);
    let pattern_text = pattern.clone();
    let (regex, compiled) =
        LazyRegex::checked(pattern).map_err(|e| err(format!("pattern does not compile: {e}")))?;
    let secret_group = compiled.capture_names().position(|n| n == Some("secret"));
    drop(compiled);
    let checksum = match &r.checksum {
        Some(c) => Checksum::parse(c).ok_or_else(|| err(format!("unknown checksum {c:?}")))?,
        None => Checksum::None,
    };
    Ok(Rule {
        keywords: r.keywords.clone(),
        id: r.id,
        name: r.name,
        family: r.family,
        kind,
        regex,
        secret_group,
        max_len: r.max_len,
        lead: r
            .lead
            .or_else(|| literal_prefix_lead(&pattern_text, &r.keywords)),
        word_start: starts_at_a_word_boundary(&r.pattern, flags.contains("(?i)"), &r.keywords),
        entropy: r.entropy,
        checksum,
        issuer_hosts: r.issuer_hosts,
        auth_headers: r
            .auth_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        raw: r.raw,
        fallback: r.fallback,
        hex_secrets: r.hex_secrets,
        default_action: r.default_action,
        examples: r.examples,
        detector: None,
    })
}

/// A rule found by a detector family: an id, a name and a family for records, settings
/// and `disabled_patterns`; no keywords, and a pattern that never matches.
fn family_rule(id: &str, name: &str, family: &str, detector: FamilyDetector) -> Rule {
    Rule {
        id: id.to_string(),
        name: name.to_string(),
        family: family.to_string(),
        kind: RuleKind::Secret,
        keywords: Vec::new(),
        regex: LazyRegex::checked(r"[^\s\S]".to_string())
            .expect("the empty class compiles")
            .0,
        secret_group: None,
        max_len: crate::families::MAX_SPAN,
        lead: Some(0),
        word_start: false,
        entropy: None,
        checksum: Checksum::None,
        issuer_hosts: Vec::new(),
        auth_headers: Vec::new(),
        raw: false,
        fallback: false,
        hex_secrets: false,
        default_action: None,
        examples: RawExamples::default(),
        detector: Some(detector),
    }
}

/// Whether every match of `pattern` (in bytes mode, ignoring ASCII case when `ignore_case`)
/// starts at an ASCII word boundary with one of `keywords`, each of which starts with a
/// word byte: the pattern opens with `\b` (in every alternative) and each of its literal
/// prefixes (a finite set) starts with a keyword. `\b` before a word byte then means that
/// the byte before the match is not one.
fn starts_at_a_word_boundary(pattern: &str, ignore_case: bool, keywords: &[String]) -> bool {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    use regex_syntax::hir::{Hir, HirKind, Look};
    fn opens_with_boundary(hir: &Hir) -> bool {
        match hir.kind() {
            HirKind::Look(look) => matches!(
                look,
                Look::WordAscii | Look::WordStartAscii | Look::WordStartHalfAscii
            ),
            HirKind::Concat(parts) => parts.first().is_some_and(opens_with_boundary),
            HirKind::Capture(c) => opens_with_boundary(&c.sub),
            HirKind::Alternation(alts) => alts.iter().all(opens_with_boundary),
            _ => false,
        }
    }
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    if !keywords
        .iter()
        .all(|k| k.as_bytes().first().is_some_and(word))
    {
        return false;
    }
    // Ignoring case, the prefixes are taken from the pattern as written: its case variants
    // would overflow the extractor's limits (`nc.traditional` has 4,096), and a match
    // ignoring case starts with a prefix ignoring case, which a folding keyword matches.
    if ignore_case && !keywords.iter().all(|k| folds(k)) {
        return false;
    }
    let Ok(hir) = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .unicode(false)
        .build()
        .parse(pattern)
    else {
        return false;
    };
    if !opens_with_boundary(&hir) {
        return false;
    }
    let prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let Some(literals) = prefixes.literals() else {
        return false;
    };
    !literals.is_empty()
        && literals.iter().all(|literal| {
            let bytes = literal.as_bytes();
            keywords.iter().any(|k| {
                let folds = folds(k);
                let k = k.as_bytes();
                bytes.len() >= k.len()
                    && if folds {
                        bytes[..k.len()].eq_ignore_ascii_case(k)
                    } else {
                        &bytes[..k.len()] == k
                    }
            })
        })
}

/// The lead a pattern's literal prefixes prove: every match begins with one of a finite
/// set of literals (`\b(?P<secret>sk-proj-…)` begins with `sk-proj-`), and when each of
/// them contains a keyword, a match's first keyword is at most that far in. `None` when
/// the prefixes are not a finite set or one of them carries no keyword.
fn literal_prefix_lead(pattern: &str, keywords: &[String]) -> Option<usize> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    let prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    let literals = prefixes.literals()?;
    if literals.is_empty() {
        return None;
    }
    let mut lead = 0;
    for literal in literals {
        let bytes = literal.as_bytes();
        let first = keywords
            .iter()
            .filter_map(|k| {
                let k = k.as_bytes();
                let folds = !k.iter().any(u8::is_ascii_uppercase);
                bytes.windows(k.len()).position(|w| {
                    if folds {
                        w.eq_ignore_ascii_case(k)
                    } else {
                        w == k
                    }
                })
            })
            .min()?;
        lead = lead.max(first);
    }
    Some(lead)
}
