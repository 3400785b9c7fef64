#!/usr/bin/env python3
"""airlock benchmark driver: one upstream, one load generator, four ways to reach it.

Started by bench/run (which installs the tools, builds airlock and makes the certificates).
For each of direct / airlock / mitmdump / squid (ssl-bump) it runs the same scenarios with
the same client and the same request counts, reads the proxy's CPU time and RSS from /proc,
and writes the raw results as JSON; bench/lib/report.py turns them into Markdown.

Every address used is 127.0.0.1; every load loop is bounded by a request count and a timeout.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import procstat  # noqa: E402

HOST = "bench.test"
# The bench upstream's ports, once chosen (airlock's connect_ports must name them).
UPSTREAM_PORTS: list[int] = []
LIB = Path(__file__).resolve().parent

# name, title, scheme, path, full count, quick count, extra oha args
SCENARIOS = [
    ("http_1k_ka", "HTTP GET 1 KiB, keep-alive", "http", "/1k", 20000, 2000, []),
    ("https_1k_ka", "HTTPS (intercepted) GET 1 KiB, keep-alive", "https", "/1k", 20000, 2000, []),
    ("https_1k_newconn", "HTTPS (intercepted) GET 1 KiB, new connection per request", "https", "/1k",
     2000, 300, ["--disable-keepalive"]),
    ("https_post_1m", "HTTPS (intercepted) POST 1 MiB, keep-alive", "https", "/upload", 2000, 200,
     ["-m", "POST", "-T", "application/octet-stream", "-D", "{body}"]),
    ("https_get_1m", "HTTPS (intercepted) GET 1 MiB, keep-alive", "https", "/1m", 2000, 200, []),
    # Not oha: a Python asyncio client that never resumes a TLS session, so every connection
    # costs the proxy a full handshake (oha's TLS client resumes where the proxy allows it).
    ("https_1k_newconn_full", "HTTPS (intercepted) GET 1 KiB, new connection, full TLS handshake (Python client)",
     "https", "/1k", 2000, 300, ["py-newconn"]),
]
CONCURRENCY = 32


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen, name: str, timeout: float = 15.0) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop within {timeout}s of SIGTERM; SIGKILL")
            proc.kill()
            proc.wait(5)
    return proc.returncode


def tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return ""


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


# --------------------------------------------------------------------------- upstream

class Upstream:
    """nginx on two loopback ports (HTTP, HTTPS) serving /1k, /1m, /upload (POST sink that
    reads the whole body) and /sse (proxied unbuffered to a tiny Python SSE server)."""

    def __init__(self, work: Path, certs: Path, python: str):
        self.work = work / "nginx"
        self.certs = certs
        self.python = python
        self.http_port = free_port()
        self.https_port = free_port()
        self.sse_port = free_port()
        self.nginx = None
        self.sse = None

    def start(self) -> None:
        w = self.work
        for d in ("www", "tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "logs"):
            (w / d).mkdir(parents=True, exist_ok=True)
        (w / "www" / "1k").write_bytes(os.urandom(1024))
        (w / "www" / "1m").write_bytes(os.urandom(1024 * 1024))
        conf = f"""
user root;
worker_processes 1;
daemon off;
pid {w}/nginx.pid;
error_log {w}/logs/error.log warn;
worker_rlimit_nofile 65536;
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    default_type application/octet-stream;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_max_body_size 2m;
    client_body_buffer_size 2m;
    client_body_temp_path {w}/tmp/body;
    proxy_temp_path {w}/tmp/proxy;
    fastcgi_temp_path {w}/tmp/fastcgi;
    uwsgi_temp_path {w}/tmp/uwsgi;
    scgi_temp_path {w}/tmp/scgi;
    server {{
        listen 127.0.0.1:{self.http_port} reuseport backlog=4096;
        listen 127.0.0.1:{self.https_port} ssl reuseport backlog=4096;
        server_name {HOST};
        ssl_certificate {self.certs}/upstream-chain.pem;
        ssl_certificate_key {self.certs}/upstream.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:BENCH:10m;
        root {w}/www;
        location = /1k {{ }}
        location = /1m {{ }}
        location = /upload {{
            echo_read_request_body;
            echo "ok";
        }}
        location = /sse {{
            proxy_pass http://127.0.0.1:{self.sse_port};
            proxy_buffering off;
            proxy_cache off;
            proxy_http_version 1.1;
            proxy_read_timeout 30s;
        }}
    }}
}}
"""
        (w / "nginx.conf").write_text(conf)
        self.sse = subprocess.Popen(
            [self.python, str(LIB / "sse_server.py"), "--port", str(self.sse_port), "--hold", "1.0"],
            stdout=subprocess.DEVNULL, stderr=open(w / "logs" / "sse.log", "w"),
        )
        wait_port(self.sse_port, self.sse)
        nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
        # The echo module ships as a dynamic module in Debian's nginx-light/-core packages.
        modules = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
        if not modules.exists():
            raise RuntimeError(f"{modules} missing: install libnginx-mod-http-echo")
        self.nginx = subprocess.Popen(
            [nginx_bin, "-p", str(w), "-c", str(w / "nginx.conf"), "-e", str(w / "logs/error.log")],
            stdout=subprocess.DEVNULL, stderr=open(w / "logs" / "stderr.log", "w"),
            cwd="/usr/share/nginx",
        )
        wait_port(self.http_port, self.nginx)
        wait_port(self.https_port, self.nginx)

    def stop(self) -> None:
        for proc, name in ((self.nginx, "nginx"), (self.sse, "sse")):
            if proc is not None:
                stop_process(proc, name)


# --------------------------------------------------------------------------- proxies

class Proxy:
    name = "?"
    proc: subprocess.Popen | None = None
    port: int | None = None
    cafile: Path | None = None  # what the client must trust

    def start(self) -> None: ...

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def stop(self) -> int | None:
        return stop_process(self.proc, self.name) if self.proc else None

    def version(self) -> str:
        return ""

    def diagnostics(self) -> str:
        return ""

    def extra(self) -> dict:
        return {}


class Direct(Proxy):
    name = "direct"

    def __init__(self, certs: Path):
        self.cafile = certs / "upstream-ca.pem"


class Airlock(Proxy):
    name = "airlock"

    def __init__(self, binary: Path, work: Path, certs: Path, extra: dict | None = None, name: str = "airlock"):
        self.binary = binary
        self.name = name
        self.work = work / name.replace("+", "-")
        self.certs = certs
        self.extra_config = extra or {}
        self.boot: dict = {}

    def version(self) -> str:
        return subprocess.run([str(self.binary), "--version"], capture_output=True, text=True).stdout.strip()

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        cfg = self.work / "airlock.json"
        config = {
            "upstream_ca": [str(self.certs / "upstream-ca.pem")],
            "resolve": {HOST: "127.0.0.1"},
        }
        # The upstreams are on loopback, which the destination guard refuses unless
        # allowed; binaries from before the guard refuse the key, so it goes in only where known.
        probe = self.work / "probe.json"
        probe.write_text(json.dumps({"allow_private": ["127.0.0.0/8"]}))
        if subprocess.run([str(self.binary), "config", "check", str(probe)],
                          capture_output=True).returncode == 0:
            config["allow_private"] = ["127.0.0.0/8"]
        # CONNECT goes to connect_ports only (80, 443, 8443 by default): the upstream's
        # loopback ports too, where the binary knows the key.
        probe.write_text(json.dumps({"connect_ports": [443]}))
        if UPSTREAM_PORTS and subprocess.run([str(self.binary), "config", "check", str(probe)],
                                             capture_output=True).returncode == 0:
            config["connect_ports"] = [80, 443, 8443, *UPSTREAM_PORTS]
        # Optional extra settings for experiments, e.g. AIRLOCK_EXTRA_CONFIG='{"detect": {...}}'.
        config.update(json.loads(os.environ.get("AIRLOCK_EXTRA_CONFIG") or "{}"))
        config.update(self.extra_config)
        self.config = config
        cfg.write_text(json.dumps(config, indent=2))
        data = self.work / "data"
        self.stderr_path = self.work / "stderr.log"
        cmd = [str(self.binary), "--config", str(cfg), "--data-dir", str(data),
               "start", "--listen", "127.0.0.1:0"]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        # First stderr line: the JSON boot line with the bound address and the CA path.
        first: list[bytes] = []

        def read_first():
            first.append(self.proc.stderr.readline())

        t = threading.Thread(target=read_first, daemon=True)
        t.start()
        t.join(30)
        if not first or not first[0]:
            rest = b""
            if self.proc.poll() is not None:
                rest = self.proc.stderr.read()
            raise RuntimeError(f"airlock printed no boot line; exit={self.proc.poll()} stderr={rest[:2000]!r}")
        self.boot = json.loads(first[0])
        self.port = int(self.boot["listen"].rsplit(":", 1)[1])
        self.cafile = Path(self.boot["ca"])
        # Keep draining stderr to a file so the proxy never blocks on a full pipe.
        out = open(self.stderr_path, "wb")
        out.write(first[0])

        def drain():
            for line in self.proc.stderr:
                out.write(line)
                out.flush()

        threading.Thread(target=drain, daemon=True).start()
        wait_port(self.port, self.proc)

    def diagnostics(self) -> str:
        return tail(self.stderr_path, 30)

    def extra(self) -> dict:
        data = self.work / "data"
        flows = sorted(str(p.relative_to(data)) for p in data.rglob("flows.jsonl*")) if data.exists() else []
        size = sum(p.stat().st_size for p in data.rglob("flows.jsonl*")) if data.exists() else 0
        lines = 0
        for p in data.rglob("flows.jsonl*"):
            with open(p, "rb") as f:
                lines += sum(1 for _ in f)
        return {"boot": self.boot, "config": getattr(self, "config", None), "flow_logs": flows, "flow_log_bytes": size, "flow_log_lines": lines}


class Mitmdump(Proxy):
    name = "mitmdump"

    def __init__(self, binary: Path, work: Path, certs: Path):
        self.binary = binary
        self.work = work / "mitmdump"
        self.certs = certs

    def version(self) -> str:
        out = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0].strip() if out else ""

    def start(self) -> None:
        conf = self.work / "confdir"
        conf.mkdir(parents=True, exist_ok=True)
        # Same kind of CA as the others (ECDSA P-256, generated by bench/run): mitmproxy
        # signs every leaf with the CA's key.
        shutil.copy(self.certs / "interceptor-ca-bundle.pem", conf / "mitmproxy-ca.pem")
        self.port = free_port()
        self.flow_log = self.work / "flows.log"
        cmd = [str(self.binary), "--listen-host", "127.0.0.1", "--listen-port", str(self.port),
               "--set", f"confdir={conf}",
               "--set", f"ssl_verify_upstream_trusted_ca={self.certs / 'upstream-ca.pem'}",
               "-s", str(LIB / "mitm_resolve.py")]
        self.cmd = cmd
        env = dict(os.environ, BENCH_RESOLVE=f"{HOST}=127.0.0.1")
        # mitmdump's default output (one line per flow) is its flow log.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.flow_log, "w"),
                                     stderr=subprocess.STDOUT, env=env)
        wait_port(self.port, self.proc)
        # mitmproxy signs with the CA given in confdir; clients trust its certificate.
        self.cafile = self.certs / "interceptor-ca.pem"

    def diagnostics(self) -> str:
        return "\n".join(l for l in tail(self.flow_log, 200).splitlines() if "<<" not in l and " 200 " not in l)[-3000:]

    def extra(self) -> dict:
        try:
            size = self.flow_log.stat().st_size
        except FileNotFoundError:
            size = 0
        return {"flow_log_bytes": size}


class Squid(Proxy):
    name = "squid"

    def __init__(self, work: Path, certs: Path):
        self.work = work / "squid"
        self.certs = certs

    def version(self) -> str:
        out = subprocess.run(["squid", "-v"], capture_output=True, text=True).stdout
        return out.splitlines()[0].strip() if out else ""

    def start(self) -> None:
        w = self.work
        w.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        (w / "hosts").write_text(f"127.0.0.1 {HOST}\n")
        shutil.copy(self.certs / "interceptor-ca.pem", w / "ca.pem")
        shutil.copy(self.certs / "interceptor-ca.key", w / "ca.key")
        db = w / "ssl_db"
        if db.exists():
            shutil.rmtree(db)
        subprocess.run(["/usr/lib/squid/security_file_certgen", "-c", "-s", str(db), "-M", "16MB"],
                       check=True, capture_output=True)
        conf = f"""
http_port 127.0.0.1:{self.port} ssl-bump tls-cert={w}/ca.pem tls-key={w}/ca.key generate-host-certificates=on dynamic_cert_mem_cache_size=16MB
sslcrtd_program /usr/lib/squid/security_file_certgen -s {db} -M 16MB
sslcrtd_children 5 startup=1 idle=1
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile={self.certs}/upstream-ca.pem
http_access allow all
cache deny all
cache_mem 8 MB
hosts_file {w}/hosts
dns_nameservers 127.0.0.1
pinger_enable off
netdb_filename none
access_log stdio:{w}/access.log
cache_log {w}/cache.log
cache_store_log none
pid_filename {w}/squid.pid
coredump_dir {w}
max_filedescriptors 65536
shutdown_lifetime 1 seconds
forwarded_for delete
via off
"""
        (w / "squid.conf").write_text(conf)
        subprocess.run(["chown", "-R", "proxy:proxy", str(w)], check=True)
        cmd = ["squid", "-N", "-f", str(w / "squid.conf")]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(w / "stdout.log", "w"),
                                     stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)
        self.cafile = w / "ca.pem"

    def diagnostics(self) -> str:
        return tail(self.work / "cache.log", 30)

    def extra(self) -> dict:
        try:
            size = (self.work / "access.log").stat().st_size
        except FileNotFoundError:
            size = 0
        return {"flow_log_bytes": size}


# --------------------------------------------------------------------------- runs

class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.work = Path(args.work)
        self.certs = Path(args.certs)
        self.oha = args.oha
        self.python = args.python
        self.upstream = Upstream(self.work, self.certs, args.python)
        UPSTREAM_PORTS.extend([self.upstream.http_port, self.upstream.https_port])
        self.body = self.work / "body-1m.bin"
        self.body.write_bytes(os.urandom(1024 * 1024))

    def url(self, scheme: str, path: str) -> str:
        port = self.upstream.http_port if scheme == "http" else self.upstream.https_port
        return f"{scheme}://{HOST}:{port}{path}"

    def oha_cmd(self, proxy: Proxy, url: str, n: int, extra: list[str], c: int = CONCURRENCY) -> list[str]:
        cmd = [self.oha, "-n", str(n), "-c", str(c), "--no-tui", "--output-format", "json",
               "-t", "30s", "--connect-timeout", "10s"]
        if proxy.port:
            # --no-pre-lookup: oha would otherwise resolve the *target* name before starting,
            # even with a proxy; the proxy resolves bench.test itself.
            cmd += ["-x", f"http://127.0.0.1:{proxy.port}", "--no-pre-lookup"]
        else:
            scheme_port = url.split("://", 1)[1].split("/", 1)[0]
            port = scheme_port.rsplit(":", 1)[1]
            cmd += ["--connect-to", f"{HOST}:{port}:127.0.0.1:{port}"]
        if url.startswith("https"):
            cmd += ["--cacert", str(proxy.cafile)]
        cmd += [a.replace("{body}", str(self.body)) for a in extra]
        cmd.append(url)
        return cmd

    def run_oha(self, proxy: Proxy, url: str, n: int, extra: list[str], timeout: float,
                c: int = CONCURRENCY) -> dict:
        cmd = self.oha_cmd(proxy, url, n, extra, c)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"oha did not finish within {timeout}s", "cmd": cmd}
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        if res.returncode != 0:
            return {"ok": False, "error": f"oha exit {res.returncode}: {res.stderr[-2000:]}", "cmd": cmd}
        try:
            data = json.loads(res.stdout)
        except json.JSONDecodeError:
            return {"ok": False, "error": f"oha output not JSON: {res.stdout[:500]} {res.stderr[-500:]}", "cmd": cmd}
        summ = data["summary"]
        codes = {str(k): v for k, v in data.get("statusCodeDistribution", {}).items()}
        errors = data.get("errorDistribution", {})
        ok_count = codes.get("200", 0)
        lat = data.get("latencyPercentiles", {})
        return {
            "ok": ok_count == n,
            "cmd": cmd,
            "requests": n,
            "status_200": ok_count,
            "status_codes": codes,
            "errors": errors,
            "wall_s": wall,
            "rps": summ.get("requestsPerSec"),
            "success_rate": summ.get("successRate"),
            "p50_ms": (lat.get("p50") or 0) * 1000,
            "p99_ms": (lat.get("p99") or 0) * 1000,
            "avg_ms": (summ.get("average") or 0) * 1000,
            "bytes": summ.get("totalData"),
            "client_cpu_s": client_cpu,
        }

    def run_py_newconn(self, proxy: Proxy, path: str, n: int, timeout: float) -> dict:
        cmd = [self.python, str(LIB / "clients.py"), "newconn", "--host", HOST,
               "--port", str(self.upstream.https_port), "--path", path, "--cafile", str(proxy.cafile),
               "--n", str(n), "--parallel", str(CONCURRENCY), "--timeout", "30",
               "--max-seconds", str(timeout - 10)]
        cmd += ["--proxy-port", str(proxy.port)] if proxy.port else ["--connect-port", str(self.upstream.https_port)]
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"client did not finish within {timeout}s", "cmd": cmd}
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            return {"ok": False, "error": f"client exit {res.returncode}: {res.stderr[-2000:]}", "cmd": cmd}
        r = json.loads(res.stdout)
        r.update({"ok": r["status_200"] == n and r["error_count"] == 0, "cmd": cmd,
                  "client_cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)})
        return r

    def scenario(self, proxy: Proxy, sampler, sc) -> dict:
        key, title, scheme, path, n_full, n_quick, extra = sc
        n = n_quick if self.quick else n_full
        url = self.url(scheme, path)
        pid = proxy.proc.pid if proxy.proc else None
        if sampler:
            sampler.reset_window()
        cpu0 = procstat.cpu_seconds(pid) if pid else None
        up0 = procstat.cpu_seconds(self.upstream.nginx.pid)
        load0 = os.getloadavg()[0]
        if extra == ["py-newconn"]:
            r = self.run_py_newconn(proxy, path, n, timeout=300 if not self.quick else 120)
        else:
            r = self.run_oha(proxy, url, n, extra, timeout=600 if not self.quick else 120)
        cpu1 = procstat.cpu_seconds(pid) if pid else None
        up1 = procstat.cpu_seconds(self.upstream.nginx.pid)
        r.update({"scenario": key, "title": title, "url": url, "concurrency": CONCURRENCY,
                  "loadavg_1m_before": load0,
                  "upstream_cpu_s": up1 - up0})
        if pid:
            r["proxy_cpu_s"] = cpu1 - cpu0
            r["proxy_cpu_s_per_1k"] = (cpu1 - cpu0) / n * 1000
            r["rss_now_kb"] = procstat.rss_kb(pid)
            r["rss_peak_kb"] = max(sampler.window_max_kb, r["rss_now_kb"]) if sampler else None
            r["proxy_alive"] = proxy.alive()
        return r

    def warmup(self, proxy: Proxy) -> dict:
        out = {}
        for scheme in ("http", "https"):
            r = self.run_oha(proxy, self.url(scheme, "/1k"), 64, [], timeout=60, c=4)
            out[scheme] = {k: r.get(k) for k in ("ok", "status_codes", "errors", "error")}
        return out

    def sse(self, proxy: Proxy) -> dict:
        n = 5 if self.quick else 30
        cmd = [self.python, str(LIB / "clients.py"), "sse", "--host", HOST,
               "--port", str(self.upstream.https_port), "--path", "/sse",
               "--cafile", str(proxy.cafile), "--n", str(n), "--timeout", "10",
               "--max-seconds", "90"]
        if proxy.port:
            cmd += ["--proxy-port", str(proxy.port)]
        else:
            cmd += ["--connect-port", str(self.upstream.https_port)]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": "sse client timed out"}
        if res.returncode != 0:
            return {"ok": False, "error": res.stderr[-2000:]}
        out = json.loads(res.stdout)
        out["ok"] = out["n"] > 0 and out["error_count"] == 0
        return out

    def hold(self, proxy: Proxy, n: int) -> dict:
        pid = proxy.proc.pid
        before = procstat.rss_kb(pid)
        cpu0 = procstat.cpu_seconds(pid)
        cmd = [self.python, str(LIB / "clients.py"), "hold", "--host", HOST,
               "--port", str(self.upstream.https_port), "--path", "/1k",
               "--cafile", str(proxy.cafile), "--n", str(n), "--proxy-port", str(proxy.port),
               "--timeout", "30", "--max-seconds", "120", "--parallel", "32"]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        out: dict = {"connections": n, "rss_before_kb": before}
        try:
            line = self._readline(p, 150)
            ready = json.loads(line) if line else {"event": "none"}
            out["ready"] = ready
            time.sleep(2)
            out["rss_open_kb"] = procstat.rss_kb(pid)
            out["nprocs_open"] = procstat.nprocs(pid)
            p.stdin.write("close\n")
            p.stdin.flush()
            line = self._readline(p, 60)
            out["closed"] = json.loads(line) if line else None
            p.wait(30)
        except Exception as e:  # noqa: BLE001
            out["error"] = f"{type(e).__name__}: {e}"
            p.kill()
            p.wait()
        out["client_stderr"] = (p.stderr.read() or "")[-1000:] if p.stderr else ""
        samples = []
        for _ in range(10):
            time.sleep(1)
            samples.append(procstat.rss_kb(pid))
        out["rss_after_close_kb_samples"] = samples
        out["rss_after_close_kb"] = samples[-1]
        out["cpu_s"] = procstat.cpu_seconds(pid) - cpu0
        out["ok"] = bool(out.get("ready", {}).get("open") == n) and "error" not in out
        return out

    @staticmethod
    def _readline(p: subprocess.Popen, timeout: float) -> str:
        box: list[str] = []
        t = threading.Thread(target=lambda: box.append(p.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not box:
            raise TimeoutError(f"no output within {timeout}s")
        return box[0]

    def run_proxy(self, proxy: Proxy) -> dict:
        res: dict = {"proxy": proxy.name, "version": proxy.version(), "scenarios": {}}
        log(f"== {proxy.name} {res['version']}")
        try:
            proxy.start()
            time.sleep(1.0)
            if not proxy.alive():
                raise RuntimeError(f"exited with {proxy.proc.returncode} right after starting")
        except Exception as e:  # noqa: BLE001
            res["start_error"] = f"{type(e).__name__}: {e}"
            res["diagnostics"] = proxy.diagnostics()
            log(f"{proxy.name} failed to start: {e}")
            return res
        res["cmd"] = getattr(proxy, "cmd", None)
        res["port"] = proxy.port
        res["cafile"] = str(proxy.cafile) if proxy.cafile else None
        sampler = None
        if proxy.proc:
            time.sleep(1.5)  # settle
            res["rss_idle_kb"] = procstat.rss_kb(proxy.proc.pid)
            res["nprocs_idle"] = procstat.nprocs(proxy.proc.pid)
            sampler = procstat.RssSampler(proxy.proc.pid).start()
        try:
            res["warmup"] = self.warmup(proxy)
            for sc in [sc for sc in SCENARIOS if not self.args.scenarios or sc[0] in self.args.scenarios.split(",")]:
                if not proxy.alive():
                    res["scenarios"][sc[0]] = {"ok": False, "error": "proxy process is gone"}
                    continue
                log(f"{proxy.name}: {sc[0]}")
                r = self.scenario(proxy, sampler, sc)
                res["scenarios"][sc[0]] = r
                if r.get("ok"):
                    log(f"{proxy.name}: {sc[0]}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, "
                        f"p99 {r['p99_ms']:.2f} ms"
                        + (f", {r['proxy_cpu_s_per_1k']:.3f} CPU-s/1k" if 'proxy_cpu_s_per_1k' in r else ""))
                else:
                    log(f"{proxy.name}: {sc[0]}: FAILED {r.get('error') or r.get('status_codes')} {r.get('errors')}")
            if proxy.alive() and not self.args.scenarios:
                log(f"{proxy.name}: sse")
                res["sse"] = self.sse(proxy)
                log(f"{proxy.name}: sse: {json.dumps({k: res['sse'].get(k) for k in ('n', 'error_count', 'from_connect_s')})}")
            if proxy.proc:
                time.sleep(5)  # let connections close and the allocator settle
                res["rss_after_kb"] = procstat.rss_kb(proxy.proc.pid)
                res["rss_peak_kb"] = max(sampler.max_kb, procstat.hwm_kb(proxy.proc.pid)
                                         if procstat.nprocs(proxy.proc.pid) == 1 else 0)
                res["rss_peak_sampled_kb"] = sampler.max_kb
                res["vmhwm_kb"] = procstat.hwm_kb(proxy.proc.pid)
                res["cpu_total_s"] = procstat.cpu_seconds(proxy.proc.pid)
        finally:
            if sampler:
                sampler.stop()
            res["alive_at_end"] = proxy.alive()
            if proxy.proc and not proxy.alive():
                res["exit_code"] = proxy.proc.returncode
            res["diagnostics"] = proxy.diagnostics()
            res["extra"] = proxy.extra()
            rc = proxy.stop()
            res["stop_exit_code"] = rc
        if proxy.proc and not self.args.scenarios:
            res["hold"] = self.hold_phase(proxy)
        return res

    def hold_phase(self, proxy: Proxy) -> dict:
        """Open-connection memory on a fresh instance: idle, N intercepted connections open
        (CONNECT + TLS + one request each), then 10 s after they all closed."""
        n = 200 if self.quick else 1000
        log(f"{proxy.name}: hold {n} connections (fresh instance)")
        try:
            proxy.start()
            time.sleep(2.0)
            if not proxy.alive():
                raise RuntimeError(f"exited with {proxy.proc.returncode} right after starting")
        except Exception as e:  # noqa: BLE001
            return {"ok": False, "connections": n, "error": f"restart failed: {type(e).__name__}: {e}"}
        sampler = procstat.RssSampler(proxy.proc.pid).start()
        h: dict = {"ok": False, "connections": n}
        try:
            h = self.hold(proxy, n)
            h["rss_peak_kb"] = sampler.max_kb
        finally:
            sampler.stop()
            h_alive = proxy.alive()
            diag = proxy.diagnostics()
            h["stop_exit_code"] = proxy.stop()
        h["proxy_alive"] = h_alive
        if not h_alive:
            h["ok"] = False
            h["diagnostics"] = diag
        log(f"{proxy.name}: hold: open={h.get('ready', {}).get('open')}/{n} "
            f"rss idle/open/after-close = {h.get('rss_before_kb', 0) / 1000:.1f}/"
            f"{h.get('rss_open_kb', 0) / 1000:.1f}/{h.get('rss_after_close_kb', 0) / 1000:.1f} MB(kB/1000)")
        return h

    def run(self) -> dict:
        raise_nofile()
        started = datetime.datetime.now().astimezone()
        result = {
            "started": started.isoformat(timespec="seconds"),
            "quick": self.quick,
            "machine": {
                "nproc": os.cpu_count(),
                "kernel": platform.release(),
                "cpu_model": _cpu_model(),
                "mem_total_kb": _meminfo("MemTotal"),
                "loadavg_at_start": os.getloadavg(),
            },
            "tools": {"oha": subprocess.run([self.oha, "--version"], capture_output=True, text=True).stdout.strip(),
                      "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
                      "python": platform.python_version()},
            "concurrency": CONCURRENCY,
            "scenarios": [{"key": s[0], "title": s[1], "requests": s[5] if self.quick else s[4]} for s in SCENARIOS],
            "airlock_git": self.args.airlock_git,
            "baseline_git": self.args.baseline_git,
            "proxies": {},
        }
        proxies: list[Proxy] = []
        wanted = self.args.proxies.split(",") * self.args.rounds
        for name in wanted:
            if name == "direct":
                proxies.append(Direct(self.certs))
            elif name == "airlock":
                proxies.append(Airlock(Path(self.args.airlock), self.work, self.certs))
            elif name == "airlock@base":
                # An older build beside the current one, for a before/after ratio in one run.
                if not self.args.baseline:
                    raise SystemExit("airlock@base needs --baseline BIN (bench/run: AIRLOCK_BASELINE_BIN)")
                proxies.append(Airlock(Path(self.args.baseline), self.work, self.certs, None, "airlock@base"))
            elif name == "airlock+policy":
                # Issue 5's policy benchmark: 50 CEL rules, none of which matches the bench
                # requests, so each is evaluated in full.
                rules = json.loads((LIB.parent / "data" / "policy-50.json").read_text())
                proxies.append(Airlock(Path(self.args.airlock), self.work, self.certs, rules, "airlock+policy"))
            elif name == "airlock-norec":
                # Issue 12's recording cost: the same build with no SQLite store and no admin
                # server (the JSONL audit files are still written), beside `airlock`.
                proxies.append(Airlock(Path(self.args.airlock), self.work, self.certs,
                                       {"store": None, "admin": None}, "airlock-norec"))
            elif name == "mitmdump":
                proxies.append(Mitmdump(Path(self.args.mitmdump), self.work, self.certs))
            elif name == "squid":
                proxies.append(Squid(self.work, self.certs))
            else:
                raise SystemExit(f"unknown proxy {name}")
        try:
            log(f"upstream: starting nginx + SSE server in {self.upstream.work}")
            self.upstream.start()
            result["upstream"] = {"http_port": self.upstream.http_port, "https_port": self.upstream.https_port,
                                  "sse_port": self.upstream.sse_port}
            for i, p in enumerate(proxies):
                key = p.name if self.args.rounds == 1 else f"{p.name} #{i + 1}"
                result["proxies"][key] = self.run_proxy(p)
                self._save(result)
        finally:
            self.upstream.stop()
        result["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        result["upstream_errors"] = tail(self.upstream.work / "logs/error.log", 20)
        self._save(result)
        return result

    def _save(self, result: dict) -> None:
        Path(self.args.out).write_text(json.dumps(result, indent=2))


def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _meminfo(key: str) -> int:
    for line in open("/proc/meminfo"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--work", required=True, help="scratch directory (configs, logs, data dirs)")
    ap.add_argument("--certs", required=True)
    ap.add_argument("--out", required=True, help="JSON results file")
    ap.add_argument("--oha", required=True)
    ap.add_argument("--airlock", required=True)
    ap.add_argument("--airlock-git", default="")
    ap.add_argument("--baseline", default="", help="an older airlock binary, run as the proxy airlock@base")
    ap.add_argument("--baseline-git", default="")
    ap.add_argument("--mitmdump", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--proxies", default="direct,airlock,mitmdump,squid")
    ap.add_argument("--scenarios", default="", help="only these scenario keys (and no SSE / hold phases)")
    ap.add_argument("--rounds", type=int, default=1, help="run the proxy list this many times, in turn")
    args = ap.parse_args()
    Bench(args).run()


if __name__ == "__main__":
    main()
