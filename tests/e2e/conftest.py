"""Fixtures for the airlock end-to-end acceptance tests.

* ``certs``      - the upstream CA (trusted only by the proxy), the rogue CA, leaf certs.
* ``upstreams``  - local HTTP / HTTPS / rogue-HTTPS / h2 servers (see upstream.py).
* ``start_proxy``- factory: runs ``airlock start`` on an ephemeral port with its own
                   data dir and config, returns a ``Proxy``; stopped on teardown.
* ``proxy``      - one proxy with the default test config.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
import trustme

from e2e_helpers import AIRLOCK_BIN, clean_environ, pid_alive
from records import FLOWS, log_file, read_flows, stderr_events, wait_for, wait_records
from upstream import Upstreams

TEST_NAMES = ["example.test", "h2.test", "rogue.test", "local.test", "localhost", "127.0.0.1"]


def pytest_configure(config):
    # The tests and the clients they start must not pick up proxies or CA bundles
    # from the environment of whoever runs them.
    for key in list(os.environ):
        if key not in clean_environ({key: ""}):
            del os.environ[key]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


# --------------------------------------------------------------------------- certificates and upstreams


class Certs:
    def __init__(self, directory: Path):
        self.dir = directory
        self.upstream_ca = trustme.CA(organization_name="airlock-e2e upstream CA")
        self.rogue_ca = trustme.CA(organization_name="airlock-e2e rogue CA")
        self.upstream_leaf = self.upstream_ca.issue_cert(*TEST_NAMES)
        self.rogue_leaf = self.rogue_ca.issue_cert(*TEST_NAMES)
        self.upstream_ca_path = directory / "upstream-ca.pem"
        self.rogue_ca_path = directory / "rogue-ca.pem"
        self.upstream_ca.cert_pem.write_to_path(str(self.upstream_ca_path))
        self.rogue_ca.cert_pem.write_to_path(str(self.rogue_ca_path))

    def upstream_client_ctx(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.upstream_ca_path))


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def upstreams(certs, tmp_path_factory):
    servers = Upstreams(certs.upstream_leaf, certs.rogue_leaf, str(tmp_path_factory.mktemp("h2certs"))).start()
    yield servers
    servers.stop()


def base_config(certs: Certs, up: Upstreams) -> dict:
    """What almost every proxy in the suite needs: trust the upstream CA, map test names."""
    return {
        "upstream_ca": [str(certs.upstream_ca_path)],
        # Every proxy of the suite its own admin port (the default 127.0.0.1:8889 is one).
        "admin": {"listen": "127.0.0.1:0"},
        # the local upstreams live on loopback, which the destination guard refuses by default
        "allow_private": ["127.0.0.0/8"],
        # CONNECT goes to connect_ports only (default 80, 443, 8443): the local upstreams'
        # ports too, for tests that name them in a tunnel.
        "connect_ports": [80, 443, 8443, up.http_port, up.https_port, up.h2_port, up.rogue_port],
        "resolve": {
            "example.test:80": f"127.0.0.1:{up.http_port}",
            "example.test:443": f"127.0.0.1:{up.https_port}",
            "h2.test:443": f"127.0.0.1:{up.h2_port}",
            "rogue.test:443": f"127.0.0.1:{up.rogue_port}",
            "local.test": "127.0.0.1",
        },
    }


# --------------------------------------------------------------------------- the proxy


class Proxy:
    def __init__(self, proc: subprocess.Popen, data_dir: Path, config_path: Path, cmd: list[str]):
        self.proc = proc
        self.data_dir = data_dir
        self.config_path = config_path
        self.cmd = cmd
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []  # with start_proxy(capture_stdout=True)
        self._first_line = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self._out_reader = None
        if proc.stdout is not None:
            self._out_reader = threading.Thread(target=self._drain_stdout, daemon=True)
            self._out_reader.start()
        self.boot: dict = {}
        self.port = 0

    def _drain(self):
        for raw in self.proc.stderr:
            self.stderr_lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
            self._first_line.set()
        self._first_line.set()

    def _drain_stdout(self):
        for raw in self.proc.stdout:
            self.stdout_lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))

    def wait_boot(self, timeout: float = 30.0):
        if not self._first_line.wait(timeout):
            raise AssertionError(f"airlock wrote nothing on stderr within {timeout}s: {self.cmd}")
        if not self.stderr_lines:
            self.proc.wait(5)
            raise AssertionError(f"airlock exited (rc={self.proc.returncode}) without a boot line: {self.cmd}")
        first = self.stderr_lines[0]
        try:
            self.boot = json.loads(first)
        except ValueError:
            raise AssertionError(f"first stderr line is not the JSON boot line: {first!r}") from None
        assert self.boot.get("event") == "boot", f"first stderr line is not a boot event: {first!r}"
        host, _, port = self.boot["listen"].rpartition(":")
        assert host == "127.0.0.1", f"boot line listen {self.boot['listen']!r}"
        self.port = int(port)
        assert self.port != 0, f"boot line does not name the bound port: {first!r}"

    # -- addresses and files
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca_path(self) -> Path:
        return self.data_dir / "ca" / "airlock-ca.pem"

    @property
    def flows_path(self) -> Path:
        return log_file(self, FLOWS)

    def ssl_ctx(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_path))

    # -- stderr
    def stderr_text(self) -> str:
        return "\n".join(self.stderr_lines)

    def events(self, name: str | None = None) -> list[dict]:
        return stderr_events(self.stderr_lines, name)

    # -- flow records
    def flows(self) -> list[dict]:
        return read_flows(self)

    def wait_flows(self, pred, count: int = 1, timeout: float = 5.0) -> list[dict]:
        return wait_records(self.flows_path, pred, count, timeout, kind="flow")

    # -- lifecycle
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        if self._out_reader is not None:
            self._out_reader.join(2)
        return self.proc.returncode


class ProxyFactory:
    def __init__(self, tmp_path: Path, certs: Certs, up: Upstreams):
        self.tmp_path = tmp_path
        self.certs = certs
        self.up = up
        self.started: list[Proxy] = []
        self._n = 0

    def base_config(self) -> dict:
        return base_config(self.certs, self.up)

    def write_config(self, config: dict, path: Path | None = None) -> Path:
        self._n += 1
        path = path or self.tmp_path / f"airlock-{self._n}.yaml"
        path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
        return path

    def new_data_dir(self) -> Path:
        self._n += 1
        d = self.tmp_path / f"data-{self._n}"
        d.mkdir()
        return d

    def __call__(
        self,
        config: dict | None = None,
        *,
        flags=(),
        log: int | None = 2,
        data_dir: Path | None = None,
        base: bool = True,
        mitm: bool = True,
        env: dict | None = None,
        extra_env: dict | None = None,
        listen: str | None = "127.0.0.1:0",
        capture_stdout: bool = False,
    ) -> Proxy:
        cfg = self.base_config() if base else {}
        cfg.update(config or {})
        data_dir = data_dir or self.new_data_dir()
        config_path = self.write_config(cfg)
        cmd = [AIRLOCK_BIN, "start", "--data-dir", str(data_dir), "--config", str(config_path)]
        if listen is not None:
            cmd += ["--listen", listen]
        if log is not None:
            cmd += ["--log", str(log)]
        if not mitm:
            cmd.append("--no-mitm")
        cmd += list(flags)
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**clean_environ(env), **(extra_env or {})},
        )
        p = Proxy(proc, data_dir, config_path, cmd)
        self.started.append(p)
        p.wait_boot()
        return p

    def stop_all(self):
        for p in self.started:
            p.stop()


@pytest.fixture
def start_proxy(tmp_path, certs, upstreams, request):
    factory = ProxyFactory(tmp_path, certs, upstreams)
    yield factory
    factory.stop_all()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for i, p in enumerate(factory.started):
            tail = p.stderr_lines[-40:]
            print(f"--- airlock #{i} ({' '.join(p.cmd)}) rc={p.proc.returncode}, last stderr lines:")
            for line in tail:
                print(line[:2000])


@pytest.fixture
def proxy(start_proxy) -> Proxy:
    return start_proxy()


@pytest.fixture
def run_env(tmp_path):
    """Environment for CLI invocations: AIRLOCK_HOME points at a fresh data dir."""

    def make(data_dir: Path, config_path: Path | None = None) -> dict:
        env = clean_environ()
        env["AIRLOCK_HOME"] = str(data_dir)
        if config_path is not None:
            env["AIRLOCK_CONFIG"] = str(config_path)
        return env

    return make


@pytest.fixture
def pid_cleanup():
    """Kills (by pid) detached airlock instances a test started, if still alive."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        try:
            wait_for(lambda: not pid_alive(pid), timeout=5)
        except AssertionError:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="session")
def playwright_modules(tmp_path_factory):
    """playwright-core in a temporary prefix, for the browser tests (Debian's chromium)."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed to drive the browser")
    if not (shutil.which("chromium") or os.path.exists("/usr/bin/chromium")):
        pytest.skip("chromium is not installed")
    prefix = tmp_path_factory.mktemp("playwright")
    # The registry may sit behind the machine's own TLS inspection (its CA in the system store).
    env = dict(os.environ, NODE_EXTRA_CA_CERTS="/etc/ssl/certs/ca-certificates.crt")
    try:
        r = subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix), "playwright-core@1"],
            capture_output=True, text=True, timeout=50, env=env,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("npm could not fetch playwright-core in time")
    if r.returncode != 0:
        pytest.skip(f"npm could not fetch playwright-core: {r.stderr[-300:]}")
    return str(prefix / "node_modules")
