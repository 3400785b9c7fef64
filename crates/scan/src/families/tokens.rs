//! The tokeniser of the text families: runs of ASCII letters and digits, each with the classes
//! of bytes it holds ([`DIGIT`], [`UPPER`], [`LOWER`], …).
//!
//! Tokens are found from per-64-byte bit masks of each class instead of a branch per byte:
//! in prose a token ends every five or six bytes, and a per-byte loop mispredicts its exit at
//! every one of them (that loop was most of the families' cost). On x86_64 the masks come from
//! SSE2 compares (part of the base instruction set), elsewhere from the class table.

use super::{CLASS, DIGIT, LOWER, LOWER_NON_HEX, UPPER, UPPER_NON_HEX};

/// One bit per byte of a block of at most 64 bytes, per class.
#[derive(Default, Clone, Copy)]
struct Masks {
    alnum: u64,
    digit: u64,
    upper: u64,
    lower: u64,
    upper_non_hex: u64,
    lower_non_hex: u64,
}

impl Masks {
    /// The classes of the bytes at bits `from..to` (`from < to <= 64`).
    fn classes(&self, from: u32, to: u32) -> u8 {
        let width = to - from;
        let range = if width == 64 {
            u64::MAX
        } else {
            ((1u64 << width) - 1) << from
        };
        let has = |m: u64, class: u8| if m & range != 0 { class } else { 0 };
        has(self.digit, DIGIT)
            | has(self.upper, UPPER)
            | has(self.lower, LOWER)
            | has(self.upper_non_hex, UPPER_NON_HEX)
            | has(self.lower_non_hex, LOWER_NON_HEX)
    }
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
        __m128i, _mm_and_si128, _mm_cmpgt_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8,
        _mm_or_si128, _mm_set1_epi8,
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
        m.digit |= bits!(digit, k);
        m.upper |= bits!(upper, k);
        m.lower |= bits!(lower, k);
        m.upper_non_hex |= bits!(within!(v, b'G', b'Z'), k);
        m.lower_non_hex |= bits!(within!(v, b'g', b'z'), k);
        m.alnum |= bits!(_mm_or_si128(digit, _mm_or_si128(upper, lower)), k);
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
fn masks(block: &[u8]) -> Masks {
    let mut m = Masks::default();
    for (k, &b) in block.iter().enumerate() {
        let c = CLASS[b as usize];
        let bit = |class: u8| u64::from(c & class != 0) << k;
        m.alnum |= u64::from(c != 0) << k;
        m.digit |= bit(DIGIT);
        m.upper |= bit(UPPER);
        m.lower |= bit(LOWER);
        m.upper_non_hex |= bit(UPPER_NON_HEX);
        m.lower_non_hex |= bit(LOWER_NON_HEX);
    }
    m
}

/// The shortest run of text that can hold a candidate of the text families (an IBAN, a card
/// or a phone number, with its separators, is longer).
pub(crate) const MIN_TEXT_RUN: usize = 8;

pub(crate) use crate::text_runs::for_each_text_run;

/// The longest text tokenised byte by byte.
const SHORT: usize = 16;

/// Calls `f(start, end, classes)` for every token of `hay`, in order.
#[inline(always)]
pub(crate) fn for_each_token(hay: &[u8], mut f: impl FnMut(usize, usize, u8)) {
    let n = hay.len();
    if n <= SHORT {
        // A token or two (what `skip.rs` hands on around a number): a byte loop is cheaper
        // than a block's masks.
        let mut i = 0;
        while i < n {
            let mut classes = CLASS[hay[i] as usize];
            if classes == 0 {
                i += 1;
                continue;
            }
            let start = i;
            i += 1;
            while i < n {
                let c = CLASS[hay[i] as usize];
                if c == 0 {
                    break;
                }
                classes |= c;
                i += 1;
            }
            f(start, i, classes);
        }
        return;
    }
    let mut base = 0;
    let mut open: Option<usize> = None;
    let mut classes = 0u8;
    while base < n {
        let len = (n - base).min(64) as u32;
        let m = masks(&hay[base..base + len as usize]);
        let mut at = 0u32;
        while at < len {
            match open {
                None => {
                    let rest = m.alnum >> at;
                    if rest == 0 {
                        break;
                    }
                    at += rest.trailing_zeros();
                    open = Some(base + at as usize);
                    classes = 0;
                }
                Some(start) => {
                    let rest = !m.alnum >> at;
                    let run = if rest == 0 {
                        64 - at
                    } else {
                        rest.trailing_zeros()
                    };
                    let to = (at + run).min(len);
                    classes |= m.classes(at, to);
                    at = to;
                    if to < len {
                        f(start, base + to as usize, classes);
                        open = None;
                    }
                }
            }
        }
        base += len as usize;
    }
    if let Some(start) = open {
        f(start, n, classes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(hay: &[u8]) -> Vec<(usize, usize, u8)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < hay.len() {
            if CLASS[hay[i] as usize] == 0 {
                i += 1;
                continue;
            }
            let (start, mut bits) = (i, 0);
            while i < hay.len() && CLASS[hay[i] as usize] != 0 {
                bits |= CLASS[hay[i] as usize];
                i += 1;
            }
            out.push((start, i, bits));
        }
        out
    }

    #[test]
    fn the_same_tokens_as_a_byte_loop() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"aAgG09 zZfF-_.\n\x80\xff\x7f/:";
        for len in [
            0usize, 1, 5, 15, 16, 17, 63, 64, 65, 127, 128, 129, 200, 1000,
        ] {
            for _ in 0..50 {
                let hay: Vec<u8> = (0..len)
                    .map(|_| {
                        let seed = next();
                        // Long tokens now and then, to cross block edges.
                        if seed.is_multiple_of(7) {
                            b'x'
                        } else {
                            alphabet[(seed >> 8) as usize % alphabet.len()]
                        }
                    })
                    .collect();
                let mut got = Vec::new();
                for_each_token(&hay, |s, e, c| got.push((s, e, c)));
                assert_eq!(got, scalar(&hay), "{hay:?}");
            }
        }
        // Text runs: the same as a byte loop over the text classes.
        for len in [0usize, 7, 8, 9, 63, 64, 65, 200, 1000] {
            for _ in 0..50 {
                let hay: Vec<u8> = (0..len)
                    .map(|_| {
                        let seed = next();
                        if seed.is_multiple_of(3) {
                            b'a'
                        } else {
                            (seed >> 8) as u8
                        }
                    })
                    .collect();
                let mut got = Vec::new();
                for_each_text_run(&hay, MIN_TEXT_RUN, |s, e| got.push((s, e)));
                let text = |b: u8| matches!(b, b' '..=b'~' | b'\t' | b'\n' | b'\r');
                let mut want = Vec::new();
                let mut i = 0;
                while i < hay.len() {
                    if !text(hay[i]) {
                        i += 1;
                        continue;
                    }
                    let s = i;
                    while i < hay.len() && text(hay[i]) {
                        i += 1;
                    }
                    if i - s >= MIN_TEXT_RUN {
                        want.push((s, i));
                    }
                }
                assert_eq!(got, want, "{hay:?}");
            }
        }
        let long = vec![b'q'; 300];
        let mut got = Vec::new();
        for_each_token(&long, |s, e, c| got.push((s, e, c)));
        assert_eq!(got, vec![(0, 300, LOWER | LOWER_NON_HEX)]);
    }
}
