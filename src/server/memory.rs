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

/// Runs this command again, once, with glibc's per-thread caches of freed blocks (tcache)
/// turned off, unless the environment already sets them (`GLIBC_TUNABLES` naming
/// `glibc.malloc.tcache_count`: an operator's choice, or this process after the re-run).
/// glibc reads its tunables from the environment only, before `main`, hence the re-run; the
/// process id stays the same. Returns only if the re-run did not happen.
///
/// Why: each worker thread's cache keeps up to seven freed blocks of each of 64 sizes
/// wherever in the heap they were freed, and a worker keeps its cache while the process
/// lives. After a burst those blocks, scattered over tens of MB of heap, each kept a page
/// resident that `malloc_trim` cannot give back: 10 s after a 60 s soak, 958 pages (3.7 MB)
/// held only cached free blocks, and the proxy stood 6 MiB above idle instead of 1–2
/// (`bench/RESULTS.md`, "Memory after load"). Without the caches every small allocation
/// takes the one arena's lock; on 2 cores the proxy's CPU per request did not change
/// measurably.
///
/// Call it before any thread exists (it changes the environment).
pub fn reexec_with_allocator_tunables() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        const TCACHE_OFF: &str = "glibc.malloc.tcache_count=0";
        let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if current.contains("glibc.malloc.tcache_count") {
            return;
        }
        let tunables = if current.is_empty() {
            TCACHE_OFF.to_string()
        } else {
            format!("{current}:{TCACHE_OFF}")
        };
        let mut args = std::env::args_os();
        let Some(argv0) = args.next() else {
            return;
        };
        // /proc/self/exe: the running binary even if its path was replaced since (an
        // upgrade in place), so the re-run is the same version.
        let error = std::process::Command::new("/proc/self/exe")
            .arg0(argv0)
            .args(args)
            .env("GLIBC_TUNABLES", tunables)
            .exec();
        tracing::debug!(%error, "could not re-run with glibc's thread caches off");
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
    /// Ticks from start to the trim that follows start-up: 10 s.
    const STARTED_TICKS: u32 = 40;

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
        // Start-up (the detection engines built, the store opened) is over by then, even
        // for a proxy that is never without a connection.
        let started = self.ticks == Self::STARTED_TICKS;
        // What runs as a quiet spell begins (the record writer's last batch, its release of
        // SQLite's cache after 2 s) maps code the spell does not need again.
        let settled = open == 0 && peak == 0 && matches!(self.idle_ticks, 8 | 40);
        if after_burst || idle || look || dropped_trim || started || settled {
            if after_burst || idle {
                self.peak = open;
            }
            self.idle_trimmed |= idle;
            let always = after_burst || idle || dropped_trim || started || settled;
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
                #[cfg(target_os = "linux")]
                if always {
                    release_code_pages();
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

/// Unmaps the pages of the executable's read-only mappings (code, constants, the relocation
/// table) so that the next use maps them again from the page cache. Start-up runs code that
/// never runs again (parsing the config, compiling the detection rules, the dynamic loader's
/// 1.7 MB of relocations) and a burst runs code an idle proxy does not: those pages stayed
/// mapped and counted in the proxy's RSS, 16 MB of it at idle of which a few hundred KiB are
/// used afterwards. Only clean file pages are given up; a mapping that holds private copies
/// (relocated data, a debugger's breakpoint) is left alone, since dropping a copy would lose it.
#[cfg(target_os = "linux")]
fn release_code_pages() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Some(exe) = exe.to_str() else {
        return;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for (start, end) in clean_read_only_mappings(&smaps, exe) {
        // SAFETY: the range is a whole mapping of this process's executable, without write
        // permission and without private pages: MADV_DONTNEED only drops page-table entries
        // that the next access fills again with the same file contents.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
        }
    }
}

/// The `(start, end)` of each mapping of the file `path` in `smaps` (`/proc/self/smaps`)
/// that is not writable and has no anonymous (privately copied) pages.
fn clean_read_only_mappings(smaps: &str, path: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(kb) = line.strip_prefix("Anonymous:") {
            let anonymous = kb.trim().trim_end_matches("kB").trim() != "0";
            if let Some(range) = current.take()
                && !anonymous
            {
                out.push(range);
            }
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        // A mapping's header: range, perms, offset, device, inode, path.
        let name = fields.nth(3).unwrap_or("");
        current = (name == path && perms.len() == 4 && !perms.contains('w')).then_some((a, b));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_mappings_of_the_executable_are_released() {
        let smaps = "\
55ad04f29000-55ad054f4000 r--p 00000000 fd:01 123 /usr/bin/airlock
Rss:                3420 kB
Anonymous:             0 kB
55ad054f4000-55ad06249000 r-xp 005ca000 fd:01 123 /usr/bin/airlock
Anonymous:             0 kB
55ad06249000-55ad063f0000 r--p 0131e000 fd:01 123 /usr/bin/airlock
Anonymous:          1676 kB
55ad063f0000-55ad063f8000 rw-p 014c5000 fd:01 123 /usr/bin/airlock
Anonymous:            32 kB
55ad30a1c000-55ad30f62000 rw-p 00000000 00:00 0                          [heap]
Anonymous:          4008 kB
7f63e36b5000-7f63e380b000 r-xp 00026000 fd:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
";
        assert_eq!(
            clean_read_only_mappings(smaps, "/usr/bin/airlock"),
            vec![
                (0x55ad04f29000, 0x55ad054f4000),
                (0x55ad054f4000, 0x55ad06249000)
            ]
        );
    }

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
