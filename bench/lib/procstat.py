"""CPU and memory of a process tree, read from /proc.

CPU-seconds = utime + stime (+ cutime + cstime, the time of children already reaped) summed
over the root process and all its live descendants: every tick is counted exactly once, so
squid's forked helpers (security_file_certgen, ...) are included. RSS = VmRSS summed over the
same processes (shared pages of forked helpers are counted in each; see README caveats).
"""
import os
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces/parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2 :].split()
    # rest[0] = state (field 3); field N is rest[N - 3].
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return ppid, utime + stime + cutime + cstime


def tree(root: int) -> list[int]:
    """root and all its live descendants."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _stat(int(name))
        if st is not None:
            children.setdefault(st[0], []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root: int) -> float:
    ticks = 0
    for pid in tree(root):
        st = _stat(pid)
        if st is not None:
            ticks += st[1]
    return ticks / CLK_TCK


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def rss_kb(root: int) -> int:
    return sum(_status_kb(p, "VmRSS") for p in tree(root))


def hwm_kb(root: int) -> int:
    """Sum of per-process peak RSS (VmHWM): exact for one process, an upper bound for many."""
    return sum(_status_kb(p, "VmHWM") for p in tree(root))


def nprocs(root: int) -> int:
    return len(tree(root))


class RssSampler:
    """Samples the tree's RSS every `interval` seconds in a thread; keeps the overall and a
    resettable window maximum (the window is one scenario)."""

    def __init__(self, root: int, interval: float = 0.1):
        self.root = root
        self.interval = interval
        self.max_kb = 0
        self.window_max_kb = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> int:
        kb = rss_kb(self.root)
        with self._lock:
            self.max_kb = max(self.max_kb, kb)
            self.window_max_kb = max(self.window_max_kb, kb)
        return kb

    def reset_window(self):
        with self._lock:
            self.window_max_kb = 0

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)


def wait_settle(seconds: float):
    time.sleep(seconds)
