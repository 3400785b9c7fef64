"""Who may use the proxy and where it may tunnel (hardening, issue 13 item 2): `connect_ports`,
CONNECT targets that are not host names, `proxy_auth` (407 with Proxy-Authenticate, the
credential masked in every record), the refusal to listen off loopback without it unless
`--insecure-open`, and private modes for the data directory, the logs, the store and the CA
key."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat

import requests

import subprocess

from e2e_helpers import AIRLOCK_BIN, airlock, clean_environ, cli_env, connect, curl, recv_until
from records import read_jsonl, wait_for

PASSWORD = "s3cret-Proxy-pass-7Q"


def _raw_connect(p, target: str, extra: str = "") -> bytes:
    s = connect(p.port)
    try:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{extra}\r\n".encode())
        return recv_until(s, b"\r\n\r\n")
    finally:
        s.close()


def test_connect_only_to_connect_ports(start_proxy):
    p = start_proxy()
    head = _raw_connect(p, "127.0.0.1:25")
    assert head.startswith(b"HTTP/1.1 403"), head
    assert b"x-airlock-block-reason: destination" in head.lower(), head
    assert b"x-airlock-rule: connect_ports" in head.lower(), head
    flows = wait_for(lambda: read_jsonl(p.data_dir / "logs" / "flows.jsonl"),
                     lambda f: any(x.get("port") == 25 for x in f), what="the refused CONNECT's record")
    refused = [f for f in flows if f.get("port") == 25][0]
    assert refused["action"] == "blocked" and "connect_ports" in refused["reason"], refused
    # The default list holds 443: the usual tunnels still work.
    assert curl(["https://example.test/hello"], proxy=p, cacert=p.ca_path).status == 200
    # A port the config adds is allowed.
    q = start_proxy({"connect_ports": [443, 2525]})
    head = _raw_connect(q, "localhost:2525")
    assert not head.startswith(b"HTTP/1.1 403"), head


def test_connect_to_a_garbage_target_is_a_clear_400(start_proxy):
    p = start_proxy()
    for target in ["a" * 300 + ":443", "exa mple.com:443".replace(" ", "%20"), "ex@mple.com:443"]:
        head = _raw_connect(p, target)
        assert head.startswith(b"HTTP/1.1 400"), (target, head)
    assert p.alive()
    assert curl(["https://example.test/hello"], proxy=p, cacert=p.ca_path).status == 200


def _auth_proxy(start_proxy, **kw):
    return start_proxy({"proxy_auth": {"username": "agent", "password_env": "AIRLOCK_TEST_PROXY_PW"}},
                       extra_env={"AIRLOCK_TEST_PROXY_PW": PASSWORD}, **kw)


def test_proxy_auth_wants_the_right_credentials(start_proxy):
    p = _auth_proxy(start_proxy)
    good = f"http://agent:{PASSWORD}@127.0.0.1:{p.port}"
    bad = f"http://agent:wrong@127.0.0.1:{p.port}"
    # curl, plain HTTP and through a tunnel.
    assert curl(["http://example.test/hello"], proxy=good).status == 200
    assert curl(["https://example.test/hello"], proxy=good, cacert=p.ca_path).status == 200
    r = curl(["http://example.test/hello"], proxy=p)
    assert r.status == 407, r
    assert r.headers.get("proxy-authenticate", "").lower().startswith("basic"), r.headers
    assert curl(["http://example.test/hello"], proxy=bad).status == 407
    r = curl(["https://example.test/hello"], proxy=p, cacert=p.ca_path)
    assert r.connect_status == 407, r
    # Python requests takes the credentials from the proxy URL too.
    s = requests.Session()
    s.trust_env = False
    resp = s.get("https://example.test/hello", proxies={"https": good}, verify=str(p.ca_path), timeout=20)
    assert resp.status_code == 200
    resp = s.get("http://example.test/hello", proxies={"http": f"http://127.0.0.1:{p.port}"}, timeout=20)
    assert resp.status_code == 407 and "proxy_auth" in resp.json()["reason"], resp.text
    # `airlock run` hands CMD a proxy URL that carries the credentials.
    env = dict(cli_env(p), AIRLOCK_CONFIG=str(p.config_path), AIRLOCK_TEST_PROXY_PW=PASSWORD)
    r = airlock("run", "--", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                "https://example.test/hello", env=env, timeout=60)
    assert (r.returncode, r.stdout) == (0, "200"), (r.stdout, r.stderr)
    # Refusals are recorded; the credential is in no file airlock wrote.
    flows = wait_for(lambda: read_jsonl(p.data_dir / "logs" / "flows.jsonl"),
                     lambda f: sum(x.get("status") == 407 for x in f) >= 4, what="the 407 records")
    assert all(f["action"] == "blocked" for f in flows if f.get("status") == 407)
    token = base64.b64encode(f"agent:{PASSWORD}".encode()).decode()
    for root, _, files in os.walk(p.data_dir):
        for name in files:
            data = open(os.path.join(root, name), "rb").read()
            assert PASSWORD.encode() not in data and token.encode() not in data, name
    assert PASSWORD not in p.stderr_text() and token not in p.stderr_text()


def test_proxy_auth_needs_its_password_at_start(start_proxy, tmp_path):
    cfg = tmp_path / "auth.yaml"
    cfg.write_text("proxy_auth: {username: agent, password_env: AIRLOCK_TEST_UNSET_PW}\n")
    r = airlock("start", "--config", cfg, "--data-dir", tmp_path / "d", "--listen", "127.0.0.1:0", timeout=20)
    assert r.returncode != 0 and "AIRLOCK_TEST_UNSET_PW" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2, r.stderr


def test_off_loopback_needs_proxy_auth_or_insecure_open(start_proxy, tmp_path):
    cfg = tmp_path / "open.yaml"
    cfg.write_text("{}\n")
    r = airlock("start", "--config", cfg, "--data-dir", tmp_path / "d", "--listen", "0.0.0.0:0", timeout=20)
    assert r.returncode == 2 and "proxy_auth" in r.stderr and "--insecure-open" in r.stderr, r.stderr
    r = airlock("config", "check", tmp_path / "open.yaml")
    assert r.returncode == 0
    (tmp_path / "open2.yaml").write_text("proxy_host: 0.0.0.0\n")
    r = airlock("config", "check", tmp_path / "open2.yaml")
    assert r.returncode == 2 and "proxy_auth" in r.stderr, r.stderr
    config = start_proxy.write_config(start_proxy.base_config())
    port, stderr = _open_listener(config, tmp_path / "d2", ["--insecure-open"], {},
                                  lambda port: curl(["http://example.test/hello"], proxy=f"http://127.0.0.1:{port}"))
    assert port.status == 200 and "insecure-open" in stderr, stderr
    config = start_proxy.write_config({**start_proxy.base_config(),
                                       "proxy_auth": {"username": "agent", "password_env": "AIRLOCK_TEST_PROXY_PW"}})
    res, _ = _open_listener(config, tmp_path / "d3", [], {"AIRLOCK_TEST_PROXY_PW": PASSWORD},
                            lambda port: curl(["http://example.test/hello"], proxy=f"http://127.0.0.1:{port}"))
    assert res.status == 407


def _open_listener(config, data_dir, flags, env, probe):
    """Runs airlock on 0.0.0.0 (the suite's fixture wants loopback), probes it, stops it."""
    proc = subprocess.Popen([AIRLOCK_BIN, "start", "--config", str(config), "--data-dir", str(data_dir),
                             "--listen", "0.0.0.0:0", "--log", "1", *flags],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**clean_environ(), **env}, text=True)
    try:
        boot = json.loads(proc.stderr.readline())
        assert boot["listen"].startswith("0.0.0.0:"), boot
        result = probe(int(boot["listen"].rsplit(":", 1)[1]))
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=10)[1]
    return result, rest


def test_private_modes(start_proxy, tmp_path):
    p = start_proxy()
    assert curl(["https://example.test/hello"], proxy=p, cacert=p.ca_path).status == 200
    wait_for(lambda: (p.data_dir / "airlock.db").exists() or None, what="the store")

    def mode(path):
        return stat.S_IMODE(os.stat(path).st_mode)

    assert mode(p.data_dir) == 0o700
    assert mode(p.data_dir / "logs") == 0o700
    assert mode(p.data_dir / "ca") == 0o700
    assert mode(p.data_dir / "ca" / "airlock-ca.key") == 0o600
    assert mode(p.data_dir / "airlock.db") == 0o600
    wait_for(lambda: (p.data_dir / "logs" / "chain-head.json").exists() or None, what="the chain head")
    for name in ("flows.jsonl", "threats.jsonl", "llm.jsonl", "chain-head.json"):
        assert mode(p.data_dir / "logs" / name) == 0o600, name
    data = p.data_dir
    p.stop()
    # A CA key others could read: refused, with the fix; left as it was.
    os.chmod(data / "ca" / "airlock-ca.key", 0o644)
    r = airlock("start", "--data-dir", data, "--listen", "127.0.0.1:0", timeout=20)
    assert r.returncode == 1 and "readable by other users" in r.stderr and "chmod 600" in r.stderr, r.stderr
    assert mode(data / "ca" / "airlock-ca.key") == 0o644
    # A data directory an older version left open is tightened.
    os.chmod(data / "ca" / "airlock-ca.key", 0o600)
    os.chmod(data, 0o755)
    q = start_proxy(data_dir=data)
    assert mode(data) == 0o700
    assert q.alive()
