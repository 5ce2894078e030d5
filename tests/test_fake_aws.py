"""FakeAWS through real boto3 clients: signing, retries, error parsing and pagination run.

Every client points at the fake's local endpoint with explicit dummy credentials, so
nothing here can reach real AWS.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

from keyhunt_dev.aws import FakeAWS, parse_event_time

ACCOUNT = "123456789012"  # moto's default account for unknown keys
OTHER = "222222222222"
REGION = "us-east-1"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "dummy-secret"
READER_ROLE = f"arn:aws:iam::{OTHER}:role/keyhunt-reader"

# botocore's own retry vocabulary: "max_attempts" counts *retries* (total = n + 1), while
# "total_max_attempts" counts every attempt, so total_max_attempts=1 means no retry.
RETRYING = Config(retries={"mode": "standard", "max_attempts": 5})
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})

MakeClient = Callable[..., Any]
Service = Literal["cloudtrail", "iam", "sts"]
Keys = tuple[str, str, str | None]  # access key id, secret, session token


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAWS]:
    with FakeAWS() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeAWS) -> None:
    fake.reset()


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    # One session: it caches loaded service models, so each client is cheap to build.
    return boto3.session.Session(region_name=REGION)


@pytest.fixture
def make_client(fake: FakeAWS, session: boto3.session.Session) -> Iterator[MakeClient]:
    """Build boto3 clients against the fake; closed at teardown so no socket leaks."""
    made: list[Any] = []

    def make(
        service: Service,
        *,
        config: Config | None = None,
        credentials: Keys = (ACCESS_KEY, SECRET_KEY, None),
    ) -> Any:
        access_key, secret_key, session_token = credentials
        client = session.client(
            service,
            region_name=REGION,
            endpoint_url=fake.endpoint_url,
            config=config,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def cloudtrail(make_client: MakeClient) -> Any:
    return make_client("cloudtrail", config=NO_RETRY)


# --------------------------------------------------------------------------- helpers

NOW = datetime.now(UTC).replace(microsecond=0)


def record(
    event_id: str,
    when: datetime,
    *,
    name: str = "CreateAccessKey",
    user: str = "alice",
    access_key: str = "AKIACALLER",
    new_key: str = "AKIANEWKEY",
    read_only: bool = False,
    source: str = "iam.amazonaws.com",
) -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "eventID": event_id,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventName": name,
        "eventSource": source,
        "readOnly": read_only,
        "userIdentity": {"type": "IAMUser", "userName": user, "accessKeyId": access_key},
        "requestParameters": {"userName": "bob"},
        "responseElements": {"accessKey": {"accessKeyId": new_key, "userName": "bob"}},
    }


def minutes_ago(minutes: int) -> datetime:
    return NOW - timedelta(minutes=minutes)


def error_code(err: pytest.ExceptionInfo[ClientError]) -> str:
    return str(err.value.response["Error"]["Code"])


def status_of(err: pytest.ExceptionInfo[ClientError]) -> int:
    return int(err.value.response["ResponseMetadata"]["HTTPStatusCode"])


def ids(response: dict[str, Any]) -> list[str]:
    return [event["EventId"] for event in response["Events"]]


# --------------------------------------------------------------------------- pagination


def test_paginator_walks_120_events_in_three_pages_newest_first(
    fake: FakeAWS, cloudtrail: Any
) -> None:
    fake.add_events(ACCOUNT, REGION, [record(f"e{i:03d}", minutes_ago(i)) for i in range(120)])

    pages = list(
        cloudtrail.get_paginator("lookup_events").paginate(PaginationConfig={"PageSize": 50})
    )

    assert [len(page["Events"]) for page in pages] == [50, 50, 20]
    assert "NextToken" not in pages[-1]
    seen = [event["EventId"] for page in pages for event in page["Events"]]
    assert seen == [f"e{i:03d}" for i in range(120)]  # e000 is the newest
    assert len(set(seen)) == 120
    times = [event["EventTime"] for page in pages for event in page["Events"]]
    assert times == sorted(times, reverse=True)
    calls = fake.lookup_calls(account_id=ACCOUNT, region=REGION)
    assert len(calls) == 3
    assert all(call.params["MaxResults"] == 50 for call in calls)


def test_default_page_size_is_50(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.add_events(ACCOUNT, REGION, [record(f"e{i:03d}", minutes_ago(i)) for i in range(51)])

    response = cloudtrail.lookup_events()

    assert len(response["Events"]) == 50
    assert response["NextToken"]


def test_empty_result_has_no_next_token(cloudtrail: Any) -> None:
    response = cloudtrail.lookup_events()

    assert response["Events"] == []
    assert "NextToken" not in response


def test_equal_times_are_ordered_by_event_id_across_pages(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.add_events(ACCOUNT, REGION, [record(f"tie-{c}", NOW) for c in "cab"])

    pages = list(
        cloudtrail.get_paginator("lookup_events").paginate(PaginationConfig={"PageSize": 1})
    )

    assert [event["EventId"] for page in pages for event in page["Events"]] == [
        "tie-c",
        "tie-b",
        "tie-a",
    ]


def test_events_added_between_pages_do_not_repeat_or_shift(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.add_events(ACCOUNT, REGION, [record(f"e{i}", minutes_ago(i)) for i in range(4)])
    first = cloudtrail.lookup_events(MaxResults=2)
    fake.add_events(ACCOUNT, REGION, [record("newer", NOW + timedelta(seconds=1))])

    second = cloudtrail.lookup_events(MaxResults=2, NextToken=first["NextToken"])

    assert ids(first) == ["e0", "e1"]
    assert ids(second) == ["e2", "e3"]
    assert "NextToken" not in second


# --------------------------------------------------------------------------- query semantics


def test_time_range_is_inclusive(fake: FakeAWS, cloudtrail: Any) -> None:
    base = NOW - timedelta(hours=1)
    fake.add_events(
        ACCOUNT, REGION, [record(f"t{s}", base + timedelta(seconds=s)) for s in (0, 60, 120, 180)]
    )

    response = cloudtrail.lookup_events(
        StartTime=base + timedelta(seconds=60), EndTime=base + timedelta(seconds=120)
    )

    assert ids(response) == ["t120", "t60"]


def test_start_after_end_is_rejected(cloudtrail: Any) -> None:
    with pytest.raises(ClientError) as err:
        cloudtrail.lookup_events(StartTime=NOW, EndTime=NOW - timedelta(seconds=1))

    assert error_code(err) == "InvalidTimeRangeException"
    assert status_of(err) == 400


def test_events_older_than_90_days_are_not_returned(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.add_events(
        ACCOUNT,
        REGION,
        [record("recent", NOW - timedelta(days=89)), record("expired", NOW - timedelta(days=91))],
    )

    assert ids(cloudtrail.lookup_events()) == ["recent"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("EventId", "a", ["a"]),
        ("EventName", "DeleteAccessKey", ["b"]),
        ("Username", "carol", ["c"]),
        ("AccessKeyId", "AKIACAROL", ["c"]),
        ("ReadOnly", "true", ["b"]),
        ("EventSource", "sts.amazonaws.com", ["c"]),
        ("ResourceName", "AKIANEW-A", ["a"]),
        ("ResourceType", "AWS::IAM::AccessKey", ["b", "a"]),
    ],
)
def test_each_lookup_attribute_filters(
    fake: FakeAWS, cloudtrail: Any, key: str, value: str, expected: list[str]
) -> None:
    fake.add_events(
        ACCOUNT,
        REGION,
        [
            record("a", minutes_ago(3), new_key="AKIANEW-A"),
            record("b", minutes_ago(2), name="DeleteAccessKey", read_only=True),
            record(
                "c",
                minutes_ago(1),
                user="carol",
                access_key="AKIACAROL",
                source="sts.amazonaws.com",
            ),
        ],
    )

    response = cloudtrail.lookup_events(
        LookupAttributes=[{"AttributeKey": key, "AttributeValue": value}]
    )

    assert ids(response) == expected


def test_only_one_lookup_attribute_is_allowed(cloudtrail: Any) -> None:
    with pytest.raises(ClientError) as err:
        cloudtrail.lookup_events(
            LookupAttributes=[
                {"AttributeKey": "EventName", "AttributeValue": "CreateAccessKey"},
                {"AttributeKey": "Username", "AttributeValue": "alice"},
            ]
        )

    assert error_code(err) == "InvalidLookupAttributesException"


@pytest.mark.parametrize("max_results", [0, 51])
def test_max_results_out_of_range(make_client: MakeClient, max_results: int) -> None:
    # botocore itself refuses 0 (modelled min 1); skip its check to prove the server's.
    client = make_client(
        "cloudtrail",
        config=NO_RETRY.merge(Config(parameter_validation=False)),
    )

    with pytest.raises(ClientError) as err:
        client.lookup_events(MaxResults=max_results)

    assert error_code(err) == "InvalidMaxResultsException"


def test_next_token_is_bound_to_its_query(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.add_events(ACCOUNT, REGION, [record(f"e{i}", minutes_ago(i)) for i in range(6)])
    by_name = [{"AttributeKey": "EventName", "AttributeValue": "CreateAccessKey"}]
    token = cloudtrail.lookup_events(LookupAttributes=by_name, MaxResults=2)["NextToken"]

    other_queries: list[dict[str, Any]] = [
        {"LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "alice"}]},
        {"LookupAttributes": by_name, "MaxResults": 3},
        {"LookupAttributes": by_name, "MaxResults": 2, "StartTime": NOW - timedelta(days=1)},
    ]
    for query in other_queries:
        with pytest.raises(ClientError) as err:
            cloudtrail.lookup_events(NextToken=token, **query)
        assert error_code(err) == "InvalidNextTokenException"

    with pytest.raises(ClientError) as err:
        cloudtrail.lookup_events(LookupAttributes=by_name, MaxResults=2, NextToken=token + "x")
    assert error_code(err) == "InvalidNextTokenException"

    same = cloudtrail.lookup_events(LookupAttributes=by_name, MaxResults=2, NextToken=token)
    assert ids(same) == ["e2", "e3"]


def test_regions_and_accounts_are_separate_stores(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.add_events(ACCOUNT, "us-west-2", [record("west", NOW)])
    fake.add_events(OTHER, REGION, [record("other-account", NOW)])
    fake.add_events(ACCOUNT, REGION, [record("here", NOW)])

    assert ids(cloudtrail.lookup_events()) == ["here"]


def test_insight_category_returns_no_management_events(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.add_events(ACCOUNT, REGION, [record("mgmt", NOW)])

    assert cloudtrail.lookup_events(EventCategory="insight")["Events"] == []


# --------------------------------------------------------------------------- event shape


def test_returned_event_has_the_documented_fields(fake: FakeAWS, cloudtrail: Any) -> None:
    stored = record("shape", minutes_ago(5), new_key="AKIASHAPE")
    fake.add_events(ACCOUNT, REGION, [stored])

    (event,) = cloudtrail.lookup_events()["Events"]

    assert event["EventId"] == "shape"
    assert event["EventName"] == "CreateAccessKey"
    assert event["ReadOnly"] == "false"
    assert event["AccessKeyId"] == "AKIACALLER"
    assert event["EventTime"] == minutes_ago(5)
    assert event["EventSource"] == "iam.amazonaws.com"
    assert event["Username"] == "alice"
    assert {"ResourceType": "AWS::IAM::AccessKey", "ResourceName": "AKIASHAPE"} in event[
        "Resources"
    ]
    assert json.loads(event["CloudTrailEvent"]) == stored


def test_raw_events_are_served_verbatim(fake: FakeAWS, cloudtrail: Any) -> None:
    malformed = '{"eventID": "raw-1", "eventName": "CreateAccessKey", truncated'
    fake.add_raw_event(
        ACCOUNT,
        REGION,
        event_id="raw-1",
        event_name="CreateAccessKey",
        event_time=minutes_ago(2),
        cloudtrail_event=malformed,
        username="mallory",
    )
    as_text = json.dumps(record("text-1", minutes_ago(1)), indent=3)
    fake.add_events(ACCOUNT, REGION, [as_text])

    events = cloudtrail.lookup_events()["Events"]

    assert [event["CloudTrailEvent"] for event in events] == [as_text, malformed]
    assert events[1]["Username"] == "mallory"
    assert "AccessKeyId" not in events[1]
    assert events[1]["Resources"] == []


def test_malformed_string_record_needs_add_raw_event(fake: FakeAWS) -> None:
    with pytest.raises(ValueError, match="add_raw_event"):
        fake.add_events(ACCOUNT, REGION, ["{not json"])


@pytest.mark.parametrize(
    "text",
    ["2026-01-03T01:52:07Z", "2026-01-03 01:52:07", "2026-01-03 01:52:07.000000000"],
)
def test_event_time_formats_from_public_samples_are_utc(text: str) -> None:
    assert parse_event_time(text) == datetime(2026, 1, 3, 1, 52, 7, tzinfo=UTC)


def test_sample_time_format_is_queryable(fake: FakeAWS, cloudtrail: Any) -> None:
    when = minutes_ago(7)
    sample = record("sample", when) | {"eventTime": when.strftime("%Y-%m-%d %H:%M:%S.000000000")}
    fake.add_events(ACCOUNT, REGION, [sample])

    (event,) = cloudtrail.lookup_events(StartTime=when, EndTime=when)["Events"]

    assert event["EventTime"] == when


# --------------------------------------------------------------------------- faults


def test_throttling_is_retried_by_botocore_until_success(
    fake: FakeAWS, make_client: MakeClient
) -> None:
    fake.add_events(ACCOUNT, REGION, [record("after-throttle", NOW)])
    fake.throttle(ACCOUNT, REGION, 2)
    client = make_client("cloudtrail", config=RETRYING)

    response = client.lookup_events()

    assert ids(response) == ["after-throttle"]
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    outcomes = [call.outcome for call in fake.lookup_calls(ACCOUNT, REGION)]
    assert outcomes == ["ThrottlingException", "ThrottlingException", "ok"]


def test_throttling_error_is_what_botocore_calls_throttling(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.throttle(None, None, 1)

    with pytest.raises(ClientError) as err:
        cloudtrail.lookup_events()

    assert error_code(err) == "ThrottlingException"
    assert status_of(err) == 400
    assert err.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"].startswith(
        "ThrottlingException"
    )
    context = RetryContext(attempt_number=1, parsed_response=err.value.response)
    assert ThrottledRetryableChecker().is_retryable(context)
    assert cloudtrail.lookup_events()["Events"] == []  # only the next call was throttled


def test_throttle_only_hits_its_target(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.throttle(OTHER, None, 5)
    fake.throttle(ACCOUNT, "eu-west-1", 5)

    assert cloudtrail.lookup_events()["Events"] == []


def test_denied_lookup_is_access_denied(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.deny_lookup(ACCOUNT)

    with pytest.raises(ClientError) as err:
        cloudtrail.lookup_events()

    assert error_code(err) == "AccessDeniedException"
    assert status_of(err) == 400


def test_broken_lookup_is_503_and_transient(fake: FakeAWS, make_client: MakeClient) -> None:
    fake.break_lookup(ACCOUNT)
    once = make_client("cloudtrail", config=NO_RETRY)
    twice = make_client(
        "cloudtrail", config=Config(retries={"mode": "standard", "total_max_attempts": 2})
    )

    with pytest.raises(ClientError) as err:
        once.lookup_events()
    assert status_of(err) == 503
    assert error_code(err) == "ServiceUnavailable"

    fake.clear_calls()
    with pytest.raises(ClientError):
        twice.lookup_events()
    assert len(fake.lookup_calls(ACCOUNT)) == 2  # botocore retried the 503 once


def test_broken_region_leaves_other_regions_working(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.break_lookup(ACCOUNT, "us-west-2")

    assert cloudtrail.lookup_events()["Events"] == []


def test_latency_is_honoured_per_account(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.set_latency(0.3, account_id=ACCOUNT)
    started = time.monotonic()
    cloudtrail.lookup_events()
    assert time.monotonic() - started >= 0.3

    fake.reset_faults()
    fake.set_latency(5.0, account_id=OTHER)
    started = time.monotonic()
    cloudtrail.lookup_events()
    assert time.monotonic() - started < 2.0


def test_default_latency_applies_to_every_account(fake: FakeAWS, cloudtrail: Any) -> None:
    fake.set_latency(0.2)
    started = time.monotonic()
    cloudtrail.lookup_events()
    assert time.monotonic() - started >= 0.2


# --------------------------------------------------------------------------- STS and IAM via moto


def test_assumed_role_sees_only_its_account(fake: FakeAWS, make_client: MakeClient) -> None:
    fake.add_events(OTHER, REGION, [record("in-other", NOW)])
    fake.add_events(ACCOUNT, REGION, [record("in-default", NOW)])
    sts = make_client("sts")

    creds = sts.assume_role(RoleArn=READER_ROLE, RoleSessionName="keyhunt")["Credentials"]
    assumed = make_client(
        "cloudtrail",
        config=NO_RETRY,
        credentials=(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]),
    )

    assert ids(assumed.lookup_events()) == ["in-other"]
    assert [call.account_id for call in fake.calls] == [OTHER]


def test_denied_assume_role_is_sts_access_denied(fake: FakeAWS, make_client: MakeClient) -> None:
    fake.deny_assume_role(READER_ROLE)
    sts = make_client("sts", config=NO_RETRY)

    with pytest.raises(ClientError) as err:
        sts.assume_role(RoleArn=READER_ROLE, RoleSessionName="keyhunt")

    assert error_code(err) == "AccessDenied"
    assert status_of(err) == 403
    assert READER_ROLE in err.value.response["Error"]["Message"]
    allowed = f"arn:aws:iam::{OTHER}:role/another"
    assert sts.assume_role(RoleArn=allowed, RoleSessionName="keyhunt")["Credentials"]


def test_iam_is_proxied_to_moto(make_client: MakeClient) -> None:
    iam = make_client("iam")
    user = f"proxy-{uuid.uuid4().hex[:8]}"  # moto state outlives per-test resets

    iam.create_user(UserName=user)
    created = iam.create_access_key(UserName=user)["AccessKey"]
    listed = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]

    assert [key["AccessKeyId"] for key in listed] == [created["AccessKeyId"]]
    assert make_client("sts").get_caller_identity()["Account"] == ACCOUNT


# --------------------------------------------------------------------------- observation


def test_calls_are_recorded_with_params_and_outcome(fake: FakeAWS, cloudtrail: Any) -> None:
    by_name = [{"AttributeKey": "EventName", "AttributeValue": "CreateAccessKey"}]
    before = time.monotonic()
    cloudtrail.lookup_events(LookupAttributes=by_name, MaxResults=10)
    fake.deny_lookup(ACCOUNT)
    with pytest.raises(ClientError):
        cloudtrail.lookup_events()

    first, second = fake.calls
    assert (first.account_id, first.region, first.outcome) == (ACCOUNT, REGION, "ok")
    assert first.params == {"LookupAttributes": by_name, "MaxResults": 10}
    assert second.outcome == "AccessDeniedException"
    assert before <= first.at <= second.at
    assert fake.lookup_calls(event_name="CreateAccessKey") == [first]
    assert fake.lookup_calls(account_id=OTHER) == []
    assert fake.lookup_calls(region="us-west-2") == []


# --------------------------------------------------------------------------- one world


def test_seeded_cloudtrail_is_what_iam_says(fake: FakeAWS, make_client: MakeClient) -> None:
    """IAM's creation date and last use follow the CloudTrail records seeded for a key, so
    the fake world never says 'last used never' beside three calls made with the key."""
    from keyhunt_dev import records as r

    iam = make_client("iam")
    user = f"one-world-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    made = datetime(2026, 11, 29, 10, 45, 7, tzinfo=UTC)
    admin = r.iam_user(ACCOUNT, "admin")
    used = r.iam_user(ACCOUNT, user, access_key=key)
    fake.add_events(
        ACCOUNT,
        REGION,
        [
            r.create_access_key(admin, ACCOUNT, made, user=user, new_key=key),
            r.api_call(
                used, ACCOUNT, made + timedelta(minutes=9), "s3.amazonaws.com", "ListBuckets"
            ),
            # Seeded out of order: an older call never moves the last use back.
            r.api_call(used, ACCOUNT, made + timedelta(minutes=5), "sts.amazonaws.com", "X"),
        ],
    )

    (listed,) = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert listed["CreateDate"] == made
    last = iam.get_access_key_last_used(AccessKeyId=key)["AccessKeyLastUsed"]
    assert (last["LastUsedDate"], last["ServiceName"], last["Region"]) == (
        made + timedelta(minutes=9),
        "s3",
        REGION,
    )


def test_a_key_older_than_cloudtrail_can_be_backdated(
    fake: FakeAWS, make_client: MakeClient
) -> None:
    iam = make_client("iam")
    user = f"old-key-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]["AccessKeyId"]
    long_ago = datetime(2026, 5, 8, 9, 0, tzinfo=UTC)
    fake.backdate_key(ACCOUNT, key, long_ago)
    (listed,) = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    assert listed["CreateDate"] == long_ago
    with pytest.raises(KeyError):
        fake.backdate_key(ACCOUNT, "AKIANOSUCHKEY0000000", long_ago)
