//! BIP-39 seed phrases (`bip39_seed_phrase`, family `crypto_keys`).
//!
//! 12, 15, 18, 21 or 24 consecutive words of the BIP-39 English list (lower case, separated by
//! up to [`MAX_GAP`] bytes of spaces, line breaks, commas, quotes, brackets, bullets or list
//! numbers: `1. abandon 2. ability`, a JSON array, a `\n`-escaped JSON string), whose last word
//! carries the checksum: the first `words / 3` bits of SHA-256 of the entropy. A run of list
//! words is judged whole when it has at most 3 words more than a phrase length (a phrase with
//! up to three stray list words around it: every window of that length is tried); a longer run
//! is a word list, and only its lines of exactly a phrase's length are tried. Words in alphabetical
//! order are a list, not a phrase. About 1 in 16 (12 words) to 1 in 256 (24 words) random runs
//! of list words pass the checksum, so English prose, which rarely strings 12 list words
//! together, is what keeps this precise.

use std::sync::LazyLock;

use super::{Check, Ctx, FamilyFinding, FamilyRule, Side, crypto::sha256};

/// The standard BIP-39 English word list (2,048 words; SHA-256 checked by a test).
pub const BIP39_ENGLISH: &str = include_str!("bip39_english.txt");

/// The most separator bytes between two words of a phrase (`",\n    "` in pretty JSON).
pub(crate) const MAX_GAP: usize = 12;
const PHRASE_LENGTHS: [usize; 5] = [24, 21, 18, 15, 12];
/// A phrase plus three stray list words around it.
const MAX_RUN: usize = 27;
/// The longest run judged whole, in bytes.
pub(crate) const MAX_RUN_BYTES: usize = MAX_RUN * 8 + (MAX_RUN - 1) * MAX_GAP;

/// The words packed big-endian into a u64 each (at most 8 letters), in an open-addressing
/// table: a look-up is one multiplication and, for most words of prose, one probe. Before it,
/// a filter of one bit per hash of 15 bits (4 KiB, which stays in the L1 cache where the
/// table's 80 KiB do not) turns away about 94 % of the words that are not in the list.
struct Table {
    keys: Vec<u64>,
    index: Vec<u16>,
    filter: Vec<u64>,
}

const TABLE_BITS: u32 = 13;
const FILTER_BITS: u32 = 15;

fn slot(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - TABLE_BITS)) as usize
}

fn filter_bit(key: u64) -> usize {
    (key.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> (64 - FILTER_BITS)) as usize
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let size = 1 << TABLE_BITS;
    let mut t = Table {
        keys: vec![0; size],
        index: vec![0; size],
        filter: vec![0; (1 << FILTER_BITS) / 64],
    };
    for (i, w) in BIP39_ENGLISH.split_whitespace().enumerate() {
        let key = pack(w.as_bytes());
        let bit = filter_bit(key);
        t.filter[bit / 64] |= 1 << (bit % 64);
        let mut s = slot(key);
        while t.keys[s] != 0 {
            s = (s + 1) & (size - 1);
        }
        t.keys[s] = key;
        t.index[s] = i as u16;
    }
    t
});

fn pack(w: &[u8]) -> u64 {
    let mut v = [0u8; 8];
    v[..w.len()].copy_from_slice(w);
    u64::from_be_bytes(v)
}

/// The index of `word` in the BIP-39 English list.
pub fn bip39_word_index(word: &[u8]) -> Option<u16> {
    if !(3..=8).contains(&word.len()) {
        return None;
    }
    index_of(pack(word))
}

/// [`bip39_word_index`] of `text[start..end]`, read with one 8-byte load where `text` has 8
/// bytes from `start` (a copy of a few bytes is a call to `memcpy`).
#[inline]
pub(crate) fn bip39_word_index_in(text: &[u8], start: usize, end: usize) -> Option<u16> {
    let len = end - start;
    if !(3..=8).contains(&len) {
        return None;
    }
    let key = match text.get(start..start + 8) {
        Some(eight) => {
            let word = u64::from_be_bytes(eight.try_into().expect("8 bytes"));
            word & !u64::MAX.checked_shr(8 * len as u32).unwrap_or(0)
        }
        None => pack(&text[start..end]),
    };
    index_of(key)
}

fn index_of(key: u64) -> Option<u16> {
    let t = &*TABLE;
    let bit = filter_bit(key);
    if t.filter[bit / 64] >> (bit % 64) & 1 == 0 {
        return None;
    }
    let mask = t.keys.len() - 1;
    let mut s = slot(key);
    loop {
        match t.keys[s] {
            0 => return None,
            k if k == key => return Some(t.index[s]),
            _ => s = (s + 1) & mask,
        }
    }
}

/// Separator bytes between the words of a phrase (digits come from list numbers).
pub(crate) fn gap_byte(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\r'
            | b'\n'
            | b','
            | b'"'
            | b'\''
            | b'.'
            | b')'
            | b'('
            | b'-'
            | b':'
            | b';'
            | b'#'
            | b'['
            | b']'
            | b'|'
            | b'*'
            | b'\\'
    ) || b.is_ascii_digit()
}

/// The 11-bit word indices `idx` as a bit string (entropy, then checksum), big-endian.
fn packed(idx: &[u16]) -> [u8; 33] {
    let mut bits = [0u8; 33];
    for (w, &i) in idx.iter().enumerate() {
        for b in 0..11 {
            if i & (1 << (10 - b)) != 0 {
                let pos = w * 11 + b;
                bits[pos / 8] |= 0x80 >> (pos % 8);
            }
        }
    }
    bits
}

/// Whether the checksum of the phrase of word indices `idx` holds; returns its entropy's
/// first bytes' diversity for the test-value rule.
pub fn checksum_holds(idx: &[u16]) -> Option<bool> {
    let n = idx.len();
    if !PHRASE_LENGTHS.contains(&n) {
        return None;
    }
    let bits = packed(idx);
    let ent_bytes = n * 4 / 3;
    let cs_bits = n / 3;
    let entropy = &bits[..ent_bytes];
    let want = bits[ent_bytes] >> (8 - cs_bits);
    let have = sha256(entropy)[0] >> (8 - cs_bits);
    if want != have {
        return Some(false);
    }
    Some(true)
}

/// A published or hand-made phrase: one word repeated (then the checksum word: `abandon …
/// about`, `zoo … wrong`, Hardhat's `test … junk`) or entropy of at most two byte values
/// (the `legal winner thank year…` test vectors).
fn is_test_phrase(idx: &[u16]) -> bool {
    let n = idx.len();
    if idx[..n - 1].iter().all(|&i| i == idx[0]) {
        return true;
    }
    let bits = packed(idx);
    let entropy = &bits[..n * 4 / 3];
    let first = entropy[0];
    match entropy.iter().find(|&&b| b != first) {
        None => true,
        Some(&o) => entropy.iter().all(|&b| b == first || b == o),
    }
}

/// `Word::index` of a word not looked up yet.
const NOT_LOOKED_UP: u16 = u16::MAX;

#[derive(Clone, Copy, Default)]
struct Word {
    start: u32,
    end: u32,
    index: u16,
    /// A line break in the separator before it.
    newline_before: bool,
    /// Its left neighbour is beyond the window.
    left_unknown: bool,
}

/// Follows runs of words through the token stream of one window.
pub(crate) struct SeedRuns<'a, 'h> {
    ctx: &'a Ctx<'h>,
    /// Words joined by valid gaps since the last miss, not all looked up yet: only a run of
    /// 12 is worth the look-ups (`resolve_pending`).
    pending: [Word; 12],
    pending_len: usize,
    /// Words in the current syntactic run (lower-case words joined by valid gaps).
    syn: usize,
    last_end: usize,
    /// The run of list words (at most `MAX_RUN` kept; `overflow` past that).
    run: [Word; MAX_RUN],
    run_len: usize,
    overflow: bool,
    /// The current line of the run (a phrase per line in a file of phrases).
    line: [Word; 24],
    line_len: usize,
    line_overflow: bool,
}

impl<'a, 'h> SeedRuns<'a, 'h> {
    pub fn new(ctx: &'a Ctx<'h>) -> Self {
        SeedRuns {
            ctx,
            pending: [Word::default(); 12],
            pending_len: 0,
            syn: 0,
            last_end: 0,
            run: [Word::default(); MAX_RUN],
            run_len: 0,
            overflow: false,
            line: [Word::default(); 24],
            line_len: 0,
            line_overflow: false,
        }
    }

    /// A lower-case token of 1–9 letters.
    #[inline]
    pub fn word(&mut self, mut start: usize, end: usize, out: &mut Vec<FamilyFinding>) {
        let hay = self.ctx.hay;
        // `\nability` in a JSON string as sent: the escape is part of the separator.
        if start > 0 && hay[start - 1] == b'\\' && matches!(hay[start], b'n' | b't' | b'r') {
            start += 1;
        }
        if !(3..=8).contains(&(end - start)) {
            self.other(out);
            return;
        }
        let gap = &hay[self.last_end..start];
        // One space: the separator of nearly every pair of words in prose.
        let (joined, newline_before) = if gap == b" " {
            (self.syn > 0, false)
        } else {
            let joined = self.syn > 0
                && !gap.is_empty()
                && gap.len() <= MAX_GAP
                && gap.iter().enumerate().all(|(i, &b)| {
                    gap_byte(b) || (i > 0 && gap[i - 1] == b'\\' && matches!(b, b'n' | b't' | b'r'))
                });
            let newline = joined
                && (gap.iter().any(|&b| b == b'\n' || b == b'\r')
                    || gap.windows(2).any(|w| w == b"\\n"));
            (joined, newline)
        };
        if !joined {
            self.other(out);
        }
        let left_unknown = self.syn == 0
            && start <= MAX_GAP + 1
            && matches!(self.ctx.before(0), Side::Unknown)
            && hay[..start]
                .iter()
                .all(|&b| gap_byte(b) || b.is_ascii_lowercase());
        let w = Word {
            start: start as u32,
            end: end as u32,
            index: NOT_LOOKED_UP,
            newline_before,
            left_unknown,
        };
        self.last_end = end;
        self.syn += 1;
        if self.run_len > 0 || self.overflow {
            // A run of 12 or more list words goes on while its words are list words.
            match bip39_word_index_in(hay, start, end) {
                Some(i) => self.push_hit(Word { index: i, ..w }, out),
                None => self.end_run(out),
            }
            return;
        }
        self.pending[self.pending_len] = w;
        self.pending_len += 1;
        if self.pending_len == 12 {
            self.resolve_pending(out);
        }
    }

    /// Twelve words joined, none known to miss: only 12 list words in a row start a run, so
    /// they are looked up from the last back, and the first miss discards every word before
    /// it unseen (in prose, most windows of 12 end in a miss within a word or two).
    fn resolve_pending(&mut self, out: &mut Vec<FamilyFinding>) {
        let hay = self.ctx.hay;
        let mut k = self.pending_len;
        while k > 0 {
            let w = &mut self.pending[k - 1];
            if w.index == NOT_LOOKED_UP {
                match bip39_word_index_in(hay, w.start as usize, w.end as usize) {
                    Some(i) => w.index = i,
                    None => break,
                }
            }
            k -= 1;
        }
        if k == 0 {
            let words = self.pending;
            self.pending_len = 0;
            for w in words {
                self.push_hit(w, out);
            }
        } else {
            self.pending.copy_within(k..self.pending_len, 0);
            self.pending_len -= k;
        }
    }

    /// A list number of one or two digits: part of a separator.
    pub fn number(&mut self, _start: usize, _end: usize) {}

    /// Any other token: ends the runs.
    #[inline]
    pub fn other_token(&mut self, out: &mut Vec<FamilyFinding>) {
        self.other(out);
    }

    fn other(&mut self, out: &mut Vec<FamilyFinding>) {
        if self.run_len > 0 || self.overflow {
            self.end_run(out);
        }
        self.pending_len = 0;
        self.syn = 0;
    }

    pub fn finish(&mut self, out: &mut Vec<FamilyFinding>) {
        self.other(out);
    }

    /// A list word that continues the run.
    fn push_hit(&mut self, w: Word, out: &mut Vec<FamilyFinding>) {
        if self.run_len > 0 && w.newline_before {
            self.end_line(out);
        }
        if self.run_len < MAX_RUN {
            self.run[self.run_len] = w;
            self.run_len += 1;
        } else {
            self.overflow = true;
        }
        if self.line_len < self.line.len() {
            self.line[self.line_len] = w;
            self.line_len += 1;
        } else {
            self.line_overflow = true;
        }
    }

    fn end_line(&mut self, out: &mut Vec<FamilyFinding>) {
        let (len, overflow) = (self.line_len, self.line_overflow);
        self.line_len = 0;
        self.line_overflow = false;
        if overflow || !PHRASE_LENGTHS.contains(&len) {
            return;
        }
        let line = self.line;
        if let Some(test) = phrase_at(&line[..len]) {
            self.report(&line[..len], len, test, out);
        }
    }

    fn end_run(&mut self, out: &mut Vec<FamilyFinding>) {
        self.end_line(out);
        let len = self.run_len;
        self.run_len = 0;
        if std::mem::take(&mut self.overflow) || len < 12 {
            return;
        }
        let run = self.run;
        // A phrase with at most three stray list words around it: every window of a phrase's
        // length is tried. When strays make more than one window pass (a chance pass is 1 in
        // 16 to 1 in 256), the span reported is the hull of all that passed, so that it always
        // covers the real phrase.
        let mut hull: Option<(usize, usize, usize, bool)> = None;
        for n in PHRASE_LENGTHS {
            if n > len || len - n > MAX_RUN - 24 {
                continue;
            }
            for off in 0..=len - n {
                if let Some(test) = phrase_at(&run[off..off + n]) {
                    hull = Some(match hull {
                        None => (off, off + n, n, test),
                        Some((a, b, w, t)) => (a.min(off), b.max(off + n), w, t),
                    });
                }
            }
        }
        if let Some((a, b, n, test)) = hull {
            self.report(&run[a..b], n, test, out);
        }
    }

    fn report(&self, words: &[Word], n: usize, test: bool, out: &mut Vec<FamilyFinding>) {
        let (start, end) = (words[0].start as usize, words[words.len() - 1].end as usize);
        // A line of exactly a phrase is tried first: the run around it is that phrase.
        if out
            .iter()
            .any(|f| f.rule == FamilyRule::Bip39SeedPhrase && f.start < end && start < f.end)
        {
            return;
        }
        self.ctx.push(
            out,
            FamilyRule::Bip39SeedPhrase,
            start,
            end,
            Check::SeedPhrase { words: n as u8 },
            test,
        );
    }
}

/// Whether `words` are a phrase: `Some(test value?)`.
fn phrase_at(words: &[Word]) -> Option<bool> {
    if words[0].left_unknown {
        return None;
    }
    let mut idx = [0u16; 24];
    for (i, w) in idx.iter_mut().zip(words) {
        *i = w.index;
    }
    let idx = &idx[..words.len()];
    if idx.windows(2).all(|p| p[0] < p[1]) {
        // Alphabetical: a piece of the list itself.
        return None;
    }
    (checksum_holds(idx) == Some(true)).then(|| is_test_phrase(idx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(phrase: &str) -> Vec<u16> {
        phrase
            .split(' ')
            .map(|w| bip39_word_index(w.as_bytes()).unwrap())
            .collect()
    }

    #[test]
    fn list_lookups() {
        assert_eq!(bip39_word_index(b"abandon"), Some(0));
        assert_eq!(bip39_word_index(b"zoo"), Some(2047));
        assert_eq!(bip39_word_index(b"the"), None);
        assert_eq!(bip39_word_index(b"abandons"), None);
        // In place, with 8 bytes after the start and without.
        // Every word, read in place at the end of a text and with letters after it.
        for (i, w) in BIP39_ENGLISH.split_whitespace().enumerate() {
            let w = w.as_bytes();
            let longer = [w, b"abcdefgh"].concat();
            assert_eq!(bip39_word_index_in(w, 0, w.len()), Some(i as u16));
            assert_eq!(bip39_word_index_in(&longer, 0, w.len()), Some(i as u16));
            assert_eq!(
                bip39_word_index_in(&longer, 0, w.len() - 1),
                bip39_word_index(&w[..w.len() - 1])
            );
        }
        // (8 letters at the start, words with 8 bytes after them and without.)
        let text = b"abstract zoo abandon the zoo";
        for (start, end, want) in [
            (0, 8, Some(7)),
            (9, 12, Some(2047)),
            (13, 20, Some(0)),
            (21, 24, None),
            (25, 28, Some(2047)),
            (13, 17, None),
            (0, 7, None),
        ] {
            assert_eq!(
                bip39_word_index_in(text, start, end),
                want,
                "{start}..{end}"
            );
        }
    }

    #[test]
    fn checksums_of_test_vectors() {
        let v = idx(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        );
        assert_eq!(checksum_holds(&v), Some(true));
        assert!(is_test_phrase(&v));
        let v = idx("legal winner thank year wave sausage worth useful legal winner thank yellow");
        assert_eq!(checksum_holds(&v), Some(true));
        assert!(is_test_phrase(&v));
        let v = idx(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon",
        );
        assert_eq!(checksum_holds(&v), Some(false));
    }
}
