"""Connection re-use on both sides of the proxy."""

import re
import subprocess

import pytest

from e2e_helpers import clean_environ, requests_session


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_upstream_keepalive_with_session(proxy, scheme):
    with requests_session(proxy) as s:
        ports = []
        for i in range(5):
            r = s.get(f"{scheme}://example.test/echo?i={i}", timeout=30)
            assert r.status_code == 200
            ports.append(r.json()["peer_port"])
    assert len(set(ports)) == 1, f"upstream saw {len(set(ports))} different connections for 5 keep-alive requests: {ports}"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_client_connection_reused_by_curl(proxy, scheme):
    url = f"{scheme}://example.test/hello"
    proc = subprocess.run(
        ["curl", "-sS", "-v", "--max-time", "20", "-x", proxy.url, "--cacert", str(proxy.ca_path), url, url],
        capture_output=True,
        env=clean_environ(),
        timeout=40,
    )
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, err
    assert proc.stdout == b"hellohello"
    # curl 7.x says "Re-using existing connection", curl 8.x "Reusing existing connection"
    assert re.search(r"Re-?using existing connection", err), f"curl did not re-use its connection to the proxy:\n{err[-3000:]}"
