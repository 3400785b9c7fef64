//! Giving memory back to the system after bursts of connections, and not on every request.

/// Keeps glibc from handing memory back to the system on every free: by default an arena's
/// free top above 128 KiB is returned at once, and blocks above 128 KiB get their own
/// mapping, so each megabyte body mapped, zeroed and unmapped its buffers again (a sixth of
/// the CPU of a 1 MiB download went to page faults). Memory is given back after bursts
/// instead ([`MemoryReturn`]).
///
/// One arena for all threads: `malloc_trim` gives back the top of the main arena only, and a
/// thread arena keeps its top until it exceeds `M_TRIM_THRESHOLD`, so after a burst each
/// worker's arena held megabytes of freed pages (10 s after a 30 s soak: 35 MiB RSS with
/// per-thread arenas, 30 MiB with one, idle 23). The threads' caches (tcache) serve most
/// small allocations without the arena's lock; the bench showed no CPU difference on 2
/// cores (`bench/RESULTS.md`, "Memory after load").
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's own variables, when set, win: an operator's tuning is not overridden.
        for (var, param, value) in [
            ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD, 8 << 20),
            ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD, 32 << 20),
            ("MALLOC_ARENA_MAX", libc::M_ARENA_MAX, 1),
        ] {
            if std::env::var_os(var).is_none() {
                // SAFETY: mallopt only changes glibc's settings; the values are in range.
                unsafe {
                    libc::mallopt(param, value);
                }
            }
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
    /// Ticks in a row without an open connection.
    idle_ticks: u32,
    /// Ticks until the trim that follows closing the idle upstream connections.
    trim_in: Option<u32>,
    /// A burst has been seen since the upstream connections were last closed.
    burst_since_drop: bool,
}

/// What the server does after a tick besides trimming.
#[derive(Debug, PartialEq, Eq)]
pub enum AfterTick {
    Nothing,
    /// No connection has been open for [`MemoryReturn::IDLE_POOL_TICKS`] after a burst:
    /// close the idle upstream connections (their buffers are most of what a burst leaves in
    /// use).
    DropIdleUpstreams,
}

impl MemoryReturn {
    /// Connections that must have been open for a trim to be worth it.
    const BURST: usize = 64;
    /// Free memory the arenas may hold before it is given back.
    const FREE_HELD: usize = 16 << 20;
    /// Ticks between two looks at how much the arenas hold free.
    const LOOK_EVERY: u32 = 8;
    /// Ticks (of 250 ms) without a connection, after a burst, before the idle upstream
    /// connections are closed: 5 s. Without a burst the pool keeps its 90 s idle timeout, so
    /// that an agent's next LLM call after a quiet spell finds its upstream connection.
    const IDLE_POOL_TICKS: u32 = 20;
    /// Ticks between closing the upstream connections and the trim: their tasks end first.
    const TRIM_AFTER_DROP: u32 = 2;

    /// `open`: client connections open now; `peak`: the most open at once since the last
    /// tick (a burst can open and close all its connections between two ticks).
    pub fn after_tick(&mut self, open: usize, peak: usize) -> AfterTick {
        self.peak = self.peak.max(open).max(peak);
        self.burst_since_drop |= open.max(peak) >= Self::BURST;
        self.ticks = self.ticks.wrapping_add(1);
        let after_burst = self.peak >= Self::BURST && open <= self.peak / 4;
        // Connections that came and went since the last tick end a quiet spell too.
        let idle = open == 0 && peak == 0 && !self.idle_trimmed;
        if open > 0 || peak > 0 {
            self.idle_trimmed = false;
            self.idle_ticks = 0;
        } else {
            self.idle_ticks = self.idle_ticks.saturating_add(1);
        }
        let dropped_trim = match self.trim_in {
            Some(0) => {
                self.trim_in = None;
                true
            }
            Some(n) => {
                self.trim_in = Some(n - 1);
                false
            }
            None => false,
        };
        let look = self.ticks.is_multiple_of(Self::LOOK_EVERY);
        if after_burst || idle || look || dropped_trim {
            if after_burst || idle {
                self.peak = open;
            }
            self.idle_trimmed |= idle;
            let always = after_burst || idle || dropped_trim;
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
        if self.idle_ticks == Self::IDLE_POOL_TICKS && self.burst_since_drop {
            self.burst_since_drop = false;
            self.trim_in = Some(Self::TRIM_AFTER_DROP);
            return AfterTick::DropIdleUpstreams;
        }
        AfterTick::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_upstreams_are_dropped_once_per_quiet_spell_after_a_burst() {
        let mut m = MemoryReturn::default();
        let drops = |m: &mut MemoryReturn, open: usize, ticks: u32| {
            (0..ticks)
                .filter(|_| m.after_tick(open, open) == AfterTick::DropIdleUpstreams)
                .count()
        };
        assert_eq!(drops(&mut m, 3, 100), 0, "connections open: the pools stay");
        assert_eq!(
            drops(&mut m, 0, 200),
            0,
            "no burst: the pools keep their timeout"
        );
        assert_eq!(drops(&mut m, MemoryReturn::BURST, 4), 0);
        assert_eq!(drops(&mut m, 0, MemoryReturn::IDLE_POOL_TICKS - 1), 0);
        assert_eq!(
            drops(&mut m, 0, 1),
            1,
            "5 s without a connection after a burst"
        );
        assert_eq!(drops(&mut m, 0, 200), 0, "once per quiet spell");
        assert_eq!(drops(&mut m, 1, 1), 0);
        assert_eq!(
            drops(&mut m, 0, 200),
            0,
            "a quiet spell without a burst before it"
        );
        assert_eq!(drops(&mut m, 100, 1), 0);
        assert_eq!(
            drops(&mut m, 0, MemoryReturn::IDLE_POOL_TICKS),
            1,
            "the next burst's"
        );
        assert_eq!(m.after_tick(0, MemoryReturn::BURST), AfterTick::Nothing);
        assert_eq!(
            drops(&mut m, 0, MemoryReturn::IDLE_POOL_TICKS),
            1,
            "a burst that opened and closed between two ticks counts too"
        );
    }
}
