"""`airlock verify` proves airlock is in the path; `airlock run` checks it before CMD starts.

The canary host is answered by airlock itself with a block; verify sends it over plain HTTP
and over HTTPS the way a client of the current environment would.
"""

import socket
import threading

from e2e_helpers import AIRLOCK_BIN, airlock, cli_env, closed_port
from records import read_jsonl

CANARY = "canary.airlock.invalid"
CLIENT_CA_VARS = [
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "PIP_CERT",
    "AWS_CA_BUNDLE", "npm_config_cafile", "HTTPLIB2_CA_CERTS", "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE", "NIX_SSL_CERT_FILE", "DENO_CERT", "CARGO_HTTP_CAINFO",
]


def _proxied_env(p, ca_file=None):
    env = cli_env(p)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[var] = p.url
    bundle = str(p.data_dir / "ca" / "bundle.pem")
    # Machines point some clients at the system store (HTTPLIB2_CA_CERTS, …): a configured
    # environment points every CA variable verify reads at the bundle.
    for var in CLIENT_CA_VARS:
        env[var] = bundle
    env["SSL_CERT_FILE"] = str(ca_file) if ca_file is not None else bundle
    return env


def _lines(r):
    return {line.split()[0]: line for line in r.stdout.splitlines() if line.split()}


def test_verify_succeeds_under_run_and_records_the_canary(proxy):
    r = airlock("run", "--", AIRLOCK_BIN, "verify", env=cli_env(proxy), timeout=60)
    assert r.returncode == 0, f"stdout={r.stdout} stderr={r.stderr}"
    lines = _lines(r)
    assert lines["http"].split()[1] == "ok", r.stdout
    assert lines["https"].split()[1] == "ok", r.stdout
    assert "trusted" in lines["https"], r.stdout
    assert "airlock is in the path." in r.stdout
    # Both canaries are flow records: blocked, named as the canary, one per scheme
    # (run's own check and verify's each send a pair).
    flows = proxy.wait_flows(lambda f: f.get("host") == CANARY and f.get("scheme") == "https", count=2)
    canaries = [f for f in read_jsonl(proxy.data_dir / "logs" / "flows.jsonl") if f.get("host") == CANARY]
    assert {f["scheme"] for f in canaries} == {"http", "https"}, canaries
    for f in canaries:
        assert (f["status"], f["action"]) == (403, "blocked"), f
        assert "canary" in f["reason"], f
    assert flows
    # Nothing leaked, so nothing is a threat.
    threats = read_jsonl(proxy.data_dir / "logs" / "threats.jsonl")
    assert not [t for t in threats if CANARY in (t.get("dest") or "")], threats


def test_verify_fails_without_the_proxy_variables(proxy):
    r = airlock("verify", env=cli_env(proxy))
    assert r.returncode == 1, r.stdout
    lines = _lines(r)
    assert "FAIL" in lines["http"] and "HTTP_PROXY is not set" in lines["http"], r.stdout
    assert "FAIL" in lines["https"] and "HTTPS_PROXY is not set" in lines["https"], r.stdout
    # It says how to fix it, naming the running instance's address.
    assert f"HTTPS_PROXY=http://127.0.0.1:{proxy.port}" in lines["https"], r.stdout
    assert "NOT in the path" in r.stdout


def test_verify_fails_when_the_proxy_is_not_running(start_proxy, run_env):
    data_dir = start_proxy.new_data_dir()
    env = run_env(data_dir)
    port = closed_port()
    for var in ("HTTP_PROXY", "HTTPS_PROXY"):
        env[var] = f"http://127.0.0.1:{port}"
    r = airlock("verify", env=env)
    assert r.returncode == 1, r.stdout
    for line in _lines(r).values():
        if line.startswith("http"):
            assert "FAIL" in line and f"nothing is listening at 127.0.0.1:{port}" in line, r.stdout
            assert "airlock start" in line


def test_verify_fails_when_the_ca_is_not_trusted(proxy, certs):
    # A store without airlock's CA (the upstream test CA stands for "the system's").
    env = _proxied_env(proxy, ca_file=certs.upstream_ca_path)
    r = airlock("verify", env=env)
    assert r.returncode == 1, r.stdout
    lines = _lines(r)
    assert lines["http"].split()[1] == "ok", r.stdout
    assert "FAIL" in lines["https"], r.stdout
    assert "not trusted" in lines["https"] and "SSL_CERT_FILE" in lines["https"], r.stdout
    # The handshake the verify client broke off is on record too.
    proxy.wait_flows(lambda f: f.get("host") == CANARY and f.get("action") == "failed")


def test_verify_names_a_client_variable_that_lacks_the_ca(proxy, certs):
    env = _proxied_env(proxy)
    env["REQUESTS_CA_BUNDLE"] = str(certs.upstream_ca_path)
    r = airlock("verify", env=env)
    assert r.returncode == 1, r.stdout
    https = _lines(r)["https"]
    assert "FAIL" in https and "REQUESTS_CA_BUNDLE" in https and "does not hold airlock's CA" in https, r.stdout


def test_verify_passes_with_the_bundle(proxy):
    r = airlock("verify", env=_proxied_env(proxy))
    assert r.returncode == 0, r.stdout + r.stderr


def test_verify_fails_when_no_proxy_exempts_everything(proxy):
    env = _proxied_env(proxy)
    env["NO_PROXY"] = "localhost,*"
    r = airlock("verify", env=env)
    assert r.returncode == 1, r.stdout
    assert "NO_PROXY" in _lines(r)["https"], r.stdout


def test_verify_tells_another_proxy_from_airlock(start_proxy, run_env):
    """A proxy that answers but is not airlock: the block headers are missing."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            try:
                c.recv(65536)
                c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            finally:
                c.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        env = run_env(start_proxy.new_data_dir())
        for var in ("HTTP_PROXY", "HTTPS_PROXY"):
            env[var] = f"http://127.0.0.1:{port}"
        r = airlock("verify", env=env)
    finally:
        srv.close()
    assert r.returncode == 1, r.stdout
    lines = _lines(r)
    assert "without airlock's headers" in lines["http"], r.stdout
    assert "not airlock" in lines["https"], r.stdout


def test_verify_with_interception_off(start_proxy):
    p = start_proxy({"enable_mitm": False})
    r = airlock("verify", env=_proxied_env(p))
    assert r.returncode == 0, r.stdout
    assert "interception is off" in _lines(r)["https"], r.stdout


def test_run_refuses_when_the_check_fails(start_proxy):
    p = start_proxy()
    # A stale bundle without airlock's CA: what CMD would be handed.
    bundle = p.data_dir / "ca" / "bundle.pem"
    ca = (p.data_dir / "ca" / "airlock-ca.pem").read_text()
    bundle.write_text(bundle.read_text().replace(ca.strip(), "").strip() + "\n")
    marker = p.data_dir / "cmd-ran"
    r = airlock("run", "--", "touch", str(marker), env=cli_env(p), timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert not marker.exists(), "CMD ran although airlock was not in its path"
    assert "not starting" in r.stderr and "--no-verify" in r.stderr, r.stderr
    assert "https" in r.stderr
    # --no-verify starts it anyway.
    r = airlock("run", "--no-verify", "--", "touch", str(marker), env=cli_env(p), timeout=60)
    assert r.returncode == 0, r.stderr
    assert marker.exists()
