"""Config keys take effect, and command-line flags override the file."""

from e2e_helpers import curl, url_path
from records import read_jsonl, wait_for


def test_listen_from_config(start_proxy):
    p = start_proxy({"proxy_host": "127.0.0.1", "proxy_port": 0}, listen=None)
    assert p.port != 0
    res = curl("http://example.test/hello", proxy=p)
    assert (res.status, res.body) == (200, b"hello")


def test_flags_override_file(start_proxy):
    p = start_proxy({"log": 0, "enable_mitm": True}, log=2, mitm=False)
    assert p.boot["log"] == "full"
    assert p.boot["mitm"] is False


def test_log_from_config_file(start_proxy):
    p = start_proxy({"log": 2}, log=None)
    assert p.boot["log"] == "full"
    p = start_proxy({"log": 0}, log=None)
    assert p.boot["log"] == "off"


def test_log_dir(start_proxy, tmp_path):
    log_dir = tmp_path / "elsewhere"
    p = start_proxy({"log_dir": str(log_dir)})
    assert curl("http://example.test/hello?logdir=1", proxy=p).status == 200
    wait_for(
        lambda: [f for f in read_jsonl(log_dir / "flows.jsonl") if url_path(f) == "/hello"],
        what=f"flow record in {log_dir}/flows.jsonl",
    )


def test_sslkeylogfile_env(start_proxy, tmp_path):
    keylog = tmp_path / "env-keys.log"
    p = start_proxy(extra_env={"SSLKEYLOGFILE": str(keylog)})
    res = curl("https://example.test/hello", proxy=p, cacert=p.ca_path)
    assert (res.rc, res.body) == (0, b"hello"), res.stderr
    wait_for(
        lambda: keylog.exists() and "CLIENT_TRAFFIC_SECRET_0" in keylog.read_text(),
        what=f"key log lines in {keylog} (SSLKEYLOGFILE)",
    )


def test_data_dir_created(start_proxy, tmp_path):
    d = tmp_path / "not" / "yet" / "there"
    p = start_proxy(data_dir=d)
    assert p.ca_path.exists()
    assert curl("https://example.test/hello", proxy=p, cacert=p.ca_path).body == b"hello"
