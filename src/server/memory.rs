//! Giving memory back to the system after bursts of connections, and not on every request.

/// Keeps glibc from handing memory back to the system on every free: by default an arena's
/// free top above 128 KiB is returned at once, and blocks above 128 KiB get their own
/// mapping, so each megabyte body mapped, zeroed and unmapped its buffers again (a sixth of
/// the CPU of a 1 MiB download went to page faults). Memory is given back after bursts
/// instead ([`MemoryReturn`]).
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's thresholds; both values are in range.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
        }
    }
}

/// Gives freed memory back to the system after a burst of connections has closed, and when
/// the proxy falls idle (start-up's garbage included): glibc keeps it in its arenas otherwise
/// (RSS stayed at the peak after 1,000 connections closed; a trim took it back to near idle).
#[derive(Default)]
pub struct MemoryReturn {
    peak: usize,
    /// Trimmed since the last time a connection was open.
    idle_trimmed: bool,
}

impl MemoryReturn {
    /// Connections that must have been open for a trim to be worth it.
    const BURST: usize = 64;

    pub fn after_tick(&mut self, open: usize) {
        self.peak = self.peak.max(open);
        let after_burst = self.peak >= Self::BURST && open <= self.peak / 4;
        let idle = open == 0 && !self.idle_trimmed;
        if open > 0 {
            self.idle_trimmed = false;
        }
        if after_burst || idle {
            self.peak = open;
            self.idle_trimmed |= idle;
            // It walks the heap for a few milliseconds: not on a worker thread.
            tokio::task::spawn_blocking(|| {
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                // SAFETY: malloc_trim only releases free memory of this process's heap.
                unsafe {
                    libc::malloc_trim(0);
                }
            });
        }
    }
}
