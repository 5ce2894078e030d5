"""The state store's contract, on SQLite and on PostgreSQL alike.

Every test runs once per backend against an empty database of its own (see tests/pg.py).
Concurrency is tested the way it happens in production: several writers, each with its own
`Store` (its own connections), released at the same moment by a barrier.
"""

from __future__ import annotations

import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from bot.compose import Components
from bot.render import ACTION_EXPECTED, ACTION_INVESTIGATE
from bot.server import HttpServer
from bot.settings import Secret, Settings
from bot.store import (
    POSTED,
    PollRun,
    Store,
    findings_table,
    schema_info,
    triage_log,
)
from bot.triage import EXPECTED_ROTATION, INVESTIGATING, OPEN
from checks.classify import classify
from checks.model import Finding, Target
from checks.parse import parse_record
from keyhunt_dev import records
from keyhunt_dev.aws import FakeAWS
from keyhunt_dev.slack import FakeSlack, Message, block_action_body, post_to_bot, slash_command_body
from tests import pg
from tests.conftest import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY
from tests.store_helpers import CLAIM_LEASE, claim_waiting, lease_holder

T = TypeVar("T")

ACCOUNT = "123456789012"  # moto's account for the dummy credentials
REGION = "us-east-1"
TARGET = Target(ACCOUNT, REGION)
CHANNEL = "C0ALERTS"
TRIAGER = "U0CAROL"
BOT_TOKEN = "xoxb-store-test"
SIGNING_SECRET = "store-test-signing-secret"
WAIT = 20.0  # seconds: the bound on every wait for something another thread does

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(params=pg.BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema yet): a SQLite file or a scratch PostgreSQL database."""
    with pg.database_url(backend, tmp_path, "store") as url:
        yield url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store(database_url)
    opened.migrate()
    yield opened
    opened.close()


# --------------------------------------------------------------------------- helpers

NOW = datetime(2026, 11, 29, 21, 0, tzinfo=UTC)


def make_finding(event_id: str, minutes_ago: int = 10, user: str = "dave") -> Finding:
    """A classified CreateAccessKey: `user` making a key for itself, `minutes_ago` before NOW."""
    record = records.create_access_key(
        records.iam_user(ACCOUNT, user),
        ACCOUNT,
        NOW - timedelta(minutes=minutes_ago),
        user=None,
        new_key=f"AKIA{zlib.crc32(event_id.encode()):016d}",
        event_id=event_id,
    )
    return classify(parse_record(record), target=TARGET)


def many_findings(prefix: str, count: int) -> list[Finding]:
    return [make_finding(f"{prefix}-{i:04d}", minutes_ago=i % 600) for i in range(count)]


def run_together(url: str, count: int, work: Callable[[Store, int], T]) -> list[T | BaseException]:
    """`work(store, i)` in `count` threads, each with its own Store and an open connection,
    released together by a barrier. Returns each result, or the exception it raised."""
    barrier = threading.Barrier(count, timeout=WAIT)

    def one(index: int) -> T | BaseException:
        own = Store(url)
        try:
            own.engine.connect().close()  # connect before the barrier, not in the race
            barrier.wait()
            return work(own, index)
        except Exception as exc:  # noqa: BLE001 - returned for the test to judge
            return exc
        finally:
            own.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count), timeout=2 * WAIT))


def adding(batches: list[list[Finding]]) -> Callable[[Store, int], list[str]]:
    """Work for `run_together`: writer i stores batches[i % len(batches)]."""
    return lambda own, i: own.add_findings(batches[i % len(batches)])


def successes(outcomes: list[T | BaseException]) -> list[T]:
    """The results; or the first exception a thread raised, noting how many failed."""
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        lines = sorted({f"{type(e).__name__}: {str(e).splitlines()[0]}" for e in errors})
        errors[0].add_note(f"{len(errors)} of {len(outcomes)} concurrent calls failed: {lines}")
        raise errors[0]
    return [o for o in outcomes if not isinstance(o, BaseException)]


def count_rows(store: Store, table: Any, *where: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


# --------------------------------------------------------------------------- schema


def test_migrate_is_idempotent(database_url: str) -> None:
    first = Store(database_url)
    first.migrate()
    first.add_findings([make_finding("kept-across-migrations")])
    first.migrate()
    second = Store(database_url)
    second.migrate()
    try:
        assert count_rows(second, schema_info) == 1
        assert second.get("kept-across-migrations") is not None
        second.ping()
    finally:
        first.close()
        second.close()


def test_concurrent_migrations_of_a_fresh_database_all_succeed(database_url: str) -> None:
    successes(run_together(database_url, 4, lambda store, _: store.migrate()))
    store = Store(database_url)
    try:
        assert count_rows(store, schema_info) == 1
        assert store.add_findings([make_finding("after-race")]) == ["after-race"]
    finally:
        store.close()


# --------------------------------------------------------------------------- findings


def test_add_findings_stores_each_event_once_across_calls(store: Store) -> None:
    assert store.add_findings([make_finding("a"), make_finding("b")]) == ["a", "b"]
    assert store.add_findings([make_finding("b"), make_finding("c")]) == ["c"]
    assert store.add_findings([make_finding("a")]) == []
    assert store.add_findings([]) == []
    assert store.statuses(["a", "b", "c", "unknown"]) == {"a": OPEN, "b": OPEN, "c": OPEN}
    assert store.pending_count() == 3
    assert count_rows(store, findings_table) == 3


def test_a_stored_finding_is_never_overwritten_by_a_later_copy(store: Store) -> None:
    store.add_findings([make_finding("posted-once")])
    claim_waiting(store, "me")
    store.mark_posted("posted-once", CHANNEL, "1700000000.000100")
    store.decide("posted-once", EXPECTED_ROTATION, TRIAGER)
    assert store.add_findings([make_finding("posted-once", user="someone-else")]) == []
    kept = store.get("posted-once")
    assert kept is not None
    assert (kept.triage.status, kept.message.state, kept.message.ts) == (
        EXPECTED_ROTATION,
        POSTED,
        "1700000000.000100",
    )
    assert kept.finding.event.actor.name == "dave"


def test_stored_findings_round_trip(store: Store) -> None:
    finding = make_finding("round-trip", minutes_ago=3)
    store.add_findings([finding], now=NOW)
    stored = store.get("round-trip")
    assert stored is not None
    assert stored.finding == finding  # typed, as it was stored
    assert stored.finding.to_record() == finding.to_record()
    assert stored.finding.event.event_time == NOW - timedelta(minutes=3)
    assert stored.stored_at == NOW
    assert [f.event_id for f in store.findings_between(NOW, NOW + timedelta(seconds=1))] == [
        "round-trip"
    ]
    assert [f.event_id for f in store.open_findings()] == ["round-trip"]


def test_concurrent_writers_store_each_event_once(database_url: str, store: Store) -> None:
    """Overlapping polls (a slow leader and its successor, or `keyhunt poll --once` from cron
    beside `serve`): every event is stored once and reported as new by exactly one writer."""
    for round_ in range(3):
        batch = many_findings(f"same-order-{round_}", 60)
        outcomes = run_together(database_url, 4, adding([batch]))
        reported = [event_id for new in successes(outcomes) for event_id in new]
        assert sorted(reported) == sorted(f.event.event_id for f in batch)
    assert count_rows(store, findings_table) == 3 * 60


def test_concurrent_writers_with_batches_in_different_orders(
    database_url: str, store: Store
) -> None:
    for round_ in range(5):  # one deadlock fails the test; each round deadlocks ~9 times in 10
        batch = many_findings(f"reversed-{round_}", 200)
        outcomes = run_together(database_url, 2, adding([batch, batch[::-1]]))
        reported = [event_id for new in successes(outcomes) for event_id in new]
        assert sorted(reported) == sorted(f.event.event_id for f in batch)


# --------------------------------------------------------------------------- posting


def test_claims_are_exclusive_under_concurrency(database_url: str, store: Store) -> None:
    batch = many_findings("claim", 40)
    store.add_findings(batch)
    outcomes = run_together(
        database_url, 5, lambda own, i: [f.event_id for f in claim_waiting(own, f"owner-{i}")]
    )
    claimed = [event_id for mine in successes(outcomes) for event_id in mine]
    assert sorted(claimed) == sorted(f.event.event_id for f in batch)  # each exactly once
    assert claim_waiting(store, "latecomer") == []  # all claims still live


def test_claim_lifecycle(store: Store) -> None:
    store.add_findings([make_finding("old", minutes_ago=30), make_finding("new", minutes_ago=5)])
    claimed = claim_waiting(store, "a", lease=timedelta(minutes=2), now=NOW)
    assert [f.event_id for f in claimed] == ["old", "new"]  # oldest event first
    assert claim_waiting(store, "b", now=NOW + timedelta(minutes=1)) == []
    # A claim whose holder died expires; the finding is then anyone's.
    assert [f.event_id for f in claim_waiting(store, "b", now=NOW + timedelta(minutes=3))] == [
        "old",
        "new",
    ]
    store.mark_posted("old", CHANNEL, "1700000000.000200")
    store.mark_post_failed("new", "Slack API error: ratelimited (HTTP 429)")
    # A failed post is released at once for the next cycle; a posted one is never claimed.
    assert [f.event_id for f in claim_waiting(store, "c", now=NOW + timedelta(minutes=3))] == [
        "new"
    ]
    assert store.pending_count() == 1
    posted = store.get("old")
    assert posted is not None
    assert (posted.message.state, posted.message.channel, posted.message.ts) == (
        POSTED,
        CHANNEL,
        "1700000000.000200",
    )


def test_concurrent_posters_open_one_burst_and_claim_its_summary_once(
    database_url: str, store: Store
) -> None:
    batch = many_findings("burst", 30)
    store.add_findings(batch)
    ids = [f.event.event_id for f in batch]
    joined = run_together(
        database_url, 5, lambda own, i: own.join_burst(f"burst-{i}", CHANNEL, ids)[0].id
    )
    (burst_id,) = set(successes(joined))  # every poster got the same burst
    assert {f.message.burst_id for f in store.burst_findings(burst_id)} == {burst_id}
    assert len(store.burst_findings(burst_id)) == 30
    won = run_together(
        database_url,
        5,
        lambda own, i: own.claim_burst(burst_id, f"owner-{i}", timedelta(minutes=1)),
    )
    assert successes(won).count(True) == 1
    posted = store.mark_burst_posted(burst_id, "1700000000.000300")
    assert posted is not None
    assert posted.ts == "1700000000.000300"
    again = store.mark_burst_posted(burst_id, "1700000000.000400")
    assert again is not None
    assert again.ts == "1700000000.000300"  # the first summary's ts stands
    assert store.open_burst(CHANNEL) is not None  # its alerts are still to be posted


def test_an_attempt_mark_keeps_the_first_attempt_and_survives_an_ambiguous_failure(
    store: Store,
) -> None:
    store.add_findings([make_finding("tried")])
    store.mark_attempt("tried", None, now=NOW)
    store.mark_attempt("tried", "1700000000.000100", now=NOW + timedelta(minutes=1))
    store.mark_post_failed("tried", "RemoteDisconnected", maybe_posted=True)
    kept = store.get("tried")
    assert kept is not None
    assert kept.message.attempted_at == NOW
    assert kept.message.thread_ts == "1700000000.000100"
    store.mark_post_failed("tried", "Slack API error: fatal_error (HTTP 200)", maybe_posted=False)
    cleared = store.get("tried")
    assert cleared is not None
    assert cleared.message.attempted_at is None
    assert store.mark_posted("tried", CHANNEL, "1700000000.000500")
    assert not store.mark_posted("tried", CHANNEL, "1700000000.000600")  # the first ts stands
    final = store.get("tried")
    assert final is not None
    assert final.message.ts == "1700000000.000500"


def test_suppressed_findings_are_never_claimed(store: Store) -> None:
    finding = make_finding("quiet")
    store.add_findings([Finding(finding.event, finding.severity, (*finding.reasons, "suppressed"))])
    assert claim_waiting(store, "a") == []
    assert store.claim("quiet", "a", CLAIM_LEASE) is None  # not even when asked for by ID
    assert store.pending_count() == 0
    assert store.statuses(["quiet"]) == {"quiet": OPEN}


# --------------------------------------------------------------------------- triage


def test_decide_is_a_compare_and_set(store: Store) -> None:
    store.add_findings([make_finding("click")])
    first = store.decide("click", EXPECTED_ROTATION, TRIAGER, now=NOW)
    assert first is not None
    assert (first.changed, first.previous_status, first.status) == (True, OPEN, EXPECTED_ROTATION)
    again = store.decide("click", EXPECTED_ROTATION, "U0OTHER", now=NOW + timedelta(minutes=1))
    assert again is not None
    assert (again.changed, again.user_id, again.at) == (False, TRIAGER, NOW)  # the first stands
    # Reopening an expected rotation is no transition the message offers (bot.triage); this
    # test once expected it to be made.
    later = store.decide("click", INVESTIGATING, "U0OTHER", now=NOW + timedelta(minutes=2))
    assert later is not None
    assert (later.changed, later.status) == (False, EXPECTED_ROTATION)
    history = store.history("click")
    assert [(d.previous_status, d.status, d.user_id) for d in history] == [
        (OPEN, EXPECTED_ROTATION, TRIAGER),
    ]
    assert history[0].at == NOW
    stored = store.get("click")
    assert stored is not None
    assert (stored.triage.status, stored.triage.decided_by) == (EXPECTED_ROTATION, TRIAGER)
    assert store.decide("no-such-event", EXPECTED_ROTATION, TRIAGER) is None
    with pytest.raises(ValueError, match="unknown status"):
        store.decide("click", "closed", TRIAGER)


def test_concurrent_identical_clicks_make_one_decision(database_url: str, store: Store) -> None:
    """Slack's retries, a double click, two replicas handling it: one decision, one audit row."""
    store.add_findings([make_finding("contested")])

    def click(own: Store, i: int) -> bool:
        decision = own.decide("contested", EXPECTED_ROTATION, f"U0USER{i}")
        assert decision is not None
        return decision.changed

    changed = successes(run_together(database_url, 6, click))
    assert changed.count(True) == 1
    history = store.history("contested")
    assert [(d.previous_status, d.status) for d in history] == [(OPEN, EXPECTED_ROTATION)]
    assert history[0].user_id == f"U0USER{changed.index(True)}"
    assert count_rows(store, triage_log, triage_log.c.event_id == "contested") == 1
    assert store.statuses(["contested"]) == {"contested": EXPECTED_ROTATION}


def test_concurrent_different_clicks_are_never_lost(database_url: str, store: Store) -> None:
    """Two triagers clicking different buttons at once: whatever order the database picks,
    each recorded decision changed the status the previous one left (no lost update), the
    audit log matches the calls that reported a change, and the last entry is the status."""
    store.add_findings([make_finding("disputed")])

    def click(own: Store, i: int) -> bool:
        status = INVESTIGATING if i % 2 else EXPECTED_ROTATION
        decision = own.decide("disputed", status, f"U0USER{i}")
        assert decision is not None
        return decision.changed

    changed = successes(run_together(database_url, 6, click))
    history = store.history("disputed")
    assert len(history) == changed.count(True) >= 1
    chain = [OPEN, *(d.status for d in history)]
    assert [d.previous_status for d in history] == chain[:-1]
    assert all(d.previous_status != d.status for d in history)
    assert store.statuses(["disputed"]) == {"disputed": chain[-1]}


# --------------------------------------------------------------------------- poll state


def test_checkpoints_and_target_health(store: Store) -> None:
    other = Target("222222222222", REGION)
    assert store.checkpoint(TARGET) is None
    store.target_succeeded(TARGET, NOW, NOW + timedelta(seconds=5))
    store.target_failed(other, "lookup: AccessDenied: no", NOW)
    store.target_failed(other, "lookup: AccessDenied: still no", NOW + timedelta(minutes=5))
    assert store.checkpoint(TARGET) == NOW
    assert store.checkpoint(other) is None  # a failure never moves a checkpoint

    store.target_failed(TARGET, "lookup: ThrottlingException: slow down", NOW + timedelta(days=1))
    assert store.checkpoint(TARGET) == NOW
    health = {(h.account_id, h.region): h for h in store.target_health()}
    assert health[(ACCOUNT, REGION)].consecutive_failures == 1
    assert health[(ACCOUNT, REGION)].last_success_at == NOW + timedelta(seconds=5)
    assert health[("222222222222", REGION)].consecutive_failures == 2
    assert health[("222222222222", REGION)].last_error == "lookup: AccessDenied: still no"

    store.target_succeeded(TARGET, NOW + timedelta(hours=1), NOW + timedelta(hours=1))
    after = {(h.account_id, h.region): h for h in store.target_health()}[(ACCOUNT, REGION)]
    assert (after.checkpoint, after.consecutive_failures) == (NOW + timedelta(hours=1), 0)
    assert [h.account_id for h in store.target_health()] == [ACCOUNT, "222222222222"]


def test_poll_runs(store: Store) -> None:
    assert store.last_successful_poll() is None
    store.record_poll(PollRun(NOW, NOW + timedelta(seconds=3), True, True, 2, None))
    store.record_poll(
        PollRun(NOW + timedelta(minutes=5), NOW + timedelta(minutes=6), False, False, 0, "boom")
    )
    runs = store.poll_runs_since(NOW)
    assert [(r.ok, r.complete, r.new_findings, r.error) for r in runs] == [
        (True, True, 2, None),
        (False, False, 0, "boom"),
    ]
    assert store.last_successful_poll() == NOW + timedelta(seconds=3)
    assert store.poll_runs_since(NOW + timedelta(minutes=1))[0].error == "boom"


# --------------------------------------------------------------------------- leases


def test_lease_is_held_renewed_expires_and_is_taken_over(store: Store) -> None:
    ttl = timedelta(seconds=30)
    assert lease_holder(store, "poller", now=NOW) is None
    assert store.acquire_lease("poller", "a", ttl, now=NOW)
    assert not store.acquire_lease("poller", "b", ttl, now=NOW + timedelta(seconds=10))
    assert store.acquire_lease("poller", "a", ttl, now=NOW + timedelta(seconds=20))  # renewed
    assert not store.acquire_lease("poller", "b", ttl, now=NOW + timedelta(seconds=45))
    assert lease_holder(store, "poller", now=NOW + timedelta(seconds=45)) == "a"
    # a stops renewing (it died): after the ttl the lease is free, and b takes it.
    assert lease_holder(store, "poller", now=NOW + timedelta(seconds=51)) is None
    assert store.acquire_lease("poller", "b", ttl, now=NOW + timedelta(seconds=51))
    assert not store.acquire_lease("poller", "a", ttl, now=NOW + timedelta(seconds=52))
    assert lease_holder(store, "poller", now=NOW + timedelta(seconds=52)) == "b"
    store.release_lease("poller", "a")  # not a's to release
    assert lease_holder(store, "poller", now=NOW + timedelta(seconds=52)) == "b"
    store.release_lease("poller", "b")
    assert lease_holder(store, "poller", now=NOW + timedelta(seconds=52)) is None
    assert store.acquire_lease("poller", "a", ttl, now=NOW + timedelta(seconds=53))
    assert store.acquire_lease("digest", "b", ttl, now=NOW + timedelta(seconds=53))  # separate


@pytest.mark.parametrize("expired", [False, True], ids=["free", "expired"])
def test_exactly_one_contender_gets_the_lease(
    database_url: str, store: Store, expired: bool
) -> None:
    ttl = timedelta(seconds=30)
    if expired:
        store.acquire_lease("poller", "dead", ttl, now=datetime.now(UTC) - timedelta(minutes=5))
    outcomes = successes(
        run_together(
            database_url, 8, lambda own, i: own.acquire_lease("poller", f"replica-{i}", ttl)
        )
    )
    assert outcomes.count(True) == 1
    winner = f"replica-{outcomes.index(True)}"
    assert lease_holder(store, "poller") == winner


# --------------------------------------------------------------------------- the whole path


ALERT_ID = re.compile(r"event `([^`]+)`")


def alert_event_id(message: Message) -> str | None:
    """The event ID in an alert's last context block (`event `<id>` · keyhunt`, after the
    next step when there is one)."""
    if not message.blocks or message.blocks[-1].get("type") != "context":
        return None
    match = ALERT_ID.search(" ".join(str(e["text"]) for e in message.blocks[-1]["elements"]))
    return match.group(1) if match else None


def alerts_by_event(slack: FakeSlack) -> dict[str, list[Message]]:
    found: dict[str, list[Message]] = {}
    for message in slack.channel_messages(CHANNEL, top_level_only=True):
        event_id = alert_event_id(message)
        if event_id is not None:
            found.setdefault(event_id, []).append(message)
    return found


def wait_for(what: str, condition: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def seed_day(aws: FakeAWS, now: datetime, tag: str) -> dict[str, str]:
    """Three CreateAccessKey events of the last hour; returns role -> event ID."""
    ids = {
        "self": f"{tag}-self-service",
        "other": f"{tag}-key-for-other",
        "failed": f"{tag}-failed",
    }
    sso = records.assumed_role(ACCOUNT, "AWSReservedSSO_Admin_0123", "alice@example.com")
    mallory = records.iam_user(ACCOUNT, f"mallory-{tag}", access_key="AKIAEXAMPLEMALLORY01")
    aws.add_events(
        ACCOUNT,
        REGION,
        [
            records.create_access_key(
                records.iam_user(ACCOUNT, f"dave-{tag}"),
                ACCOUNT,
                now - timedelta(minutes=50),
                user=None,
                new_key="AKIAEXAMPLEDAVE00001",
                event_id=ids["self"],
            ),
            records.create_access_key(
                sso,
                ACCOUNT,
                now - timedelta(minutes=40),
                user=f"deploy-{tag}",
                new_key="AKIAEXAMPLEDEPLOY001",
                event_id=ids["other"],
            ),
            records.create_access_key(
                mallory,
                ACCOUNT,
                now - timedelta(minutes=30),
                user=f"bob-{tag}",
                new_key=None,
                error=("AccessDenied", "not authorized to perform: iam:CreateAccessKey"),
                event_id=ids["failed"],
            ),
        ],
    )
    return ids


def bot_settings(database_url: str, slack: FakeSlack) -> Settings:
    return Settings(
        slack_bot_token=Secret(BOT_TOKEN),
        slack_signing_secret=Secret(SIGNING_SECRET),
        slack_api_url=slack.api_url,
        channel=CHANNEL,
        database_url=database_url,
        triagers=(TRIAGER,),
        backfill=timedelta(hours=2),
    )


def test_poll_post_and_triage_through_the_bolt_app(
    database_url: str,
    backend: str,
    clean_fake_aws: FakeAWS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two bot processes on one database (built in-process): what one polls and posts, the
    other neither stores nor posts again, and a click or /keyhunt on the other works."""
    aws = clean_fake_aws
    for name, value in {
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    now = datetime.now(UTC).replace(microsecond=0)
    ids = seed_day(aws, now, backend)
    runtimes: list[Components] = []
    server: HttpServer | None = None
    with FakeSlack(BOT_TOKEN, channels=(CHANNEL,)) as slack:
        settings = bot_settings(database_url, slack)
        try:
            first, second = Components(settings), Components(settings)
            runtimes += [first, second]

            outcome = first.poller.run_once()
            assert (outcome.ok, outcome.new_findings, outcome.failed_targets) == (True, 3, [])
            assert outcome.delivery is not None
            assert outcome.delivery.posted == 3
            again = second.poller.run_once()  # the other process: same window, same events
            assert again.new_findings == 0
            assert again.delivery is not None
            assert again.delivery.posted == 0

            late = f"{backend}-late-delivery"  # CloudTrail delivered it after the last poll
            aws.add_events(
                ACCOUNT,
                REGION,
                [
                    records.create_access_key(
                        records.iam_user(ACCOUNT, f"erin-{backend}"),
                        ACCOUNT,
                        now - timedelta(minutes=5),
                        user=None,
                        new_key="AKIAEXAMPLEERIN00001",
                        event_id=late,
                    )
                ],
            )
            assert second.poller.run_once().new_findings == 1
            assert first.poller.run_once().new_findings == 0
            alerts = alerts_by_event(slack)
            assert {k: len(v) for k, v in alerts.items()} == dict.fromkeys([*ids.values(), late], 1)
            assert len(first.store.poll_runs_since(now - timedelta(minutes=1))) == 4

            server = second.http_server("127.0.0.1", 0)
            url = f"http://127.0.0.1:{server.port}/slack/events"

            def click(event_id: str, action: str, user: str = TRIAGER) -> int:
                message = alerts[event_id][0]
                body = block_action_body(
                    action,
                    event_id,
                    user_id=user,
                    channel_id=CHANNEL,
                    message_ts=message.ts,
                    response_url=slack.response_url(f"click-{event_id}"),
                    message=slack.messages[CHANNEL][message.ts].as_dict(),
                )
                return post_to_bot(url, body, SIGNING_SECRET)[0]

            def updates_of(event_id: str) -> int:
                ts = alerts[event_id][0].ts
                return sum(1 for c in slack.calls_to("chat.update") if c.args.get("ts") == ts)

            # An allowed click: the same message is updated in place and the decision stored.
            assert click(ids["self"], ACTION_EXPECTED) == 200
            wait_for("the alert to be updated", lambda: updates_of(ids["self"]) == 1)
            updated = slack.messages[CHANNEL][alerts[ids["self"]][0].ts]
            assert f"<@{TRIAGER}>" in str(updated.blocks)
            assert first.store.statuses([ids["self"]]) == {ids["self"]: EXPECTED_ROTATION}
            # Slack's retry of the same click changes nothing more: the clicker is told so
            # privately and the message is left as it is. (These clicks carry the bare event
            # ID of messages posted before button values said their state: still understood.)
            assert click(ids["self"], ACTION_EXPECTED) == 200
            wait_for("the retried click's answer", lambda: len(slack.ephemerals) == 1)
            assert "nothing changed" in slack.ephemerals[0].text
            assert updates_of(ids["self"]) == 1
            assert len(first.store.history(ids["self"])) == 1

            # Someone not in KEYHUNT_TRIAGERS: an ephemeral explanation, nothing changed.
            assert click(ids["other"], ACTION_INVESTIGATE, user="U0MALLORY") == 200
            wait_for("the ephemeral refusal", lambda: len(slack.ephemerals) == 2)
            assert slack.ephemerals[1].user == "U0MALLORY"
            assert first.store.statuses([ids["other"]]) == {ids["other"]: OPEN}

            # Investigate: status, update in place, and the key's story in the thread.
            assert click(ids["other"], ACTION_INVESTIGATE) == 200
            parent = alerts[ids["other"]][0].ts
            wait_for(
                "the investigation in the thread",
                lambda: updates_of(ids["other"]) == 1 and len(slack.thread(CHANNEL, parent)) == 2,
            )
            decided = first.store.get(ids["other"])
            assert decided is not None
            assert (decided.triage.status, decided.triage.decided_by) == (INVESTIGATING, TRIAGER)

            # /keyhunt status from the shared store, answered through response_url.
            body = slash_command_body(
                "status",
                user_id=TRIAGER,
                channel_id=CHANNEL,
                response_url=slack.response_url("status"),
            )
            assert post_to_bot(url, body, SIGNING_SECRET)[0] == 200
            wait_for("the /keyhunt status answer", lambda: len(slack.responses) == 1)
            assert slack.responses[0].key == "status"
            assert slack.responses[0].body.get("text")

            assert len(slack.calls_to("chat.postMessage")) == 4 + 1  # alerts + the thread reply
        finally:
            if server is not None:
                server.stop()
            for runtime in runtimes:
                runtime.close()
