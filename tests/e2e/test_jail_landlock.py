"""`airlock run --jail` without root: Landlock network rules confine CMD's TCP to airlock's port.

The tests run airlock as an unprivileged user (uid 65534 through `setpriv`), so they need root to
switch, and a kernel with Landlock ABI 4 or later; they skip with the reason otherwise.
"""

import ctypes
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from e2e_helpers import AIRLOCK_BIN, clean_environ
from records import read_jsonl

NOBODY = 65534


def _landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return max(libc.syscall(444, None, 0, 1), 0)


@pytest.fixture(scope="module")
def runnable_binary():
    """airlock where the unprivileged user can run it, wherever the checkout is (/root is 0700).

    One per module, and a hard link where the file system allows: a debug build is a few hundred
    MB, and a copy per test once filled a CI machine's disk.
    """
    folder = Path(tempfile.mkdtemp(prefix="airlock-landlock-bin-", dir="/tmp"))
    os.chmod(folder, 0o755)
    binary = folder / "airlock"
    try:
        os.link(AIRLOCK_BIN, binary)
    except OSError:
        shutil.copy(AIRLOCK_BIN, binary)
    os.chmod(binary, 0o755)
    yield binary
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def unprivileged(request, certs, upstreams, runnable_binary):
    """An environment and a command prefix that run airlock as an unprivileged user."""
    if os.geteuid() != 0:
        pytest.skip("switching to an unprivileged user needs root (these tests run airlock as uid 65534)")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    abi = _landlock_abi()
    if abi < 4:
        pytest.skip(f"the kernel offers Landlock ABI {abi}; network rules need 4")
    # pytest's own temporary directories are root's alone (0700 parents).
    home = Path(tempfile.mkdtemp(prefix="airlock-landlock-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(home, ignore_errors=True))
    os.chmod(home, 0o777)
    binary = runnable_binary
    from conftest import base_config

    config = home / "airlock.json"
    cfg = base_config(certs, upstreams)
    cfg.update({"proxy_host": "127.0.0.1", "proxy_port": 0})
    config.write_text(json.dumps(cfg))
    # The upstream CA must be readable by the unprivileged user.
    ca_copy = home / "upstream-ca.pem"
    ca_copy.write_text(certs.upstream_ca_path.read_text())
    cfg["upstream_ca"] = [str(ca_copy)]
    config.write_text(json.dumps(cfg))
    env = clean_environ()
    env.update({"HOME": str(home), "AIRLOCK_HOME": str(home / "data"), "AIRLOCK_CONFIG": str(config)})
    prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(binary)]
    return prefix, env, home / "data"


def _run(prefix, env, *cmd, timeout=60):
    return subprocess.run([*prefix, "run", "--jail", "--", *cmd], env=env, capture_output=True, text=True, timeout=timeout)


def test_landlock_mode_says_what_it_is_and_lets_proxied_clients_through(unprivileged):
    prefix, env, data = unprivileged
    r = _run(prefix, env, "curl", "-sS", "--max-time", "20", "https://example.test/hello")
    assert "jail (Landlock, unprivileged)" in r.stderr, r.stderr
    assert "do not cover UDP" in r.stderr, r.stderr
    assert (r.returncode, r.stdout) == (0, "hello"), r.stderr
    flows = read_jsonl(data / "logs" / "flows.jsonl")
    assert any(f.get("host") == "example.test" and f.get("status") == 200 for f in flows), flows


def test_landlock_mode_refuses_direct_connections_and_listening(unprivileged):
    prefix, env, _ = unprivileged
    code = (
        "import socket, sys\n"
        "out = []\n"
        "try:\n"
        "    socket.create_connection(('127.0.0.1', 9), timeout=5)\n"
        "    out.append('connected')\n"
        "except PermissionError:\n"
        "    out.append('connect-denied')\n"
        "except OSError as e:\n"
        "    out.append('connect-other:' + str(e))\n"
        "s = socket.socket()\n"
        "try:\n"
        "    s.bind(('127.0.0.1', 0)); s.listen(); out.append('listening')\n"
        "except PermissionError:\n"
        "    out.append('bind-denied')\n"
        "print(' '.join(out))\n"
    )
    r = _run(prefix, env, "python3", "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["connect-denied", "bind-denied"], r.stdout + r.stderr
    # A client that ignores the proxy variables cannot reach anything.
    r = _run(prefix, env, "curl", "-sS", "--noproxy", "*", "--max-time", "10", "http://127.0.0.1:9/")
    assert r.returncode != 0 and "hello" not in r.stdout


def test_landlock_mode_checks_the_path_first(unprivileged):
    prefix, env, _ = unprivileged
    r = _run(prefix, env, prefix[-1], "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "airlock is in the path." in r.stdout


def _userns_allowed(binary) -> bool:
    r = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "unshare", "-Urn", "true"],
        capture_output=True,
    )
    return r.returncode == 0


def test_user_namespace_mode_leaves_only_the_link(unprivileged):
    """Where Landlock has no network rules: a network of CMD's own with only a link to airlock
    (AIRLOCK_JAIL_MODE=userns chooses it on kernels that have both)."""
    prefix, env, data = unprivileged
    if not _userns_allowed(prefix[-1]):
        pytest.skip("this kernel refuses unprivileged user namespaces")
    env = dict(env, AIRLOCK_JAIL_MODE="userns")
    code = (
        "import os, socket, subprocess, sys\n"
        "out = [str(os.getuid())]\n"
        "r = subprocess.run(['curl', '-sS', '--max-time', '20', 'https://example.test/hello'], capture_output=True, text=True)\n"
        "out.append(r.stdout or 'curl-failed')\n"
        "r = subprocess.run(['curl', '-sS', '--noproxy', '*', '--max-time', '5', 'https://example.test/hello'], capture_output=True, text=True)\n"
        "out.append('direct-failed' if r.returncode else 'direct-ok')\n"
        "try:\n"
        "    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('1.2.3.4', 53)); out.append('udp-sent')\n"
        "except OSError:\n"
        "    out.append('udp-unreachable')\n"
        "print(' '.join(out))\n"
    )
    r = _run(prefix, env, "python3", "-c", code)
    assert "jail (user namespace, unprivileged)" in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(NOBODY), "hello", "direct-failed", "udp-unreachable"], r.stdout + r.stderr
    flows = read_jsonl(data / "logs" / "flows.jsonl")
    assert any(f.get("host") == "example.test" and f.get("status") == 200 for f in flows), flows
    # Its check ran inside first: the canary came through the link.
    assert any(f.get("host") == "canary.airlock.invalid" and f.get("scheme") == "https" for f in flows), flows


def test_an_unknown_jail_mode_is_a_usage_error(unprivileged):
    prefix, env, _ = unprivileged
    r = _run(prefix, dict(env, AIRLOCK_JAIL_MODE="chroot"), "true")
    assert r.returncode == 2 and "AIRLOCK_JAIL_MODE" in r.stderr, r.stderr
