"""The dashboard, in a real Chromium (playwright-core driving Debian's chromium): it loads with
no other origin under a strict CSP, shows status, recent flows, threats with their masked
snippet and LLM spend, receives new flows live, shows a flow's detail on click, and filters."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from e2e_helpers import curl
from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import anthropic_client, gateway_url

DRIVER = Path(__file__).with_name("dashboard_driver.js")
TOKEN = "ghp_" + "Qw7eR9tY1uI3oP5aS7dF9gH1jK3lZ5xC7vB9"


@pytest.mark.timeout(120)
def test_dashboard_in_a_browser(llm_gateway, llm_up, playwright_modules):
    p = llm_gateway()
    admin = f"http://{p.boot['admin']}/"
    assert curl(["https://example.test/hello?first=1"], proxy=p, cacert=p.ca_path).status == 200
    blocked = curl(["-X", "POST", "-d", f"token={TOKEN}", "https://example.test/post"], proxy=p, cacert=p.ca_path)
    assert blocked.status == 403
    reply = llm_up.reply(model="claude-sonnet-4-5-20250929", input_tokens=1000, output_tokens=200)
    anthropic_client(gateway_url(p)).messages.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": reply.prompt()}]
    )
    time.sleep(0.5)  # the store is written in batches
    # Screenshots are kept as artifacts of the run (git ignores the directory).
    shots = Path(__file__).with_name("artifacts")
    shots.mkdir(exist_ok=True)
    driver = subprocess.Popen(
        ["node", str(DRIVER), admin, "live=1"],
        env=dict(os.environ, NODE_PATH=playwright_modules, DASHBOARD_SHOTS=str(shots)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready = driver.stdout.readline()
        assert ready.startswith("READY "), ready + driver.stderr.read()
        shown = json.loads(ready[len("READY "):])
        assert any("example.test/hello?first=1" in row for row in shown["flows"]), shown
        assert any("blocked" in row and "example.test/post" in row for row in shown["flows"]), shown
        assert any("EXFIL" in row and "[REDACTED" in row for row in shown["threats"]), shown
        assert "claude-sonnet-4-5-20250929" in shown["spend"], shown
        assert int(shown["requests"]) >= 3, shown
        assert len(shown["ca"]) > 10, shown
        # A flow that happens now appears without a reload.
        assert curl(["https://example.test/hello?live=1"], proxy=p, cacert=p.ca_path).status == 200
        out, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
    result_line = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert result_line, out + err
    result = json.loads(result_line[0][len("RESULT "):])
    detail = json.loads(result["detail"])
    assert detail["url"].endswith("?live=1") and detail["status"] == 200, detail
    assert "request_headers" in detail and "scan" in detail
    assert result["filtered"] and set(result["filtered"]) == {"blocked"}, result["filtered"]
    # Everything came from the admin server itself, and nothing was refused by the CSP.
    assert all(url.startswith(admin.rstrip("/")) for url in result["requests"]), result["requests"]
    assert result["console"] == [], result["console"]
    page = json.dumps(result) + json.dumps(shown)
    assert TOKEN not in page, "a secret on the dashboard"
    assert (shots / "dashboard-live-detail-filtered.png").stat().st_size > 1000
