"""The hunt engine in-process: `checks.hunt.run_hunt` with real boto3 sessions against the fake.

What only the call log can show: the per-target rate, which targets read rotation context,
how many IAM calls enrichment makes, that targets run in parallel. Timing assertions use the
arrival times the fake records (LookupCall.at), never wall-clock totals.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.config import Config
from botocore.exceptions import HTTPClientError

from checks.cloudtrail import LOOKUP_WINDOW
from checks.hunt import HuntOptions, run_hunt
from checks.model import Finding, HuntStats, Target, Window
from checks.ratelimit import RateLimiter
from checks.sessions import AwsSessions
from keyhunt_dev.aws import FakeAWS
from tests.conftest import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY, NetworkGuard, RealNetworkBlocked
from tests.scenario import (
    CALLER,
    PEER,
    REGION,
    assumed_role,
    bulk_creations,
    create_access_key,
    iam_user,
    root,
    update_access_key,
)

ACCOUNTS = (CALLER, PEER, "333333333333", "444444444444", "555555555555", "666666666666")
# A call can leave (or be recorded by the fake, which shares this process) late on a loaded
# machine: 127 ms and 230 ms were seen, so a target's schedule is checked with one slot of
# slack: a limiter that bursts, or runs 25 % fast over six gaps, still misses it.
SLACK = 0.5
ROTATION_NAMES = ("UpdateAccessKey", "DeleteAccessKey")


@pytest.fixture
def fake(clean_fake_aws: FakeAWS) -> FakeAWS:
    return clean_fake_aws


@pytest.fixture
def sessions(fake: FakeAWS, monkeypatch: pytest.MonkeyPatch) -> AwsSessions:
    """What the composition root builds, aimed at the fake through AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", fake.endpoint_url)
    base = boto3.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
        region_name=REGION,
    )
    return AwsSessions(base)


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def window(now: datetime) -> Window:
    return Window(now - timedelta(hours=24), now)


def max_in_window(times: Sequence[float], width: float) -> int:
    """The most events in any half-open interval (t - width, t]."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - width:
            first += 1
        best = max(best, last - first + 1)
    return best


def by_id(findings: Sequence[Finding]) -> dict[str, Finding]:
    return {f.event.event_id: f for f in findings}


class CountingClients:
    """A ClientSource around AwsSessions that counts ListAccessKeys per (account, user),
    and can make IAM answer AccessDenied the way botocore would surface it."""

    def __init__(self, inner: AwsSessions, deny_iam: bool = False) -> None:
        self.inner = inner
        self.deny_iam = deny_iam
        self.list_access_keys: Counter[tuple[str, str]] = Counter()
        self.first_asked: dict[tuple[str, str], float] = {}  # time.monotonic(), as the fake's
        self._lock = threading.Lock()

    def client(self, account_id: str, service: str, region: str) -> Any:
        client = self.inner.client(account_id, service, region)
        if service == "iam":

            def count(params: dict[str, Any], **_: Any) -> None:
                with self._lock:
                    pair = (account_id, params["UserName"])
                    self.list_access_keys[pair] += 1
                    self.first_asked.setdefault(pair, time.monotonic())

            # Clients are cached, so the same one comes back: register each hook once.
            events = client.meta.events
            tag = f"counting-{id(self)}"
            events.register("provide-client-params.iam.ListAccessKeys", count, unique_id=tag)
            if self.deny_iam:
                events.register(
                    "before-call.iam.ListAccessKeys", _access_denied, unique_id=f"{tag}-deny"
                )
        return client


def _access_denied(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    error = {
        "Code": "AccessDenied",
        "Message": "User: arn:aws:sts::123456789012:assumed-role/KeyHuntReadOnly/keyhunt is "
        "not authorized to perform: iam:ListAccessKeys",
    }
    response = AWSResponse("https://iam.amazonaws.com/", 403, HTTPHeaders(), None)
    return response, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}


# --------------------------------------------------------------------------- rate and pages


def test_no_target_runs_ahead_of_two_requests_per_second(
    fake: FakeAWS, sessions: AwsSessions, window: Window, now: datetime
) -> None:
    """A target's k-th LookupEvents call arrives about k × 0.5 s after its first.

    The fake records a call when it arrives, which on a loaded machine can be later than
    when it left; the strict "never three in one second" check is made deterministically,
    on the limiter's own clock, in the next test.
    """
    # Four accounts in us-east-1 (it was two accounts x two regions: CreateAccessKey is
    # recorded in us-east-1 only, so a hunt never reads another region for it).
    targets = [Target(a, REGION) for a in ACCOUNTS[:4]]
    for target in targets:  # 201 events: five pages, plus two rotation-context calls
        terraform = assumed_role(target.account_id, "TerraformProvisioner", "tf-apply")
        records = bulk_creations(terraform, 201, now - timedelta(minutes=1))
        fake.add_events(target.account_id, target.region, records)

    result = run_hunt(targets, window, sessions, HuntOptions(now=lambda: now))

    assert result.complete
    assert len(result.findings) == 4 * 201
    for target in targets:
        calls = fake.lookup_calls(target.account_id, target.region)
        assert len(fake.lookup_calls(target.account_id, target.region, "CreateAccessKey")) == 5
        assert len(calls) == 7
        arrivals = sorted(c.at for c in calls)
        ahead = max(k / 2 - (at - arrivals[0]) for k, at in enumerate(arrivals))
        assert ahead < SLACK, f"{target} ran {ahead:.2f} s ahead of 2 calls/s"
        gaps = [later - earlier for earlier, later in pairwise(arrivals)]
        assert statistics.median(gaps) == pytest.approx(0.5, abs=0.08)
    # The limit is per target, not global: together the targets went faster.
    assert max_in_window([c.at for c in fake.calls], 1.0) > 2


def test_rate_limiter_keeps_its_spacing_after_a_late_wakeup() -> None:
    clock = {"now": 0.0, "late": 0.3}  # the first sleep returns 300 ms late

    def sleep(seconds: float) -> None:
        clock["now"] += seconds + clock["late"]
        clock["late"] = 0.0

    limiter = RateLimiter(2.0, clock=lambda: clock["now"], sleep=sleep)
    released = []
    for _ in range(4):  # one thread calling as fast as the limiter lets it
        limiter.acquire()
        released.append(clock["now"])

    assert max_in_window(released, 1.0) <= 2, released


@pytest.mark.parametrize("late", [0.0, 0.2, 0.45, 2.0])
def test_no_three_calls_arrive_in_one_second_however_late_one_leaves(late: float) -> None:
    """A call granted on time but held `late` seconds on its way (a starved thread, a busy
    server) never makes three arrivals in one second: the window counts from answers, which
    come after arrivals. A spacing alone, on the limiter's clock, lets one late call do it."""
    assert max_in_window(_arrivals(late, LOOKUP_WINDOW), 1.0) <= 2
    if 0.0 < late < 0.5:
        assert max_in_window(_arrivals(late, None), 1.0) == 3


def _arrivals(late: float, window: float | None) -> list[float]:
    """When 9 sequential calls reach CloudTrail, one in three held `late` s after its grant,
    each answered 50 ms after it arrived; on a fake clock."""
    clock = {"now": 0.0}

    def sleep(seconds: float) -> None:
        clock["now"] += seconds

    limiter = RateLimiter(2.0, clock=lambda: clock["now"], sleep=sleep, window_seconds=window)
    arrivals = []
    for k in range(9):
        slot = limiter.acquire()
        arrivals.append(clock["now"] + (late if k % 3 == 0 else 0.0))
        clock["now"] = arrivals[-1] + 0.05
        limiter.answered(slot)
    return arrivals


# --------------------------------------------------------------------------- rotation context


def test_rotation_context_is_read_only_where_a_finding_could_be_a_rotation(
    fake: FakeAWS, sessions: AwsSessions, window: Window, now: datetime
) -> None:
    root_only, nothing, failed_only, rotating = ACCOUNTS[:4]
    fake.add_events(root_only, REGION, [create_access_key(root(root_only), now)])
    mallory = iam_user(failed_only, "mallory")
    fake.add_events(
        failed_only,
        REGION,
        [create_access_key(mallory, now, user="admin", error_code="AccessDenied")],
    )
    carol = iam_user(rotating, "carol")
    created = create_access_key(carol, now - timedelta(hours=2))
    retired = update_access_key(carol, now - timedelta(hours=1), key_id="AKIAOLDKEYOLDKEYOLD1")
    fake.add_events(rotating, REGION, [created, retired])
    targets = [Target(a, REGION) for a in (root_only, nothing, failed_only, rotating)]

    result = run_hunt(targets, window, sessions, HuntOptions(now=lambda: now))

    assert result.complete
    for account in (root_only, nothing, failed_only):
        assert [
            c.params["LookupAttributes"][0]["AttributeValue"] for c in fake.lookup_calls(account)
        ] == ["CreateAccessKey"]
    (create_call,) = fake.lookup_calls(rotating, REGION, "CreateAccessKey")
    for name in ROTATION_NAMES:
        (context,) = fake.lookup_calls(rotating, REGION, name)
        margin = create_call.params["StartTime"] - context.params["StartTime"]
        assert margin == pytest.approx(24 * 3600, abs=1)  # the window plus the margin
        assert context.params["EndTime"] <= now.timestamp() + 1  # never in the future
    rotation = by_id(result.findings)[created["eventID"]]
    assert (rotation.severity, rotation.reasons) == ("low", ("self_service", "likely_rotation"))


# --------------------------------------------------------------------------- enrichment


def _iam_user_with_key(fake: FakeAWS) -> tuple[str, str]:
    """A user with one key in moto's IAM (account 123456789012); moto's state is global."""
    iam = boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=fake.endpoint_url,
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
    )
    name = f"ivy-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    return name, iam.create_access_key(UserName=name)["AccessKey"]["AccessKeyId"]


Classified = dict[str, tuple[str, tuple[str, ...]]]  # event ID -> (severity, reasons)


def _several_findings_per_user(
    fake: FakeAWS, now: datetime, ivy: str
) -> tuple[list[dict[str, Any]], Classified]:
    """Three findings for `ivy`, one for `jon` (not in IAM), a root key; `ivy` again in PEER.

    Returns the CALLER records and every finding's expected (severity, reasons)."""
    admin, self_ = iam_user(CALLER, "admin"), iam_user(CALLER, ivy)
    denied = create_access_key(
        admin, now - timedelta(minutes=30), user=ivy, error_code="AccessDenied"
    )
    caller = [
        create_access_key(admin, now - timedelta(minutes=10), user=ivy),
        create_access_key(self_, now - timedelta(minutes=20)),
        denied,
        create_access_key(admin, now - timedelta(minutes=40), user="jon"),
        create_access_key(root(CALLER), now - timedelta(minutes=50)),
    ]
    peer = create_access_key(iam_user(PEER, "admin"), now - timedelta(minutes=5), user=ivy)
    fake.add_events(CALLER, REGION, caller)
    fake.add_events(PEER, REGION, [peer])
    other, self_service = ("high", ("key_for_other_user",)), ("medium", ("self_service",))
    expected = dict(
        zip(
            [r["eventID"] for r in (*caller, peer)],
            [
                other,
                self_service,
                ("medium", ("key_for_other_user", "failed_attempt")),
                other,
                ("critical", ("root_actor",)),
                other,
            ],
            strict=True,
        )
    )
    return caller, expected


def classified(findings: Sequence[Finding]) -> Classified:
    return {f.event.event_id: (f.severity.value, f.reasons) for f in findings}


def test_enrichment_asks_iam_once_per_account_and_user(
    fake: FakeAWS, sessions: AwsSessions, window: Window, now: datetime
) -> None:
    ivy, ivy_key = _iam_user_with_key(fake)
    caller, expected = _several_findings_per_user(fake, now, ivy)
    clients = CountingClients(sessions)
    targets = [Target(CALLER, REGION), Target(PEER, REGION)]

    result = run_hunt(targets, window, clients, HuntOptions(enrich=True, now=lambda: now))

    assert result.complete
    assert clients.list_access_keys == {(CALLER, ivy): 1, (CALLER, "jon"): 1, (PEER, ivy): 1}
    assert classified(result.findings) == expected
    findings = by_id(result.findings)
    for record in caller[:3]:  # ivy's three findings share the one answer
        keys = findings[record["eventID"]].user_keys
        assert keys is not None
        assert [(k.access_key_id, k.status) for k in keys] == [(ivy_key, "Active")]
    assert findings[caller[4]["eventID"]].user_keys is None  # the root user has no IAM user


def test_enrichment_failure_never_loses_a_finding(
    fake: FakeAWS, sessions: AwsSessions, window: Window, now: datetime
) -> None:
    ivy, _ = _iam_user_with_key(fake)
    _, expected = _several_findings_per_user(fake, now, ivy)
    targets = [Target(CALLER, REGION), Target(PEER, REGION)]
    denied = CountingClients(sessions, deny_iam=True)

    result = run_hunt(targets, window, denied, HuntOptions(enrich=True, now=lambda: now))

    assert result.complete  # enrichment failures do not make a hunt partial
    assert classified(result.findings) == expected
    assert all(f.user_keys is None for f in result.findings)
    iam_errors = {(e.target.account_id, e.stage, e.code) for e in result.errors}
    assert iam_errors == {(CALLER, "iam", "AccessDenied"), (PEER, "iam", "AccessDenied")}


def test_enrichment_of_a_deleted_user_keeps_the_finding(
    fake: FakeAWS, sessions: AwsSessions, window: Window, now: datetime
) -> None:
    gone = f"deleted-{uuid.uuid4().hex[:8]}"  # never created in moto: NoSuchEntity
    made = create_access_key(iam_user(CALLER, "admin"), now, user=gone)
    fake.add_events(CALLER, REGION, [made])

    result = run_hunt([Target(CALLER, REGION)], window, sessions, HuntOptions(enrich=True))

    assert result.complete
    (finding,) = result.findings
    assert finding.event.event_id == made["eventID"]
    assert (finding.severity, finding.reasons) == ("high", ("key_for_other_user",))


def test_an_account_is_enriched_while_another_is_still_being_read(
    fake: FakeAWS, sessions: AwsSessions, window: Window, now: datetime
) -> None:
    """IAM is asked about an account's users as soon as its events are read, not after
    every target: the quick account's ListAccessKeys comes before the slow account's last
    LookupEvents (five pages and two rotation-context calls, ~3 s at its 2 calls/s). Order
    only, from the one monotonic clock this process and the fake share."""
    quick, slow = CALLER, PEER
    fake.add_events(quick, REGION, [create_access_key(iam_user(quick, "ann"), now)])
    terraform = assumed_role(slow, "TerraformProvisioner", "tf-apply")
    users = ("svc-a", "svc-b", "svc-c", "svc-d")
    made = bulk_creations(terraform, 201, now - timedelta(minutes=1), users=users)
    fake.add_events(slow, REGION, made)
    clients = CountingClients(sessions)

    result = run_hunt(
        [Target(slow, REGION), Target(quick, REGION)],
        window,
        clients,
        HuntOptions(enrich=True, now=lambda: now),
    )

    assert result.complete
    assert set(clients.list_access_keys.values()) == {1}  # one call per distinct user
    assert set(clients.list_access_keys) == {(quick, "ann"), *((slow, u) for u in users)}
    slow_calls = fake.lookup_calls(slow, REGION)
    assert len(slow_calls) == 7
    assert clients.first_asked[(quick, "ann")] < max(c.at for c in slow_calls)


# --------------------------------------------------------------------------- parallel targets


def test_targets_are_read_in_parallel(
    fake: FakeAWS, sessions: AwsSessions, window: Window, now: datetime
) -> None:
    latency = 0.2
    for account in ACCOUNTS:
        fake.set_latency(latency, account_id=account)
        fake.add_events(account, REGION, [create_access_key(root(account), now)])

    result = run_hunt([Target(a, REGION) for a in ACCOUNTS], window, sessions)

    assert result.complete
    assert len(result.findings) == len(ACCOUNTS)
    arrivals = [c.at for c in fake.calls]
    assert len(arrivals) == len(ACCOUNTS)  # root findings need no rotation context
    # One at a time, each call would arrive after the previous one's `latency` had passed;
    # here several were in flight at once.
    assert max_in_window(arrivals, latency) >= 3


# --------------------------------------------------------------------------- detection


def test_console_session_flag_at_the_top_level_is_a_console_call(
    fake: FakeAWS, sessions: AwsSessions, window: Window, now: datetime
) -> None:
    alice = iam_user(CALLER, "alice")
    record = create_access_key(alice, now, user="bob", user_agent="AWS Internal")
    record["sessionCredentialFromConsole"] = "true"  # where CloudTrail puts it (since 1.08)
    fake.add_events(CALLER, REGION, [record])

    result = run_hunt([Target(CALLER, REGION)], window, sessions)

    (finding,) = result.findings
    assert finding.reasons == ("key_for_other_user", "console")


def test_unreadable_records_are_counted_per_target_and_still_alert(
    fake: FakeAWS, sessions: AwsSessions, window: Window, now: datetime
) -> None:
    """What the poller reads (result.stats.unreadable, per_target): records that are not
    JSON, apart from `malformed` (read in part); each unreadable CreateAccessKey is a finding."""
    for account, count in ((CALLER, 2), (PEER, 1)):
        for i in range(count):
            fake.add_raw_event(
                account,
                REGION,
                event_id=f"{account}-unreadable-{i}",
                event_name="CreateAccessKey",
                event_time=now - timedelta(minutes=10 + i),
                cloudtrail_event="\x00not json",
            )
    half = create_access_key(iam_user(PEER, "erin"), now - timedelta(minutes=1))
    half["userAgent"] = 7
    fake.add_events(PEER, REGION, [half])

    result = run_hunt([Target(CALLER, REGION), Target(PEER, REGION)], window, sessions)

    assert (result.stats.unreadable, result.stats.malformed) == (3, 1)
    assert result.per_target[Target(CALLER, REGION)].unreadable == 2
    assert result.per_target[Target(PEER, REGION)].unreadable == 1
    found = by_id(result.findings)
    assert set(found) == {
        f"{CALLER}-unreadable-0",
        f"{CALLER}-unreadable-1",
        f"{PEER}-unreadable-0",
        half["eventID"],
    }
    assert all("malformed" in f.reasons for f in found.values())
    assert found[f"{PEER}-unreadable-0"].account_id == PEER
    assert result.complete  # every target was read; the CLI makes unreadable records partial


# --------------------------------------------------------------------------- the network guard


def test_guard_blocks_anything_beyond_loopback(network_guard: NetworkGuard) -> None:
    with pytest.raises(RealNetworkBlocked):
        socket.create_connection(("198.51.100.1", 443), timeout=1)
    with pytest.raises(RealNetworkBlocked):
        socket.getaddrinfo("cloudtrail.us-east-1.amazonaws.com", 443)

    assert network_guard.attempts == [
        "connect to 198.51.100.1:443",
        "name lookup of cloudtrail.us-east-1.amazonaws.com",
    ]
    network_guard.attempts.clear()  # provoked on purpose: do not fail this test for it


def test_guard_stops_an_sdk_call_to_real_aws(network_guard: NetworkGuard) -> None:
    sts = boto3.client(
        "sts",
        region_name=REGION,
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
    )

    with pytest.raises(HTTPClientError) as raised:  # botocore wraps what urllib3 raised
        sts.get_caller_identity()

    assert isinstance(raised.value.kwargs["error"], RealNetworkBlocked)
    assert network_guard.attempts
    assert all("amazonaws.com" in attempt for attempt in network_guard.attempts)
    network_guard.attempts.clear()


def test_guard_lets_loopback_through() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname()[:2], timeout=1)
        client.close()


def test_no_real_aws_credentials_are_visible() -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        assert name not in os.environ
    assert os.environ["AWS_CONFIG_FILE"] == os.devnull
    assert os.environ["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    assert boto3.Session().get_credentials() is None


def test_each_target_reports_once_as_it_finishes(
    fake: FakeAWS, sessions: AwsSessions, window: Window, now: datetime
) -> None:
    targets = [Target(a, REGION) for a in ACCOUNTS[:4]]  # us-east-1: see the rate test
    fake.add_events(CALLER, REGION, bulk_creations(root(CALLER), 60, now - timedelta(minutes=1)))
    seen: list[tuple[Target, int, int]] = []
    lock = threading.Lock()

    def done(target: Target, stats: HuntStats, total: int) -> None:
        with lock:
            seen.append((target, stats.lookup_calls, total))

    result = run_hunt(targets, window, sessions, HuntOptions(now=lambda: now, on_target_done=done))

    assert sorted(str(t) for t, _, _ in seen) == sorted(map(str, targets))  # each once
    assert {total for _, _, total in seen} == {4}
    assert sum(pages for _, pages, _ in seen) == result.stats.lookup_calls
