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
