"""keylog_file: NSS key log of both TLS sides."""

import re

from e2e_helpers import curl
from records import wait_for

LINE = re.compile(r"^([A-Z0-9_]+) ([0-9a-f]{64}) ([0-9a-f]+)$")


def _client_randoms(path, label="CLIENT_TRAFFIC_SECRET_0"):
    try:
        text = path.read_text()
    except FileNotFoundError:
        return set()
    randoms = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"not an NSS key log line: {line!r}"
        if m.group(1) == label:
            randoms.add(m.group(2))
    return randoms


def test_keylog_file_both_sides(start_proxy, tmp_path):
    keylog = tmp_path / "keys.log"
    p = start_proxy({"keylog_file": str(keylog)})
    res = curl("https://example.test/hello", proxy=p, cacert=p.ca_path)
    assert (res.rc, res.body) == (0, b"hello"), res.stderr
    def two_sides():
        r = _client_randoms(keylog)
        return r if len(r) >= 2 else None

    randoms = wait_for(
        two_sides,
        what=f"CLIENT_TRAFFIC_SECRET_0 lines for 2 client randoms in {keylog}",
    )
    assert len(randoms) >= 2
    text = keylog.read_text()
    assert "SERVER_TRAFFIC_SECRET_0" in text
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET" in text
