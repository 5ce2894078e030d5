"""`keyhunt demo` end to end, as a newcomer runs it: exit 0, and messages printed faithfully."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import demo_env, run_keyhunt

BOX = 98  # the printer's width plus its two borders


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> str:
    home = tmp_path_factory.mktemp("demo")
    done = run_keyhunt(["demo"], demo_env(home), Path(home), timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return done.stdout


def boxed_texts(output: str) -> list[str]:
    """Each message's lines, continuation lines (indented by the wrap) joined back."""
    texts: list[str] = []
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        text = line[2:-2].rstrip()
        if text.startswith("  ") and texts:
            texts[-1] += " " + text.strip()
        else:
            texts.append(text)
    return texts


def test_every_line_fits_its_box(demo: str) -> None:
    for line in demo.splitlines():
        if line and line[0] in "│┌└":
            assert len(line) == BOX, line


def test_a_headline_is_wrapped_at_words_never_cut(demo: str) -> None:
    texts = boxed_texts(demo)
    (failed,) = [t for t in texts if "mallory tried to create an access key for bob" in t]
    assert failed.endswith("in security (123456789012), us-east-1")
    (hunt,) = [t for t in texts if t.startswith("Hunted 2 accounts") and "(" in t]
    assert re.search(r": 4 findings \(critical 1 · high 1 · medium 1 · low 1\)$", hunt)


def test_cloudtrail_text_is_shown_exactly_as_it_came(demo: str) -> None:
    assert "User agent  `Boto3/1.35.0 md/Botocore#1.35.0 <!channel> *urgent*`" in boxed_texts(demo)


def test_names_are_resolved_through_the_slack_stand_in(demo: str) -> None:
    assert "alerts posted to #security-alerts" in demo
    assert "@carol clicked [Expected rotation]" in demo
    assert "marked by @carol" in demo
    assert "<@U0CAROL>" not in demo
    assert "#c0alerts" not in demo


def test_the_demo_world_agrees_with_itself(demo: str) -> None:
    """IAM and CloudTrail tell one story: the key used three times was last used, the key
    dave rotated away is old and was deactivated after the new one was made."""
    texts = boxed_texts(demo)
    assert not any("last used never" in t for t in texts)
    assert any(t.startswith("IAM: owner `deploy-bot` · last used ") for t in texts)
    assert any("IAM says this key is Active, 2 h old" in t for t in texts)
    (rotation, *_) = [t for t in texts if "other key AKIA…" in t]
    assert re.search(r"deactivated 10 min after the new key \(4 h ago\), 212 days old$", rotation)
