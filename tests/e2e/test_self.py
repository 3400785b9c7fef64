"""Requests for airlock.local are answered by the proxy itself."""

from e2e_helpers import curl


def test_airlock_local_page(proxy):
    res = curl("http://airlock.local/", proxy=proxy)
    assert res.rc == 0, res.stderr
    assert res.status == 200
    assert "airlock" in res.text.lower()


def test_airlock_local_ca_pem(proxy):
    res = curl("http://airlock.local/ca.pem", proxy=proxy)
    assert res.status == 200
    assert res.body == proxy.ca_path.read_bytes()
