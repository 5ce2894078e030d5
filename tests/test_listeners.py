"""The Bolt listeners called directly, as plain functions: a recording ack and client, a fake
hunter, a real SQLite store and a fixed clock. No HTTP, no Bolt dispatch (tests/test_bot_*.py
go through signed HTTP requests end to end)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App
from slack_bolt.util.utils import get_arg_names_of_callable

from bot.commands import Hunt, Status, parse_command
from bot.health import SchedulerState
from bot.hunting import HuntRequest
from bot.listeners import Deps, actions, commands, register_all
from bot.render import ACTION_EXPECTED, ACTION_INVESTIGATE
from bot.settings import Settings
from bot.store import Store
from bot.triage import EXPECTED_ROTATION, INVESTIGATING, OPEN, encode_value
from checks.investigate import KeyReport
from checks.model import HuntResult, HuntStats, Window
from tests.slackbot import CHANNEL, OUTSIDER, TRIAGER, finding_of, root_key

NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
TS = "1700000000.000100"


class Recorder:
    """Records every call: a stand-in for Bolt's `ack` and for the Web API client."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(("ack", kwargs))

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda **kwargs: self.calls.append((method, kwargs))

    def methods(self) -> list[str]:
        return [name for name, _ in self.calls]


@dataclass
class FakeHunter:
    hunts: list[HuntRequest] = field(default_factory=list)
    investigated: list[str] = field(default_factory=list)

    def hunt(self, request: HuntRequest) -> HuntResult:
        self.hunts.append(request)
        return HuntResult(request.window, [], [], [], HuntStats())

    def investigate(self, access_key_id: str, window: Window) -> KeyReport:
        self.investigated.append(access_key_id)
        return KeyReport(access_key_id, window, [])

    def names_for(self, accounts: Iterable[str]) -> dict[str, str]:
        return {}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path}/k.db")
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def deps(store: Store) -> Deps:
    settings = Settings(channel=CHANNEL, triagers=(TRIAGER,))
    return Deps(settings, store, FakeHunter(), SchedulerState(), lambda: NOW)


def posted_finding(store: Store) -> str:
    finding = finding_of(root_key(NOW - timedelta(minutes=10)))
    store.add_findings([finding], now=NOW)
    store.mark_posted(finding.event.event_id, CHANNEL, TS, now=NOW)
    return finding.event.event_id


def click(user: str, action_id: str, value: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body = {"user": {"id": user}, "channel": {"id": CHANNEL}}
    return body, {"action_id": action_id, "value": value}


# ----------------------------------------------------------------------------- /keyhunt


@pytest.mark.parametrize(
    ("text", "starts"),
    [("help", None), ("last 2 fortnights", None), ("status", "Checking"), ("last 1d", "🔎")],
)
def test_every_command_is_acked_ephemerally_at_once(text: str, starts: str | None) -> None:
    ack = Recorder()
    commands.ack_command(ack, {"text": text})
    ((name, kwargs),) = ack.calls
    assert (name, kwargs["response_type"]) == ("ack", "ephemeral")
    if starts is None:  # usage: help, or what was wrong with the text
        assert kwargs["blocks"]
    else:
        assert kwargs["text"].startswith(starts)


def test_the_answer_to_a_hunt_asks_the_hunter_for_the_window_at_the_clock(deps: Deps) -> None:
    parsed = parse_command("last 1d")
    assert isinstance(parsed, Hunt)
    text, _ = commands.answer(deps, parsed)
    assert text
    assert isinstance(deps.hunter, FakeHunter)
    (request,) = deps.hunter.hunts
    assert request.window == Window(NOW - timedelta(days=1), NOW)


def test_the_answer_to_status_reads_the_store_and_the_scheduler(deps: Deps) -> None:
    parsed = parse_command("status")
    assert isinstance(parsed, Status)
    text, blocks = commands.answer(deps, parsed)
    assert text
    assert blocks


# ----------------------------------------------------------------------------- clicks


def test_a_click_is_acked_with_nothing() -> None:
    ack = Recorder()
    actions.ack_click(ack)
    assert ack.calls == [("ack", {})]


def test_a_click_from_someone_not_a_triager_changes_nothing(deps: Deps, store: Store) -> None:
    event_id = posted_finding(store)
    client = Recorder()
    body, action = click(OUTSIDER, ACTION_EXPECTED, encode_value(event_id, OPEN))
    actions.handle_triage(deps, body, client, action)
    ((name, kwargs),) = client.calls
    assert (name, kwargs["user"], kwargs["text"]) == (
        "chat_postEphemeral",
        OUTSIDER,
        actions.NOT_A_TRIAGER,
    )
    stored = store.get(event_id)
    assert stored is not None
    assert stored.triage.status == OPEN


def test_a_click_on_an_alert_the_store_does_not_know(deps: Deps) -> None:
    client = Recorder()
    body, action = click(TRIAGER, ACTION_EXPECTED, encode_value("no-such-event", OPEN))
    actions.handle_triage(deps, body, client, action)
    ((name, kwargs),) = client.calls
    assert (name, kwargs["text"]) == ("chat_postEphemeral", actions.UNKNOWN_ALERT)


def test_a_valid_click_decides_and_updates_the_alert(deps: Deps, store: Store) -> None:
    event_id = posted_finding(store)
    client = Recorder()
    body, action = click(TRIAGER, ACTION_EXPECTED, encode_value(event_id, OPEN))
    actions.handle_triage(deps, body, client, action)
    ((name, kwargs),) = client.calls
    assert (name, kwargs["channel"], kwargs["ts"]) == ("chat_update", CHANNEL, TS)
    stored = store.get(event_id)
    assert stored is not None
    assert (stored.triage.status, stored.triage.decided_by, stored.triage.decided_at) == (
        EXPECTED_ROTATION,
        TRIAGER,
        NOW,
    )


def test_investigate_updates_the_alert_and_replies_in_its_thread(deps: Deps, store: Store) -> None:
    event_id = posted_finding(store)
    client = Recorder()
    body, action = click(TRIAGER, ACTION_INVESTIGATE, encode_value(event_id, OPEN))
    actions.handle_triage(deps, body, client, action)
    assert client.methods() == ["chat_update", "chat_postMessage"]
    assert client.calls[1][1]["thread_ts"] == TS
    assert isinstance(deps.hunter, FakeHunter)
    assert len(deps.hunter.investigated) == 1
    stored = store.get(event_id)
    assert stored is not None
    assert stored.triage.status == INVESTIGATING


def test_a_stale_click_is_answered_privately_and_changes_nothing(deps: Deps, store: Store) -> None:
    event_id = posted_finding(store)
    store.decide(event_id, EXPECTED_ROTATION, "U0DAVE", NOW)
    client = Recorder()
    # A message still showing "open" offers Investigate; the alert has moved on since.
    body, action = click(TRIAGER, ACTION_INVESTIGATE, encode_value(event_id, OPEN))
    actions.handle_triage(deps, body, client, action)
    ((name, kwargs),) = client.calls
    assert (name, kwargs["user"]) == ("chat_postEphemeral", TRIAGER)
    stored = store.get(event_id)
    assert stored is not None
    assert (stored.triage.status, stored.triage.decided_by) == (EXPECTED_ROTATION, "U0DAVE")


# ----------------------------------------------------------------------------- registration


def test_registered_listeners_take_only_arguments_bolt_injects(deps: Deps) -> None:
    app = App(signing_secret="s", token="xoxb-t", token_verification_enabled=False)
    register_all(app, deps)
    injectable = {"ack", "command", "body", "client", "action"}
    listeners = app._listeners
    # /keyhunt, the two triage buttons, the DM's two answers and its reason modal,
    # Deactivate, Reactivate, the snooze menu and its reason modal.
    assert len(listeners) == 10
    for listener in listeners:
        functions = [listener.ack_function, *listener.lazy_functions]
        for function in functions:
            names = get_arg_names_of_callable(function)
            assert names
            assert set(names) <= injectable, names
