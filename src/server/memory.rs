//! Giving memory back to the system after bursts of connections.

/// Gives freed memory back to the system after a burst of connections has closed: glibc
/// keeps it in its arenas otherwise (RSS stayed at the peak after 1,000 connections closed;
/// a trim took it back to near idle).
#[derive(Default)]
pub struct MemoryReturn {
    peak: usize,
}

impl MemoryReturn {
    /// Connections that must have been open for a trim to be worth it.
    const BURST: usize = 64;

    pub fn after_tick(&mut self, open: usize) {
        self.peak = self.peak.max(open);
        if self.peak >= Self::BURST && open <= self.peak / 4 {
            self.peak = open;
            // It walks the heap for a few milliseconds: not on a worker thread.
            tokio::task::spawn_blocking(|| {
                // SAFETY: malloc_trim only releases free memory of this process's heap.
                unsafe { libc::malloc_trim(0) };
            });
        }
    }
}
