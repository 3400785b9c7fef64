"""`airlock run -- CMD`: the proxy and CA environment for a child process."""

import json
import re
import sys

from e2e_helpers import airlock
from records import read_jsonl, wait_for

CA_VARS = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "PIP_CERT", "AWS_CA_BUNDLE"]
PROXY_VARS = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]


def _run_setup(start_proxy, run_env):
    """A data dir and config (ephemeral proxy port) for a proxy that `run` starts itself."""
    data_dir = start_proxy.new_data_dir()
    cfg = start_proxy.base_config()
    cfg.update({"proxy_host": "127.0.0.1", "proxy_port": 0})
    config_path = start_proxy.write_config(cfg)
    return data_dir, run_env(data_dir, config_path)


def _env_under_run(env):
    r = airlock("run", "--", "env", env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    out = {}
    for line in r.stdout.splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out[k] = v
    return out


def _check_env(child, data_dir, port=None):
    bundle = str(data_dir / "ca" / "bundle.pem")
    for var in CA_VARS:
        assert child.get(var) == bundle, f"{var}={child.get(var)!r}, expected {bundle}"
    ports = set()
    for var in PROXY_VARS:
        m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/?", child.get(var, ""))
        assert m, f"{var}={child.get(var)!r}"
        ports.add(int(m.group(1)))
    assert len(ports) == 1, f"proxy variables disagree: {ports}"
    if port is not None:
        assert ports == {port}, f"run pointed at port {ports}, the running instance listens on {port}"
    no_proxy = child.get("NO_PROXY", "")
    assert "127.0.0.1" in no_proxy or "localhost" in no_proxy, f"NO_PROXY={no_proxy!r}"
    return ports.pop()


def test_run_starts_a_proxy_for_the_duration(start_proxy, run_env):
    data_dir, env = _run_setup(start_proxy, run_env)
    r = airlock("run", "--", "curl", "-sS", "--max-time", "20", "https://example.test/hello", env=env, timeout=60)
    assert r.returncode == 0, f"rc={r.returncode} stderr={r.stderr[-2000:]}"
    assert r.stdout == "hello"
    wait_for(
        lambda: [f for f in read_jsonl(data_dir / "logs" / "flows.jsonl") if f.get("host") == "example.test"],
        what="flow record of the request made under run",
    )
    # the proxy it started is gone once run returns
    r = airlock("status", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["running"] is False, f"a proxy started by run outlived it: {r.stdout}"


def test_run_environment(start_proxy, run_env):
    data_dir, env = _run_setup(start_proxy, run_env)
    child = _env_under_run(env)
    _check_env(child, data_dir)
    bundle = (data_dir / "ca" / "bundle.pem").read_text()
    assert (data_dir / "ca" / "airlock-ca.pem").read_text().strip() in bundle


def test_run_exit_code_is_the_childs(start_proxy, run_env):
    _, env = _run_setup(start_proxy, run_env)
    r = airlock("run", "--", "sh", "-c", "exit 7", env=env, timeout=60)
    assert r.returncode == 7


def test_run_python_clients_need_no_setup(start_proxy, run_env):
    _, env = _run_setup(start_proxy, run_env)
    code = (
        "import requests, httpx\n"
        "print(requests.get('https://example.test/hello', timeout=20).text)\n"
        "print(httpx.get('https://example.test/hello', timeout=20).text)\n"
    )
    r = airlock("run", "--", sys.executable, "-c", code, env=env, timeout=60)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["hello", "hello"]


def test_run_uses_the_running_instance(start_proxy, run_env):
    p = start_proxy()
    env = run_env(p.data_dir, p.config_path)
    child = _env_under_run(env)
    _check_env(child, p.data_dir, port=p.port)
    r = airlock("run", "--", "curl", "-sS", "--max-time", "20", "https://example.test/hello?via=run", env=env, timeout=60)
    assert (r.returncode, r.stdout) == (0, "hello"), r.stderr
    p.wait_flows(lambda f: "via=run" in (f.get("url") or ""))
    assert p.alive()
