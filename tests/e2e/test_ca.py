"""The interception CA and the leaf certificates made from it."""

import datetime
import ipaddress
import stat

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from e2e_helpers import connect_tunnel, curl, tls_wrap


def _load_ca(proxy):
    return x509.load_pem_x509_certificate(proxy.ca_path.read_bytes())


def test_ca_files(proxy):
    cert = _load_ca(proxy)
    key_path = proxy.data_dir / "ca" / "airlock-ca.key"
    assert key_path.exists()
    mode = stat.S_IMODE(key_path.stat().st_mode)
    assert mode == 0o600, f"CA key mode is {oct(mode)}"
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    assert cns == ["airlock CA"], cert.subject.rfc4514_string()
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 3600 <= days <= 3700, f"CA validity is {days} days, expected about 10 years"
    now = datetime.datetime.now(datetime.timezone.utc)
    assert cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is True
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert key.public_key().public_numbers() == pub.public_numbers(), "the key does not match the certificate"


def test_ca_reused_on_second_start(start_proxy):
    p1 = start_proxy()
    pem1 = p1.ca_path.read_bytes()
    key1 = (p1.data_dir / "ca" / "airlock-ca.key").read_bytes()
    p1.stop()  # (exit status checked in test_boot.py)
    p2 = start_proxy(data_dir=p1.data_dir)
    assert p2.ca_path.read_bytes() == pem1, "a second start replaced the CA"
    assert (p2.data_dir / "ca" / "airlock-ca.key").read_bytes() == key1
    res = curl("https://example.test/hello", proxy=p2, cacert=p2.ca_path)
    assert (res.rc, res.body) == (0, b"hello"), res.stderr


def test_bundle_pem(proxy):
    bundle = (proxy.data_dir / "ca" / "bundle.pem").read_text()
    assert proxy.ca_path.read_text().strip() in bundle
    assert bundle.count("BEGIN CERTIFICATE") > 1, "bundle.pem should hold the system roots too"


def _leaf_via_tunnel(proxy, target, server_hostname):
    sock, resp = connect_tunnel(proxy.port, target)
    assert resp.status == 200
    tls = tls_wrap(sock, server_hostname, proxy.ca_path)  # verifies chain and name/IP
    der = tls.getpeercert(binary_form=True)
    tls.close()
    return x509.load_der_x509_certificate(der)


def test_leaf_for_ip_address(proxy, upstreams):
    res = curl(f"https://127.0.0.1:{upstreams.https_port}/hello", proxy=proxy, cacert=proxy.ca_path)
    assert res.rc == 0, f"curl rejected the leaf for 127.0.0.1: {res.stderr}"
    assert res.body == b"hello"
    leaf = _leaf_via_tunnel(proxy, f"127.0.0.1:{upstreams.https_port}", "127.0.0.1")
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert leaf.issuer == _load_ca(proxy).subject


def test_leaf_for_name(proxy):
    leaf = _leaf_via_tunnel(proxy, "example.test:443", "example.test")
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "example.test" in san.get_values_for_type(x509.DNSName)
    assert leaf.issuer == _load_ca(proxy).subject
    try:
        bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    assert bc is None or bc.ca is False, "the leaf must not be a CA"
