"""`airlock doctor`: each client installed here, tried through airlock, with the fix for those
that fail."""

import shutil
import stat

import pytest

from e2e_helpers import airlock


def _rows(stdout: str) -> dict:
    """client -> (result, the whole line), from the table (client in 20 columns, then the result)."""
    rows = {}
    for line in stdout.splitlines():
        result = line[20:28].strip()
        if result in ("works", "FAILS", "-"):
            rows[line[:20].strip()] = (result, line)
    return rows


def _shim_dir(tmp_path, script: str):
    """A PATH holding only a `curl` that wraps the real one."""
    real = shutil.which("curl")
    if real is None:
        pytest.skip("curl is not installed")
    d = tmp_path / "shim"
    d.mkdir()
    shim = d / "curl"
    shim.write_text(f"#!/bin/sh\nexec {real} {script} \"$@\"\n")
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(d)


def test_doctor_tries_the_installed_clients(start_proxy, run_env):
    env = run_env(start_proxy.new_data_dir())
    r = airlock("doctor", env=env, timeout=240)
    assert r.returncode in (0, 1), r.stderr
    rows = _rows(r.stdout)
    assert "client" in r.stdout and "result" in r.stdout, r.stdout
    if shutil.which("curl"):
        assert rows.get("curl", ("?",))[0] == "works", r.stdout
    if shutil.which("python3"):
        assert rows.get("python (urllib)", ("?",))[0] == "works", r.stdout
    if shutil.which("git"):
        assert rows.get("git", ("?",))[0] == "works", r.stdout
    failing = [name for name, (result, _) in rows.items() if result == "FAILS"]
    # Exit 0 exactly when every client found works.
    assert r.returncode == (1 if failing else 0), r.stdout
    for name in failing:
        assert "fix" in r.stdout and rows[name][1].split("FAILS", 1)[1].strip(), f"no fix for {name}: {r.stdout}"
    node = rows.get("node (fetch)")
    if node and node[0] == "FAILS":
        assert "22.21" in node[1] and "jail" in node[1], node[1]


def test_doctor_names_a_client_that_goes_direct(start_proxy, run_env, tmp_path):
    env = run_env(start_proxy.new_data_dir())
    env["PATH"] = _shim_dir(tmp_path, "--noproxy '*'")
    r = airlock("doctor", env=env, timeout=120)
    assert r.returncode == 1, r.stdout
    result, line = _rows(r.stdout)["curl"]
    assert result == "FAILS", r.stdout
    assert "went direct" in line and "jail" in line, line


def test_doctor_names_a_client_that_distrusts_the_ca(start_proxy, run_env, tmp_path, certs):
    env = run_env(start_proxy.new_data_dir())
    env["PATH"] = _shim_dir(tmp_path, f"--cacert {certs.upstream_ca_path}")
    r = airlock("doctor", env=env, timeout=120)
    assert r.returncode == 1, r.stdout
    result, line = _rows(r.stdout)["curl"]
    assert result == "FAILS", r.stdout
    assert "does not trust airlock's CA" in line, line


def test_doctor_passes_when_every_client_works(start_proxy, run_env, tmp_path):
    env = run_env(start_proxy.new_data_dir())
    env["PATH"] = _shim_dir(tmp_path, "")
    r = airlock("doctor", env=env, timeout=120)
    assert r.returncode == 0, r.stdout
    assert _rows(r.stdout)["curl"][0] == "works", r.stdout
    assert "1 clients tried: all go through airlock" in r.stdout
