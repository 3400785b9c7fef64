"""mitmproxy addon: resolve bench host names to loopback addresses, like curl --resolve.

mitmdump has no hosts-file option and /etc/hosts must not be edited, so this rewrites the
address mitmproxy connects to, keeping the Host header, SNI and the certificate check on the
original name, as airlock's `resolve:` and squid's `hosts_file` do. Mapping comes from the
environment: BENCH_RESOLVE="bench.test=127.0.0.1".

Two hooks: `server_connect` for connections opened at CONNECT time (HTTPS), and
`requestheaders` for plain-HTTP proxy requests, whose target must be the IP already when
mitmproxy looks for a reusable upstream connection (otherwise every request would open a new
one, which is not mitmproxy's normal behaviour).
"""
import os


_MAP = {}
for item in os.environ.get("BENCH_RESOLVE", "").split(","):
    if "=" in item:
        name, ip = item.split("=", 1)
        _MAP[name.strip().lower()] = ip.strip()


def server_connect(data) -> None:  # mitmproxy.proxy.server_hooks.ServerConnectionHookData
    address = data.server.address
    if address and address[0].lower() in _MAP:
        data.server.address = (_MAP[address[0].lower()], address[1])


def requestheaders(flow) -> None:  # mitmproxy.http.HTTPFlow
    req = flow.request
    ip = _MAP.get(req.host.lower())
    if ip is not None:
        host_header = req.host_header
        req.host = ip  # also rewrites the Host header / authority ...
        req.host_header = host_header  # ... which is put back
