//! Runs of text (printable ASCII, tab, line breaks) in bytes that may be binary: what the
//! keyword walk and the text families look at. Found from a 64-byte bit mask per block (SSE2
//! on x86_64), so a block of binary data without a long enough run costs a few instructions.

/// Calls `f(start, end)` for every run of text (printable ASCII, tab, line breaks) of at least
/// `min_len` bytes in `hay`, in order. Text is one run broken at most by a multi-byte
/// character; random binary data holds a run of 8 once in ~2,000 bytes, so the tokeniser
/// skips nearly all of it (a credential in a binary body, as in a protobuf string, is a run).
#[inline(always)]
pub(crate) fn for_each_text_run(hay: &[u8], min_len: usize, mut f: impl FnMut(usize, usize)) {
    debug_assert!((1..=64).contains(&min_len));
    let n = hay.len();
    let mut base = 0;
    let mut open: Option<usize> = None;
    while base < n {
        let len = (n - base).min(64) as u32;
        let t = text_mask(&hay[base..base + len as usize]);
        // Most blocks of binary data hold no run of 8 text bytes: only a run reaching the
        // block's end can still grow into one.
        let mut long = t;
        for k in 1..min_len {
            long &= t >> k;
        }
        if open.is_none() && long == 0 {
            let top = if len == 64 {
                t.leading_ones()
            } else {
                (t << (64 - len)).leading_ones().min(len)
            };
            if top > 0 {
                open = Some(base + (len - top) as usize);
            }
            base += len as usize;
            continue;
        }
        let mut at = 0u32;
        while at < len {
            match open {
                None => {
                    let rest = t >> at;
                    if rest == 0 {
                        break;
                    }
                    at += rest.trailing_zeros();
                    open = Some(base + at as usize);
                }
                Some(start) => {
                    let rest = !t >> at;
                    let to = if rest == 0 {
                        len
                    } else {
                        (at + rest.trailing_zeros()).min(len)
                    };
                    at = to;
                    if to < len {
                        let end = base + to as usize;
                        if end - start >= min_len {
                            f(start, end);
                        }
                        open = None;
                    }
                }
            }
        }
        base += len as usize;
    }
    if let Some(start) = open
        && n - start >= min_len
    {
        f(start, n);
    }
}

/// `block` (at most 64 bytes) as 64 bytes, zero-padded in `padded` when shorter: the
/// 64-byte mask builders read whole 16-byte lanes.
pub(crate) fn block64<'a>(block: &'a [u8], padded: &'a mut [u8; 64]) -> &'a [u8; 64] {
    match block.try_into() {
        Ok(full) => full,
        Err(_) => {
            padded[..block.len()].copy_from_slice(block);
            padded
        }
    }
}

/// One bit per byte of `block` (at most 64 bytes): printable ASCII, tab, line feed, carriage
/// return.
#[cfg(target_arch = "x86_64")]
fn text_mask(block: &[u8]) -> u64 {
    let mut padded = [0u8; 64];
    let bytes = block64(block, &mut padded);
    // SAFETY: SSE2 is part of every x86_64 target.
    unsafe { text_mask_sse2(bytes) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn text_mask_sse2(bytes: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut m = 0u64;
    for k in 0..4 {
        // SAFETY: `bytes` holds 64 bytes, so the 16 read at 16 * k are in bounds.
        let v = unsafe { _mm_loadu_si128(bytes.as_ptr().add(16 * k).cast::<__m128i>()) };
        // Signed compares: bytes of 0x80 and above are negative, below ' '.
        let printable = _mm_and_si128(
            _mm_cmpgt_epi8(v, _mm_set1_epi8(b' ' as i8 - 1)),
            _mm_cmplt_epi8(v, _mm_set1_epi8(b'~' as i8 + 1)),
        );
        let tab_lf = _mm_and_si128(
            _mm_cmpgt_epi8(v, _mm_set1_epi8(b'\t' as i8 - 1)),
            _mm_cmplt_epi8(v, _mm_set1_epi8(b'\n' as i8 + 1)),
        );
        let cr = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\r' as i8));
        let text = _mm_or_si128(printable, _mm_or_si128(tab_lf, cr));
        m |= u64::from(_mm_movemask_epi8(text) as u16) << (16 * k);
    }
    m
}

/// One bit per byte of `block` equal to `byte`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn byte_mask(block: &[u8; 64], byte: u8) -> u64 {
    // SAFETY: SSE2 is part of every x86_64 target.
    unsafe { byte_mask_sse2(block, byte) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn byte_mask_sse2(bytes: &[u8; 64], byte: u8) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let needle = _mm_set1_epi8(byte as i8);
    let mut m = 0u64;
    for k in 0..4 {
        // SAFETY: `bytes` holds 64 bytes, so the 16 read at 16 * k are in bounds.
        let v = unsafe { _mm_loadu_si128(bytes.as_ptr().add(16 * k).cast::<__m128i>()) };
        m |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, needle)) as u16) << (16 * k);
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn byte_mask(block: &[u8; 64], byte: u8) -> u64 {
    block
        .iter()
        .enumerate()
        .fold(0, |m, (k, &b)| m | u64::from(b == byte) << k)
}

#[cfg(not(target_arch = "x86_64"))]
fn text_mask(block: &[u8]) -> u64 {
    block.iter().enumerate().fold(0, |m, (k, &b)| {
        m | u64::from(matches!(b, b' '..=b'~' | b'\t' | b'\n' | b'\r')) << k
    })
}

/// Which bytes a run found by [`first_run`] is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunBytes {
    /// Bytes at or above this one (unsigned): `+` and up is what base64 and hex can hold,
    /// `!` and up is anything but a space, a line break or a control.
    AtLeast(u8),
    /// Hex digits and the delimiters of delimited hex (`:`, `-`, a space).
    DelimitedHex,
}

impl RunBytes {
    #[cfg(any(test, not(target_arch = "x86_64")))]
    fn has(self, b: u8) -> bool {
        match self {
            RunBytes::AtLeast(floor) => b >= floor,
            RunBytes::DelimitedHex => b.is_ascii_hexdigit() || matches!(b, b':' | b'-' | b' '),
        }
    }

    /// One bit per byte of `block` that is one of these bytes.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn mask(self, block: &[u8; 64]) -> u64 {
        // SAFETY: SSE2 is part of every x86_64 target.
        unsafe { run_mask_sse2(self, block) }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn mask(self, block: &[u8; 64]) -> u64 {
        block
            .iter()
            .enumerate()
            .fold(0, |m, (k, &b)| m | u64::from(self.has(b)) << k)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn run_mask_sse2(bytes: RunBytes, block: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
        _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut m = 0u64;
    for k in 0..4 {
        // SAFETY: `block` holds 64 bytes, so the 16 read at 16 * k are in bounds.
        let v = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * k).cast::<__m128i>()) };
        let yes = match bytes {
            // Unsigned `v >= floor`: the larger of the two is `v` itself.
            RunBytes::AtLeast(floor) => {
                _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(floor as i8)), v)
            }
            RunBytes::DelimitedHex => {
                // Signed compares: bytes of 0x80 and above are negative, below every range.
                let within = |v: __m128i, lo: u8, hi: u8| {
                    _mm_and_si128(
                        _mm_cmpgt_epi8(v, _mm_set1_epi8(lo as i8 - 1)),
                        _mm_cmplt_epi8(v, _mm_set1_epi8(hi as i8 + 1)),
                    )
                };
                // `0`-`9` and `:` are one range; letters folded to lower case.
                let digit_colon = within(v, b'0', b':');
                let letter = within(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', b'f');
                let dash_space = _mm_or_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'-' as i8)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8)),
                );
                _mm_or_si128(_mm_or_si128(digit_colon, letter), dash_space)
            }
        };
        m |= u64::from(_mm_movemask_epi8(yes) as u16) << (16 * k);
    }
    m
}

/// Bit `i`: bits `i .. i + k` of `m` are all set (`1 <= k <= 64`; runs reaching past the
/// block's end are not seen).
#[inline(always)]
pub(crate) fn runs_from(m: u64, k: u32) -> u64 {
    // `acc`: the starts of runs of `acc_len` set bits; `p`: of `p_len` (powers of two).
    let (mut acc, mut acc_len) = (u64::MAX, 0);
    let (mut p, mut p_len) = (m, 1);
    let mut k = k;
    loop {
        if k & 1 == 1 {
            acc &= p >> acc_len;
            acc_len += p_len;
        }
        k >>= 1;
        if k == 0 {
            break;
        }
        p &= p >> p_len;
        p_len *= 2;
    }
    acc
}

/// Where in `text` the first run of at least `min` bytes (`1..=64`) of `bytes` starts.
/// Read 64 bytes at a time from bit masks: text without such a run (prose, code, JSON for
/// the base64 and hex finders) is passed over at a few instructions per 64 bytes, where a
/// byte-by-byte or word-by-word look costs one to several per byte.
pub(crate) fn first_run<const MIN: usize>(text: &[u8], bytes: RunBytes) -> Option<usize> {
    const { assert!(MIN >= 1 && MIN <= 64) };
    #[cfg(target_arch = "x86_64")]
    if vbmi() {
        // SAFETY: the CPU has AVX-512 (F and BW).
        return unsafe { first_run_avx512::<MIN>(text, bytes) };
    }
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2.
        return unsafe { first_run_avx2::<MIN>(text, bytes) };
    }
    let mut run = OpenRun::default();
    let whole = text.len() / 64;
    for k in 0..whole {
        let block = text[64 * k..64 * k + 64].try_into().expect("64 bytes");
        if let Some(at) = run.step::<MIN>(64 * k, bytes.mask(block)) {
            return Some(at);
        }
    }
    run.last::<MIN>(text, whole, bytes)
}

/// Whether this CPU has AVX2 (nearly every x86_64 CPU since 2013).
#[cfg(target_arch = "x86_64")]
static AVX2: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| is_x86_feature_detected!("avx2"));

/// Whether to take the AVX2 paths: where the CPU has it, unless a test asks for the others.
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    *AVX2 && !baseline_forced()
}

/// Whether to take the AVX-512 VBMI paths (byte permutes: Intel since Ice Lake, AMD since
/// Zen 4): where the CPU has it, unless a test asks for the baseline ones.
#[cfg(target_arch = "x86_64")]
pub(crate) fn vbmi() -> bool {
    static VBMI: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi")
    });
    *VBMI && !baseline_forced() && !avx2_forced()
}

#[cfg(test)]
thread_local! {
    static BASELINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static AVX2_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Which instructions the paths with several versions take on this thread, for tests: what
/// the CPU has, AVX2 (not AVX-512 VBMI), or SSE2 (baseline).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Paths {
    Native,
    Avx2,
    Baseline,
}

#[cfg(test)]
impl Paths {
    pub(crate) const ALL: [Paths; 3] = [Paths::Native, Paths::Avx2, Paths::Baseline];

    pub(crate) fn force(self) {
        BASELINE.with(|b| b.set(self == Paths::Baseline));
        AVX2_ONLY.with(|b| b.set(self == Paths::Avx2));
    }
}

#[cfg(test)]
fn avx2_forced() -> bool {
    AVX2_ONLY.with(std::cell::Cell::get)
}

#[cfg(all(not(test), not(feature = "bench-paths")))]
#[inline(always)]
fn avx2_forced() -> bool {
    false
}

#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn baseline_forced() -> bool {
    BASELINE.with(std::cell::Cell::get)
}

#[cfg(all(not(test), not(feature = "bench-paths"), target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn baseline_forced() -> bool {
    false
}

/// The paths `SCAN_PATHS` asks for (`avx2`, `baseline`; anything else: what the CPU has), read
/// once: (baseline, AVX2 only). Built only for the benchmark (feature `bench-paths`).
#[cfg(all(not(test), feature = "bench-paths"))]
static BENCH_PATHS: std::sync::LazyLock<(bool, bool)> =
    std::sync::LazyLock::new(|| match std::env::var("SCAN_PATHS").as_deref() {
        Ok("baseline") => (true, false),
        Ok("avx2") => (false, true),
        _ => (false, false),
    });

#[cfg(all(not(test), feature = "bench-paths"))]
fn avx2_forced() -> bool {
    BENCH_PATHS.1
}

#[cfg(all(not(test), feature = "bench-paths", target_arch = "x86_64"))]
pub(crate) fn baseline_forced() -> bool {
    BENCH_PATHS.0
}

/// [`first_run`] with AVX-512: a 64-byte block's mask in one compare (a few for delimited
/// hex), straight into a mask register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn first_run_avx512<const MIN: usize>(text: &[u8], bytes: RunBytes) -> Option<usize> {
    use std::arch::x86_64::{
        __m512i, _mm512_cmpeq_epi8_mask, _mm512_cmpge_epu8_mask, _mm512_cmple_epu8_mask,
        _mm512_loadu_si512, _mm512_or_si512, _mm512_set1_epi8, _mm512_sub_epi8,
    };
    let mut run = OpenRun::default();
    let whole = text.len() / 64;
    for k in 0..whole {
        // SAFETY: block `k` is whole, so the 64 bytes read at 64 * k are in bounds.
        let v = unsafe { _mm512_loadu_si512(text.as_ptr().add(64 * k).cast::<__m512i>()) };
        let m = match bytes {
            RunBytes::AtLeast(floor) => _mm512_cmpge_epu8_mask(v, _mm512_set1_epi8(floor as i8)),
            RunBytes::DelimitedHex => {
                // `0`..=`:` and `a`..=`f` in either case, by unsigned distance from the first.
                let digit_colon = _mm512_cmple_epu8_mask(
                    _mm512_sub_epi8(v, _mm512_set1_epi8(b'0' as i8)),
                    _mm512_set1_epi8((b':' - b'0') as i8),
                );
                let lower = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
                let letter = _mm512_cmple_epu8_mask(
                    _mm512_sub_epi8(lower, _mm512_set1_epi8(b'a' as i8)),
                    _mm512_set1_epi8((b'f' - b'a') as i8),
                );
                digit_colon
                    | letter
                    | _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b'-' as i8))
                    | _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(b' ' as i8))
            }
        };
        if let Some(at) = run.step::<MIN>(64 * k, m) {
            return Some(at);
        }
    }
    run.last::<MIN>(text, whole, bytes)
}

/// [`first_run`] with AVX2: a 64-byte block's mask in two compares a class.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn first_run_avx2<const MIN: usize>(text: &[u8], bytes: RunBytes) -> Option<usize> {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256,
        _mm256_max_epu8, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
    };
    let mut run = OpenRun::default();
    let whole = text.len() / 64;
    for k in 0..whole {
        let mut m = 0u64;
        for half in 0..2 {
            // SAFETY: block `k` is whole, so the 32 bytes read at 64 * k + 32 * half are in
            // bounds.
            let v = unsafe {
                _mm256_loadu_si256(text.as_ptr().add(64 * k + 32 * half).cast::<__m256i>())
            };
            let yes = match bytes {
                RunBytes::AtLeast(floor) => {
                    _mm256_cmpeq_epi8(_mm256_max_epu8(v, _mm256_set1_epi8(floor as i8)), v)
                }
                RunBytes::DelimitedHex => {
                    let within = |v: __m256i, lo: u8, hi: u8| {
                        _mm256_and_si256(
                            _mm256_cmpgt_epi8(v, _mm256_set1_epi8(lo as i8 - 1)),
                            _mm256_cmpgt_epi8(_mm256_set1_epi8(hi as i8 + 1), v),
                        )
                    };
                    let digit_colon = within(v, b'0', b':');
                    let letter = within(_mm256_or_si256(v, _mm256_set1_epi8(0x20)), b'a', b'f');
                    let dash_space = _mm256_or_si256(
                        _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'-' as i8)),
                        _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b' ' as i8)),
                    );
                    _mm256_or_si256(_mm256_or_si256(digit_colon, letter), dash_space)
                }
            };
            m |= u64::from(_mm256_movemask_epi8(yes) as u32) << (32 * half);
        }
        if let Some(at) = run.step::<MIN>(64 * k, m) {
            return Some(at);
        }
    }
    run.last::<MIN>(text, whole, bytes)
}

/// The run of class bytes reaching the end of the blocks read so far.
#[derive(Default)]
struct OpenRun {
    len: usize,
}

impl OpenRun {
    /// The block at `base` with mask `m`: where a run of `MIN` starts, if one does by its end.
    #[inline(always)]
    fn step<const MIN: usize>(&mut self, base: usize, m: u64) -> Option<usize> {
        let head = m.trailing_ones() as usize;
        if self.len + head >= MIN {
            return Some(base - self.len);
        }
        let inner = runs_from(m, MIN as u32);
        if inner != 0 {
            return Some(base + inner.trailing_zeros() as usize);
        }
        self.len = if head == 64 {
            self.len + 64
        } else {
            m.leading_ones() as usize
        };
        None
    }

    /// The last, short block (after `whole` whole ones), if any.
    fn last<const MIN: usize>(
        mut self,
        text: &[u8],
        whole: usize,
        bytes: RunBytes,
    ) -> Option<usize> {
        let rest = &text[64 * whole..];
        if rest.is_empty() {
            return None;
        }
        let mut padded = [0u8; 64];
        padded[..rest.len()].copy_from_slice(rest);
        let m = bytes.mask(&padded) & ((1u64 << rest.len()) - 1);
        self.step::<MIN>(64 * whole, m)
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;

    fn first_run_n(text: &[u8], min: usize, bytes: RunBytes) -> Option<usize> {
        match min {
            1 => first_run::<1>(text, bytes),
            8 => first_run::<8>(text, bytes),
            16 => first_run::<16>(text, bytes),
            24 => first_run::<24>(text, bytes),
            47 => first_run::<47>(text, bytes),
            63 => first_run::<63>(text, bytes),
            _ => first_run::<64>(text, bytes),
        }
    }

    /// The first run by brute force.
    fn brute(text: &[u8], min: usize, bytes: RunBytes) -> Option<usize> {
        let mut start = 0;
        for (i, &b) in text.iter().enumerate() {
            if !bytes.has(b) {
                start = i + 1;
            } else if i + 1 - start >= min {
                return Some(start);
            }
        }
        None
    }

    #[test]
    fn the_first_run_is_the_one_a_byte_by_byte_look_finds() {
        // Runs of every length around the thresholds, at every offset across block bounds,
        // of bytes on both sides of each class's edges.
        let pieces: [&[u8]; 19] = [
            b" ",
            b"\n",
            b"*",
            b"+",
            b"a0",
            b"de:ad:",
            b"g",
            b"\xc3\xa9",
            b"-",
            b"Z",
            // The edges of the hex classes: `/` `0` `9` `:` `;`, `@` `A` `F` `G`, `` ` `` `a`
            // `f` `g`.
            b"/",
            b"9",
            b";",
            b"@",
            b"AF",
            b"G",
            b"`",
            b"f",
            b"\x7f",
        ];
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for bytes in [
            RunBytes::AtLeast(b'+'),
            RunBytes::AtLeast(b'!'),
            RunBytes::DelimitedHex,
        ] {
            for min in [1, 8, 16, 24, 47, 63, 64] {
                for round in 0..300 {
                    let mut text = Vec::new();
                    let len = 1 + round % 200;
                    while text.len() < len {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        // Mostly bytes of the class, so that long runs happen.
                        let p = if rng.is_multiple_of(4) {
                            pieces[(rng >> 8) as usize % pieces.len()]
                        } else {
                            &b"a1-:+~"[(rng >> 8) as usize % 6..][..1]
                        };
                        text.extend_from_slice(p);
                    }
                    for paths in Paths::ALL {
                        paths.force();
                        assert_eq!(
                            first_run_n(&text, min, bytes),
                            brute(&text, min, bytes),
                            "{bytes:?} min {min} {paths:?} in {:?}",
                            String::from_utf8_lossy(&text)
                        );
                    }
                    Paths::Native.force();
                }
            }
        }
    }
}

/// Whether `text` holds a byte of 0x80 or above, or a byte `a` or `b` at which `at(i)` says
/// yes (in order, stopping at the first). One pass of 64-byte masks: where `a` or `b` is
/// frequent (`&&` in code), a byte search would start again at each.
pub(crate) fn high_or_any_at(text: &[u8], a: u8, b: u8, mut at: impl FnMut(usize) -> bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        let whole = text.len() / 64;
        for k in 0..whole {
            // SAFETY: the CPU has AVX2, and block `k` is whole.
            let (high, either) = unsafe { high_and_either_avx2(text, 64 * k, a, b) };
            if high != 0 || bits_say_yes(64 * k, either, &mut at) {
                return true;
            }
        }
        return last_block(text, whole, a, b, &mut at);
    }
    let whole = text.len() / 64;
    for k in 0..whole {
        let block = text[64 * k..64 * k + 64].try_into().expect("64 bytes");
        let (high, either) = high_and_either_64(block, a, b);
        if high != 0 || bits_say_yes(64 * k, either, &mut at) {
            return true;
        }
    }
    last_block(text, whole, a, b, &mut at)
}

/// `at` of the bytes whose bits are set in `bits` (of the block at `base`), until one says yes.
#[inline(always)]
fn bits_say_yes(base: usize, mut bits: u64, at: &mut impl FnMut(usize) -> bool) -> bool {
    while bits != 0 {
        if at(base + bits.trailing_zeros() as usize) {
            return true;
        }
        bits &= bits - 1;
    }
    false
}

/// [`high_or_any_at`] of the last, short block (after `whole` whole ones).
fn last_block(text: &[u8], whole: usize, a: u8, b: u8, at: &mut impl FnMut(usize) -> bool) -> bool {
    let rest = &text[64 * whole..];
    if rest.is_empty() {
        return false;
    }
    let mut padded = [0u8; 64];
    padded[..rest.len()].copy_from_slice(rest);
    let valid = (1u64 << rest.len()) - 1;
    let (high, either) = high_and_either_64(&padded, a, b);
    high & valid != 0 || bits_say_yes(64 * whole, either & valid, at)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn high_and_either_avx2(text: &[u8], from: usize, a: u8, b: u8) -> (u64, u64) {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };
    debug_assert!(from + 64 <= text.len());
    let (va, vb) = (_mm256_set1_epi8(a as i8), _mm256_set1_epi8(b as i8));
    let (mut high, mut either) = (0u64, 0u64);
    for half in 0..2 {
        // SAFETY: the caller passes a whole block: 64 bytes from `from` are in bounds.
        let v =
            unsafe { _mm256_loadu_si256(text.as_ptr().add(from + 32 * half).cast::<__m256i>()) };
        high |= u64::from(_mm256_movemask_epi8(v) as u32) << (32 * half);
        let hit = _mm256_or_si256(_mm256_cmpeq_epi8(v, va), _mm256_cmpeq_epi8(v, vb));
        either |= u64::from(_mm256_movemask_epi8(hit) as u32) << (32 * half);
    }
    (high, either)
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn high_and_either_64(block: &[u8; 64], a: u8, b: u8) -> (u64, u64) {
    // SAFETY: SSE2 is part of every x86_64 target.
    unsafe { high_and_either_sse2(block, a, b) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn high_and_either_sse2(block: &[u8; 64], a: u8, b: u8) -> (u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let (va, vb) = (_mm_set1_epi8(a as i8), _mm_set1_epi8(b as i8));
    let (mut high, mut either) = (0u64, 0u64);
    for k in 0..4 {
        // SAFETY: `block` holds 64 bytes, so the 16 read at 16 * k are in bounds.
        let v = unsafe { _mm_loadu_si128(block.as_ptr().add(16 * k).cast::<__m128i>()) };
        high |= u64::from(_mm_movemask_epi8(v) as u16) << (16 * k);
        let hit = _mm_or_si128(_mm_cmpeq_epi8(v, va), _mm_cmpeq_epi8(v, vb));
        either |= u64::from(_mm_movemask_epi8(hit) as u16) << (16 * k);
    }
    (high, either)
}

#[cfg(not(target_arch = "x86_64"))]
fn high_and_either_64(block: &[u8; 64], a: u8, b: u8) -> (u64, u64) {
    block.iter().enumerate().fold((0, 0), |(h, e), (k, &x)| {
        (
            h | u64::from(x >= 0x80) << k,
            e | u64::from(x == a || x == b) << k,
        )
    })
}
