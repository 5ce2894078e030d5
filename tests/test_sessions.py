"""checks.sessions.AwsSessions against the fake: AssumeRole once per account, cached, and
assumed again before the credentials expire (a fake clock stands in for the hour).

AssumeRole calls are counted where they arrive (FakeAWS.assumed_roles), so botocore's own
refresh logic is what is exercised, not a copy of it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import NoCredentialsError

from checks.cloudtrail import gate_client
from checks.sessions import AwsSessions
from keyhunt_dev.aws import FakeAWS
from tests.conftest import DUMMY_ACCESS_KEY, DUMMY_SECRET_KEY
from tests.scenario import CALLER, PEER, REGION

ROLE = f"arn:aws:iam::{PEER}:role/KeyHuntReadOnly"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def fake(clean_fake_aws: FakeAWS, monkeypatch: pytest.MonkeyPatch) -> FakeAWS:
    monkeypatch.setenv("AWS_ENDPOINT_URL", clean_fake_aws.endpoint_url)
    return clean_fake_aws


def sessions_with(clock: Clock) -> AwsSessions:
    base = boto3.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
        region_name=REGION,
    )
    return AwsSessions(base, clock=clock)


def lookup(sessions: AwsSessions, region: str = REGION) -> None:
    client = sessions.client(PEER, "cloudtrail", region)
    client.lookup_events(MaxResults=1)


def test_a_role_is_assumed_once_per_account_however_many_threads_and_regions(
    fake: FakeAWS,
) -> None:
    sessions = sessions_with(Clock())
    regions = [REGION, "us-west-2", "eu-west-1", "ap-south-1"] * 4

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda region: lookup(sessions, region), regions))

    assert fake.assumed_roles == [ROLE]
    assert len(fake.lookup_calls(PEER)) == len(regions)


def test_credentials_are_assumed_again_before_they_expire(fake: FakeAWS) -> None:
    """moto's AssumeRole lasts an hour. Until 15 minutes before that the cached credentials
    serve every call; from then on the next call assumes the role again (botocore's
    advisory refresh), before any call could be signed with an expired key."""
    clock = Clock()
    sessions = sessions_with(clock)

    lookup(sessions)
    clock.now += timedelta(minutes=44)
    lookup(sessions)
    assert fake.assumed_roles == [ROLE]

    clock.now += timedelta(minutes=2)  # 14 minutes left
    lookup(sessions)
    assert fake.assumed_roles == [ROLE, ROLE]

    # moto dated the new credentials from the real time: 44 minutes into their hour they
    # are still served from the cache.
    clock.now = datetime.now(UTC) + timedelta(minutes=44)
    lookup(sessions)
    assert fake.assumed_roles == [ROLE, ROLE]
    assert len(fake.lookup_calls(PEER)) == 4


def test_every_account_signs_with_its_own_credentials_though_they_share_one_session(
    fake: FakeAWS,
) -> None:
    """Role accounts share one botocore client per service and region (one each cost a
    1,000-account hunt ~20 s of CPU and ~800 MiB); each account's calls must still be signed
    with its own credentials, however many threads call for different accounts at once."""
    sessions = sessions_with(Clock())
    accounts = [f"{n:012d}" for n in range(555500000001, 555500000013)]
    accounts.append(sessions.caller_account())

    def who(account: str) -> tuple[str, str]:
        sts = sessions.client(account, "sts", REGION)
        return account, str(sts.get_caller_identity()["Arn"])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(who, accounts * 2))

    for account, arn in answers:
        if account == CALLER:
            assert arn.split(":")[4] == CALLER
            assert ":assumed-role/" not in arn
        else:
            assert arn.startswith(f"arn:aws:sts::{account}:assumed-role/KeyHuntReadOnly/")
    assert sorted(fake.assumed_roles) == sorted(
        f"arn:aws:iam::{a}:role/KeyHuntReadOnly" for a in accounts if a != CALLER
    )


def test_a_shared_client_called_for_no_account_sends_nothing(fake: FakeAWS) -> None:
    """Fail closed: outside an account's own client, the shared client has no credentials to
    sign with (it never falls back to keyhunt's own), so nothing leaves the process."""
    sessions = sessions_with(Clock())
    one, other = (
        sessions.client(PEER, "cloudtrail", REGION),
        sessions.client("555500000099", "cloudtrail", REGION),
    )
    assert one.shared is other.shared  # one botocore client for every role account
    with pytest.raises(NoCredentialsError):
        one.shared.lookup_events(MaxResults=1)
    assert fake.calls == []  # not even signed as keyhunt's own account
    one.lookup_events(MaxResults=1)  # through the account's client it is signed and sent
    assert [c.account_id for c in fake.calls] == [PEER]


def test_accounts_sharing_a_client_keep_limiters_of_their_own(fake: FakeAWS) -> None:
    sessions = sessions_with(Clock())
    one, other = (
        sessions.client(PEER, "cloudtrail", REGION),
        sessions.client("555500000099", "cloudtrail", REGION),
    )
    again = sessions.client(PEER, "cloudtrail", REGION)  # a new AccountClient, same account
    assert gate_client(one, 2.0) is gate_client(again, 2.0)
    assert gate_client(one, 2.0) is not gate_client(other, 2.0)
