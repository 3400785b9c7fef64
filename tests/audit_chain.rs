//! Property tests of the audit chain: any single edit, deletion, swap or truncation of the
//! lines of a chain (split over rotated files, with restarts in it) is found, and an
//! untouched chain passes.

use airlock::record::chain::{
    BadLine, Chained, FileReport, GENESIS, Hash, HeadCheck, Source, Start, chain_record, verify,
};
use proptest::prelude::*;

/// A chain as the writer leaves it: files of lines, and the head naming the last line.
#[derive(Debug, Clone)]
struct Written {
    files: Vec<Vec<Vec<u8>>>,
}

fn write(records: &[String], file_starts: &[usize], restarts: &[usize]) -> Written {
    let mut prev: Hash = GENESIS;
    let mut files: Vec<Vec<Vec<u8>>> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let new_file = i == 0 || file_starts.contains(&i);
        if new_file {
            files.push(Vec::new());
        }
        let (line, hash) = chain_record(&prev, r, new_file || restarts.contains(&i));
        prev = hash;
        files.last_mut().unwrap().push(line.into_bytes());
    }
    Written { files }
}

impl Written {
    fn sources(&self) -> Vec<Source> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, lines)| Source {
                name: format!("file{i}"),
                bytes: lines
                    .iter()
                    .flat_map(|l| l.iter().copied().chain([b'\n']))
                    .collect(),
            })
            .collect()
    }

    /// What chain-head.json says after the writer's last flush.
    fn head(&self) -> HeadCheck {
        let source = self.files.len() - 1;
        let lines = &self.files[source];
        HeadCheck {
            source,
            line: lines.len() as u64,
            hash: Chained::parse(lines.last().unwrap()).unwrap().hash,
        }
    }

    /// (file, line) of the n-th line overall.
    fn locate(&self, mut n: usize) -> (usize, usize) {
        for (f, lines) in self.files.iter().enumerate() {
            if n < lines.len() {
                return (f, n);
            }
            n -= lines.len();
        }
        unreachable!("line {n} past the end")
    }

    fn total(&self) -> usize {
        self.files.iter().map(Vec::len).sum()
    }
}

fn check(w: &Written, head: &HeadCheck) -> Result<Vec<FileReport>, BadLine> {
    verify(&w.sources(), &Start::OneOf(vec![GENESIS]), Some(head))
}

fn records() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(("[ -~]{0,40}", any::<i64>(), any::<bool>()), 2..40).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (s, n, b))| serde_json::json!({"i": i, "s": s, "n": n, "b": b}).to_string())
            .collect()
    })
}

fn layout() -> impl Strategy<Value = (Vec<String>, Vec<usize>, Vec<usize>)> {
    records().prop_flat_map(|r| {
        let len = r.len();
        (
            Just(r),
            prop::collection::vec(1..len, 0..3),
            prop::collection::vec(1..len, 0..3),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn an_untouched_chain_holds((records, starts, restarts) in layout()) {
        let w = write(&records, &starts, &restarts);
        let reports = check(&w, &w.head()).unwrap();
        prop_assert_eq!(reports.iter().map(|r| r.lines).sum::<u64>(), records.len() as u64);
    }

    #[test]
    fn any_single_byte_edit_is_found(
        (records, starts, restarts) in layout(),
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut w = write(&records, &starts, &restarts);
        let head = w.head();
        let (f, l) = w.locate(pick.index(w.total()));
        let line = &mut w.files[f][l];
        let i = at.index(line.len());
        prop_assume!(line[i] != byte);
        line[i] = byte;
        prop_assert!(check(&w, &head).is_err(), "edit of byte {} of line {} of file {} passed", i, l + 1, f);
    }

    #[test]
    fn any_deleted_line_is_found((records, starts, restarts) in layout(), pick in any::<prop::sample::Index>()) {
        let mut w = write(&records, &starts, &restarts);
        let head = w.head();
        let (f, l) = w.locate(pick.index(w.total()));
        w.files[f].remove(l);
        prop_assert!(check(&w, &head).is_err(), "deleting line {} of file {} passed", l + 1, f);
    }

    #[test]
    fn any_swap_is_found(
        (records, starts, restarts) in layout(),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let mut w = write(&records, &starts, &restarts);
        let head = w.head();
        let (a, b) = (a.index(w.total()), b.index(w.total()));
        prop_assume!(a != b);
        let (fa, la) = w.locate(a);
        let (fb, lb) = w.locate(b);
        let tmp = w.files[fa][la].clone();
        w.files[fa][la] = w.files[fb][lb].clone();
        w.files[fb][lb] = tmp;
        let result = check(&w, &head);
        prop_assert!(result.is_err(), "swapping lines {} and {} passed", a, b);
        // Named at the first line that moved.
        let first = w.locate(a.min(b));
        let err = result.unwrap_err();
        prop_assert_eq!(err.name, format!("file{}", first.0));
        prop_assert_eq!(err.line, first.1 as u64 + 1);
    }

    #[test]
    fn any_truncation_is_found((records, starts, restarts) in layout(), cut in 1usize..2000) {
        let w = write(&records, &starts, &restarts);
        let head = w.head();
        // The files joined, cut short by `cut` bytes, split again where they were.
        let mut sources = w.sources();
        let mut left = cut;
        while left > 0 {
            let last = sources.last_mut().unwrap();
            let n = left.min(last.bytes.len());
            last.bytes.truncate(last.bytes.len() - n);
            left -= n;
            let emptied = last.bytes.is_empty();
            if emptied && sources.len() > 1 {
                sources.pop();
            } else if emptied {
                break;
            }
        }
        let head = HeadCheck { source: head.source.min(sources.len() - 1), ..head };
        prop_assert!(verify(&sources, &Start::OneOf(vec![GENESIS]), Some(&head)).is_err(), "cutting {} bytes passed", cut);
    }
}

#[test]
fn an_edit_is_named_at_its_line() {
    let records: Vec<String> = (0..10).map(|i| format!("{{\"i\":{i}}}")).collect();
    let mut w = write(&records, &[4], &[]);
    let head = w.head();
    w.files[1][2] = w.files[1][2]
        .iter()
        .map(|&b| if b == b'6' { b'7' } else { b })
        .collect();
    let err = check(&w, &head).unwrap_err();
    assert_eq!((err.name.as_str(), err.line), ("file1", 3), "{err}");
    assert!(err.message.contains("hash mismatch"), "{err}");
}
