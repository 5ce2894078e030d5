"""The state store on a real SQLite file: dedupe, exclusive claims, compare-and-set decisions,
checkpoints, leases, migrations. Concurrency is exercised with real threads and separate
Store instances (one per would-be process) on the same file."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import update

from bot.store import (
    PENDING,
    POSTED,
    SCHEMA_VERSION,
    SKIPPED,
    PollRun,
    Store,
    findings_table,
    schema_info,
)
from bot.stored import POLLED, QUEUED, RECONCILED
from bot.triage import EXPECTED_ROTATION, INVESTIGATING, OPEN
from checks.model import Finding, Target
from tests.slackbot import CALLER, REGION, finding_of, key_for_other, root_key, self_key
from tests.store_helpers import CLAIM_LEASE, claim_waiting, lease_holder

T = TypeVar("T")
NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keyhunt.db'}"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    opened = Store(url)
    opened.migrate()
    yield opened
    opened.close()


def findings(count: int, start: datetime = NOW) -> list[Finding]:
    return [finding_of(root_key(start - timedelta(minutes=i))) for i in range(count)]


def in_parallel(count: int, work: Callable[[int], T]) -> list[T]:
    """Run work(0..count-1) in threads released together."""
    barrier = threading.Barrier(count)

    def run(index: int) -> T:
        barrier.wait()
        return work(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def other_stores(url: str, count: int) -> list[Store]:
    stores = [Store(url) for _ in range(count)]
    for s in stores:
        s.migrate()
    return stores


# --------------------------------------------------------------------------- findings


def test_add_findings_returns_only_the_new_ones_and_leaves_stored_ones_alone(
    store: Store,
) -> None:
    first, second = findings(2)
    assert store.add_findings([first]) == [first.event.event_id]
    store.decide(first.event.event_id, EXPECTED_ROTATION, "U0CAROL", NOW)
    claim_waiting(store, "me")
    store.mark_posted(first.event.event_id, "C0ALERTS", "1700000000.000100")

    again = store.add_findings([first, second, second])  # seen again, plus a new one twice

    assert again == [second.event.event_id]
    kept = store.get(first.event.event_id)
    assert kept is not None
    assert (kept.triage.status, kept.message.state, kept.message.ts) == (
        EXPECTED_ROTATION,
        POSTED,
        "1700000000.000100",
    )
    assert store.add_findings([]) == []


def test_a_stored_finding_keeps_the_contract_record(store: Store) -> None:
    finding = finding_of(key_for_other(NOW, actor="alice", user="bob"))
    store.add_findings([finding])

    stored = store.get(finding.event.event_id)

    assert stored is not None
    assert stored.finding == finding  # typed, as it was stored
    assert stored.finding.to_record() == finding.to_record()
    assert stored.finding.event.event_time == finding.event.event_time
    assert stored.triage.status == OPEN
    assert store.get("no-such-event") is None


def test_the_same_findings_added_by_many_processes_at_once_are_new_exactly_once(
    url: str, store: Store
) -> None:
    batch = findings(40)
    stores = other_stores(url, 4)

    results = in_parallel(4, lambda i: stores[i].add_findings(batch))

    everything = [event_id for result in results for event_id in result]
    assert sorted(everything) == sorted(f.event.event_id for f in batch)
    assert store.pending_count() == 40


def test_statuses_for_many_ids_in_chunks(store: Store) -> None:
    batch = findings(30)
    store.add_findings(batch)
    decided = batch[3].event.event_id
    store.decide(decided, INVESTIGATING, "U0CAROL")
    wanted = [f.event.event_id for f in batch] + [f"unknown-{i}" for i in range(1200)]

    statuses = store.statuses(wanted)

    assert len(statuses) == 30
    assert statuses[decided] == INVESTIGATING
    assert {s for k, s in statuses.items() if k != decided} == {OPEN}
    assert store.statuses([]) == {}


@pytest.mark.parametrize(
    "damage",
    ["not json", '{"event_id": "x"}', '{"event_id": "x", "event_time": "soon", "severity": "hi"}'],
)
def test_a_stored_record_that_no_longer_decodes_is_shown_as_malformed_not_lost(
    store: Store, damage: str
) -> None:
    finding = finding_of(key_for_other(NOW, actor="alice", user="bob"))
    store.add_findings([finding])
    event_id = finding.event.event_id
    with store.engine.begin() as conn:  # edited by hand, or written by a keyhunt we cannot read
        conn.execute(
            update(findings_table)
            .where(findings_table.c.event_id == event_id)
            .values(record=damage)
        )

    stored = store.get(event_id)

    assert stored is not None
    assert stored.event_id == event_id
    assert stored.finding.event.event_time == finding.event.event_time  # from its column
    assert stored.finding.account_id == CALLER
    assert stored.finding.reasons == ("malformed",)
    assert stored.finding.severity == finding.severity  # high stays high
    assert stored.finding.event.problems[0].startswith("record: its stored copy could not be")
    assert [f.event_id for f in store.pending()] == [event_id]  # still to be posted


def test_open_findings_oldest_first_without_suppressed_or_decided(store: Store) -> None:
    old, mid, new = findings(3)[::-1]
    suppressed = dataclasses.replace(
        finding_of(self_key(NOW - timedelta(hours=5))), reasons=("self_service", "suppressed")
    )
    store.add_findings([new, old, mid, suppressed])
    store.decide(mid.event.event_id, EXPECTED_ROTATION, "U0CAROL")

    assert [f.event_id for f in store.open_findings()] == [old.event.event_id, new.event.event_id]
    skipped = store.get(suppressed.event.event_id)
    assert skipped is not None
    assert skipped.message.state == SKIPPED


def test_findings_between_is_by_stored_time_newest_event_first(store: Store) -> None:
    a, b, c = findings(3)
    store.add_findings([a], now=NOW - timedelta(days=2))
    store.add_findings([b, c], now=NOW - timedelta(hours=2))

    day = store.findings_between(NOW - timedelta(hours=24), NOW)

    assert [f.event_id for f in day] == [b.event.event_id, c.event.event_id]


# --------------------------------------------------------------------------- posting


def test_claims_are_exclusive_across_processes(url: str, store: Store) -> None:
    store.add_findings(findings(60))
    stores = other_stores(url, 4)

    claims = in_parallel(4, lambda i: claim_waiting(stores[i], f"owner-{i}", limit=100, now=NOW))

    ids = [f.event_id for claim in claims for f in claim]
    assert len(ids) == 60
    assert len(set(ids)) == 60  # nobody holds a finding another one holds
    assert claim_waiting(store, "late", now=NOW) == []


def test_claims_come_oldest_event_first_up_to_the_limit(store: Store) -> None:
    batch = findings(5)  # newest first
    store.add_findings(batch)

    claimed = claim_waiting(store, "me", limit=2, now=NOW)

    assert [f.event_id for f in claimed] == [f.event.event_id for f in batch[::-1][:2]]


def test_an_expired_claim_is_taken_over_and_a_live_one_is_not(store: Store) -> None:
    (finding,) = findings(1)
    store.add_findings([finding])
    assert len(claim_waiting(store, "crashed", lease=timedelta(minutes=2), now=NOW)) == 1

    assert claim_waiting(store, "other", now=NOW + timedelta(minutes=1)) == []
    taken = claim_waiting(store, "other", now=NOW + timedelta(minutes=3))

    assert [f.event_id for f in taken] == [finding.event.event_id]


def test_posted_leaves_pending_and_a_failure_releases_the_claim(store: Store) -> None:
    ok, failing = findings(2)
    store.add_findings([ok, failing])
    claim_waiting(store, "me", now=NOW)

    store.mark_posted(ok.event.event_id, "C0ALERTS", "1700000000.000100", "1700000000.000001")
    store.mark_post_failed(failing.event.event_id, "Slack API error: ratelimited (HTTP 429)")

    assert store.pending_count() == 1
    posted = store.get(ok.event.event_id)
    assert posted is not None
    assert (
        posted.message.state,
        posted.message.channel,
        posted.message.ts,
        posted.message.thread_ts,
    ) == (
        POSTED,
        "C0ALERTS",
        "1700000000.000100",
        "1700000000.000001",
    )
    retry = claim_waiting(store, "anyone", now=NOW)  # released at once, for any process
    assert [f.event_id for f in retry] == [failing.event.event_id]
    assert retry[0].message.state == PENDING


def test_suppressed_findings_are_never_claimed(store: Store) -> None:
    (finding,) = findings(1)
    store.add_findings([dataclasses.replace(finding, reasons=(*finding.reasons, "suppressed"))])

    assert claim_waiting(store, "me", now=NOW) == []
    assert store.claim(finding.event.event_id, "me", CLAIM_LEASE, NOW) is None  # nor by ID
    assert store.pending_count() == 0


# --------------------------------------------------------------------------- triage


def test_decide_is_compare_and_set_with_an_audit_log(store: Store) -> None:
    """Only bot.triage's transitions: open -> investigating -> expected rotation, and never
    back. (This test once reopened an expected rotation for investigation: the message never
    offers that button, so the store no longer makes that move.)"""
    (finding,) = findings(1)
    event_id = finding.event.event_id
    store.add_findings([finding])

    first = store.decide(event_id, INVESTIGATING, "U0CAROL", NOW)
    repeat = store.decide(event_id, INVESTIGATING, "U0DAVE", NOW + timedelta(minutes=1))
    closed = store.decide(event_id, EXPECTED_ROTATION, "U0DAVE", NOW + timedelta(minutes=2))
    reopened = store.decide(event_id, INVESTIGATING, "U0ERIN", NOW + timedelta(minutes=3))

    assert first is not None
    assert (first.changed, first.previous_status, first.user_id) == (True, OPEN, "U0CAROL")
    assert repeat is not None
    # The repeat changes nothing and reports the decision that stands.
    assert (repeat.changed, repeat.user_id, repeat.at) == (False, "U0CAROL", NOW)
    assert closed is not None
    assert (closed.changed, closed.previous_status) == (True, INVESTIGATING)
    assert reopened is not None
    assert (reopened.changed, reopened.status, reopened.user_id) == (
        False,
        EXPECTED_ROTATION,
        "U0DAVE",
    )
    history = store.history(event_id)
    assert [(d.previous_status, d.status, d.user_id, d.at) for d in history] == [
        (OPEN, INVESTIGATING, "U0CAROL", NOW),
        (INVESTIGATING, EXPECTED_ROTATION, "U0DAVE", NOW + timedelta(minutes=2)),
    ]
    stored = store.get(event_id)
    assert stored is not None
    assert (stored.triage.status, stored.triage.decided_by) == (EXPECTED_ROTATION, "U0DAVE")
    assert stored.triage.decided_at == NOW + timedelta(minutes=2)


def test_a_decision_from_a_message_that_is_no_longer_current_changes_nothing(
    store: Store,
) -> None:
    (finding,) = findings(1)
    event_id = finding.event.event_id
    store.add_findings([finding])
    assert store.decide(event_id, EXPECTED_ROTATION, "U0CAROL", NOW, expected=OPEN)
    # A replay of an Investigate click made on the open alert, after it was closed:
    replay = store.decide(event_id, INVESTIGATING, "U0DAVE", NOW, expected=OPEN)
    assert replay is not None
    assert (replay.changed, replay.status) == (False, EXPECTED_ROTATION)
    # An Expected click drawn for "investigating" while the alert is still open: refused too.
    (other,) = findings(1)
    store.add_findings([other])
    stale = store.decide(other.event.event_id, EXPECTED_ROTATION, "U0DAVE", expected=INVESTIGATING)
    assert stale is not None
    assert (stale.changed, stale.status) == (False, OPEN)
    assert len(store.history(event_id)) == 1
    assert store.history(other.event.event_id) == []


def test_decide_refuses_unknown_statuses_and_events(store: Store) -> None:
    (finding,) = findings(1)
    store.add_findings([finding])
    with pytest.raises(ValueError, match="unknown status"):
        store.decide(finding.event.event_id, "closed", "U0CAROL")
    assert store.decide("no-such-event", EXPECTED_ROTATION, "U0CAROL") is None
    assert store.history(finding.event.event_id) == []


def test_concurrent_identical_decisions_are_logged_once(url: str, store: Store) -> None:
    (finding,) = findings(1)
    store.add_findings([finding])
    stores = other_stores(url, 6)

    decisions = in_parallel(
        6, lambda i: stores[i].decide(finding.event.event_id, EXPECTED_ROTATION, f"U0USER{i}")
    )

    assert sum(1 for d in decisions if d is not None and d.changed) == 1
    (entry,) = store.history(finding.event.event_id)
    winner = next(d for d in decisions if d is not None and d.changed)
    assert entry.user_id == winner.user_id


def test_concurrent_different_decisions_leave_a_consistent_chain(url: str, store: Store) -> None:
    (finding,) = findings(1)
    event_id = finding.event.event_id
    store.add_findings([finding])
    stores = other_stores(url, 6)
    wanted = [EXPECTED_ROTATION, INVESTIGATING] * 3

    in_parallel(6, lambda i: stores[i].decide(event_id, wanted[i], f"U0USER{i}"))

    history = store.history(event_id)
    assert history
    assert history[0].previous_status == OPEN
    for before, after in itertools.pairwise(history):
        assert after.previous_status == before.status != after.status
    final = store.get(event_id)
    assert final is not None
    assert final.triage.status == history[-1].status


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints_move_on_success_and_stay_on_failure(store: Store) -> None:
    target, other = Target(CALLER, REGION), Target("222222222222", REGION)
    assert store.checkpoint(target) is None

    store.target_succeeded(target, NOW, NOW + timedelta(seconds=5))
    store.target_failed(
        target, "lookup: ThrottlingException: Rate exceeded", NOW + timedelta(minutes=1)
    )
    store.target_failed(target, "lookup: ThrottlingException: again", NOW + timedelta(minutes=2))
    store.target_failed(other, "assume_role: AccessDenied: no", NOW)

    assert store.checkpoint(target) == NOW
    health = {h.account_id: h for h in store.target_health()}
    assert health[CALLER].consecutive_failures == 2
    assert health[CALLER].last_error == "lookup: ThrottlingException: again"
    assert health[CALLER].last_success_at == NOW + timedelta(seconds=5)
    assert health[other.account_id].checkpoint is None
    assert health[other.account_id].consecutive_failures == 1

    store.target_succeeded(target, NOW + timedelta(hours=1), NOW + timedelta(hours=1))
    recovered = {h.account_id: h for h in store.target_health()}[CALLER]
    assert recovered.consecutive_failures == 0
    assert recovered.last_error is None
    assert store.checkpoint(target) == NOW + timedelta(hours=1)


def test_targets_of_other_regions_are_not_health(store: Store) -> None:
    """Polls read us-east-1 only (IAM's events are recorded there); a checkpoint an older
    version left in us-west-2, failing or stale, is never read again, so never shown."""
    store.target_succeeded(Target(CALLER, REGION), NOW, NOW)
    store.target_failed(Target(CALLER, "us-west-2"), "lookup: AccessDenied: no", NOW)

    assert [(h.account_id, h.region) for h in store.target_health()] == [(CALLER, REGION)]


def test_poll_runs_and_the_last_successful_poll(store: Store) -> None:
    assert store.last_successful_poll() is None
    store.record_poll(PollRun(NOW, NOW + timedelta(seconds=3), True, True, 2, None))
    store.record_poll(
        PollRun(NOW + timedelta(minutes=5), NOW + timedelta(minutes=5), False, False, 0, "boom")
    )

    assert store.last_successful_poll() == NOW + timedelta(seconds=3)
    runs = store.poll_runs_since(NOW - timedelta(hours=1))
    assert [(r.ok, r.new_findings, r.error) for r in runs] == [(True, 2, None), (False, 0, "boom")]
    assert store.poll_runs_since(NOW + timedelta(minutes=1))[0].error == "boom"


# --------------------------------------------------------------------------- leases


def test_a_lease_is_held_renewed_expires_and_is_taken_over(store: Store) -> None:
    ttl = timedelta(minutes=2)
    assert store.acquire_lease("poller", "a", ttl, NOW)
    assert not store.acquire_lease("poller", "b", ttl, NOW + timedelta(minutes=1))
    assert store.acquire_lease("poller", "a", ttl, NOW + timedelta(minutes=1))  # renewed
    assert lease_holder(store, "poller", NOW + timedelta(minutes=2)) == "a"

    assert not store.acquire_lease("poller", "b", ttl, NOW + timedelta(minutes=2, seconds=59))
    assert lease_holder(store, "poller", NOW + timedelta(minutes=4)) is None  # expired
    assert store.acquire_lease("poller", "b", ttl, NOW + timedelta(minutes=4))
    assert lease_holder(store, "poller", NOW + timedelta(minutes=4)) == "b"

    store.release_lease("poller", "a")  # not the holder: nothing happens
    assert lease_holder(store, "poller", NOW + timedelta(minutes=4)) == "b"
    store.release_lease("poller", "b")
    assert lease_holder(store, "poller", NOW + timedelta(minutes=4)) is None
    assert store.acquire_lease("other-lease", "a", ttl, NOW)  # leases are independent


def test_only_one_of_many_replicas_gets_a_free_lease(url: str, store: Store) -> None:
    stores = other_stores(url, 6)

    won = in_parallel(
        6, lambda i: stores[i].acquire_lease("poller", f"replica-{i}", timedelta(minutes=2), NOW)
    )

    assert won.count(True) == 1
    assert lease_holder(store, "poller", NOW) == f"replica-{won.index(True)}"


# --------------------------------------------------------------------------- schema


def test_migrate_is_idempotent_and_keeps_data(url: str, store: Store) -> None:
    (finding,) = findings(1)
    store.add_findings([finding])

    store.migrate()
    Store(url).migrate()

    assert store.get(finding.event.event_id) is not None
    with store.engine.connect() as conn:
        assert conn.execute(schema_info.select()).fetchall() == [(1, SCHEMA_VERSION)]


def test_many_processes_migrating_a_new_database_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    stores = [Store(url) for _ in range(4)]

    in_parallel(4, lambda i: stores[i].migrate())

    with stores[0].engine.connect() as conn:
        assert conn.execute(schema_info.select()).fetchall() == [(1, SCHEMA_VERSION)]
    stores[0].ping()


def test_a_database_from_a_newer_keyhunt_is_refused(url: str, store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(schema_info).values(version=99))

    with pytest.raises(RuntimeError, match="newer than this keyhunt"):
        Store(url).migrate()


def test_a_schema_1_database_is_upgraded_in_place_and_keeps_its_data(tmp_path: Path) -> None:
    """Schema 1 had no attempt marks, bursts or unreadable counts: `migrate` adds them."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url)
    old.migrate()
    (finding,) = findings(1)
    old.add_findings([finding], now=NOW)
    with old.engine.begin() as conn:  # make it look as keyhunt 0.1 left it
        for table, column in (
            ("findings", "post_attempted_at"),
            ("findings", "burst_id"),
            ("poll_runs", "unreadable"),
            ("findings", "source"),  # schema 3
        ):
            if column == "burst_id":
                conn.exec_driver_sql("DROP INDEX IF EXISTS ix_findings_burst_id")
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.exec_driver_sql("DROP TABLE bursts")
        conn.execute(update(schema_info).values(version=1))
    old.close()

    upgraded = Store(url)
    upgraded.migrate()
    upgraded.migrate()  # and again: idempotent

    stored = upgraded.get(finding.event.event_id)
    assert stored is not None
    assert stored.message.attempted_at is None
    assert stored.message.burst_id is None
    upgraded.record_poll(PollRun(NOW, NOW, True, True, 0, None, unreadable=3))
    assert [r.unreadable for r in upgraded.poll_runs_since(NOW)] == [3]
    with upgraded.engine.connect() as conn:
        assert conn.execute(schema_info.select()).fetchall() == [(1, SCHEMA_VERSION)]


def test_a_schema_2_database_learns_how_findings_arrived_and_its_own_came_by_poll(
    tmp_path: Path,
) -> None:
    """Schema 3 added `findings.source` (poll, queue, reconcile): before it only polls stored."""
    url = f"sqlite:///{tmp_path / 'v2.db'}"
    old = Store(url)
    old.migrate()
    first, second = findings(2)
    old.add_findings([first], now=NOW)
    with old.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE findings DROP COLUMN source")
        conn.execute(update(schema_info).values(version=2))
    old.close()

    upgraded = Store(url)
    upgraded.migrate()
    upgraded.add_findings([second], now=NOW, source=QUEUED)
    upgraded.add_findings([first, second], now=NOW, source=RECONCILED)  # both known already

    day = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert upgraded.arrivals_between(*day) == {POLLED: 1, QUEUED: 1}
    with pytest.raises(ValueError, match="unknown finding source"):
        upgraded.add_findings(findings(1, NOW - timedelta(days=1)), source="carrier-pigeon")
