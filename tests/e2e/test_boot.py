"""The boot line (first stderr line) and process lifecycle of `airlock start`."""

import os
import socket

import pytest

from e2e_helpers import assert_serving

BOOT_FIELDS = {"event", "version", "listen", "gateways", "admin", "mitm", "log", "ca", "data_dir"}


def test_boot_line_fields_and_real_port(proxy):
    b = proxy.boot
    assert set(b) == BOOT_FIELDS, f"boot line fields differ from SPEC 4: {sorted(b)}"
    assert b["event"] == "boot"
    assert isinstance(b["version"], str) and b["version"], b
    assert b["gateways"] == []
    assert b["mitm"] is True
    assert b["log"] == "full"
    assert os.path.realpath(b["ca"]) == os.path.realpath(proxy.ca_path)
    assert os.path.realpath(b["data_dir"]) == os.path.realpath(proxy.data_dir)
    assert os.path.exists(b["ca"]), "the CA named in the boot line does not exist"
    # the port named is the one actually bound: it accepts and proxies
    socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
    assert_serving(proxy)


@pytest.mark.parametrize("level,name", [(0, "off"), (1, "blocks"), (2, "full")])
def test_boot_line_log_level(start_proxy, level, name):
    p = start_proxy(log=level)
    assert p.boot["log"] == name


def test_boot_line_no_mitm(start_proxy):
    p = start_proxy(mitm=False)
    assert p.boot["mitm"] is False


def test_boot_line_enable_mitm_false_in_config(start_proxy):
    p = start_proxy({"enable_mitm": False})
    assert p.boot["mitm"] is False


def test_sigterm_stops_gracefully(proxy):
    assert_serving(proxy)
    rc = proxy.stop(timeout=5)
    assert rc == 0, f"airlock exited with {rc} on SIGTERM (expected a graceful exit 0 within 5 s)"


def test_sigterm_right_after_boot_line(start_proxy):
    """The boot line means ready: SIGTERM from then on is a graceful stop, not a kill."""
    codes = []
    for _ in range(5):
        p = start_proxy()
        codes.append(p.stop(timeout=5))
    assert codes == [0] * 5, f"exit statuses on SIGTERM sent right after the boot line: {codes} (-15 = killed by the signal)"
