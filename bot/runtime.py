"""Composition root for the long-running commands: the only place real clients are built."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.app import SchedulerState, create_app
from bot.aws import build_sessions
from bot.digest import post_digest
from bot.hunting import HuntRequest, run_key_request, run_request
from bot.poller import Poller
from bot.posting import Poster
from bot.schedule import Leadership, build_scheduler, replica_id
from bot.server import Health, HttpServer, make_wsgi, poll_age
from bot.settings import Settings
from bot.slack_io import build_web_client
from bot.store import Store, open_store
from checks.investigate import KeyReport
from checks.model import HuntResult, Window
from checks.sessions import AwsSessions

log = logging.getLogger(__name__)
EXIT_OK, EXIT_PARTIAL, EXIT_USAGE = 0, 1, 2
# How long `poll --once` waits at most for another poller to finish before leaving it the work.
LEASE_WAIT = timedelta(seconds=60)


class SettingsHunter:
    """The Hunter the Slack app uses: AWS sessions are built on first use, in a worker."""

    def __init__(self, settings: Settings, store: Store | None) -> None:
        self.settings = settings
        self.store = store
        self._sessions: AwsSessions | None = None
        self._lock = threading.Lock()

    @property
    def sessions(self) -> AwsSessions:
        with self._lock:
            if self._sessions is None:
                self._sessions = build_sessions(self.settings)
            return self._sessions

    def hunt(self, request: HuntRequest) -> HuntResult:
        return run_request(self.settings, self.sessions, request, self.store)

    def investigate(self, access_key_id: str, window: Window) -> KeyReport:
        return run_key_request(self.settings, self.sessions, access_key_id, window)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    client: Any
    hunter: SettingsHunter
    poller: Poller
    state: SchedulerState
    owner: str


def build_runtime(settings: Settings, client: Any | None = None) -> Runtime:
    store = open_store(settings)
    web = client if client is not None else build_web_client(settings)
    owner = replica_id()
    hunter = SettingsHunter(settings, store)
    poster = None
    if settings.channel and settings.slack_bot_token:
        poster = Poster(
            store,
            web,
            settings.channel,
            owner,
            settings.burst_threshold,
            posts_per_second=settings.posts_per_second,
        )
    poller = Poller(settings, store, lambda: hunter.sessions, poster)
    return Runtime(settings, store, web, hunter, poller, SchedulerState(), owner)


def poll_once_command(settings: Settings) -> int:
    runtime = build_runtime(settings)
    if runtime.poller.poster is None:
        print(
            "keyhunt: SLACK_BOT_TOKEN or KEYHUNT_CHANNEL not set: findings are stored and "
            "will be posted by a later poll once Slack is configured",
            file=sys.stderr,
        )
    # The same lease `serve` polls under: two pollers never post (nor summarise) together.
    leadership = Leadership(runtime.store, runtime.owner, settings.poll_interval)
    with leadership.held(min(LEASE_WAIT, settings.poll_interval)) as leading:
        if not leading:
            print(
                "keyhunt: another keyhunt is polling (it holds the poller lease); this run "
                "did nothing: that one stores and posts what is new",
                file=sys.stderr,
            )
            return EXIT_OK
        try:
            outcome = runtime.poller.run_once()
        except Exception as exc:  # noqa: BLE001 - a poll that cannot start is reported
            print(f"keyhunt: poll failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_PARTIAL
    delivery = outcome.delivery
    posted = (
        f"{delivery.posted} posted, {delivery.failed} left pending" if delivery else "not posted"
    )
    print(f"poll: {outcome.new_findings} new finding(s), {posted}")
    for target in outcome.failed_targets:
        print(f"keyhunt: could not read {target} (see /keyhunt status)", file=sys.stderr)
    return EXIT_OK if not outcome.failed_targets else EXIT_PARTIAL


def health_of(runtime: Runtime) -> Health:
    last = runtime.store.last_successful_poll()
    age = poll_age(last)
    alive = runtime.state.alive()
    limit = 3 * runtime.settings.poll_interval.total_seconds() + 120
    # A replica that is not the leader does not poll; the shared store still tells the age.
    fresh = age is not None and age <= limit
    health = runtime.store.target_health()
    all_failing = bool(health) and all(h.consecutive_failures for h in health)
    ok = alive and (fresh or age is None) and not all_failing
    if not alive:
        detail = "scheduler stopped"
    elif all_failing:
        detail = "no account or region could be read in the last poll"
    else:
        detail = "ok" if ok else "last successful poll too old"
    return Health(ok, alive, age, detail)


def serve_command(settings: Settings, socket_mode: bool = False, port: int | None = None) -> int:
    missing = [
        name
        for name, value in (
            ("SLACK_BOT_TOKEN", settings.slack_bot_token),
            ("KEYHUNT_CHANNEL", settings.channel),
            (
                "SLACK_APP_TOKEN" if socket_mode else "SLACK_SIGNING_SECRET",
                settings.slack_app_token if socket_mode else settings.slack_signing_secret,
            ),
        )
        if not value
    ]
    if missing:
        print(f"keyhunt: configuration error: serve needs {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    runtime = build_runtime(settings)
    app = create_app(settings, runtime.store, runtime.hunter, runtime.client, runtime.state)
    leadership = Leadership(runtime.store, runtime.owner, settings.poll_interval)
    scheduler = build_scheduler(
        settings,
        leadership,
        runtime.poller.run_once,
        lambda: post_digest(
            runtime.store,
            runtime.client,
            settings.channel,
            settings.poll_minutes,
            datetime.now(UTC),
        ),
        runtime.state,
    )
    scheduler.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        if socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            handler = SocketModeHandler(app, settings.slack_app_token)
            handler.connect()  # type: ignore[no-untyped-call]
            # /healthz and /metrics still answer on the port, for the container's HEALTHCHECK.
        http = HttpServer(
            make_wsgi(app, lambda: health_of(runtime), settings.slack_signing_secret or None),
            "0.0.0.0",  # noqa: S104
            port or settings.port,
        ).start()
        log.warning(
            "keyhunt serving on port %s (%s mode)", http.port, "Socket" if socket_mode else "HTTP"
        )
        stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        leadership.release()
    return EXIT_OK
