"""Conversations (issue 12 item 4): each LLM call's system prompt, messages, tools and answer
(reassembled from SSE) are kept, masked, under `store.conversations`; calls are grouped into
sessions by their shared history; the admin API serves a session as a transcript with tokens,
cost, latency and detections per turn, and `airlock logs --llm` prints the same. The clients
are the official `anthropic` and `openai` SDKs against a real local fake provider."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

from detect_fixtures import *  # noqa: F401,F403
from detect_fixtures import fresh_key
from e2e_helpers import airlock, cli_env
from llm_fixtures import *  # noqa: F401,F403
from llm_fixtures import anthropic_client, anthropic_text, consume_stream, gateway_url, openai_client
from records import wait_for, wait_llm

SYSTEM = "You are a careful coding agent. Never run rm."
TOOLS = [{"name": "Bash", "description": "Run a shell command", "input_schema": {"type": "object"}}]


def _api(p, path):
    with urllib.request.urlopen(f"http://{p.boot['admin']}{path}", timeout=10) as r:
        return json.loads(r.read())


def _session(p, turns: int):
    """The newest session once it holds `turns` turns (the store is written in batches)."""

    def ready():
        sessions = _api(p, "/api/sessions")
        return sessions if sessions and sessions[0]["turns"] >= turns else None

    sessions = wait_for(ready, what=f"a session with {turns} turns", timeout=10)
    return sessions, _api(p, f"/api/sessions/{sessions[0]['session']}")


def _anthropic_two_turns(p, llm_up, secret: str):
    c = anthropic_client(gateway_url(p))
    r1 = llm_up.reply(text="I will list the files.", model="claude-sonnet-4-5-20250929",
                      input_tokens=120, output_tokens=9)
    first_user = r1.prompt("List the files in this repository.")
    msg = c.messages.create(model="claude-sonnet-4-5", max_tokens=200, system=SYSTEM, tools=TOOLS,
                            messages=[{"role": "user", "content": first_user}])
    assert msg.content[0].text == "I will list the files."
    r2 = llm_up.reply(deltas=["Two files: ", "a.txt and ", "b.txt."], model="claude-sonnet-4-5-20250929",
                      input_tokens=180, output_tokens=11)
    history = [
        {"role": "user", "content": first_user},
        {"role": "assistant", "content": [
            {"type": "text", "text": "I will list the files."},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt\nb.txt"},
            {"type": "text", "text": r2.prompt(f"Summarise. The deploy token is {secret}")},
        ]},
    ]
    # The history still carries the first reply's tag: the header names the one that counts.
    with c.messages.stream(model="claude-sonnet-4-5", max_tokens=200, system=SYSTEM, tools=TOOLS,
                           messages=history, extra_headers={"x-llm-tag": r2.tag}) as stream:
        text = "".join(stream.text_stream)
    assert text == "Two files: a.txt and b.txt."
    return first_user


def test_an_agent_session_reads_as_a_transcript(llm_gateway, llm_up):
    p = llm_gateway()
    token = fresh_key("github")
    first_user = _anthropic_two_turns(p, llm_up, token.secret)
    sessions, view = _session(p, 2)
    assert len(sessions) == 1, sessions
    s = sessions[0]
    assert s["title"].startswith("List the files in this repository."), s
    assert (s["input_tokens"], s["output_tokens"]) == (300, 20), s
    assert s["cost_usd"] > 0 and "claude-sonnet-4-5" in s["models"], s
    t1, t2 = view["turns"]
    # Turn 1: the whole start of the conversation.
    assert t1["system"] == SYSTEM and t1["tools"] == ["Bash"], t1
    assert t1["messages_from"] == 0 and t1["messages"][0]["role"] == "user"
    assert t1["messages"][0]["parts"][0]["text"] == first_user
    assert t1["answer"] == [{"kind": "text", "text": "I will list the files."}], t1["answer"]
    assert (t1["input_tokens"], t1["output_tokens"]) == (120, 9)
    assert t1["latency_ms"] > 0 and t1["model"] == "claude-sonnet-4-5-20250929"
    # Turn 2: only what is new (the echoed answer is not repeated), the same system prompt
    # and tools are not stored again, the streamed answer is whole.
    assert t2["messages_from"] == 2 and t2["messages_total"] == 3, t2
    assert "system" not in t2 and "tools" not in t2, t2
    parts = t2["messages"][0]["parts"]
    assert parts[0]["kind"] == "tool_result" and parts[0]["text"] == "a.txt\nb.txt", parts
    assert parts[1]["kind"] == "text" and parts[1]["text"].startswith("Summarise."), parts
    assert t2["answer"][0]["text"] == "Two files: a.txt and b.txt.", t2["answer"]
    assert t2["ttft_ms"] is not None
    # The secret was redacted from the prompt and is masked in the transcript; the detection
    # is marked on the turn where it happened.
    raw = json.dumps(view)
    assert token.secret not in raw
    assert "[REDACTED" in parts[1]["text"], parts[1]
    assert [t["action"] for t in t2["threats"]] == ["redacted"], t2["threats"]
    assert t1["threats"] == []
    # The LLM records name the session.
    calls = wait_llm(p, count=2)
    assert {c["session"] for c in calls} == {s["session"]}

    # The same for a terminal.
    r = airlock("logs", "--llm", env=cli_env(p))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert token.secret not in out
    for expected in (f"session {s['session']}", "system: You are a careful coding agent.", "tools: Bash",
                     "user: List the files in this repository.", "answer: I will list the files.",
                     "user tool_result: a.txt", "answer: Two files: a.txt and b.txt.", "! EXFIL"):
        assert expected in out, (expected, out)
    assert out.index("answer: I will list the files.") < out.index("answer: Two files")
    lines = airlock("logs", "--llm", "--json", env=cli_env(p)).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [rec["turn"]["messages_from"] for rec in records] == [0, 2], records
    assert all(token.secret not in line for line in lines)


def test_openai_sessions_are_told_apart_and_can_be_turned_off(llm_gateway, llm_up):
    p = llm_gateway()
    c = openai_client(gateway_url(p))
    replies = []
    for topic in ("cats", "dogs"):
        r = llm_up.reply(text=f"About {topic}.", model="gpt-4o-2024-08-06")
        history = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": r.prompt(topic)}]
        out = c.chat.completions.create(model="gpt-4o", messages=history)
        r2 = llm_up.reply(deltas=["More ", f"on {topic}."], model="gpt-4o-2024-08-06")
        history += [{"role": "assistant", "content": out.choices[0].message.content},
                    {"role": "user", "content": r2.prompt("more")}]
        stream = c.chat.completions.create(model="gpt-4o", messages=history, stream=True,
                                           stream_options={"include_usage": True},
                                           extra_headers={"x-llm-tag": r2.tag})
        assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == f"More on {topic}."
        replies.append(r)
    sessions = wait_for(lambda: _api(p, "/api/sessions"), lambda s: len(s) == 2 and all(x["turns"] == 2 for x in s),
                        what="two sessions of two turns", timeout=10)
    assert sorted(s["title"].split(" [")[0] for s in sessions) == ["cats", "dogs"], sessions
    view = _api(p, f"/api/sessions/{sessions[0]['session']}")
    t1, t2 = view["turns"]
    assert t1["system"] == "Be terse." and t1["messages"][0]["role"] == "system"
    assert [m["role"] for m in t2["messages"]] == ["user"], t2
    assert t2["answer"] == [{"kind": "text", "text": "More on dogs."}], t2
    missing = urllib.request.Request(f"http://{p.boot['admin']}/api/sessions/0000000000000000")
    try:
        urllib.request.urlopen(missing, timeout=5)
        raise AssertionError("an unknown session was served")
    except urllib.error.HTTPError as e:
        assert e.code == 404

    off = llm_gateway({"store": {"conversations": False}})
    c = openai_client(gateway_url(off))
    r = llm_up.reply(text="Off the record.")
    c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": r.prompt("x")}])
    call = wait_llm(off)[0]
    assert call["session"] is None, call
    assert _api(off, "/api/sessions") == []
    out = airlock("logs", "--llm", env=cli_env(off)).stdout
    assert "openai" in out and "session" not in out and "answer:" not in out, out


def test_a_bad_conversations_value_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store: {conversations: 'yes'}\n")
    r = airlock("config", "check", cfg)
    assert r.returncode == 2 and "store.conversations" in r.stderr, r.stderr


DRIVER = Path(__file__).with_name("conversation_driver.js")


@pytest.mark.timeout(120)
def test_a_session_opens_as_a_transcript_in_a_browser(llm_gateway, llm_up, playwright_modules):
    p = llm_gateway()
    token = fresh_key("github")
    _anthropic_two_turns(p, llm_up, token.secret)
    _session(p, 2)
    shots = Path(__file__).with_name("artifacts")
    shots.mkdir(exist_ok=True)
    r = subprocess.run(
        ["node", str(DRIVER), f"http://{p.boot['admin']}/", "List the files in this repository."],
        env=dict(os.environ, NODE_PATH=playwright_modules, DASHBOARD_SHOTS=str(shots)),
        capture_output=True, text=True, timeout=90,
    )
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert line, r.stdout + r.stderr
    result = json.loads(line[0][len("RESULT "):])
    assert token.secret not in line[0], "a secret on the dashboard"
    assert "2" in result["row"] and "$" in result["row"], result["row"]
    t1, t2 = result["turns"]
    assert "turn 1" in t1["head"] and "120 in / 9 out" in t1["head"] and "claude-sonnet-4-5" in t1["head"], t1
    assert "first token" in t2["head"] and "180 in / 11 out" in t2["head"], t2
    assert t1["system"] == SYSTEM and t1["tools"] == "tools: Bash", t1
    assert ["user", "List the files in this repository."] == [t1["messages"][0][0], t1["messages"][0][1].split(" [")[0]]
    assert ["answer", "I will list the files."] in t1["messages"], t1
    assert ["user · tool_result", "a.txt\nb.txt"] in t2["messages"], t2
    assert ["answer", "Two files: a.txt and b.txt."] in t2["messages"], t2
    assert t1["detections"] == [] and len(t2["detections"]) == 1, t2
    assert "EXFIL" in t2["detections"][0] and "redacted" in t2["detections"][0], t2
    assert all(u.startswith(f"http://{p.boot['admin']}") for u in result["requests"]), result["requests"]
    assert result["console"] == [], result["console"]
    assert (shots / "dashboard-conversation.png").stat().st_size > 1000


def test_a_secret_that_went_on_is_still_masked_in_the_transcript(llm_gateway, llm_up):
    # warn lets it go on (outbound_secrets, block by default, is for other destinations).
    p = llm_gateway({"detect": {"llm_prompt_secrets": "warn"}})
    token = fresh_key("github")
    r = llm_up.reply(text=f"Noted your token {token.secret}.")
    c = openai_client(gateway_url(p))
    c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": r.prompt(f"my token: {token.secret}")}])
    assert token.secret in llm_up.received(r.tag)[0].body.decode(), "warn lets the request go on"
    sessions, view = _session(p, 1)
    raw = json.dumps(view) + json.dumps(sessions)
    assert token.secret not in raw, raw
    turn = view["turns"][0]
    assert "[REDACTED]" in turn["messages"][0]["parts"][0]["text"], turn
    # The answer echoed it back: masked there too (the secret is known to the exchange).
    assert token.secret not in turn["answer"][0]["text"] and "Noted your token" in turn["answer"][0]["text"], turn
    assert [t["action"] for t in turn["threats"]][:1] == ["warned"], turn["threats"]
