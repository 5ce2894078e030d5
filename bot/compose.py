"""The composition root: the one place keyhunt's parts are built and wired together.

`Components` builds each part once, on first use, from `Settings`: AWS sessions, the Slack
Web API client, the store, the hunter, the poster, the poller, the Bolt app, its WSGI
callable, the scheduler. Every command (`bot.cli`, `bot.service`), the demo and the test
harness take what they need from it, so there is one copy of how the parts fit. Nothing is
built in a constructor: `keyhunt hunt` never opens Slack, `/healthz` never calls AWS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from bot.asking import Asking
from bot.aws import build_sessions
from bot.containment import Containment
from bot.digest import post_digest
from bot.health import Health, SchedulerState, assess
from bot.hunting import Hunter
from bot.poller import Poller
from bot.posting import Poster
from bot.realtime import QueueConsumer, consumer_poster, queue_client_config, queue_region
from bot.schedule import Leadership, build_scheduler, replica_id
from bot.server import HttpServer, make_wsgi
from bot.settings import Settings
from bot.slack_io import build_web_client
from bot.store import Store, open_store, open_store_if_present
from checks.sessions import AwsSessions


class Components:
    """Settings in; each part built once, when first asked for, and shared."""

    def __init__(
        self,
        settings: Settings,
        *,
        slack: Any | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        workers: int | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.workers = workers  # the Bolt app's listener pools; None: bot.app's default
        self.owner = replica_id()  # who holds claims and the poller lease
        self.state = SchedulerState()
        self._slack = slack
        self._store: Store | None = None
        self._existing: Store | None = None
        self._lock = threading.RLock()

    # -- clients -------------------------------------------------------------------------
    @cached_property
    def sessions(self) -> AwsSessions:
        """The standard credential chain; AssumeRole into each account on first use."""
        return build_sessions(self.settings)

    @cached_property
    def slack(self) -> Any:
        """The Web API client, with keyhunt's retry handlers (bot.slack_io)."""
        return self._slack if self._slack is not None else build_web_client(self.settings)

    @property
    def store(self) -> Store:
        """The store, created and migrated if need be."""
        with self._lock:
            if self._store is None:
                self._store = open_store(self.settings)
            return self._store

    def existing_store(self) -> Store | None:
        """The store if there is one already; never creates one (`keyhunt hunt` shows triage
        states when a database exists, and must not leave a new file behind)."""
        with self._lock:
            if self._store is not None:
                return self._store
            if self._existing is None:
                self._existing = open_store_if_present(self.settings)
            return self._existing

    # -- the product's parts ---------------------------------------------------------------
    @cached_property
    def hunter(self) -> Hunter:
        return Hunter(self.settings, lambda: self.sessions, self.existing_store)

    @cached_property
    def poster(self) -> Poster | None:
        """None until Slack is configured: findings are then stored and posted later."""
        if not (self.settings.channel and self.settings.slack_bot_token):
            return None
        return Poster(
            self.store,
            self.slack,
            self.settings.channel,
            self.owner,
            self.settings.burst_threshold,
            posts_per_second=self.settings.posts_per_second,
            asking=self.asking,
            actions=self.settings.response_actions,
        )

    @cached_property
    def asking(self) -> Asking:
        """Who is behind each finding, "Was this you?", escalation (bot.asking)."""
        return Asking(self.settings, self.store, self.slack, lambda: self.sessions, self.clock)

    @cached_property
    def containment(self) -> Containment:
        """Deactivate / Reactivate through the KeyHuntResponder role (opt-in)."""
        return Containment(self.settings, self.store, self.clock)

    @cached_property
    def poller(self) -> Poller:
        return Poller(self.settings, self.store, self.hunter, self.poster, self.clock)

    @cached_property
    def queue_consumer(self) -> QueueConsumer | None:
        """The real-time path (bot.realtime), when KEYHUNT_SQS_QUEUE_URL is set: its own SQS
        client with keyhunt's own credentials (the queue is in keyhunt's account), and its own
        poster beside the poller's."""
        url = self.settings.sqs_queue_url
        if not url:
            return None
        import boto3  # only `serve` with a queue needs it here

        sqs = boto3.Session().client(
            "sqs",
            region_name=queue_region(url),
            config=queue_client_config(self.settings.queue_wait_seconds),
        )
        consumer = QueueConsumer(
            self.settings,
            self.store,
            self.hunter,
            consumer_poster(self.poster, self.owner),
            sqs,
            clock=self.clock,
        )
        self.state.queue = consumer.state  # /healthz and /keyhunt status report it
        return consumer

    @cached_property
    def leadership(self) -> Leadership:
        """The poller lease: one replica polls, posts and sends the digest at a time."""
        return Leadership(self.store, self.owner, self.settings.poll_interval)

    @cached_property
    def app(self) -> Any:
        """The Bolt app (bot.app): /keyhunt and the triage buttons."""
        from bot.app import create_app  # Bolt is imported by the commands that serve only

        extra = {} if self.workers is None else {"workers": self.workers}
        return create_app(
            self.settings,
            self.store,
            self.hunter,
            self.slack,
            self.state,
            self.clock,
            asking=self.asking,
            containment=self.containment,
            **extra,
        )

    def health(self) -> Health:
        return assess(self.store, self.settings.poll_interval, self.state)

    def wsgi(self) -> Any:
        return make_wsgi(self.app, self.health, self.settings.slack_signing_secret or None)

    def http_server(self, host: str, port: int) -> HttpServer:
        """The app, /healthz and /metrics served by waitress; started."""
        return HttpServer(self.wsgi(), host, port).start()

    def digest(self) -> str:
        return post_digest(
            self.store,
            self.slack,
            self.settings.channel,
            self.settings.poll_minutes,
            self.clock(),
            self.hunter.names_for,
            realtime=bool(self.settings.sqs_queue_url),
        )

    @cached_property
    def scheduler(self) -> Any:
        """APScheduler 3: the poll and the daily digest, each run by the lease holder only."""
        escalate = self.asking.escalate_due if self.poster is not None else None
        return build_scheduler(
            self.settings,
            self.leadership,
            self.poller.run_once,
            self.digest,
            self.state,
            escalate=escalate,
        )

    def close(self) -> None:
        for store in {id(s): s for s in (self._store, self._existing) if s is not None}.values():
            store.close()
