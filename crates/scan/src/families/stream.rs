//! [`FamilyScanner`] over a stream: each chunk is scanned with the last [`CARRY`] bytes of
//! what came before, so a value split across chunks is found once, at its stream offset.

use std::collections::HashSet;

use super::{CARRY, Check, Edges, FamilyFinding, FamilyRule, FamilyScanner};

/// A finding with offsets into the whole stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyStreamFinding {
    pub rule: FamilyRule,
    pub start: u64,
    pub end: u64,
    pub check: Check,
    pub test_value: bool,
}

pub struct FamilyStream {
    scanner: FamilyScanner,
    /// The last bytes already scanned, rescanned with the next chunk.
    carry: Vec<u8>,
    /// Stream offset of `carry[0]`.
    base: u64,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base_of_buf: u64,
    found: Vec<FamilyFinding>,
    /// (rule, start) of the findings reported, while they can be seen again.
    reported: HashSet<(FamilyRule, u64)>,
}

impl FamilyStream {
    pub fn new(scanner: FamilyScanner) -> FamilyStream {
        FamilyStream {
            scanner,
            carry: Vec::new(),
            base: 0,
            buf: Vec::new(),
            base_of_buf: 0,
            found: Vec::new(),
            reported: HashSet::new(),
        }
    }

    /// Bytes fed so far.
    pub fn position(&self) -> u64 {
        self.base + self.carry.len() as u64
    }

    /// The window the last call scanned and its stream offset (context for snippets).
    pub fn window(&self) -> (u64, &[u8]) {
        (self.base_of_buf, &self.buf)
    }

    /// Scans the next chunk; new findings are appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<FamilyStreamFinding>) {
        if chunk.is_empty() {
            return;
        }
        self.scan(chunk, false, out);
        let keep = self.buf.len().min(CARRY);
        let cut = self.buf.len() - keep;
        self.carry.clear();
        self.carry.extend_from_slice(&self.buf[cut..]);
        self.base += cut as u64;
        let base = self.base;
        self.reported.retain(|&(_, start)| start >= base);
    }

    /// The last chunk (may be empty): everything still open is judged and reported.
    pub fn feed_last(&mut self, chunk: &[u8], out: &mut Vec<FamilyStreamFinding>) {
        self.scan(chunk, true, out);
        self.base += self.buf.len() as u64;
        self.carry.clear();
        self.reported.clear();
    }

    /// The end of the stream.
    pub fn finish(&mut self, out: &mut Vec<FamilyStreamFinding>) {
        self.feed_last(&[], out);
    }

    fn scan(&mut self, chunk: &[u8], last: bool, out: &mut Vec<FamilyStreamFinding>) {
        self.buf.clear();
        self.base_of_buf = self.base;
        self.buf.extend_from_slice(&self.carry);
        self.buf.extend_from_slice(chunk);
        self.found.clear();
        let edges = Edges {
            starts_stream: self.base == 0,
            ends_stream: last,
        };
        self.scanner.scan_window(&self.buf, edges, &mut self.found);
        for f in &self.found {
            let start = self.base + f.start as u64;
            if self.reported.insert((f.rule, start)) {
                out.push(FamilyStreamFinding {
                    rule: f.rule,
                    start,
                    end: self.base + f.end as u64,
                    check: f.check,
                    test_value: f.test_value,
                });
            }
        }
    }
}
