"""Bolt listeners, laid out like Slack's bolt-python starter: one module per kind, each with
`register(app, deps)`.

Every handler is a plain module-level function that takes `Deps` explicitly, so a test can
call it with its own `ack`, client and store. `register` wraps each in a small function whose
parameter names are the ones Bolt injects by name (`ack`, `command`, `body`, `client`,
`action`): Bolt reads them with `inspect.getfullargspec(inspect.unwrap(fn))`, so the wrappers
are plain functions, never `functools.wraps` (unwrap would reach the `deps` parameter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from bot.health import SchedulerState
from bot.hunting import HuntRequest
from bot.settings import Settings
from bot.store import Store
from checks.investigate import KeyReport
from checks.model import HuntResult, Window

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.asking import Asking
    from bot.containment import Containment


class Hunter(Protocol):
    """The hunt path as the listeners need it (bot.hunting.Hunter in production)."""

    def hunt(self, request: HuntRequest) -> HuntResult: ...

    def investigate(self, access_key_id: str, window: Window) -> KeyReport: ...

    def names_for(self, accounts: Iterable[str]) -> dict[str, str]: ...


@dataclass(frozen=True)
class Deps:
    """What the listeners need; built once by `bot.app.create_app`."""

    settings: Settings
    store: Store
    hunter: Hunter
    state: SchedulerState
    clock: Callable[[], datetime]
    asking: Asking | None = None  # "Was this you?" (bot.asking)
    containment: Containment | None = None  # Deactivate / Reactivate (bot.containment)


def register_all(app: App, deps: Deps) -> None:
    from bot.listeners import actions, commands, owners, responses

    commands.register(app, deps)
    actions.register(app, deps)
    owners.register(app, deps)
    responses.register(app, deps)
