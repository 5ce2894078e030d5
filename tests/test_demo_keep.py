"""`keyhunt demo --keep`, driven as a newcomer drives it: the demo in one process, a second
shell that sources its env file and runs `hunt`, `key`, `poll --once` and a signed /keyhunt
against the same fake world, then Ctrl-C."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import KEYHUNT, demo_env, run_keyhunt


@dataclass
class World:
    process: subprocess.Popen[str]
    home: Path
    directory: Path
    env: dict[str, str]  # what the second shell has after `. env`


def _sourced(env_file: Path, base: dict[str, str]) -> dict[str, str]:
    """The environment a shell has after sourcing the file: the file really is shell."""
    bash = shutil.which("bash")
    assert bash is not None, "the env file is for a POSIX shell; this test needs bash"
    done = subprocess.run(
        [bash, "-c", f'. "{env_file}" && env -0'],
        env=base,
        capture_output=True,
        check=True,
        timeout=30,
    )
    pairs = (item.split(b"=", 1) for item in done.stdout.split(b"\0") if b"=" in item)
    return {k.decode(): v.decode() for k, v in pairs}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("demo-keep")
    directory = home / "world"
    # Files, not pipes: nobody reads a pipe while the demo runs, and a full one would stall it.
    stdout, stderr = (home / "stdout").open("w+"), (home / "stderr").open("w+")
    process = subprocess.Popen(
        [*KEYHUNT, "demo", "--keep", "--json", "--dir", str(directory)],
        env=demo_env(home),
        cwd=home,
        stdout=stdout,
        stderr=stderr,
        encoding="utf-8",
    )
    env_file = directory / "env"
    deadline = time.monotonic() + 240
    while not env_file.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if not env_file.exists():
        process.kill()
        process.wait()
        err = (home / "stderr").read_text()
        pytest.fail(f"the demo never came up (rc {process.returncode}): {err[-2000:]}")
    try:
        yield World(process, home, directory, _sourced(env_file, demo_env(home)))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stdout.close()
        stderr.close()


def test_hunt_sees_the_demo_findings_and_their_triage(world: World) -> None:
    done = run_keyhunt(["hunt", "--last", "24h", "--format", "jsonl"], world.env, world.home)
    assert done.returncode == 0, done.stderr
    statuses = {r["event_id"]: r["status"] for r in map(json.loads, done.stdout.splitlines())}
    assert statuses == {
        "demo-rotation-create": "expected_rotation",  # the demo's own clicks, from its database
        "demo-sso-for-deploy-bot": "investigating",
        "demo-root-key": "open",
        "demo-failed-attempt": "open",
    }


def test_key_investigates_the_key_the_demo_names(world: World) -> None:
    key = world.env["DEMO_KEY"]
    done = run_keyhunt(["key", key, "--format", "json"], world.env, world.home)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["creation"]["event_id"] == "demo-sso-for-deploy-bot"
    # One world: what IAM says of the key is what CloudTrail recorded.
    (listed,) = [k for k in report["iam"]["keys"] if k["access_key_id"] == key]
    assert listed["create_date"] == report["creation"]["event_time"]
    assert report["iam"]["last_used"] == report["activity"][-1]["event_time"]
    assert [c["event_name"] for c in report["activity"]] == [
        "GetCallerIdentity",
        "ListBuckets",
        "AttachUserPolicy",
    ]


def test_a_signed_slash_command_is_answered(world: World) -> None:
    done = run_keyhunt(["demo", "slash", "last 24h"], world.env, world.home, timeout=150)
    assert done.returncode == 0, done.stderr
    assert "Hunting…" in done.stdout  # the ack
    assert "4 findings" in done.stdout  # the answer at the response_url
    usage = run_keyhunt(["demo", "slash", "bogus"], world.env, world.home)
    assert usage.returncode == 0, usage.stderr
    assert "unknown command 'bogus'" in usage.stdout


def test_a_poll_finds_nothing_new_and_posts_nothing_twice(world: World) -> None:
    done = run_keyhunt(["poll", "--once"], world.env, world.home)
    assert done.returncode == 0, done.stderr
    assert "0 new finding(s), 0 posted" in done.stdout


def test_slash_without_a_demo_says_what_to_run(tmp_path: Path) -> None:
    done = run_keyhunt(["demo", "slash", "last 24h"], demo_env(tmp_path), tmp_path)
    assert done.returncode == 2
    assert "keyhunt demo --keep" in done.stderr
    assert "Traceback" not in done.stderr


def test_ctrl_c_stops_it_cleanly_keeping_the_database(world: World) -> None:
    # Last in this module: the other tests need the world up.
    world.process.send_signal(signal.SIGINT)
    world.process.wait(timeout=60)
    out, err = (world.home / "stdout").read_text(), (world.home / "stderr").read_text()
    assert world.process.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    assert (world.directory / "keyhunt.db").exists()
    assert not (world.directory / "env").exists()  # it named ports nobody listens on now
    # --json: every message the demo posted, as Block Kit, and the hunt's ephemeral answer.
    posted = json.loads(out)
    texts = [m["text"] for m in posted["messages"]]
    assert sum("access key" in t and "Investigation" not in t for t in texts) == 4
    assert all(m["blocks"] for m in posted["messages"])
    assert any("Investigation of" in t for t in texts)
    assert [r["response_url"] for r in posted["responses"]] == ["hunt"]
