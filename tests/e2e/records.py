"""What an airlock writes, read back; waiting until it is there; merging config dicts.

Every fixture module and test reads the proxy's records through here:

* ``read_jsonl(path)`` - a JSON Lines file that a running process may be appending to: a last line
  without its newline that does not parse yet is skipped (torn: still being written); a line that
  does not parse anywhere else fails the test, naming the file and the line.
  ``parse_jsonl(text)`` - the same for text that is complete (a CLI's stdout): every line must parse.
* the record kinds, optionally filtered with ``pred``: ``read_flows`` (``logs/flows.jsonl``),
  ``read_threats`` (``logs/threats.jsonl``), ``read_llm`` (``logs/llm.jsonl``, the LLM call
  records), and ``wait_threats`` / ``wait_llm`` (``Proxy.wait_flows`` in conftest.py) which wait
  until ``count`` of them match; ``log_text`` is a log file's raw text ('' while it is missing).
* ``stderr_events(lines, name)`` - the JSON objects among a proxy's stderr lines (other lines are
  passed over: stderr also carries plain text).
* ``wait_for(fetch, predicate, count, timeout)`` - the one polling loop of the suite.
* ``merge_config(base, extra)`` - deep merge of config dicts (extra wins, lists are replaced).

The name: the module is about the records a proxy leaves behind and waiting for them; the config
merge sits here because it is the other half of what every fixture module repeated.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

FLOWS = "flows.jsonl"
THREATS = "threats.jsonl"
LLM_CALLS = "llm.jsonl"

# --------------------------------------------------------------------------- waiting


def describe(value) -> str:
    """A short text of what a wait saw last (for its failure message)."""
    if hasattr(value, "status_code") and hasattr(value, "headers"):  # a requests/httpx response
        return f"{value.status_code} {dict(value.headers)} {value.text[:300]!r}"
    if isinstance(value, list):
        return f"{len(value)} item(s), the last 5: {json.dumps(value[-5:], default=repr)[:3000]}"
    return repr(value)[:3000]


def wait_for(fetch, predicate=None, count: int | None = None, timeout: float = 5.0, *, interval: float = 0.05,
             what: str = "", show=describe):
    """Calls fetch() every ``interval`` seconds until what it returns is what the test waits for.

    * count None: until predicate(value) holds (without a predicate: until value is truthy);
      returns that value.
    * count N: fetch() returns a list; until at least N of its items satisfy predicate (every item
      counts without one); returns the matching items.

    fetch() runs at least once; past ``timeout`` an AssertionError names ``what`` and shows the
    last value (``show(value)``; with count, the whole list fetched)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if count is None:
            result = value
            done = predicate(value) if predicate is not None else value
        else:
            result = [x for x in value if predicate is None or predicate(x)]
            done = len(result) >= count
        if done:
            return result
        if time.monotonic() >= deadline:
            found = "" if count is None else f"found {len(result)} of {count}; "
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what or predicate or fetch}; {found}last: {show(value)}"
            )
        time.sleep(interval)


# --------------------------------------------------------------------------- JSON Lines


def parse_jsonl(text: str, *, source: str = "JSON Lines text", torn_tail: bool = False) -> list:
    """Every non-blank line of text, parsed as JSON. A line that does not parse fails the test,
    except, with torn_tail, a last line without its newline (a record still being written)."""
    lines = text.split("\n")
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as e:
            if torn_tail and n == len(lines):  # no "\n" after it: the writer is not done
                break
            raise AssertionError(f"{source} line {n} is not JSON ({e}): {line[:300]!r}") from None
    return out


def read_jsonl(path) -> list:
    """The records of a JSON Lines file a process may still be appending to ([] while it does not
    exist); see parse_jsonl (torn_tail)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return parse_jsonl(text, source=str(path), torn_tail=True)


# --------------------------------------------------------------------------- a proxy's records


def log_file(proxy, name: str) -> Path:
    """``logs/<name>`` in the proxy's data dir."""
    return Path(proxy.data_dir) / "logs" / name


def log_text(proxy, name: str) -> str:
    """The text of ``logs/<name>``, '' while it does not exist."""
    try:
        return log_file(proxy, name).read_text()
    except FileNotFoundError:
        return ""


def _read(path, pred) -> list[dict]:
    return [r for r in read_jsonl(path) if pred is None or pred(r)]


def wait_records(path, pred=None, count: int = 1, timeout: float = 5.0, *, kind: str) -> list[dict]:
    """At least count records of the JSON Lines file path that satisfy pred; returns all that do.
    kind names them in the failure message ("flow", "threat", ...)."""
    return wait_for(lambda: read_jsonl(path), pred, count, timeout, what=f"{count} matching {kind} record(s) in {path}")


def read_flows(proxy, pred=None) -> list[dict]:
    return _read(log_file(proxy, FLOWS), pred)


def read_threats(proxy, pred=None) -> list[dict]:
    return _read(log_file(proxy, THREATS), pred)


def wait_threats(proxy, pred=None, count: int = 1, timeout: float = 5.0) -> list[dict]:
    return wait_records(log_file(proxy, THREATS), pred, count, timeout, kind="threat")


def read_llm(proxy, pred=None) -> list[dict]:
    """The LLM call records (``logs/llm.jsonl``)."""
    return _read(log_file(proxy, LLM_CALLS), pred)


def wait_llm(proxy, pred=None, count: int = 1, timeout: float = 5.0) -> list[dict]:
    return wait_records(log_file(proxy, LLM_CALLS), pred, count, timeout, kind="LLM call")


def stderr_events(lines, name: str | None = None) -> list[dict]:
    """The JSON objects among stderr lines (event ``name`` only, when given); other lines are
    passed over (stderr also carries plain text)."""
    out = []
    for line in list(lines):
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and (name is None or obj.get("event") == name):
            out.append(obj)
    return out


# --------------------------------------------------------------------------- config


def merge_config(base: dict, extra: dict | None) -> dict:
    """Deep merge of config dicts (extra wins; dicts merge, lists and everything else are replaced);
    neither argument is changed."""
    out = dict(base)
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_config(out[k], v)
        else:
            out[k] = v
    return out
