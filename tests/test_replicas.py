"""Several `keyhunt serve` processes on one PostgreSQL database, as real processes.

Exactly one replica polls at a time: it holds the `poller` lease in the database. Killed
with SIGKILL (no chance to release it), its lease expires and another replica takes it over
within two poll intervals and goes on polling; nothing is lost and nothing is posted twice.
Any replica handles any click or slash command, because decisions live in the database.

Each replica gets its own FakeAWS front (they share moto, but each has its own CloudTrail
events and call log), so the test sees which process issued every LookupEvents call. Slack is
one FakeSlack. The poll interval is KEYHUNT_POLL_SECONDS=5, the shortest the settings allow,
so the whole story takes about half a minute instead of several at 1-minute polls.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from bot.render import ACTION_EXPECTED
from bot.schedule import LEASE_NAME
from bot.store import POSTED, Store
from bot.triage import EXPECTED_ROTATION
from keyhunt_dev import records
from keyhunt_dev.aws import FakeAWS
from keyhunt_dev.slack import FakeSlack, block_action_body, post_to_bot, slash_command_body
from tests import pg
from tests.conftest import KEYHUNT, keyhunt_env
from tests.store_helpers import lease_holder
from tests.test_postgres_store import alerts_by_event

pytestmark = pytest.mark.postgres
T = TypeVar("T")

ACCOUNT = "123456789012"  # moto's account for the dummy credentials
REGION = "us-east-1"
CHANNEL = "C0ALERTS"
TRIAGER = "U0CAROL"
BOT_TOKEN = "xoxb-replica-test"
SIGNING_SECRET = "replica-test-signing-secret"
REPLICAS = 3
POLL = timedelta(seconds=5)  # KEYHUNT_POLL_SECONDS' minimum
STARTUP = 60.0  # seconds for a replica to import, migrate and serve, on a loaded CI machine
POSTING = 15.0  # seconds for a poll to finish and post a few alerts at Slack's 1 message/s


@dataclass
class Replica:
    index: int
    port: int
    aws: FakeAWS
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def slack_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def lookups(self) -> int:
        return len(self.aws.lookup_calls())

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def __str__(self) -> str:
        return f"replica {self.index} (pid {self.process.pid}, port {self.port})"


# --------------------------------------------------------------------------- plumbing


@pytest.fixture
def database_url() -> Iterator[str]:
    with pg.scratch_database(pg.server_url(), "replicas") as url:
        yield url


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(BOT_TOKEN, channels=(CHANNEL,)) as running:
        yield running


@pytest.fixture
def fronts() -> Iterator[list[FakeAWS]]:
    """One FakeAWS per replica, so each LookupEvents call is attributed to its process."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(FakeAWS()) for _ in range(REPLICAS)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_replica(
    index: int, aws: FakeAWS, slack: FakeSlack, database_url: str, tmp_path: Path
) -> Replica:
    port = free_port()
    env = keyhunt_env(
        aws,
        tmp_path,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        KEYHUNT_CHANNEL=CHANNEL,
        KEYHUNT_TRIAGERS=TRIAGER,
        KEYHUNT_DATABASE_URL=database_url,
        KEYHUNT_POLL_SECONDS=str(int(POLL.total_seconds())),
        KEYHUNT_BACKFILL="2h",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / f"replica-{index}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*KEYHUNT, "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Replica(index, port, aws, log, process)


def stop_all(replicas: Iterable[Replica]) -> None:
    """SIGTERM (a replica then releases its lease), SIGKILL whatever is left after 10 s."""
    running = [r for r in replicas if r.alive]
    for replica in running:
        replica.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for replica in running:
        try:
            replica.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            replica.process.kill()
            replica.process.wait(timeout=10)


def answers_http(replica: Replica) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{replica.port}/healthz", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 503 "no poll yet" still means it serves
    except OSError:
        return False


class Watch:
    """Bounded waits that fail at once, with the replicas' logs, if a replica dies."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self.stopped: set[int] = set()  # replicas the test ended on purpose
        self.started = time.monotonic()
        self.timeline: list[str] = []  # printed with the logs when the test fails

    def until(self, what: str, condition: Callable[[], T | None], timeout: float) -> T:
        """The first truthy value of `condition()`, polled until `timeout` seconds pass."""
        began = time.monotonic()
        deadline = began + timeout
        while True:
            value = condition()
            if value:
                now = time.monotonic()
                self.timeline.append(
                    f"{now - self.started:6.1f}s  {what} (after {now - began:.1f}s)"
                )
                return value
            dead = [r for r in self.replicas if not r.alive and r.index not in self.stopped]
            if dead:
                pytest.fail(f"{dead[0]} exited while waiting for {what}:\n{dead[0].log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"gave up after {timeout:.0f}s waiting for {what}")
            time.sleep(0.1)


def leader(store: Store, replicas: list[Replica]) -> Replica | None:
    """The replica holding a live `poller` lease (holder is `<host>-<pid>-<random>`)."""
    holder = lease_holder(store, LEASE_NAME)
    if holder is None:
        return None
    pid = int(holder.rsplit("-", 2)[-2])
    for replica in replicas:
        if replica.process.pid == pid:
            return replica
    pytest.fail(f"the {LEASE_NAME} lease is held by {holder!r}, none of this test's replicas")


def posted(store: Store, event_ids: Iterable[str]) -> bool:
    found = [store.get(event_id) for event_id in event_ids]
    return all(f is not None and f.message.state == POSTED for f in found)


def add_key_events(fronts: list[FakeAWS], now: datetime, tag: str) -> list[str]:
    """Two CreateAccessKey events, in every replica's CloudTrail; returns their event IDs."""
    ids = [f"replica-{tag}-self", f"replica-{tag}-other"]
    events = [
        records.create_access_key(
            records.iam_user(ACCOUNT, f"dave-{tag}"),
            ACCOUNT,
            now - timedelta(minutes=10),
            user=None,
            new_key="AKIAEXAMPLEDAVE00001",
            event_id=ids[0],
        ),
        records.create_access_key(
            records.assumed_role(ACCOUNT, "AWSReservedSSO_Admin_0123", "alice@example.com"),
            ACCOUNT,
            now - timedelta(minutes=8),
            user=f"deploy-{tag}",
            new_key="AKIAEXAMPLEDEPLOY001",
            event_id=ids[1],
        ),
    ]
    for aws in fronts:
        aws.add_events(ACCOUNT, REGION, events)
    return ids


# --------------------------------------------------------------------------- the story


def test_one_poller_among_replicas_survives_its_death(
    database_url: str, slack: FakeSlack, fronts: list[FakeAWS], tmp_path: Path
) -> None:
    store = Store(database_url)
    # Migrated before the replicas start: replicas migrating a fresh PostgreSQL database at
    # the same moment race (see MIGRATE_RACE_BUG in test_postgres_store.py).
    store.migrate()
    now = datetime.now(UTC).replace(microsecond=0)
    before = add_key_events(fronts, now, "before")
    replicas: list[Replica] = []
    watch = Watch(replicas)
    try:
        for index, aws in enumerate(fronts):  # one at a time: `finally` stops each started one
            replicas.append(start_replica(index, aws, slack, database_url, tmp_path))
        for replica in replicas:
            watch.until(
                f"{replica} to serve HTTP", functools.partial(answers_http, replica), STARTUP
            )

        # 1. One leader polls and posts; the others never call LookupEvents.
        first = watch.until("a leader", lambda: leader(store, replicas), STARTUP)
        watch.until("the first alerts", lambda: posted(store, before), POSTING)
        watch.until(
            "two more polls (every replica's poll job has fired at least twice)",
            lambda: len(store.poll_runs_since(now - timedelta(hours=1))) >= 3,
            2 * POLL.total_seconds() + POSTING,
        )
        assert leader(store, replicas) is first
        assert first.lookups() > 0
        assert [r.lookups() for r in replicas if r is not first] == [0] * (REPLICAS - 1)

        # 2. The leader dies without releasing its lease; new events arrive meanwhile.
        first.process.kill()
        killed_at = time.monotonic()
        first.process.wait(timeout=10)
        watch.stopped.add(first.index)
        after = add_key_events(fronts, now, "after")
        lookups_before = {r.index: r.lookups() for r in replicas}

        def successor() -> Replica | None:
            current = leader(store, replicas)
            return None if current is None or current is first else current

        second = watch.until(
            "another replica to take the lease", successor, 2 * POLL.total_seconds()
        )
        took_over = time.monotonic() - killed_at
        assert took_over <= 2 * POLL.total_seconds()
        watch.until("the new alerts", lambda: posted(store, after), 2 * POLL.total_seconds())
        assert time.monotonic() - killed_at <= 2 * POLL.total_seconds() + POSTING
        bystander = next(r for r in replicas if r not in (first, second))
        assert second.lookups() > lookups_before[second.index]
        assert bystander.lookups() == 0
        assert first.lookups() == lookups_before[first.index]

        # 3. Nothing lost, nothing posted twice, and polls never overlapped.
        alerts = alerts_by_event(slack)
        assert {k: len(v) for k, v in alerts.items()} == dict.fromkeys([*before, *after], 1)
        assert len(slack.calls_to("chat.postMessage")) == 4
        for event_id, (message,) in alerts.items():
            stored = store.get(event_id)
            assert stored is not None
            assert stored.message.ts == message.ts
        polls = store.poll_runs_since(now - timedelta(hours=1))
        assert all(run.ok for run in polls)
        for earlier, later in itertools.pairwise(polls):
            assert earlier.finished_at is not None
            assert later.started_at >= earlier.finished_at, "two replicas polled at once"

        # 4. A click on a replica that neither posted the alert nor polls.
        message = alerts[after[0]][0]

        def click(replica: Replica) -> int:
            body = block_action_body(
                ACTION_EXPECTED,
                after[0],
                user_id=TRIAGER,
                channel_id=CHANNEL,
                message_ts=message.ts,
                response_url=slack.response_url("click"),
                message=slack.messages[CHANNEL][message.ts].as_dict(),
            )
            return post_to_bot(replica.slack_url, body, SIGNING_SECRET)[0]

        def updates() -> int:
            return sum(1 for c in slack.calls_to("chat.update") if c.args.get("ts") == message.ts)

        assert click(bystander) == 200
        watch.until("the alert to be updated in place", lambda: updates() == 1, POSTING)
        assert f"<@{TRIAGER}>" in str(slack.messages[CHANNEL][message.ts].blocks)
        assert store.statuses([after[0]]) == {after[0]: EXPECTED_ROTATION}
        # Slack retries it at the leader: still one decision, and the retry is answered
        # privately instead of re-rendering the message (it used to make a second update).
        assert click(second) == 200
        watch.until("the retried click's answer", lambda: len(slack.ephemerals) == 1, POSTING)
        assert "nothing changed" in slack.ephemerals[0].text
        assert updates() == 1
        assert len(store.history(after[0])) == 1

        # 5. /keyhunt on the bystander: acknowledged, answered through response_url.
        body = slash_command_body(
            "last 24h",
            user_id=TRIAGER,
            channel_id=CHANNEL,
            response_url=slack.response_url("hunt"),
        )
        status, _, _ = post_to_bot(bystander.slack_url, body, SIGNING_SECRET)
        assert status == 200
        answer = watch.until(
            "the /keyhunt answer",
            lambda: next((p.body for p in slack.responses if p.key == "hunt"), None),
            POSTING,
        )
        assert "4 findings" in str(answer.get("text")), answer
        assert bystander.lookups() > 0  # the hunt ran in the bystander itself

        forged = post_to_bot(bystander.slack_url, body, "not-the-signing-secret")[0]
        assert forged == 401

        # 6. A leader stopped the polite way (SIGTERM) hands its lease back on the way out.
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(timeout=10) == 0
        watch.stopped.add(second.index)
        assert leader(store, replicas) in (None, bystander)  # not still held by the dead
        heir = watch.until(
            "the bystander to lead", lambda: leader(store, replicas), POLL.total_seconds()
        )
        assert heir is bystander
    finally:
        stop_all(replicas)
        store.close()
        # Shown by pytest when the test failed.
        print("\n".join(["----- timeline", *watch.timeline]))
        for replica in replicas:
            print(f"----- {replica} exit {replica.process.returncode}\n{replica.log_tail(200)}")
