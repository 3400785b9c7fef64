//! Scanning a body chunk by chunk without buffering it: each chunk is scanned together with
//! the tail of what came before (as long as the longest match), so a secret split across
//! chunks is found once, at its offset in the whole stream.

use std::collections::HashSet;

use crate::engine::{Engine, Finding};

/// A finding with offsets into the whole stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFinding {
    pub rule: usize,
    pub start: u64,
    pub end: u64,
}

pub struct StreamScanner<'e> {
    engine: &'e Engine,
    /// The last `overlap` bytes already scanned.
    carry: Vec<u8>,
    /// Stream offset of `carry[0]`.
    base: u64,
    overlap: usize,
    /// (rule, start) of findings already reported that may be seen again in the carry.
    reported: HashSet<(usize, u64)>,
    buf: Vec<u8>,
    found: Vec<Finding>,
}

impl<'e> StreamScanner<'e> {
    pub fn new(engine: &'e Engine) -> Self {
        StreamScanner {
            engine,
            carry: Vec::new(),
            base: 0,
            overlap: engine.max_len(),
            reported: HashSet::new(),
            buf: Vec::new(),
            found: Vec::new(),
        }
    }

    /// Bytes fed so far.
    pub fn position(&self) -> u64 {
        self.base + self.carry.len() as u64
    }

    /// Scans the next chunk; new findings are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamFinding>) {
        if chunk.is_empty() {
            return;
        }
        self.buf.clear();
        self.buf.extend_from_slice(&self.carry);
        self.buf.extend_from_slice(chunk);
        self.found.clear();
        self.engine.scan(&self.buf, &mut self.found);
        let carried = self.carry.len();
        for f in &self.found {
            // Entirely inside the carry: reported by the previous chunk's scan.
            if f.match_end <= carried {
                continue;
            }
            let start = self.base + f.start as u64;
            if self.reported.insert((f.rule, start)) {
                out.push(StreamFinding {
                    rule: f.rule,
                    start,
                    end: self.base + f.end as u64,
                });
            }
        }
        let keep = self.overlap.min(self.buf.len());
        let cut = self.buf.len() - keep;
        self.base += cut as u64;
        self.carry.clear();
        self.carry.extend_from_slice(&self.buf[cut..]);
        let base = self.base;
        self.reported.retain(|&(_, start)| start >= base);
    }
}
