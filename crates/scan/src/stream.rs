//! Scanning a body chunk by chunk without buffering it: each chunk is scanned together with
//! the tail of what came before (as long as the longest match), so a secret split across
//! chunks is found once, at its offset in the whole stream.

use std::collections::HashSet;
use std::sync::Arc;

use crate::engine::{Engine, Finding, PairedKeywords};

/// A finding with offsets into the whole stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFinding {
    pub rule: usize,
    /// The secret's span in the stream.
    pub start: u64,
    pub end: u64,
    /// The whole match's span in the stream.
    pub match_start: u64,
    pub match_end: u64,
}

impl StreamFinding {
    /// The finding in the coordinates of a window starting at stream offset `base`.
    pub fn local(&self, base: u64) -> crate::Finding {
        crate::Finding {
            rule: self.rule,
            start: (self.start - base) as usize,
            end: (self.end - base) as usize,
            match_start: self.match_start.saturating_sub(base) as usize,
            match_end: (self.match_end - base) as usize,
        }
    }
}

pub struct StreamScanner {
    engine: Arc<Engine>,
    /// The last `overlap` bytes already scanned.
    carry: Vec<u8>,
    /// Stream offset of `carry[0]`.
    base: u64,
    overlap: usize,
    /// (rule, start) of findings already reported: the carry is scanned again with each
    /// chunk, and this keeps each finding to one report.
    reported: HashSet<(usize, u64)>,
    buf: Vec<u8>,
    base_of_buf: u64,
    found: Vec<Finding>,
}

impl StreamScanner {
    pub fn new(engine: Arc<Engine>) -> Self {
        let overlap = engine.max_len();
        StreamScanner {
            engine,
            carry: Vec::new(),
            base: 0,
            overlap,
            reported: HashSet::new(),
            buf: Vec::new(),
            base_of_buf: 0,
            found: Vec::new(),
        }
    }

    /// The text the last `feed` scanned (carry + chunk) and the stream offset of its first
    /// byte: context for snippets.
    pub fn window(&self) -> (u64, &[u8]) {
        (self.base_of_buf, &self.buf)
    }

    /// Bytes fed so far.
    pub fn position(&self) -> u64 {
        self.base + self.carry.len() as u64
    }

    /// The longest match: how much of the stream a redactor must hold back.
    pub fn overlap(&self) -> usize {
        self.overlap
    }

    /// The bytes carried into the next chunk (a match that may still be forming).
    pub fn carry(&self) -> &[u8] {
        &self.carry
    }

    /// Moves past `skipped` without scanning it, keeping its tail as context for the next
    /// chunk. For a decoded view over bytes that needed no decoding: the raw view scanned
    /// the same text, and a secret reaching into the next chunk is still seen whole.
    pub fn skip(&mut self, skipped: &[u8]) {
        if skipped.len() >= self.overlap {
            self.base += (self.carry.len() + skipped.len() - self.overlap) as u64;
            self.carry.clear();
            self.carry
                .extend_from_slice(&skipped[skipped.len() - self.overlap..]);
        } else {
            self.carry.extend_from_slice(skipped);
            let excess = self.carry.len().saturating_sub(self.overlap);
            self.carry.drain(..excess);
            self.base += excess as u64;
        }
        let base = self.base;
        self.reported.retain(|&(_, start)| start >= base);
    }

    /// Matches the last `feed` left open because they touch the end of what has arrived:
    /// each would be reported if the stream ended here, and may still grow if it goes on.
    /// For a caller that must decide now (blocking a stream before the bytes that complete
    /// a command leave); nothing is marked as reported.
    pub fn open_findings(&self) -> Vec<StreamFinding> {
        let end = self.buf.len();
        self.found
            .iter()
            .filter(|f| f.match_end == end && end > 0)
            .map(|f| StreamFinding {
                rule: f.rule,
                start: self.base_of_buf + f.start as u64,
                end: self.base_of_buf + f.end as u64,
                match_start: self.base_of_buf + f.match_start as u64,
                match_end: self.base_of_buf + f.match_end as u64,
            })
            .collect()
    }

    /// The end of the stream: reports the matches that were waiting for more data.
    pub fn finish(&mut self, out: &mut Vec<StreamFinding>) {
        if self.carry.is_empty() {
            return;
        }
        self.found.clear();
        self.engine.scan(&self.carry, &mut self.found);
        self.buf.clear();
        self.buf.extend_from_slice(&self.carry);
        self.base_of_buf = self.base;
        self.report_found(usize::MAX, out);
    }

    /// The last chunk of the stream: scanned once with what is carried, and every finding
    /// reported (what `feed` then `finish` report, without scanning the carry twice).
    pub fn feed_last(&mut self, chunk: &[u8], out: &mut Vec<StreamFinding>) {
        if chunk.is_empty() {
            self.finish(out);
            return;
        }
        self.buf.clear();
        self.base_of_buf = self.base;
        self.buf.extend_from_slice(&self.carry);
        self.buf.extend_from_slice(chunk);
        self.found.clear();
        self.engine.scan(&self.buf, &mut self.found);
        self.report_found(usize::MAX, out);
        // The stream is over: nothing is carried.
        self.base += self.buf.len() as u64;
        self.carry.clear();
    }

    /// Reports the findings of the last scan (offsets into `buf`, which starts at `base`)
    /// not reported before and not ending at `open_end`.
    fn report_found(&mut self, open_end: usize, out: &mut Vec<StreamFinding>) {
        for f in &self.found {
            if f.match_end == open_end {
                continue;
            }
            let start = self.base + f.start as u64;
            if self.reported.insert((f.rule, start)) {
                out.push(StreamFinding {
                    rule: f.rule,
                    start,
                    end: self.base + f.end as u64,
                    match_start: self.base + f.match_start as u64,
                    match_end: self.base + f.match_end as u64,
                });
            }
        }
    }

    /// Scans the next chunk; new findings are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<StreamFinding>) {
        if chunk.is_empty() {
            return;
        }
        let tail = self.load(chunk);
        let carry_from = self
            .engine
            .scan_with_carry(&self.buf, &mut self.found, tail);
        self.carry_on(carry_from, out);
    }

    /// [`StreamScanner::feed`] of the same chunk to two scanners, with one keyword walk
    /// (`pair`, from `a`'s engine paired with `b`'s) where the text one scans ends the text
    /// the other scans (their carries are both the stream's last bytes, one longer). False,
    /// and nothing done, where the carries differ: the caller feeds each.
    pub(crate) fn feed_paired(
        a: &mut StreamScanner,
        b: &mut StreamScanner,
        pair: &PairedKeywords,
        chunk: &[u8],
        out: [&mut Vec<StreamFinding>; 2],
    ) -> bool {
        let (la, lb) = (a.carry.len(), b.carry.len());
        let from = if a.carry.ends_with(&b.carry) {
            [0, la - lb]
        } else if b.carry.ends_with(&a.carry) {
            [lb - la, 0]
        } else {
            return false;
        };
        if chunk.is_empty() {
            return true;
        }
        let tails = [a.load(chunk), b.load(chunk)];
        let longer = if from[0] == 0 { &a.buf } else { &b.buf };
        let mut hits: [Vec<(usize, usize, u32)>; 2] = Default::default();
        pair.hits(longer, from, &mut hits);
        let [out_a, out_b] = out;
        for (side, (scanner, out)) in [(a, out_a), (b, out_b)].into_iter().enumerate() {
            let carry_from = scanner.engine.scan_with_carry_listed(
                &scanner.buf,
                &mut scanner.found,
                tails[side],
                &hits[side],
                pair.rules(side),
            );
            scanner.carry_on(carry_from, out);
        }
        true
    }

    /// The carry and `chunk` into `buf`, to be scanned; returns where the tail (what may
    /// reach into the next chunk) starts.
    fn load(&mut self, chunk: &[u8]) -> usize {
        self.buf.clear();
        self.base_of_buf = self.base;
        self.buf.extend_from_slice(&self.carry);
        self.buf.extend_from_slice(chunk);
        self.found.clear();
        self.buf.len().saturating_sub(self.overlap)
    }

    /// Reports what the scan of `buf` found and keeps from `carry_from` on for the next.
    fn carry_on(&mut self, carry_from: usize, out: &mut Vec<StreamFinding>) {
        let tail = self.buf.len().saturating_sub(self.overlap);
        // A match touching the end may go on in the next chunk (half a key would otherwise be
        // reported, by a catch-all, before the whole key is seen): it is found again next
        // time, or by `finish`.
        self.report_found(self.buf.len(), out);
        // Only what may still be part of a match goes into the next scan.
        let cut = carry_from.max(tail);
        self.base += cut as u64;
        self.carry.clear();
        self.carry.extend_from_slice(&self.buf[cut..]);
        let base = self.base;
        self.reported.retain(|&(_, start)| start >= base);
    }
}
