"""Many concurrent requests: every one answered and recorded exactly once."""

import asyncio
import uuid
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from e2e_helpers import curl, httpx_client

N = 200


@pytest.mark.parametrize("mode", ["http", "https", "https-h2"])
def test_200_concurrent_requests(proxy, mode):
    """http/https: 200 client connections at once; https-h2: 200 streams on one h2 connection."""
    scheme = mode.split("-")[0]
    run = uuid.uuid4().hex

    async def main():
        limits = httpx.Limits(max_connections=N, max_keepalive_connections=N)
        async with httpx_client(proxy, asynchronous=True, limits=limits, http2=mode.endswith("h2")) as c:

            async def one(i):
                r = await c.get(f"{scheme}://example.test/echo?run={run}&i={i}")
                return i, r.status_code, r.json()["query"]

            return await asyncio.gather(*(one(i) for i in range(N)))

    results = asyncio.run(main())
    bad = [(i, s, q) for i, s, q in results if s != 200 or q != f"run={run}&i={i}"]
    assert not bad, f"{len(bad)} of {N} requests failed or were mixed up: {bad[:5]}"

    flows = proxy.wait_flows(lambda f: run in (f.get("url") or ""), count=N, timeout=20)
    # a later request marks the point where all of ours have been written
    assert curl("http://example.test/hello?after=" + run, proxy=proxy).status == 200
    proxy.wait_flows(lambda f: ("after=" + run) in (f.get("url") or ""))
    flows = [f for f in proxy.flows() if ("run=" + run) in (f.get("url") or "")]
    assert len(flows) == N, f"{len(flows)} flow lines for {N} requests"
    ids = [f["id"] for f in flows]
    assert len(set(ids)) == N, "flow ids are not unique"
    seen = Counter(int(parse_qs(urlsplit(f["url"]).query)["i"][0]) for f in flows)
    assert set(seen) == set(range(N)) and set(seen.values()) == {1}
    assert all(f["status"] == 200 and f["scheme"] == scheme for f in flows)
