//! Diagnostics (`tracing`) on stderr as JSON lines. Lines logged before the boot line are held
//! back and released right after it, so the boot line is always the first stderr line.

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::DiagLevel;

static RELEASED: AtomicBool = AtomicBool::new(false);
static HELD: Mutex<Vec<u8>> = Mutex::new(Vec::new());

pub fn init(level: DiagLevel) {
    let filter = EnvFilter::try_from_env("AIRLOCK_DIAG")
        .unwrap_or_else(|_| EnvFilter::new(format!("airlock={}", level.as_filter())));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(HeldStderr)
        .try_init();
}

/// Prints `first_line` (if any), then everything held back, and stops holding.
pub fn release(first_line: Option<&str>) {
    let held = std::mem::take(&mut *HELD.lock().unwrap_or_else(|p| p.into_inner()));
    let mut err = io::stderr().lock();
    if let Some(line) = first_line {
        let _ = writeln!(err, "{line}");
    }
    let _ = err.write_all(&held);
    let _ = err.flush();
    RELEASED.store(true, Ordering::SeqCst);
}

struct HeldStderr;

pub struct HeldWriter;

impl Write for HeldWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if RELEASED.load(Ordering::SeqCst) {
            return io::stderr().write_all(buf).map(|_| buf.len());
        }
        let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
        if RELEASED.load(Ordering::SeqCst) {
            drop(held);
            return io::stderr().write_all(buf).map(|_| buf.len());
        }
        held.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for HeldStderr {
    type Writer = HeldWriter;
    fn make_writer(&'a self) -> Self::Writer {
        HeldWriter
    }
}
