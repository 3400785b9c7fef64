//! What of a run of text the walk of [`super::FamilyScanner`] must see (`Walk::token` on every
//! token, in order): every token that a rule other than the seed phrase could look at, and
//! every stretch that could hold a seed phrase. The rest (most of prose, code and JSON) cannot
//! hold a candidate and is skipped without being tokenised. Found from 64-byte class masks
//! (AVX-512 VBMI or AVX2 where the CPU has them, SSE2 otherwise), stored per class for the
//! whole run ([`Classes`]), then one short pass over them for each of:
//!
//! - Tokens a rule of `financial` could look at: a number that could be or start a card (13
//!   digits or more, or followed by a space or a dash and a digit), tokens with a digit of 4
//!   bytes or more (IBANs, addresses). With `pii`, every token with a digit (phone numbers).
//!   With `crypto_keys`, tokens of 51 bytes or more (WIF, extended and Ethereum keys).
//! - A seed phrase is 12 or more list words joined by short gaps (`bip39.rs`). The walk's run
//!   of joined words (`SeedRuns`) is certainly ended by a *breaker*: a token with a capital, a
//!   digit next to a letter or in a number of 3 digits or more (not a list number), a run of
//!   1–2 or 10+ lower-case letters (a word too short or too long), a byte that is neither a
//!   letter, a digit nor a gap byte, 13 non-alphanumeric bytes in a row (a gap longer than
//!   `MAX_GAP`), the end of the run of text. A stretch between two breakers is marked whole
//!   when it holds 12 starts of lower-case tokens and 12 runs of lower-case letters in a row
//!   that are list words, as `SeedRuns` reads them (looked up from the last of 12 back, as
//!   `SeedRuns` does: prose is dismissed with about one look-up in 12 words).
//!
//! The marked bytes are widened to whole tokens and handed on in order (a short run, or one
//! mostly marked, is handed on whole); at each skipped stretch
//! the walk resets its seed runs, where a breaker would have reset them anyway (the first word
//! after a breaker is never joined to the one before). Every test errs on the side of walking:
//! a 9-letter word, an `\n` escape before a 2-letter word, a bad gap made of allowed bytes,
//! runs of letters past a block's edge are not taken for breakers, runs of letters that are not
//! words are looked up, a token is marked whenever a block's edge hides its length. Skipping
//! changes no finding: `differential.rs` compares with the walk of every token.

use super::bip39::{MAX_GAP, bip39_word_index_in};
use crate::text_runs::runs_from;

/// What the enabled families need the walk to see.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Want {
    /// Tokens holding a digit that could be or start a card number, an IBAN or a Bitcoin
    /// address (`financial`).
    pub digits: bool,
    /// Every token holding a digit (`pii`: phone numbers).
    pub all_digits: bool,
    /// Tokens of [`LONG_TOKEN`] bytes or more (`crypto_keys`).
    pub long: bool,
    /// Stretches that could hold a seed phrase (`crypto_keys`).
    pub seeds: bool,
}

/// The shortest token a rule looks at without a digit in it: a WIF key (extended and Ethereum
/// keys are longer; Bitcoin addresses, IBANs, cards and phone numbers have digits).
pub(crate) const LONG_TOKEN: u32 = 51;
/// The bits that a run of [`LONG_TOKEN`] set bits of a block always covers, wherever it starts
/// (at bit 13 at the latest, so it ends at bit 50 at the earliest): a block of prose, with a
/// space every few bytes, is dismissed with one test.
const WITHIN_EVERY_LONG_RUN: u64 = below(LONG_TOKEN) & !below(64 - LONG_TOKEN);

/// Words of a phrase's shortest run.
const MIN_WORDS: usize = 12;
/// A run of this many non-alphanumeric bytes is a gap no phrase has.
const LONG_GAP: u32 = MAX_GAP as u32 + 1;

/// Per byte of a block of at most 64 bytes: its classes, and the bytes that end a run of seed
/// words wherever they are (neither a letter, a digit nor a gap byte; in a run of text, only
/// printable ASCII, tab and line breaks occur).
#[derive(Default, Clone, Copy)]
struct Masks {
    alnum: u64,
    digit: u64,
    upper: u64,
    lower: u64,
    breaker: u64,
    /// A space or a dash: what joins the groups of a card number.
    sep: u64,
}

#[cfg(target_arch = "x86_64")]
fn masks(block: &[u8]) -> Masks {
    let mut padded = [0u8; 64];
    let bytes = crate::text_runs::block64(block, &mut padded);
    // SAFETY: SSE2 is part of every x86_64 target.
    unsafe { masks_sse2(bytes) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn masks_sse2(bytes: &[u8; 64]) -> Masks {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // Signed compares: bytes of 0x80 and above are negative, below every range here.
    macro_rules! within {
        ($v:expr, $lo:expr, $hi:expr) => {
            _mm_and_si128(
                _mm_cmpgt_epi8($v, _mm_set1_epi8($lo as i8 - 1)),
                _mm_cmplt_epi8($v, _mm_set1_epi8($hi as i8 + 1)),
            )
        };
    }
    macro_rules! is {
        ($v:expr, $b:expr) => {
            _mm_cmpeq_epi8($v, _mm_set1_epi8($b as i8))
        };
    }
    macro_rules! bits {
        ($x:expr, $k:expr) => {
            u64::from(_mm_movemask_epi8($x) as u16) << (16 * $k)
        };
    }
    let mut m = Masks::default();
    for k in 0..4 {
        // SAFETY: `bytes` holds 64 bytes, so the 16 read at 16 * k are in bounds.
        let v = unsafe { _mm_loadu_si128(bytes.as_ptr().add(16 * k).cast::<__m128i>()) };
        let digit = within!(v, b'0', b'9');
        let upper = within!(v, b'A', b'Z');
        let lower = within!(v, b'a', b'z');
        // The printable bytes that are not letters, digits or `gap_byte`s:
        // ! $ % & + / < = > ? @ ^ _ ` { } ~
        let breaker = _mm_or_si128(
            _mm_or_si128(
                _mm_or_si128(within!(v, b'$', b'&'), within!(v, b'<', b'@')),
                _mm_or_si128(within!(v, b'^', b'`'), within!(v, b'}', b'~')),
            ),
            _mm_or_si128(
                _mm_or_si128(is!(v, b'!'), is!(v, b'+')),
                _mm_or_si128(is!(v, b'/'), is!(v, b'{')),
            ),
        );
        m.digit |= bits!(digit, k);
        m.upper |= bits!(upper, k);
        m.lower |= bits!(lower, k);
        m.breaker |= bits!(breaker, k);
        m.sep |= bits!(_mm_or_si128(is!(v, b' '), is!(v, b'-')), k);
    }
    m.alnum = m.digit | m.upper | m.lower;
    m
}

/// [`masks`] with AVX2: 32 bytes a compare.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn masks_avx2(block: &[u8]) -> Masks {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256,
        _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
    };
    let mut padded = [0u8; 64];
    let bytes = crate::text_runs::block64(block, &mut padded);
    // Signed compares: bytes of 0x80 and above are negative, below every range here.
    macro_rules! within {
        ($v:expr, $lo:expr, $hi:expr) => {
            _mm256_and_si256(
                _mm256_cmpgt_epi8($v, _mm256_set1_epi8($lo as i8 - 1)),
                _mm256_cmpgt_epi8(_mm256_set1_epi8($hi as i8 + 1), $v),
            )
        };
    }
    macro_rules! is {
        ($v:expr, $b:expr) => {
            _mm256_cmpeq_epi8($v, _mm256_set1_epi8($b as i8))
        };
    }
    macro_rules! bits {
        ($x:expr, $k:expr) => {
            u64::from(_mm256_movemask_epi8($x) as u32) << (32 * $k)
        };
    }
    let mut m = Masks::default();
    for k in 0..2 {
        // SAFETY: `bytes` holds 64 bytes, so the 32 read at 32 * k are in bounds.
        let v = unsafe { _mm256_loadu_si256(bytes.as_ptr().add(32 * k).cast::<__m256i>()) };
        let digit = within!(v, b'0', b'9');
        let upper = within!(v, b'A', b'Z');
        let lower = within!(v, b'a', b'z');
        let breaker = _mm256_or_si256(
            _mm256_or_si256(
                _mm256_or_si256(within!(v, b'$', b'&'), within!(v, b'<', b'@')),
                _mm256_or_si256(within!(v, b'^', b'`'), within!(v, b'}', b'~')),
            ),
            _mm256_or_si256(
                _mm256_or_si256(is!(v, b'!'), is!(v, b'+')),
                _mm256_or_si256(is!(v, b'/'), is!(v, b'{')),
            ),
        );
        m.digit |= bits!(digit, k);
        m.upper |= bits!(upper, k);
        m.lower |= bits!(lower, k);
        m.breaker |= bits!(breaker, k);
        m.sep |= bits!(_mm256_or_si256(is!(v, b' '), is!(v, b'-')), k);
    }
    m.alnum = m.digit | m.upper | m.lower;
    // Inlined, the masks would otherwise be worked on as vectors of 64 booleans, which AVX2
    // has no instructions for: LLVM then builds each u64 a byte at a time (half the speed).
    for mask in [
        &mut m.alnum,
        &mut m.digit,
        &mut m.upper,
        &mut m.lower,
        &mut m.breaker,
        &mut m.sep,
    ] {
        *mask = in_register(*mask);
    }
    m
}

/// `x`, which the compiler cannot see through: the bits come out of a general register.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn in_register(mut x: u64) -> u64 {
    // SAFETY: an empty instruction sequence; it reads and writes only `x`'s register.
    unsafe {
        std::arch::asm!("/* {0} */", inout(reg) x, options(pure, nomem, nostack, preserves_flags));
    }
    x
}

/// Per ASCII byte, its classes as bits (bytes of 0x80 and above have none).
const DIGIT_BIT: u8 = 1;
const UPPER_BIT: u8 = 2;
const LOWER_BIT: u8 = 4;
const BREAKER_BIT: u8 = 8;
const SEP_BIT: u8 = 16;
#[cfg(target_arch = "x86_64")]
static CLASS_BITS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_digit() {
            DIGIT_BIT
        } else if c.is_ascii_uppercase() {
            UPPER_BIT
        } else if c.is_ascii_lowercase() {
            LOWER_BIT
        } else if matches!(c, b'!' | b'$'..=b'&' | b'+' | b'/' | b'<'..=b'@' | b'^'..=b'`' | b'{' | b'}' | b'~')
        {
            BREAKER_BIT
        } else if c == b' ' || c == b'-' {
            SEP_BIT
        } else {
            0
        };
        b += 1;
    }
    t
};

/// [`masks`] with AVX-512 VBMI: the block's bytes' class bits by one permute of a 128-byte
/// table, each mask one test into a mask register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn masks_vbmi(block: &[u8]) -> Masks {
    use std::arch::x86_64::{
        __m512i, _mm512_loadu_si512, _mm512_maskz_loadu_epi8, _mm512_maskz_permutex2var_epi8,
        _mm512_movepi8_mask, _mm512_set1_epi8, _mm512_test_epi8_mask,
    };
    // SAFETY: a masked load reads (and may fault on) only the bytes it is asked for, the
    // block's; the others are zero, as in the padded blocks of the other masks.
    let v = unsafe { _mm512_maskz_loadu_epi8(below(block.len() as u32), block.as_ptr().cast()) };
    // SAFETY: the table has 128 bytes, read as two of 64.
    let (low, high) = unsafe {
        (
            _mm512_loadu_si512(CLASS_BITS.as_ptr().cast::<__m512i>()),
            _mm512_loadu_si512(CLASS_BITS.as_ptr().add(64).cast::<__m512i>()),
        )
    };
    let ascii = !_mm512_movepi8_mask(v);
    let bits = _mm512_maskz_permutex2var_epi8(ascii, low, v, high);
    macro_rules! with {
        ($bits:expr) => {
            _mm512_test_epi8_mask(bits, _mm512_set1_epi8($bits as i8))
        };
    }
    Masks {
        alnum: with!(DIGIT_BIT | UPPER_BIT | LOWER_BIT),
        digit: with!(DIGIT_BIT),
        upper: with!(UPPER_BIT),
        lower: with!(LOWER_BIT),
        breaker: with!(BREAKER_BIT),
        sep: with!(SEP_BIT),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn masks(block: &[u8]) -> Masks {
    let mut m = Masks::default();
    for (k, &b) in block.iter().enumerate() {
        let bit = |yes: bool| u64::from(yes) << k;
        m.alnum |= bit(b.is_ascii_alphanumeric());
        m.digit |= bit(b.is_ascii_digit());
        m.upper |= bit(b.is_ascii_uppercase());
        m.lower |= bit(b.is_ascii_lowercase());
        m.breaker |= bit(is_breaker_byte(b));
        m.sep |= bit(b == b' ' || b == b'-');
    }
    m
}

/// A printable byte that is neither a letter, a digit nor a gap byte of a seed phrase.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn is_breaker_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric() && !super::bip39::gap_byte(b)
}

/// Bits `i` of `cur` with bit `i - s` of the stream (`cur` after `prev`), `1 <= s <= 63`.
#[inline(always)]
fn back(cur: u64, prev: u64, s: u32) -> u64 {
    (cur << s) | (prev >> (64 - s))
}

/// Bits `i` of `cur` with bit `i + s` of the stream (`cur` before `next`), `1 <= s <= 63`.
#[inline(always)]
fn ahead(cur: u64, next: u64, s: u32) -> u64 {
    (cur >> s) | (next << (64 - s))
}

/// Bits below `i` (`i <= 64`).
#[inline(always)]
const fn below(i: u32) -> u64 {
    if i >= 64 { u64::MAX } else { (1u64 << i) - 1 }
}

/// Sets bits `s..e` of `marks`.
#[inline(always)]
fn mark(marks: &mut [u64], s: usize, e: usize) {
    if s >= e {
        return;
    }
    let (ws, we) = (s / 64, (e - 1) / 64);
    let lo = !below((s % 64) as u32);
    let hi = below(((e - 1) % 64) as u32 + 1);
    if ws == we {
        marks[ws] |= lo & hi;
    } else {
        marks[ws] |= lo;
        for m in &mut marks[ws + 1..we] {
            *m = u64::MAX;
        }
        marks[we] |= hi;
    }
}

/// The first set bit of `marks` at or after `from`.
#[inline(always)]
fn next_set(marks: &[u64], from: usize) -> Option<usize> {
    let mut w = from / 64;
    let mut bits = *marks.get(w)? & !below((from % 64) as u32);
    loop {
        if bits != 0 {
            return Some(64 * w + bits.trailing_zeros() as usize);
        }
        w += 1;
        bits = *marks.get(w)?;
    }
}

/// The first clear bit of `bits` at or after `from` (`64 * bits.len()` if none).
#[inline(always)]
fn next_clear(bits: &[u64], from: usize) -> usize {
    let mut w = from / 64;
    let Some(&b) = bits.get(w) else {
        return from;
    };
    let mut m = !b & !below((from % 64) as u32);
    loop {
        if m != 0 {
            return 64 * w + m.trailing_zeros() as usize;
        }
        w += 1;
        match bits.get(w) {
            Some(&b) => m = !b,
            None => return 64 * w,
        }
    }
}

/// The masks of every block of a run, one array per class: the passes of [`plan_with`] read
/// them, each a short loop with few values live (one loop doing everything kept a dozen in
/// memory), and the digits' pass, where a block's marks depend on its neighbours alone, in
/// vector registers.
#[derive(Default)]
struct Classes {
    /// The run's length.
    len: usize,
    alnum: Vec<u64>,
    digit: Vec<u64>,
    upper: Vec<u64>,
    lower: Vec<u64>,
    breaker: Vec<u64>,
    sep: Vec<u64>,
}

impl Classes {
    /// The masks of block `k` (none before the run: the byte before a run of text is not
    /// text, or it is before the window, where the walk starts too).
    #[inline(always)]
    fn at(&self, k: usize) -> Masks {
        Masks {
            alnum: self.alnum[k],
            digit: self.digit[k],
            upper: self.upper[k],
            lower: self.lower[k],
            breaker: self.breaker[k],
            sep: self.sep[k],
        }
    }

    #[inline(always)]
    fn before(&self, k: usize) -> Masks {
        if k > 0 {
            self.at(k - 1)
        } else {
            Masks::default()
        }
    }

    /// The masks of blocks `from..`, in order (one bounds check for all).
    #[inline(always)]
    fn from(&self, from: usize) -> impl Iterator<Item = Masks> + '_ {
        self.alnum[from..]
            .iter()
            .zip(&self.digit[from..])
            .zip(&self.upper[from..])
            .zip(&self.lower[from..])
            .zip(&self.breaker[from..])
            .zip(&self.sep[from..])
            .map(
                |(((((&alnum, &digit), &upper), &lower), &breaker), &sep)| Masks {
                    alnum,
                    digit,
                    upper,
                    lower,
                    breaker,
                    sep,
                },
            )
    }

    /// The bytes of block `k` that are in the run.
    #[inline(always)]
    fn valid(&self, k: usize) -> u64 {
        below((self.len - 64 * k).min(64) as u32)
    }
}

/// Fills `classes` with the masks of every block of `run`.
#[inline(always)]
fn classify<const LEVEL: u8>(run: &[u8], classes: &mut Classes) {
    let blocks = run.len().div_ceil(64);
    classes.len = run.len();
    for v in [
        &mut classes.alnum,
        &mut classes.digit,
        &mut classes.upper,
        &mut classes.lower,
        &mut classes.breaker,
        &mut classes.sep,
    ] {
        v.clear();
        v.resize(blocks, 0);
    }
    for k in 0..blocks {
        let m = block_masks::<LEVEL>(run, k);
        classes.alnum[k] = m.alnum;
        classes.digit[k] = m.digit;
        classes.upper[k] = m.upper;
        classes.lower[k] = m.lower;
        classes.breaker[k] = m.breaker;
        classes.sep[k] = m.sep;
    }
}

/// Scratch space of [`for_each_range`], kept from one run to the next.
#[derive(Default)]
pub(crate) struct Scratch {
    classes: Classes,
    /// Per block: the bytes that end a stretch (every breaker, or capitals and breaker bytes),
    /// and the starts of lower-case tokens.
    ends: Vec<u64>,
    words: Vec<u64>,
    /// One bit per byte of the run: what the walk must see.
    marks: Vec<u64>,
    /// Stretches between two capitals or breaker bytes with 12 starts of lower-case tokens or
    /// more: where the stretches below can be.
    coarse: Vec<(usize, usize)>,
    /// Stretches between two breakers with 12 starts of lower-case tokens or more.
    stretches: Vec<(usize, usize)>,
    /// What the walk must see, in whole tokens.
    ranges: Vec<(usize, usize)>,
}

/// Fills `scratch.ranges` with what the walk must see of `run`, a run of text.
fn plan(run: &[u8], want: Want, scratch: &mut Scratch) {
    #[cfg(target_arch = "x86_64")]
    if *AVX2 && !crate::text_runs::baseline_forced() {
        if crate::text_runs::vbmi() {
            // SAFETY: the CPU has the features `plan_vbmi` is compiled for (AVX-512 VBMI
            // CPUs have every feature of `plan_avx2`, checked here all the same).
            unsafe { plan_vbmi(run, want, scratch) };
        } else {
            // SAFETY: the CPU has the features `plan_avx2` is compiled for.
            unsafe { plan_avx2(run, want, scratch) };
        }
        return;
    }
    plan_at::<BASELINE>(run, want, scratch);
}

/// [`plan_with`] in one of its two ways: two loops, each with its own way to the stretches
/// (one loop holding both ran 4 % slower on code).
#[inline(always)]
fn plan_at<const LEVEL: u8>(run: &[u8], want: Want, scratch: &mut Scratch) {
    classify::<LEVEL>(run, &mut scratch.classes);
    if want.seeds && wordy(&scratch.classes) {
        plan_with::<LEVEL, true>(run, want, scratch);
    } else {
        plan_with::<LEVEL, false>(run, want, scratch);
    }
}

/// Whether this CPU has AVX2 and the bit instructions (`popcnt`, `lzcnt`, `tzcnt`, `bzhi`) that
/// [`plan_avx2`] is compiled for: nearly every x86_64 CPU since 2013.
#[cfg(target_arch = "x86_64")]
static AVX2: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("bmi1")
        && is_x86_feature_detected!("bmi2")
        && is_x86_feature_detected!("lzcnt")
        && is_x86_feature_detected!("popcnt")
});

/// [`plan`] on a CPU with AVX2: masks of 32 bytes a compare, and bit counts and scans in one
/// instruction each (without them, `count_ones` and `trailing_zeros` are loops of shifts).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
fn plan_avx2(run: &[u8], want: Want, scratch: &mut Scratch) {
    plan_at::<WITH_AVX2>(run, want, scratch);
}

/// [`plan_avx2`] with the masks of AVX-512 VBMI: a class table looked up by one byte permute,
/// each mask one test (a fifth of the instructions of the AVX2 masks).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt,avx512f,avx512bw,avx512vbmi")]
fn plan_vbmi(run: &[u8], want: Want, scratch: &mut Scratch) {
    plan_at::<WITH_VBMI>(run, want, scratch);
}

/// The instructions the masks are made with: `LEVEL` of the planning's functions.
const BASELINE: u8 = 0;
const WITH_AVX2: u8 = 1;
const WITH_VBMI: u8 = 2;

/// The masks of block `k` of `run`.
#[inline(always)]
fn block_masks<const LEVEL: u8>(run: &[u8], k: usize) -> Masks {
    let base = 64 * k;
    let block = &run[base..(base + 64).min(run.len())];
    #[cfg(target_arch = "x86_64")]
    if LEVEL == WITH_VBMI {
        // SAFETY: only `plan_vbmi`, compiled for AVX-512 VBMI and called on a CPU that has
        // it, asks for these masks.
        return unsafe { masks_vbmi(block) };
    }
    #[cfg(target_arch = "x86_64")]
    if LEVEL == WITH_AVX2 {
        // SAFETY: only `plan_avx2`, compiled for AVX2 and called on a CPU that has it, asks
        // for these masks.
        return unsafe { masks_avx2(block) };
    }
    masks(block)
}

/// The starts of lower-case tokens (a word or not) in a block.
#[inline(always)]
fn word_starts(m: &Masks, prev: &Masks) -> u64 {
    m.lower & !back(m.alnum, prev.alnum, 1)
}

/// Ends and opens stretches at the set bits of `brk`, a block's breakers (the block starts at
/// `base`; `words`: the starts of lower-case tokens in it). `open` is the stretch running into
/// the block (its start, its count of words), and becomes the one running out of it. A
/// stretch ended with `MIN_WORDS` or more is pushed to `out`.
#[inline(always)]
fn end_stretches(
    brk: u64,
    words: u64,
    base: usize,
    open: &mut (usize, usize),
    out: &mut Vec<(usize, usize)>,
) {
    if brk == 0 {
        open.1 += words.count_ones() as usize;
        return;
    }
    // No byte is both a breaker and the start of a lower-case token.
    debug_assert_eq!(brk & words, 0);
    let first = brk.trailing_zeros();
    let before = open.1 + (words & below(first)).count_ones() as usize;
    if before >= MIN_WORDS {
        out.push((open.0, base + first as usize));
    }
    let last = 63 - brk.leading_zeros();
    // Stretches between two breakers of this block (rare: 12 words fill 47 bytes).
    if last > first && (words & below(last) & !below(first + 1)).count_ones() as usize >= MIN_WORDS
    {
        let mut rest = brk & !below(first + 1);
        let mut from = first;
        while rest != 0 {
            let to = rest.trailing_zeros();
            let inner = below(to) & !below(from + 1);
            if (words & inner).count_ones() as usize >= MIN_WORDS {
                out.push((base + from as usize + 1, base + to as usize));
            }
            from = to;
            rest &= rest - 1;
        }
    }
    *open = (
        base + last as usize + 1,
        (words & !below(last + 1)).count_ones() as usize,
    );
}

/// Every breaker of a block (see the module's header), given the block's masks, the previous
/// block's, and its bytes (`valid`).
#[inline(always)]
fn breakers(m: &Masks, prev: &Masks, valid: u64) -> u64 {
    let l = m.lower;
    let gap = !m.alnum & valid;
    let alpha = m.upper | l;
    let prev_alpha = prev.upper | prev.lower;
    m.upper
        | m.breaker
        // A digit next to a letter: a token of both.
        | (m.digit & back(alpha, prev_alpha, 1))
        | (alpha & back(m.digit, prev.digit, 1))
        // Three digits: a number, not a list number.
        | (m.digit & back(m.digit, prev.digit, 1) & back(m.digit, prev.digit, 2))
        // The byte after a run of 1 or 2 lower-case letters.
        | (!l & valid
            & back(l, prev.lower, 1)
            & !(back(l, prev.lower, 2) & back(l, prev.lower, 3)))
        // The 10th of 10 lower-case letters (a run reaching past the block is not seen: a
        // breaker less is walking more).
        | (runs_from(l, 10) << 9)
        | runs_from(gap, LONG_GAP)
}

/// The stretches (between two breakers, with `MIN_WORDS` starts of lower-case tokens or more)
/// inside `s..e`, a stretch between two capitals or breaker bytes (or the run's edges) that
/// holds `MIN_WORDS` such starts or more. Every breaker is worked out only here: text where
/// capitals and symbols come more often than every 12 words (code, JSON, most of prose)
/// never gets this far.
fn stretches_within(classes: &Classes, (s, e): (usize, usize), out: &mut Vec<(usize, usize)>) {
    let n = classes.len;
    let first_block = s / 64;
    // The block holding `e` (a capital or a breaker byte, which ends a stretch), or the last.
    let last_block = if e < n { e / 64 } else { (n - 1) / 64 };
    let from = out.len();
    // Stretches ending before `s` are cut short here, and dropped below: they are not in
    // `s..e`, and the one ending at `s - 1` has too few words (`s - 1` is a capital or a
    // breaker byte, so its stretch was found by the caller or had fewer than 12 words).
    let mut open = (64 * first_block, 0);
    let mut prev = classes.before(first_block);
    for (k, m) in (first_block..=last_block).zip(classes.from(first_block)) {
        end_stretches(
            breakers(&m, &prev, classes.valid(k)),
            word_starts(&m, &prev),
            64 * k,
            &mut open,
            out,
        );
        prev = m;
    }
    // The end of the run ends the last stretch.
    if e == n && open.1 >= MIN_WORDS {
        out.push((open.0, n));
    }
    let mut keep = from;
    for i in from..out.len() {
        let (a, b) = out[i];
        if a >= s && b <= e {
            out[keep] = (a, b);
            keep += 1;
        }
    }
    out.truncate(keep);
}

/// Whether the run looks like prose, from its first blocks: most stretches between capitals
/// and breaker bytes then hold 12 words or more, and working out every breaker at once is
/// cheaper than finding those stretches first. Either way finds the same stretches.
#[inline(always)]
fn wordy(classes: &Classes) -> bool {
    const SAMPLE: usize = 8;
    let sampled = classes.alnum.len().min(SAMPLE);
    let free = (0..sampled)
        .filter(|&k| classes.upper[k] | classes.breaker[k] == 0)
        .count();
    free * WORDY_SHARE >= sampled
}

/// A run is taken for prose when one block in this many of its first ones holds no capital
/// and no breaker byte.
const WORDY_SHARE: usize = 4;

/// The digits of a block that a rule of `financial` could look at (see [`plan_with`]), from
/// its masks (`a`: letters and digits, `d`: digits, `s`: separators) and those of the blocks
/// before and after it: a run of 4 or a separator and a digit can reach into the next one.
#[inline(always)]
fn digits_to_see(
    a_before: u64,
    a: u64,
    a_after: u64,
    d: u64,
    d_after: u64,
    s: u64,
    s_after: u64,
) -> u64 {
    let four = a & back(a, a_before, 1) & back(a, a_before, 2) & back(a, a_before, 3);
    let four_after = a_after & back(a_after, a, 1) & back(a_after, a, 2) & back(a_after, a, 3);
    let in_four =
        four | ahead(four, four_after, 1) | ahead(four, four_after, 2) | ahead(four, four_after, 3);
    let grouped = ahead(s, s_after, 1) & ahead(d, d_after, 2);
    d & (in_four | grouped)
}

#[inline(always)]
/// `WORDY`: every breaker is worked out in the one pass (see [`wordy`]).
fn plan_with<const LEVEL: u8, const WORDY: bool>(run: &[u8], want: Want, scratch: &mut Scratch) {
    let n = run.len();
    let blocks = n.div_ceil(64);
    let Scratch {
        classes,
        ends,
        words,
        marks,
        coarse,
        stretches,
        ranges,
    } = scratch;
    let c = &*classes;
    coarse.clear();
    stretches.clear();
    marks.clear();
    marks.resize(blocks, 0);
    if want.all_digits {
        for (x, &d) in marks.iter_mut().zip(&c.digit) {
            *x |= d;
        }
    } else if want.digits && blocks > 0 {
        // A token with a digit of 3 bytes or less is looked at by no rule of `financial` (an
        // IBAN has 15 bytes or more, an address 26), unless it is a number that a card number
        // could start with: followed by a space or a dash and a digit. Marked: the digits in
        // runs of 4 letters and digits or more, and those followed by a separator and a digit
        // (the first and last blocks apart, so that the loop between them vectorises).
        let at = |k: usize| {
            let (a_after, d_after, s_after) = if k + 1 < blocks {
                (c.alnum[k + 1], c.digit[k + 1], c.sep[k + 1])
            } else {
                (0, 0, 0)
            };
            let a_before = if k > 0 { c.alnum[k - 1] } else { 0 };
            digits_to_see(
                a_before, c.alnum[k], a_after, c.digit[k], d_after, c.sep[k], s_after,
            )
        };
        marks[0] |= at(0);
        if blocks > 2 {
            let inner = marks[1..blocks - 1]
                .iter_mut()
                .zip(c.alnum.windows(3))
                .zip(c.digit[1..].iter().zip(&c.digit[2..]))
                .zip(c.sep[1..].iter().zip(&c.sep[2..]));
            for (((x, a), (&d, &d_after)), (&s, &s_after)) in inner {
                *x |= digits_to_see(a[0], a[1], a[2], d, d_after, s, s_after);
            }
        }
        if blocks > 1 {
            marks[blocks - 1] |= at(blocks - 1);
        }
    }
    if want.long {
        // Every run of LONG_TOKEN alphanumeric bytes, within a block or reaching into it from
        // before (then its part there is marked): widened to its token.
        let mut tail = 0usize;
        for (x, &a) in marks.iter_mut().zip(&c.alnum) {
            // Alphanumeric bytes at the start of this block, and at the end of the last ones.
            let head = (!a).trailing_zeros();
            if a & WITHIN_EVERY_LONG_RUN == WITHIN_EVERY_LONG_RUN {
                *x |= runs_from(a, LONG_TOKEN);
            }
            if tail + head as usize >= LONG_TOKEN as usize {
                *x |= below(head);
            }
            tail = if head == 64 {
                tail + 64
            } else {
                a.leading_ones() as usize
            };
        }
    }
    if want.seeds && blocks > 0 {
        // The stretch since the last capital or breaker byte (a subset of the breakers, and
        // the cheap one), and the starts of lower-case tokens in it. Only those with 12 starts
        // or more can hold a stretch between two breakers with 12 words.
        // First what ends a stretch and the word starts of every block, each from its masks and
        // the last block's (a loop the compiler vectorises: the first and last blocks apart),
        // then the stretches, in order.
        let ends_of = |m: &Masks, prev: &Masks, valid: u64| {
            if WORDY {
                breakers(m, prev, valid)
            } else {
                m.upper | m.breaker
            }
        };
        for v in [&mut *ends, &mut *words] {
            v.clear();
            v.resize(blocks, 0);
        }
        let edge = |k: usize| {
            let (m, prev) = (c.at(k), c.before(k));
            (ends_of(&m, &prev, c.valid(k)), word_starts(&m, &prev))
        };
        (ends[0], words[0]) = edge(0);
        if blocks > 2 {
            let (inner_ends, inner_words) = (&mut ends[1..blocks - 1], &mut words[1..blocks - 1]);
            let pairs = inner_ends
                .iter_mut()
                .zip(inner_words.iter_mut())
                .zip(c.from(1).zip(c.from(0)));
            for ((e, w), (m, prev)) in pairs {
                (*e, *w) = (ends_of(&m, &prev, u64::MAX), word_starts(&m, &prev));
            }
        }
        if blocks > 1 {
            (ends[blocks - 1], words[blocks - 1]) = edge(blocks - 1);
        }
        let out = if WORDY { &mut *stretches } else { &mut *coarse };
        let mut open = (0usize, 0usize);
        for (k, (&e, &w)) in ends.iter().zip(words.iter()).enumerate() {
            end_stretches(e, w, 64 * k, &mut open, out);
        }
        // The end of the run ends the last stretch.
        if open.1 >= MIN_WORDS {
            if WORDY {
                stretches.push((open.0, n));
            } else {
                coarse.push((open.0, n));
            }
        }
        for &stretch in coarse.iter() {
            stretches_within(c, stretch, stretches);
        }
    }
    let (lower, alnum) = (&c.lower[..], &c.alnum[..]);
    for &(s, e) in stretches.iter() {
        if (Letters::<LEVEL> { run, lower, s, e }).list_words_in_a_row() {
            mark(marks, s, e);
        }
    }
    // The marked stretches, widened to whole tokens; the whole run where most of it is
    // marked (where most tokens hold a digit, skipping the rest saves less than the walk's
    // stops and starts cost).
    ranges.clear();
    if marks.iter().map(|m| m.count_ones() as usize).sum::<usize>() * 2 > n {
        ranges.push((0, n));
        return;
    }
    let is_alnum = |i: usize| alnum[i / 64] >> (i % 64) & 1 == 1;
    let mut done = 0;
    let mut marked = 0;
    while let Some(mut s) = next_set(marks, done) {
        let mut e = next_clear(marks, s).min(n);
        // From the first byte of the token at `s` (`done` is a boundary already), to the end
        // of the token at `e - 1`.
        if is_alnum(s) {
            s = run_start(alnum, s).max(done);
        }
        if is_alnum(e - 1) {
            e = next_clear(alnum, e).min(n);
        }
        match ranges.last_mut() {
            // Nothing but separators since the last one (no token): one walk.
            Some(last) if next_set(alnum, done).is_none_or(|t| t >= s) => last.1 = e,
            _ => ranges.push((s, e)),
        }
        marked += e - s;
        done = e;
    }
    if (n - marked) < WHOLE_RUN_GAP * ranges.len() {
        ranges.clear();
        ranges.push((0, n));
    }
}

/// Walk a run whole when its stretches skipped are shorter than this on average.
const WHOLE_RUN_GAP: usize = 8;

/// The runs of lower-case letters of a stretch `s..e` between two breakers that has 12 starts
/// of lower-case tokens or more: it is marked when 12 of them in a row are words of the BIP-39
/// list.
///
/// The words of a seed run are lower-case tokens, each one run of lower-case letters, with
/// no other such run between two of them (a lower-case token is a word of the run or ends it):
/// a run of 12 list words is 12 runs in a row that are list words, as `SeedRuns::word` reads
/// them (after an `\n` escape). Runs of letters that are not words (in a token with a
/// capital or a digit) are looked up all the same: looking up more is walking more.
struct Letters<'a, const LEVEL: u8> {
    run: &'a [u8],
    lower: &'a [u64],
    s: usize,
    e: usize,
}

impl<const LEVEL: u8> Letters<'_, LEVEL> {
    /// The starts of runs of lower-case letters in block `k`, within `s..e`.
    #[inline(always)]
    fn starts(&self, k: usize) -> u64 {
        let l = self.lower[k];
        let prev = if k > 0 { self.lower[k - 1] } else { 0 };
        let mut starts = l & !back(l, prev, 1);
        if k == self.s / 64 {
            starts &= !below((self.s % 64) as u32);
        }
        if k == (self.e - 1) / 64 {
            starts &= below(((self.e - 1) % 64) as u32 + 1);
        }
        starts
    }

    /// The `n`th start (`n >= 1`) at `from` or after.
    #[inline(always)]
    fn nth(&self, from: usize, mut n: u32) -> Option<usize> {
        let last = (self.e - 1) / 64;
        let mut k = from / 64;
        if k > last {
            return None;
        }
        let mut m = self.starts(k) & !below((from % 64) as u32);
        loop {
            let c = m.count_ones();
            if c >= n {
                return Some(64 * k + nth_set_bit::<LEVEL>(m, n) as usize);
            }
            n -= c;
            k += 1;
            if k > last {
                return None;
            }
            m = self.starts(k);
        }
    }

    /// The start before `at` (`at` itself a start), if any.
    #[inline(always)]
    fn before(&self, at: usize) -> Option<usize> {
        let first = self.s / 64;
        let mut k = at / 64;
        let mut m = self.starts(k) & below((at % 64) as u32);
        while m == 0 {
            if k == first {
                return None;
            }
            k -= 1;
            m = self.starts(k);
        }
        Some(64 * k + 63 - m.leading_zeros() as usize)
    }

    /// Whether the run of letters starting at `start` is a word of the list.
    #[inline(always)]
    fn is_word(&self, start: usize) -> bool {
        let (run, lower) = (self.run, self.lower);
        // The run's end: the first byte that is not a lower-case letter.
        let mut k = start / 64;
        let mut end = start + (!(lower[k] >> (start % 64))).trailing_zeros() as usize;
        while end == 64 * (k + 1) && k + 1 < lower.len() {
            k += 1;
            end += (!lower[k]).trailing_zeros() as usize;
        }
        let end = end.min(run.len());
        // `\nability` in a JSON string as sent: the escape is part of the separator.
        let escaped =
            start > 0 && run[start - 1] == b'\\' && matches!(run[start], b'n' | b't' | b'r');
        bip39_word_index_in(run, start + usize::from(escaped), end).is_some()
    }

    /// Whether 12 runs in a row are list words. Like `SeedRuns`, from the last of 12 back: a
    /// miss rules out every window of 12 holding it, so most of prose is dismissed with one
    /// look-up in 12 runs.
    #[inline(always)]
    fn list_words_in_a_row(&self) -> bool {
        let mut from = self.s;
        // Every start from `from` to `hits` is known to be a list word.
        let mut hits = None;
        while let Some(top) = self.nth(from, MIN_WORDS as u32) {
            let mut at = top;
            let mut count = 0;
            loop {
                if hits.is_some_and(|h| at <= h) {
                    return true;
                }
                if !self.is_word(at) {
                    from = at + 1;
                    hits = (at < top).then_some(top);
                    break;
                }
                count += 1;
                if count == MIN_WORDS {
                    return true;
                }
                match self.before(at) {
                    Some(b) if b >= from => at = b,
                    _ => return true,
                }
            }
        }
        false
    }
}

/// The longest run of text walked whole, without planning: a token or two.
const SHORT_RUN: usize = 24;

/// Calls `f(start, end)` with the stretches of `run` (a run of text, see
/// [`crate::text_runs::for_each_text_run`]) that the walk must see, in order, each made of
/// whole tokens (it starts and ends at a boundary of tokens).
pub(crate) fn for_each_range(
    run: &[u8],
    want: Want,
    scratch: &mut Scratch,
    mut f: impl FnMut(usize, usize),
) {
    let n = run.len();
    if n <= SHORT_RUN {
        if n > 0 {
            f(0, n);
        }
        return;
    }
    plan(run, want, scratch);
    for &(s, e) in &scratch.ranges {
        f(s, e);
    }
}

/// The place of the `n`th set bit of `m` (`1 <= n <= m.count_ones()`).
#[inline(always)]
fn nth_set_bit<const LEVEL: u8>(mut m: u64, n: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if LEVEL == WITH_VBMI {
        // SAFETY: only `plan_vbmi`, compiled for BMI2 and called on a CPU with AVX-512 VBMI
        // (where `pdep` is one fast instruction: not so on AMD before Zen 3), asks for it.
        return unsafe { std::arch::x86_64::_pdep_u64(1 << (n - 1), m) }.trailing_zeros();
    }
    // A loop of a varying count: a mispredicted branch at its end.
    for _ in 1..n {
        m &= m - 1;
    }
    m.trailing_zeros()
}

/// The first bit of the run of set bits of `bits` that reaches `at`.
#[inline(always)]
fn run_start(bits: &[u64], at: usize) -> usize {
    let mut w = at / 64;
    let mut m = !bits[w] & below((at % 64) as u32);
    while m == 0 {
        if w == 0 {
            return 0;
        }
        w -= 1;
        m = !bits[w];
    }
    64 * w + 64 - m.leading_zeros() as usize
}

#[cfg(test)]
mod tests {
    use super::super::tokens::for_each_token;
    use super::super::{DIGIT, is_alnum};
    use super::*;
    use crate::text_runs::Paths;
    use proptest::prelude::*;

    fn scalar_masks(block: &[u8]) -> Masks {
        let mut m = Masks::default();
        for (k, &b) in block.iter().enumerate() {
            let bit = |yes: bool| u64::from(yes) << k;
            m.alnum |= bit(b.is_ascii_alphanumeric());
            m.digit |= bit(b.is_ascii_digit());
            m.upper |= bit(b.is_ascii_uppercase());
            m.lower |= bit(b.is_ascii_lowercase());
            m.breaker |= bit(is_breaker_byte(b));
            m.sep |= bit(b == b' ' || b == b'-');
        }
        m
    }

    fn same(a: Masks, b: Masks) -> bool {
        (a.alnum, a.digit, a.upper, a.lower, a.breaker, a.sep)
            == (b.alnum, b.digit, b.upper, b.lower, b.breaker, b.sep)
    }

    #[test]
    fn masks_of_every_byte_at_every_place() {
        for len in 0..=64usize {
            for b in 0..=255u8 {
                for at in [0, len / 2, len.saturating_sub(1)] {
                    let mut block = vec![b' '; len];
                    if len > 0 {
                        block[at] = b;
                    }
                    let want = scalar_masks(&block);
                    assert!(same(masks(&block), want), "{b:#x} at {at} of {len}");
                    #[cfg(target_arch = "x86_64")]
                    if *AVX2 {
                        // SAFETY: the CPU has AVX2.
                        assert!(same(unsafe { masks_avx2(&block) }, want));
                    }
                    #[cfg(target_arch = "x86_64")]
                    if crate::text_runs::vbmi() {
                        // SAFETY: the CPU has AVX-512 VBMI.
                        assert!(same(unsafe { masks_vbmi(&block) }, want));
                    }
                }
            }
        }
        // The breaker bytes are the printable bytes that end a seed run wherever they are.
        let breakers: Vec<u8> = (0..=255u8).filter(|&b| is_breaker_byte(b)).collect();
        assert_eq!(breakers, b"!$%&+/<=>?@^_`{}~");
    }

    #[test]
    fn nth_set_bit_both_ways() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let m = x & (x >> 3);
            for n in 1..=m.count_ones() {
                let want = (0..64)
                    .filter(|&i| m >> i & 1 == 1)
                    .nth(n as usize - 1)
                    .unwrap();
                assert_eq!(nth_set_bit::<BASELINE>(m, n), want);
                #[cfg(target_arch = "x86_64")]
                if crate::text_runs::vbmi() {
                    // SAFETY (of the `pdep` inside): the CPU has BMI2, as every AVX-512 CPU.
                    assert_eq!(unsafe { nth_set_bit_vbmi(m, n) }, want);
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "bmi2")]
    fn nth_set_bit_vbmi(m: u64, n: u32) -> u32 {
        nth_set_bit::<WITH_VBMI>(m, n)
    }

    #[test]
    fn runs_within_a_block() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Long runs of set bits now and then.
            let m = x | (x >> 3) | (x >> 9);
            for k in 1..=64 {
                let want = (0..64).fold(0u64, |acc, i| {
                    let run = i + k <= 64 && (i..i + k).all(|j| m >> j & 1 == 1);
                    acc | u64::from(run) << i
                });
                assert_eq!(runs_from(m, k as u32), want, "{m:#x} {k}");
            }
        }
    }

    /// A run of text: tokens of every length (some past 64 bytes), separators, breakers.
    fn run_text() -> impl Strategy<Value = Vec<u8>> {
        let token = (0u8..4, 1usize..140, any::<u64>()).prop_map(|(kind, len, seed)| {
            let alphabet: &[u8] = match kind {
                0 => b"abcdefghijklmnopqrstuvwxyz",
                1 => b"0123456789",
                2 => b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
                _ => b"0123456789abcdefABCDEFxyz",
            };
            let mut x = seed | 1;
            // Mostly short tokens, as in text.
            let len = if seed % 4 == 0 { len } else { 1 + len % 12 };
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect::<Vec<u8>>()
        });
        let gap = prop::collection::vec(
            prop::sample::select(b" \t\n\r,.\"'()[]|*\\#:;-!$%&+/<=>?@^_`{}~".to_vec()),
            1..16,
        );
        prop::collection::vec((token, gap), 0..40).prop_map(|parts| {
            let mut out = Vec::new();
            for (t, g) in parts {
                out.extend_from_slice(&t);
                out.extend_from_slice(&g);
            }
            out
        })
    }

    /// The ranges of `run`: in order, apart, made of whole tokens, holding every token a rule
    /// other than the seed phrase looks at; the same with both kinds of masks.
    fn check_ranges(run: &[u8], want: Want) {
        let ranges = |paths: Paths| {
            paths.force();
            let mut scratch = Scratch::default();
            let mut ranges = Vec::new();
            for_each_range(run, want, &mut scratch, |s, e| ranges.push((s, e)));
            Paths::Native.force();
            ranges
        };
        let got = ranges(Paths::Native);
        assert_eq!(got, ranges(Paths::Avx2));
        assert_eq!(got, ranges(Paths::Baseline));
        let alnum = |i: usize| is_alnum(run[i]);
        let mut last = 0;
        for &(s, e) in &got {
            assert!(last <= s && s < e && e <= run.len(), "{got:?}");
            assert!(s == 0 || !alnum(s - 1) || !alnum(s), "{s}");
            assert!(e == run.len() || !alnum(e - 1) || !alnum(e), "{e}");
            last = e;
        }
        for_each_token(run, |a, b, bits| {
            let grouped = run.get(b).is_some_and(|&c| c == b' ' || c == b'-')
                && run.get(b + 1).is_some_and(u8::is_ascii_digit);
            let needed = (want.all_digits && bits & DIGIT != 0)
                || (want.digits && bits & DIGIT != 0 && (b - a >= 4 || (bits == DIGIT && grouped)))
                || (want.long && b - a >= LONG_TOKEN as usize);
            if needed {
                assert!(
                    got.iter().any(|&(s, e)| s <= a && b <= e),
                    "{a}..{b} not in {got:?}"
                );
            }
        });
    }

    /// The stretches the old way: every breaker of every block worked out, in one pass.
    fn stretches_reference(run: &[u8]) -> Vec<(usize, usize)> {
        let n = run.len();
        let mut prev = Masks::default();
        let mut open = (0, 0);
        let mut out = Vec::new();
        for k in 0..n.div_ceil(64) {
            let base = 64 * k;
            let m = scalar_masks(&run[base..(base + 64).min(n)]);
            let valid = below((n - base).min(64) as u32);
            end_stretches(
                breakers(&m, &prev, valid),
                word_starts(&m, &prev),
                base,
                &mut open,
                &mut out,
            );
            prev = m;
        }
        if open.1 >= MIN_WORDS {
            out.push((open.0, n));
        }
        out
    }

    /// Text where stretches of 12 words and more are common: list words, short and long words,
    /// list numbers, capitals and breakers, separators of every length.
    fn wordy_text() -> impl Strategy<Value = Vec<u8>> {
        let words: Vec<&str> = super::super::bip39::BIP39_ENGLISH.lines().collect();
        let piece = prop_oneof![
            8 => prop::sample::select(words).prop_map(|w| w.as_bytes().to_vec()),
            1 => prop::sample::select(vec!["a", "to", "of", "it", "abstraction", "xyz", "zzzz"])
                .prop_map(|w| w.as_bytes().to_vec()),
            1 => prop::sample::select(vec!["1.", "12)", "123", "The", "A", "x9", "9x", "=", "/", "_"])
                .prop_map(|w| w.as_bytes().to_vec()),
        ];
        let gap = prop::collection::vec(prop::sample::select(b" \n\t,\"-.:".to_vec()), 1..15);
        prop::collection::vec((piece, gap), 0..120).prop_map(|parts| {
            let mut out = Vec::new();
            for (p, g) in parts {
                out.extend_from_slice(&p);
                out.extend_from_slice(&g);
            }
            out
        })
    }

    fn check_stretches(run: &[u8]) {
        let want = Want {
            digits: true,
            all_digits: false,
            long: true,
            seeds: true,
        };
        let expected = stretches_reference(run);
        let mut ranges = Vec::new();
        for paths in Paths::ALL {
            paths.force();
            let mut scratch = Scratch::default();
            plan(run, want, &mut scratch);
            Paths::Native.force();
            assert_eq!(scratch.stretches, expected, "{paths:?}");
            ranges.push(scratch.ranges);
        }
        // The stretches' words looked up the same way on every path.
        assert!(ranges.windows(2).all(|w| w[0] == w[1]), "{ranges:?}");
        // Both ways to the stretches, whichever the run looks like.
        let mut scratch = Scratch::default();
        classify::<BASELINE>(run, &mut scratch.classes);
        plan_with::<BASELINE, true>(run, want, &mut scratch);
        assert_eq!(scratch.stretches, expected, "every breaker at once");
        plan_with::<BASELINE, false>(run, want, &mut scratch);
        assert_eq!(
            scratch.stretches, expected,
            "capitals and breaker bytes first"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Working out every breaker only between capitals and breaker bytes 12 words apart
        /// finds the stretches a pass over every block finds.
        #[test]
        fn stretches_are_those_of_every_breaker(run in wordy_text()) {
            check_stretches(&run);
        }

        #[test]
        fn stretches_are_those_of_every_breaker_in_mixed_text(run in run_text()) {
            check_stretches(&run);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn ranges_hold_every_token_a_rule_looks_at(run in run_text()) {
            for (digits, all_digits, long, seeds) in [
                (true, false, true, true),
                (true, true, true, true),
                (true, false, false, false),
                (true, true, false, false),
                (false, false, true, false),
                (false, false, true, true),
                (false, false, false, true),
            ] {
                let want = Want { digits, all_digits, long, seeds };
                check_ranges(&run, want);
            }
        }
    }
}
