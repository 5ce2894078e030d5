"""The Bolt app: the listeners of bot.listeners on a Bolt App, with Bolt's workarounds.

Built by `create_app` from what it is given (settings, store, hunter, Web API client); it does
no I/O of its own when built. The listeners themselves are in bot.listeners (every one acks
first; AWS work runs in lazy listeners); Bolt's workarounds are in bot.bolt_fixes.
Decisions live in the store, never in memory: any replica, any Socket Mode connection can
handle any click.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_bolt import App

from bot.bolt_fixes import (
    give_lazy_listeners_their_own_pool,
    install_body_parser_fix,
    install_socket_mode_mask_fix,
)
from bot.health import SchedulerState
from bot.listeners import Deps, Hunter, register_all
from bot.settings import Settings
from bot.store import Store

if TYPE_CHECKING:
    from bot.asking import Asking
    from bot.containment import Containment


def create_app(
    settings: Settings,
    store: Store,
    hunter: Hunter,
    client: Any,
    scheduler: SchedulerState | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    workers: int = 16,
    asking: Asking | None = None,
    containment: Containment | None = None,
) -> App:
    install_body_parser_fix()  # `/keyhunt … payload` would otherwise be dropped
    install_socket_mode_mask_fix()  # masking keys from os.urandom, not the shared `random`
    app = App(
        signing_secret=settings.slack_signing_secret or None,
        client=client,  # carries the bot token and our retry handlers
        token_verification_enabled=False,  # no auth.test at build time; `keyhunt check` does it
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bolt"),
    )
    give_lazy_listeners_their_own_pool(app, workers)  # slow hunts never starve the acks
    deps = Deps(settings, store, hunter, scheduler or SchedulerState(), clock, asking, containment)
    register_all(app, deps)
    return app
