"""GET /metrics, scraped from a served app after real polls against the fakes.

The app is the one `keyhunt serve` runs (bot.server.make_wsgi behind waitress); the polls are
the real poller over FakeAWS (one account read with keyhunt's own credentials, one through
AssumeRole) posting to FakeSlack. The exposition is parsed with prometheus_client's own
parser. Metrics live in one registry per process, so every check is a difference between two
scrapes.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.compose import Components
from bot.hunting import Hunter
from bot.poller import Poller
from bot.settings import load_settings
from keyhunt_dev import records as r
from keyhunt_dev.aws import FakeAWS
from keyhunt_dev.slack import FakeSlack

CALLER = "123456789012"  # moto's account for the dummy credentials
PEER = "210987654321"  # reached through sts:AssumeRole
REGION = "us-east-1"
CHANNEL = "C0ALERTS"
TOKEN = "xoxb-metrics-test"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Served:
    runtime: Components
    url: str
    fake: FakeAWS
    slack: FakeSlack

    def scrape(self) -> Samples:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:  # noqa: S310 - loopback
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = response.read().decode()
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def seed(fake: FakeAWS, now: datetime) -> None:
    """Three new keys: one of each of three severities, in two accounts."""
    tag = secrets.token_hex(4)  # unique event IDs: metrics outlive this test
    erin = r.iam_user(CALLER, "erin")
    sso = r.assumed_role(PEER, "AWSReservedSSO_Admin_0123456789abcdef", "alice@example.com")
    fake.add_events(
        CALLER,
        REGION,
        [
            r.create_access_key(
                r.root(CALLER),
                CALLER,
                now - timedelta(hours=3),
                user=None,
                new_key="AKIAMETRICSROOT00001",
                event_id=f"metrics-critical-{tag}",
            ),
            r.create_access_key(
                erin,
                CALLER,
                now - timedelta(hours=2),
                user=None,
                new_key="AKIAMETRICSERIN00001",
                event_id=f"metrics-medium-{tag}",
            ),
        ],
    )
    fake.add_events(
        PEER,
        REGION,
        [
            r.create_access_key(
                sso,
                PEER,
                now - timedelta(hours=1),
                user="deploy-bot",
                new_key="AKIAMETRICSDEPLOY001",
                event_id=f"metrics-high-{tag}",
            )
        ],
    )


@pytest.fixture
def served(
    clean_fake_aws: FakeAWS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    for name, setting in {
        "AWS_ENDPOINT_URL": clean_fake_aws.endpoint_url,
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "metrics-test-secret",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, setting)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    with FakeSlack(TOKEN, channels=(CHANNEL,)) as slack:
        settings = load_settings(
            environ={
                "KEYHUNT_CONFIG": "",
                "SLACK_BOT_TOKEN": TOKEN,
                "SLACK_SIGNING_SECRET": "metrics-signing-secret",
                "SLACK_API_URL": slack.api_url,
                "KEYHUNT_CHANNEL": CHANNEL,
                "KEYHUNT_ACCOUNTS": f"{CALLER},{PEER}",
                "KEYHUNT_ENRICH": "false",
                "KEYHUNT_DATABASE_URL": f"sqlite:///{tmp_path / 'keyhunt.db'}",
            }
        )
        runtime = Components(settings)
        server = runtime.http_server("127.0.0.1", 0)
        try:
            yield Served(runtime, f"http://127.0.0.1:{server.port}", clean_fake_aws, slack)
        finally:
            server.stop()
            runtime.close()


def test_metrics_count_polls_findings_posts_and_lookups(served: Served) -> None:
    fake, slack = served.fake, served.slack
    seed(fake, datetime.now(UTC).replace(microsecond=0))
    fake.throttle(CALLER, REGION, 1)  # botocore retries it; the retry is counted
    slack.fail_next("chat.postMessage", status=200, error="fatal_error")  # one post fails

    before = served.scrape()
    served.runtime.poller.run_once()
    first = served.scrape()

    assert delta(before, first, "keyhunt_polls_total", outcome="ok") == 1
    for severity in ("critical", "high", "medium"):
        assert delta(before, first, "keyhunt_findings_total", severity=severity) == 1, severity
    assert delta(before, first, "keyhunt_posts_total", outcome="delivered") == 2
    assert delta(before, first, "keyhunt_posts_total", outcome="failed") == 1
    assert value(first, "keyhunt_posts_pending") == 1
    assert (
        delta(before, first, "keyhunt_lookup_throttles_total", account=CALLER, region=REGION) == 1
    )
    assert delta(before, first, "keyhunt_lookup_throttles_total", account=PEER, region=REGION) == 0

    # The next poll retries the failed post; the same events are not counted twice.
    started = time.time()
    served.runtime.poller.run_once()
    second = served.scrape()
    assert delta(first, second, "keyhunt_polls_total", outcome="ok") == 1
    assert delta(first, second, "keyhunt_posts_total", outcome="delivered") == 1
    assert value(second, "keyhunt_posts_pending") == 0
    for severity in ("critical", "high", "medium"):
        assert delta(first, second, "keyhunt_findings_total", severity=severity) == 0
    assert len(slack.channel_messages(CHANNEL)) == 3
    last_success = value(second, "keyhunt_last_successful_poll_timestamp_seconds")
    assert started <= last_success <= time.time()

    # Every LookupEvents HTTP attempt the fake answered (retries included), per target.
    for account in (CALLER, PEER):
        answered = len(fake.lookup_calls(account_id=account, region=REGION))
        counted = delta(
            before, second, "keyhunt_lookup_calls_total", account=account, region=REGION
        )
        assert counted == answered > 0, account


def test_a_poll_that_cannot_start_is_counted_as_failed(served: Served) -> None:
    def no_credentials() -> object:
        raise RuntimeError("no AWS credentials")

    runtime = served.runtime
    hunter = Hunter(runtime.settings, no_credentials)  # type: ignore[arg-type]
    broken = Poller(runtime.settings, runtime.store, hunter, None)
    before = served.scrape()
    with pytest.raises(RuntimeError, match="no AWS credentials"):
        broken.run_once()
    after = served.scrape()
    assert delta(before, after, "keyhunt_polls_total", outcome="failed") == 1
    assert delta(before, after, "keyhunt_polls_total", outcome="ok") == 0


def test_healthz_reports_the_age_of_the_last_successful_poll(served: Served) -> None:
    served.runtime.state.alive = lambda: True
    served.runtime.poller.run_once()  # nothing to find: still a successful poll
    with urllib.request.urlopen(f"{served.url}/healthz", timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 200
        health = json.loads(response.read())
    assert health["ok"] is True
    assert 0 <= health["last_poll_age_seconds"] < 60
