"""What each account is called ("prod"), so the on-call never has to read 12 digits.

The config's name wins; with `accounts: organization` the Organization's listing names them
(no extra call: the listing is made anyway); otherwise the account's alias, asked once per
account and only for accounts something is about to be shown for. A name is a nicety: a
failed lookup leaves the ID alone (and is asked again next time), never fails a hunt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from checks.iam import fetch_account_alias
from checks.sessions import AwsSessions

log = logging.getLogger(__name__)


class AccountNames:
    def __init__(
        self,
        configured: Iterable[tuple[str, str]],
        sessions: Callable[[], AwsSessions],
        max_workers: int = 8,
    ) -> None:
        self._configured = dict(configured)
        self._learned: dict[str, str | None] = {}
        self._sessions = sessions
        self._max_workers = max_workers
        self._lock = threading.Lock()

    def learn(self, names: Mapping[str, str | None]) -> None:
        """Names that came with a listing (the Organization's): no lookup needed for these."""
        with self._lock:
            self._learned.update(names)

    def names_for(self, accounts: Iterable[str | None]) -> dict[str, str]:
        """{account ID: name} for those of `accounts` that have one."""
        wanted = {a for a in accounts if a}
        with self._lock:
            missing = sorted(wanted - self._configured.keys() - self._learned.keys())
        if missing:
            workers = min(self._max_workers, len(missing))
            with ThreadPoolExecutor(workers, thread_name_prefix="keyhunt-alias") as pool:
                asked = dict(zip(missing, pool.map(self._alias, missing), strict=True))
            with self._lock:
                self._learned.update({a: name for a, (ok, name) in asked.items() if ok})
        with self._lock:
            known = self._learned | self._configured
        return {a: name for a in wanted if (name := known.get(a))}

    def _alias(self, account: str) -> tuple[bool, str | None]:
        """(asked, alias): (True, None) when the account has none, (False, None) when it
        could not be asked."""
        try:
            iam = self._sessions().client(account, "iam", "us-east-1")
            return True, fetch_account_alias(iam)
        except Exception as exc:  # noqa: BLE001 - a name is optional; the ID still shows
            log.info("no name for account %s: %s", account, type(exc).__name__)
            return False, None
