"""Clients that ignore SPEC 5's variables, and what airlock does so that they still trust it:
`airlock run`'s extra variables (npm, httplib2, gRPC, gcloud, Nix, Deno, Cargo, Node's proxy
switch), the wgetrc and Java settings it writes, `airlock ca --nss` for Chromium, a bundle of CA
certificates only, the airlock CA sent in the leaf's chain, and the failed flow a client leaves
when it completes the TLS handshake and then hangs up (wget rejecting the certificate)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from e2e_helpers import airlock, clean_environ, cli_env, connect_tunnel
from records import read_jsonl, wait_for

SYSTEM_STORE = "/etc/ssl/certs/ca-certificates.crt"
SNAKEOIL = Path("/etc/ssl/certs/ssl-cert-snakeoil.pem")

# What `airlock run` sets even when the parent set it to something else.
BUNDLE_VARS = [
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "AWS_CA_BUNDLE",
    "npm_config_cafile",
    "HTTPLIB2_CA_CERTS",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
    "NIX_SSL_CERT_FILE",
    "DENO_CERT",
    "CARGO_HTTP_CAINFO",
]
PROXY_URL_VARS = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "npm_config_proxy",
    "npm_config_https_proxy",
    "CARGO_HTTP_PROXY",
]
# Variables of the machine running the suite that point clients at a store without airlock's CA
# (clean_environ leaves these); a client test sets them itself.
_OTHER_CLIENT_VARS = set(BUNDLE_VARS) | set(PROXY_URL_VARS) | {
    "NODE_USE_ENV_PROXY",
    "WGETRC",
    "JAVA_TOOL_OPTIONS",
    "SSL_CERT_DIR",
}

MAY_HAVE_REJECTED = "may have rejected"

# some system roots have a serial number that is not positive (cryptography warns about them)
pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")


def _need(*tools: str):
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")


def _base_env(tmp_path: Path, data_dir: Path, config_path: Path | None) -> dict:
    """A clean environment for `airlock run` (or a client): no client trust or proxy settings
    from the machine, HOME a fresh directory, AIRLOCK_HOME/AIRLOCK_CONFIG the test's."""
    env = {k: v for k, v in clean_environ().items() if k not in _OTHER_CLIENT_VARS}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env["HOME"] = str(home)
    env["AIRLOCK_HOME"] = str(data_dir)
    if config_path is not None:
        env["AIRLOCK_CONFIG"] = str(config_path)
    return env


def _run_setup(start_proxy, tmp_path):
    """A data dir and config (ephemeral port) for the private proxy `airlock run` starts."""
    data_dir = start_proxy.new_data_dir()
    cfg = start_proxy.base_config()
    cfg.update({"proxy_host": "127.0.0.1", "proxy_port": 0})
    config_path = start_proxy.write_config(cfg)
    return data_dir, _base_env(tmp_path, data_dir, config_path)


def _flows(data_dir: Path) -> list[dict]:
    return read_jsonl(data_dir / "logs" / "flows.jsonl")


def _wait_flow(data_dir: Path, pred, what: str, timeout: float = 5.0) -> dict:
    return wait_for(lambda: [f for f in _flows(data_dir) if pred(f)], what=what, timeout=timeout)[0]


def _ok_flow(host: str, path: str | None = None):
    def pred(f):
        return (
            f.get("host") == host
            and f.get("status") == 200
            and (path is None or (f.get("url") or "").split("?")[0].endswith(path))
        )

    return pred


def _rejected_flow(host: str):
    def pred(f):
        return (
            f.get("host") == host
            and f.get("action") == "failed"
            and f.get("method") == "CONNECT"
            and MAY_HAVE_REJECTED in (f.get("reason") or "")
        )

    return pred


def _run(env, *cmd, timeout: float = 45):
    return airlock("run", "--", *cmd, env=env, timeout=timeout)


def _show(r) -> str:
    return f"rc={r.returncode} stdout={r.stdout[-1500:]!r} stderr={r.stderr[-3000:]!r}"


def _pem_certs(text: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(text.encode())


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


# --------------------------------------------------------------------------- npm


def test_npm_through_run_despite_a_user_cafile(start_proxy, tmp_path):
    _need("npm")
    # the registry must be reachable without airlock, or this test says nothing about airlock
    try:
        socket.create_connection(("registry.npmjs.org", 443), timeout=5).close()
    except OSError as e:
        pytest.skip(f"registry.npmjs.org not reachable from this machine: {e}")
    data_dir, env = _run_setup(start_proxy, tmp_path)
    npmrc = tmp_path / "npmrc"
    # the field failure: a cafile naming the system store replaces Node's roots for npm,
    # so airlock's CA (in NODE_EXTRA_CA_CERTS) would no longer count
    npmrc.write_text(f"cafile={SYSTEM_STORE}\nfund=false\naudit=false\nupdate-notifier=false\n")
    env["npm_config_userconfig"] = str(npmrc)
    env["npm_config_cache"] = str(tmp_path / "npm-cache")  # nothing answered from a cache
    r = _run(env, "npm", "view", "left-pad", "version", "--fetch-retries=0", "--fetch-timeout=20000", timeout=55)
    assert r.returncode == 0, _show(r)
    assert re.fullmatch(r"\d+\.\d+\.\d+", r.stdout.strip()), f"npm printed no version: {_show(r)}"
    _wait_flow(
        data_dir,
        lambda f: f.get("host") == "registry.npmjs.org" and f.get("status") == 200,
        "a flow record of npm's request to registry.npmjs.org",
    )


# --------------------------------------------------------------------------- wget


def test_wget_through_run(start_proxy, tmp_path):
    _need("wget")
    data_dir, env = _run_setup(start_proxy, tmp_path)
    r = _run(env, "wget", "-qO-", "--tries=1", "--timeout=20", "https://example.test/hello")
    assert (r.returncode, r.stdout) == (0, "hello"), _show(r)
    _wait_flow(data_dir, _ok_flow("example.test", "/hello"), "a flow record of wget's request")
    rejected = [f for f in _flows(data_dir) if _rejected_flow("example.test")(f)]
    assert not rejected, f"a successful wget left a 'may have rejected' record: {rejected}"


def test_wget_without_the_ca_leaves_a_failed_flow(start_proxy, tmp_path):
    _need("wget")
    p = start_proxy()
    env = _base_env(tmp_path, p.data_dir, None)
    env["https_proxy"] = p.url  # the proxy, but not its CA: wget checks against the system store
    r = subprocess.run(
        ["wget", "-qO-", "--tries=1", "--timeout=20", "https://example.test/hello"],
        capture_output=True,
        text=True,
        env=env,
        timeout=40,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode != 0 and "hello" not in r.stdout, f"wget trusted airlock without its CA: {_show(r)}"
    flow = p.wait_flows(_rejected_flow("example.test"))[0]
    assert flow.get("port") == 443, flow


# --------------------------------------------------------------------------- Java

FETCH_JAVA = """\
import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URI;

public class Fetch {
    public static void main(String[] args) throws Exception {
        HttpURLConnection c = (HttpURLConnection) URI.create(args[0]).toURL().openConnection();
        c.setConnectTimeout(15000);
        c.setReadTimeout(15000);
        try (InputStream in = c.getInputStream()) {
            System.out.print(new String(in.readAllBytes(), "UTF-8"));
        }
    }
}
"""


def test_java_through_run(start_proxy, tmp_path):
    _need("java", "keytool")
    data_dir, env = _run_setup(start_proxy, tmp_path)
    src = tmp_path / "Fetch.java"
    src.write_text(FETCH_JAVA)
    r = _run(env, "java", str(src), "https://example.test/hello", timeout=55)
    assert (r.returncode, r.stdout) == (0, "hello"), _show(r)
    _wait_flow(data_dir, _ok_flow("example.test", "/hello"), "a flow record of Java's request")


def test_java_through_run_with_a_space_in_the_data_dir(start_proxy, tmp_path):
    _need("java", "keytool")
    data_dir = tmp_path / "data dir"  # e.g. a HOME or XDG_DATA_HOME with a space in it
    data_dir.mkdir()
    cfg = start_proxy.base_config()
    cfg.update({"proxy_host": "127.0.0.1", "proxy_port": 0})
    env = _base_env(tmp_path, data_dir, start_proxy.write_config(cfg))
    src = tmp_path / "Fetch.java"
    src.write_text(FETCH_JAVA)
    r = _run(env, "java", str(src), "https://example.test/hello", timeout=55)
    assert (r.returncode, r.stdout) == (0, "hello"), _show(r)


# --------------------------------------------------------------------------- httplib2


def test_httplib2_through_run_despite_its_own_store(start_proxy, tmp_path):
    pytest.importorskip("httplib2", reason="httplib2 not installed")
    # without PySocks httplib2 ignores https_proxy and connects directly
    pytest.importorskip("socks", reason="PySocks (httplib2's proxy support) not installed")
    data_dir, env = _run_setup(start_proxy, tmp_path)
    env["HTTPLIB2_CA_CERTS"] = SYSTEM_STORE  # the parent's: a store without airlock's CA
    code = (
        "import httplib2\n"
        "resp, body = httplib2.Http(timeout=20).request('https://example.test/hello?via=httplib2')\n"
        "print(resp.status, body.decode())\n"
    )
    r = _run(env, sys.executable, "-c", code)
    assert r.returncode == 0, _show(r)
    assert r.stdout.split() == ["200", "hello"], _show(r)
    _wait_flow(
        data_dir,
        lambda f: f.get("host") == "example.test" and "via=httplib2" in (f.get("url") or ""),
        "a flow record of httplib2's request",
    )


# --------------------------------------------------------------------------- Chromium and NSS


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium not installed")


def _chromium_dump(binary: str, home: Path, profile: Path, proxy_port: int, url: str):
    env = {k: v for k, v in clean_environ().items() if k not in _OTHER_CLIENT_VARS}
    env["HOME"] = str(home)
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--proxy-server=http://127.0.0.1:{proxy_port}",
        "--dump-dom",
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=40, stdin=subprocess.DEVNULL)


# the text/plain body as Chromium renders it: <pre ...>hello</pre> (or <body>hello</body>)
_HELLO_IN_DOM = re.compile(r">\s*hello\s*<")


def test_chromium_trusts_airlock_after_ca_nss(start_proxy, tmp_path):
    binary = _chromium()
    _need("certutil")
    p = start_proxy()
    home = tmp_path / "home"
    nssdb = home / ".pki" / "nssdb"
    r = airlock("ca", "--nss", nssdb, env=cli_env(p))
    assert r.returncode == 0, _show(r)
    assert (nssdb / "cert9.db").exists(), f"no NSS database at {nssdb}: {_show(r)}"
    listed = subprocess.run(["certutil", "-L", "-d", f"sql:{nssdb}"], capture_output=True, text=True, timeout=20)
    line = next((ln for ln in listed.stdout.splitlines() if ln.startswith("airlock CA")), "")
    assert line.split()[-1:] == ["C,,"], f"'airlock CA' not in the database as C,,: {listed.stdout}"

    r = _chromium_dump(binary, home, tmp_path / "profile", p.port, "https://example.test/hello")
    assert _HELLO_IN_DOM.search(r.stdout), f"Chromium did not get hello: {_show(r)}"
    p.wait_flows(_ok_flow("example.test", "/hello"))


def test_chromium_without_ca_nss_gets_no_page(start_proxy, tmp_path):
    binary = _chromium()
    _need("certutil")
    p = start_proxy()
    home = tmp_path / "home"
    home.mkdir()
    r = _chromium_dump(binary, home, tmp_path / "profile", p.port, "https://example.test/hello")
    assert not _HELLO_IN_DOM.search(r.stdout), f"Chromium got the page without trusting airlock's CA: {_show(r)}"
    # it did try, through airlock: the handshake it refused is on record
    p.wait_flows(lambda f: f.get("host") == "example.test" and f.get("method") == "CONNECT" and f.get("action") == "failed")
    served = [f for f in p.flows() if _ok_flow("example.test", "/hello")(f)]
    assert not served, f"airlock served Chromium the page: {served}"


# --------------------------------------------------------------------------- the bundle and the chain


def test_bundle_holds_ca_certificates_only(start_proxy):
    p = start_proxy()
    bundle_path = p.data_dir / "ca" / "bundle.pem"
    bundle = _pem_certs(bundle_path.read_text())
    assert len(bundle) > 1, f"the bundle holds {len(bundle)} certificate(s): no system roots?"
    not_ca = []
    for cert in bundle:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = cert.version == x509.Version.v1 and cert.issuer == cert.subject
        if not is_ca:
            not_ca.append(cert.subject.rfc4514_string())
    assert not not_ca, f"{bundle_path} holds certificates that are not CAs: {not_ca}"
    ders = {_der(c) for c in bundle}
    ca = _pem_certs(p.ca_path.read_text())[0]
    assert _der(ca) in ders, "the airlock CA is not in the bundle"
    if SNAKEOIL.exists():
        snakeoil = _pem_certs(SNAKEOIL.read_text())
        assert not ({_der(c) for c in snakeoil} & ders), f"{SNAKEOIL} (a server certificate) is in the bundle"


def test_leaf_is_sent_with_the_airlock_ca(start_proxy):
    _need("openssl")
    p = start_proxy()
    r = subprocess.run(
        [
            "openssl", "s_client",
            "-proxy", f"127.0.0.1:{p.port}",
            "-connect", "example.test:443",
            "-servername", "example.test",
            "-showcerts",
            "-CAfile", str(p.ca_path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        input="",
    )
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", r.stdout, re.S)
    assert len(pems) == 2, f"the server sent {len(pems)} certificate(s), expected [leaf, CA]: {_show(r)}"
    leaf, second = (x509.load_pem_x509_certificate(pem.encode()) for pem in pems)
    ca = _pem_certs(p.ca_path.read_text())[0]
    assert _der(second) == _der(ca), f"the second certificate is not the airlock CA: {second.subject}"
    assert leaf.issuer == ca.subject, f"leaf issued by {leaf.issuer}, not the airlock CA"
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "example.test" in sans.get_values_for_type(x509.DNSName), sans
    assert "Verify return code: 0 (ok)" in r.stdout, f"openssl did not verify the chain with the airlock CA: {_show(r)}"


# --------------------------------------------------------------------------- TLS then silence


def test_handshake_then_close_is_a_failed_flow(start_proxy):
    p = start_proxy()
    sock, resp = connect_tunnel(p.port, "example.test:443")
    assert resp.status == 200, resp
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = ctx.wrap_socket(sock, server_hostname="example.test")  # handshake completes here
    assert tls.getpeercert(binary_form=True), "no server certificate"
    tls.close()
    flow = p.wait_flows(_rejected_flow("example.test"))[0]
    assert flow.get("port") == 443, flow
    assert "certificate" in flow["reason"], flow


# --------------------------------------------------------------------------- the variables


def test_run_overrides_the_parents_client_settings(start_proxy, tmp_path):
    data_dir, env = _run_setup(start_proxy, tmp_path)
    for var in BUNDLE_VARS:
        env[var] = SYSTEM_STORE
    for var in PROXY_URL_VARS:
        env[var] = "http://parent-proxy.invalid:3128"
    env["NODE_USE_ENV_PROXY"] = "0"
    parent_java = "-Dparent.own=1"
    env["JAVA_TOOL_OPTIONS"] = parent_java
    (Path(env["HOME"]) / ".wgetrc").write_text("tries = 3\nca_certificate = /etc/ssl/certs/ca-certificates.crt\n")

    r = _run(env, "env", timeout=55)
    assert r.returncode == 0, _show(r)
    child = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)

    bundle = str(data_dir / "ca" / "bundle.pem")
    wrong = [f"{v}={child.get(v)!r} (want {bundle})" for v in BUNDLE_VARS if child.get(v) != bundle]
    proxy_url = child.get("HTTP_PROXY", "")
    m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/?", proxy_url)
    assert m, f"HTTP_PROXY={proxy_url!r}"
    port = int(m.group(1))
    wrong += [f"{v}={child.get(v)!r} (want {proxy_url})" for v in PROXY_URL_VARS if child.get(v) != proxy_url]
    if child.get("NODE_USE_ENV_PROXY") != "1":
        wrong.append(f"NODE_USE_ENV_PROXY={child.get('NODE_USE_ENV_PROXY')!r} (want '1')")
    wgetrc = str(data_dir / "clients" / "wgetrc")
    if child.get("WGETRC") != wgetrc:
        wrong.append(f"WGETRC={child.get('WGETRC')!r} (want {wgetrc})")
    assert not wrong, "airlock run left the parent's settings:\n  " + "\n  ".join(wrong)

    # the wgetrc: the user's own lines, and airlock's bundle as the only ca_certificate
    lines = [ln.strip() for ln in Path(wgetrc).read_text().splitlines()]
    assert "tries = 3" in lines, f"the user's ~/.wgetrc lines are not in {wgetrc}: {lines}"
    cas = [re.split(r"\s*=\s*", ln, maxsplit=1)[1] for ln in lines if re.match(r"ca_certificate\s*=", ln)]
    assert cas == [bundle], f"ca_certificate lines in {wgetrc}: {cas}"

    if shutil.which("java") is None:
        assert child.get("JAVA_TOOL_OPTIONS") == parent_java, "JAVA_TOOL_OPTIONS changed without java on the PATH"
        return
    opts = child.get("JAVA_TOOL_OPTIONS", "")
    assert opts.startswith(parent_java + " "), f"the parent's JAVA_TOOL_OPTIONS is not kept first: {opts!r}"
    # The JVM splits JAVA_TOOL_OPTIONS at spaces outside quotes, as shlex does.
    props = dict(o[2:].split("=", 1) for o in shlex.split(opts) if o.startswith("-D") and "=" in o)
    want = {
        "http.proxyHost": "127.0.0.1",
        "http.proxyPort": str(port),
        "https.proxyHost": "127.0.0.1",
        "https.proxyPort": str(port),
        "http.nonProxyHosts": "localhost|127.0.0.1|[::1]",
    }
    assert {k: props.get(k) for k in want} == want, f"JAVA_TOOL_OPTIONS={opts!r}"
    store = Path(props.get("javax.net.ssl.trustStore", ""))
    assert re.fullmatch(r"java-truststore-[0-9a-f]+\.p12", store.name) and store.parent == data_dir / "clients", (
        f"trustStore {store}"
    )
    assert store.is_file(), f"the trust store {store} does not exist"
    if "javax.net.ssl.trustStorePassword" in props:
        assert props["javax.net.ssl.trustStorePassword"] == "changeit", opts
    # PKCS12 with password changeit: the airlock CA plus the JDK's roots
    _, _, certs = pkcs12.load_key_and_certificates(store.read_bytes(), b"changeit")
    ders = {_der(c) for c in certs}
    ca = _pem_certs((data_dir / "ca" / "airlock-ca.pem").read_text())[0]
    assert _der(ca) in ders, f"the airlock CA is not in {store}"
    assert len(ders) > 1, f"{store} holds only airlock's CA, not the JDK's roots"


def test_run_wgetrc_carries_the_parents_wgetrc(start_proxy, tmp_path):
    data_dir, env = _run_setup(start_proxy, tmp_path)
    own = tmp_path / "my-wgetrc"
    own.write_text("timeout = 17\n")
    (Path(env["HOME"]) / ".wgetrc").write_text("tries = 3\n")
    env["WGETRC"] = str(own)  # $WGETRC wins over ~/.wgetrc, as in wget
    r = _run(env, "sh", "-c", 'cat "$WGETRC"')
    assert r.returncode == 0, _show(r)
    lines = [ln.strip() for ln in r.stdout.splitlines()]
    assert "timeout = 17" in lines, f"$WGETRC's lines are not carried over: {lines}"
    assert f"ca_certificate = {data_dir / 'ca' / 'bundle.pem'}" in lines, lines


NODE_FETCH = (
    "fetch(process.argv[1]).then(r => r.text()).then(t => console.log(t))"
    ".catch(e => { console.log('ERR ' + ((e.cause && e.cause.code) || e.message)); process.exit(3) })"
)


def _node_version():
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
    return tuple(int(x) for x in out.lstrip("v").split(".")[:2])


def test_node_fetch_through_run_with_the_preload(start_proxy, tmp_path):
    """Node before 22.21 ignores the proxy variables in fetch; --node-preload makes it use them."""
    _need("node", "npm")
    data_dir, env = _run_setup(start_proxy, tmp_path)
    if _node_version() < (22, 21):
        r = _run(env, "node", "-e", NODE_FETCH, "https://example.test/hello")
        assert r.stdout.strip() != "hello", f"Node {_node_version()} fetch went through without the preload?"
    r = airlock(
        "run", "--node-preload", "--", "node", "-e", NODE_FETCH, "https://example.test/hello",
        env=env, timeout=120,
    )
    if r.returncode != 0 and "could not install undici" in r.stderr:
        pytest.skip(f"the npm registry is not reachable: {r.stderr[-300:]}")
    assert (r.returncode, r.stdout.strip()) == (0, "hello"), _show(r)
    assert "experimental" not in r.stderr, r.stderr
    _wait_flow(data_dir, _ok_flow("example.test", "/hello"), "a flow record of Node's fetch")


GRPC_CLIENT = r"""
import sys, grpc
channel = grpc.secure_channel(sys.argv[1], grpc.ssl_channel_credentials())
echo = channel.unary_unary("/airlock.Echo/Say", request_serializer=None, response_deserializer=None)
print(echo(b"hello", timeout=20).decode())
"""


def test_grpcio_through_run_despite_its_own_store(start_proxy, tmp_path, certs):
    """grpcio reads its roots from GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, which machines point at the
    system store: under run it is the bundle, and a gRPC call goes through airlock over HTTP/2."""
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    leaf = certs.upstream_ca.issue_cert("grpc.test")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "airlock.Echo", {"Say": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}
    )
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials(
        [(leaf.private_key_pem.bytes(), b"".join(b.bytes() for b in leaf.cert_chain_pems))]
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:
        data_dir = start_proxy.new_data_dir()
        cfg = start_proxy.base_config()
        cfg.update({"proxy_host": "127.0.0.1", "proxy_port": 0})
        cfg["resolve"]["grpc.test:443"] = f"127.0.0.1:{port}"
        config_path = start_proxy.write_config(cfg)
        env = _base_env(tmp_path, data_dir, config_path)
        env["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = "/etc/ssl/certs/ca-certificates.crt"
        r = _run(env, sys.executable, "-c", GRPC_CLIENT, "grpc.test:443", timeout=60)
        assert (r.returncode, r.stdout.strip()) == (0, "hello"), _show(r)
        flow = _wait_flow(data_dir, lambda f: f.get("host") == "grpc.test" and f.get("method") == "POST",
                          "a flow record of the gRPC call")
        assert "/airlock.Echo/Say" in flow["url"], flow
    finally:
        server.stop(0)


@pytest.fixture(scope="session")
def bun_binary(tmp_path_factory):
    """Bun, from the npm registry (its package carries the binary); None when it cannot be had."""
    if shutil.which("bun"):
        return shutil.which("bun")
    if not shutil.which("npm"):
        return None
    prefix = tmp_path_factory.mktemp("bun")
    # The registry may sit behind the machine's own TLS inspection, whose CA is in the system
    # store (the test environment drops the variables that name it).
    env = dict(os.environ, NODE_EXTRA_CA_CERTS="/etc/ssl/certs/ca-certificates.crt")
    try:
        r = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix), "bun@1"],
                           capture_output=True, text=True, timeout=50, env=env)
    except subprocess.TimeoutExpired:
        return None
    path = prefix / "node_modules" / ".bin" / "bun"
    return str(path) if r.returncode == 0 and path.exists() else None


def test_bun_fetch_through_run(start_proxy, tmp_path, bun_binary):
    """Bun follows HTTPS_PROXY and NODE_EXTRA_CA_CERTS: under run it goes through airlock."""
    if bun_binary is None:
        pytest.skip("bun is not installed and npm could not fetch it")
    data_dir, env = _run_setup(start_proxy, tmp_path)
    code = "const r = await fetch(process.argv[1]); console.log(await r.text())"
    r = _run(env, bun_binary, "-e", code, "https://example.test/hello", timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, "hello"), _show(r)
    _wait_flow(data_dir, _ok_flow("example.test", "/hello"), "a flow record of Bun's fetch")
