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

/// Gives freed memory back to the system after a burst of connections has closed, when the
/// proxy falls idle (start-up's garbage included), and whenever the arenas hold more than
/// [`MemoryReturn::FREE_HELD`] free: glibc keeps up to `M_TRIM_THRESHOLD` free per arena
/// otherwise. A trim at the end of a burst alone was not enough: connections still closing
/// after it freed their buffers into arenas that then kept them (the heap held 10 MB in use
/// and 112 MB in all, 10 s after a 500-connection load).
#[derive(Default)]
pub struct MemoryReturn {
    peak: usize,
    /// Trimmed since the last time a connection was open.
    idle_trimmed: bool,
    ticks: u32,
}

impl MemoryReturn {
    /// Connections that must have been open for a trim to be worth it.
    const BURST: usize = 64;
    /// Free memory the arenas may hold before it is given back.
    const FREE_HELD: usize = 16 << 20;
    /// Ticks between two looks at how much the arenas hold free.
    const LOOK_EVERY: u32 = 8;

    pub fn after_tick(&mut self, open: usize) {
        self.peak = self.peak.max(open);
        self.ticks = self.ticks.wrapping_add(1);
        let after_burst = self.peak >= Self::BURST && open <= self.peak / 4;
        let idle = open == 0 && !self.idle_trimmed;
        if open > 0 {
            self.idle_trimmed = false;
        }
        let look = self.ticks.is_multiple_of(Self::LOOK_EVERY);
        if after_burst || idle || look {
            if after_burst || idle {
                self.peak = open;
            }
            self.idle_trimmed |= idle;
            let always = after_burst || idle;
            // It walks the heap for a few milliseconds: not on a worker thread.
            tokio::task::spawn_blocking(move || {
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                // SAFETY: mallinfo2 reads glibc's counters; malloc_trim only releases free
                // memory of this process's heap.
                unsafe {
                    if always || libc::mallinfo2().fordblks > Self::FREE_HELD {
                        libc::malloc_trim(0);
                    }
                }
                #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
                let _ = always;
            });
        }
    }
}
