//! What the fuzz targets share: reading control bytes off the front of an input, cutting the
//! rest into chunks the way a network might, and the built-in detection engines (compiled
//! once per process: hundreds of regexes).

use std::sync::{Arc, LazyLock};

use airlock_scan::{Catalogue, Engine, RuleKind};

/// Control bytes taken off the front of a fuzz input; past its end every read is zero, so
/// any input is usable.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// `data` cut into chunks of pseudo-random sizes drawn from `seed`: mostly short (a byte at
/// a time finds the carry-over bugs), sometimes long, sometimes the whole.
pub fn chunks(data: &[u8], seed: u32) -> Vec<&[u8]> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let r = next();
        let size = match r % 8 {
            0 => rest.len(),
            1..=3 => 1 + (r >> 8) as usize % 4,
            4..=5 => 1 + (r >> 8) as usize % 64,
            _ => 1 + (r >> 8) as usize % 2048,
        }
        .min(rest.len());
        let (a, b) = rest.split_at(size);
        out.push(a);
        rest = b;
    }
    out
}

fn catalogue() -> Arc<Catalogue> {
    static CATALOGUE: LazyLock<Arc<Catalogue>> = LazyLock::new(Catalogue::builtin);
    CATALOGUE.clone()
}

/// The engines the proxy builds (`detect::Detector::new` with nothing disabled).
pub struct Engines {
    pub secrets: Arc<Engine>,
    pub injections: Arc<Engine>,
    pub injections_raw: Arc<Engine>,
}

pub fn engines() -> &'static Engines {
    static ENGINES: LazyLock<Engines> = LazyLock::new(|| {
        let cat = catalogue();
        Engines {
            secrets: Arc::new(Engine::new(cat.clone(), |r| r.kind == RuleKind::Secret)),
            injections: Arc::new(Engine::new(cat.clone(), |r| {
                r.kind == RuleKind::Injection && !r.raw
            })),
            injections_raw: Arc::new(Engine::new(cat, |r| r.kind == RuleKind::Injection && r.raw)),
        }
    });
    &ENGINES
}
