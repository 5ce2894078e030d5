"""Every message the demo posts, against a reviewed golden copy of its Block Kit JSON.

A change to what the on-call reads (a word, a field, a block) fails here with a readable diff,
so it is reviewed like code. After an intended change, write the new copies and review them:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden_messages.py

What changes on every run (key IDs moto makes up, times, message timestamps) is replaced by
stable placeholders first; nothing else is.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import demo_env, run_keyhunt

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

_KEY = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_SHORT_KEY = re.compile(r"\b(AKIA|ASIA)…([A-Z0-9]{4})\b")
_EPOCH = re.compile(r"<!date\^\d+\^")
_TIME = re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}\b")
_ROW_TIME = re.compile(r"`?\b\d{2}-\d{2} \d{2}:\d{2}\b`?")


def normalise(text: str) -> str:
    """Stable placeholders for what differs between runs: each key ID (short forms follow
    their full key), times and Slack's message timestamps."""
    keys: dict[str, str] = {}
    for key in _KEY.findall(text):
        keys.setdefault(key, f"KEY{len(keys) + 1}")
    text = _KEY.sub(lambda m: f"<{keys[m.group(0)]}>", text)
    by_tail = {key[-4:]: name for key, name in keys.items()}
    text = _SHORT_KEY.sub(lambda m: f"{m.group(1)}…<{by_tail.get(m.group(2), 'KEY?')}>", text)
    text = _EPOCH.sub("<!date^EPOCH^", text)
    text = _TIME.sub("YYYY-MM-DD hh:mm", text)
    return _ROW_TIME.sub(
        lambda m: "`MM-DD hh:mm`" if m.group(0).startswith("`") else "MM-DD hh:mm", text
    )


def _stable(message: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in message.items() if k not in ("ts", "thread_ts")}
    if "thread_ts" in message:
        kept["in_thread"] = True
    return kept


@pytest.fixture(scope="module")
def posted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """{golden file name: normalised JSON} for every message `keyhunt demo --json` posted."""
    home = tmp_path_factory.mktemp("golden")
    done = run_keyhunt(["demo", "--json"], demo_env(home), home, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    out: dict[str, str] = {}
    for n, message in enumerate(data["messages"], 1):
        event = re.search(r"event `([^`]+)`", json.dumps(message, ensure_ascii=False))
        kind = (
            "reply" if "thread_ts" in message and message["thread_ts"] != message["ts"] else "alert"
        )
        name = f"{n:02d}-{kind}-{event.group(1) if event and kind == 'alert' else 'thread'}"
        out[name] = normalise(json.dumps(_stable(message), indent=2, ensure_ascii=False))
    for n, response in enumerate(data["responses"], len(out) + 1):
        out[f"{n:02d}-answer-{response['response_url']}"] = normalise(
            json.dumps(response, indent=2, ensure_ascii=False)
        )
    return out


def test_every_message_matches_its_golden_copy(posted: dict[str, str]) -> None:
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        for old in GOLDEN.glob("*.json"):
            old.unlink()
        for name, text in posted.items():
            (GOLDEN / f"{name}.json").write_text(text + "\n", encoding="utf-8")
    kept = {p.stem: p.read_text(encoding="utf-8").rstrip("\n") for p in GOLDEN.glob("*.json")}
    assert sorted(posted) == sorted(kept), "messages added or gone: rerun with UPDATE_GOLDEN=1"
    diffs = [
        "\n".join(
            difflib.unified_diff(
                kept[name].splitlines(),
                text.splitlines(),
                f"tests/golden/{name}.json",
                "what the demo posts now",
                lineterm="",
            )
        )
        for name, text in sorted(posted.items())
        if kept[name] != text
    ]
    assert not diffs, "a message changed (review, then UPDATE_GOLDEN=1):\n" + "\n\n".join(diffs)


def test_placeholders_keep_keys_apart() -> None:
    text = "AKIAAAAAAAAAAAAA1111 AKIABBBBBBBBBBBB2222 AKIA…1111 2026-12-07 04:34 `12-07 04:34`"
    assert normalise(text) == "<KEY1> <KEY2> AKIA…<KEY1> YYYY-MM-DD hh:mm `MM-DD hh:mm`"
