"""Credentials per account: the caller's own, or an assumed role cached and refreshed.

Constructors do no I/O. The first call that needs the caller's identity or a role makes it,
from a worker thread, so a slow or denied AssumeRole only holds up its own account.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials

log = logging.getLogger(__name__)

ROLE_SESSION_NAME = "keyhunt"
# Retries for connection errors and 5xx inside botocore; throttling has its own loop with a
# deadline in cloudtrail.py, so botocore is not left to sleep through it blindly.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=20,
    user_agent_extra="keyhunt",
)


class AssumeRoleFailed(Exception):
    def __init__(self, account_id: str, code: str, message: str) -> None:
        super().__init__(f"AssumeRole into {account_id} failed: {code}: {message}")
        self.account_id = account_id
        self.code = code
        self.message = message


class AwsSessions:
    """Hands out boto3 clients per account, assuming `role_name` where needed."""

    def __init__(
        self,
        base: boto3.Session,
        role_name: str = "KeyHuntReadOnly",
        external_id: str | None = None,
        partition: str = "aws",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._base = base
        # What botocore compares each role's expiry with: it assumes the role again from
        # 15 minutes before expiry (advisory), and blocks calls for it from 10 minutes before.
        self._clock = clock
        self._sts: Any = None
        self._role_name = role_name
        self._external_id = external_id
        self._partition = partition
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._account_locks: dict[str, threading.Lock] = {}
        self._credentials: dict[str, RefreshableCredentials] = {}
        self._roles: boto3.Session | None = None
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._caller_account: str | None = None

    def caller_account(self) -> str:
        """The account of the credentials keyhunt runs with (one GetCallerIdentity, cached)."""
        with self._lock:
            if self._caller_account is None:
                sts = self._base.client("sts", config=CLIENT_CONFIG)
                self._caller_account = str(sts.get_caller_identity()["Account"])
            return self._caller_account

    def client(self, account_id: str, service: str, region: str) -> Any:
        """A client per (account, service, region), built once and shared: clients are
        thread-safe. The caller's account uses the base session; every other account's
        clients come from one botocore session of their own (`_role_session`), each client
        bound at its creation to that account's refreshable credentials."""
        key = (account_id, service, region)
        with self._lock:
            cached = self._clients.get(key)
        if cached is not None:
            return cached
        own = account_id == self.caller_account()
        credentials = None if own else self._role_credentials(account_id)
        with self._build_lock:  # boto3 sessions are not thread-safe: one client at a time
            client = self._clients.get(key)
            if client is None:
                client = self._build(service, region, credentials)
                with self._lock:
                    self._clients[key] = client
            return client

    def _build(self, service: str, region: str, credentials: RefreshableCredentials | None) -> Any:
        if credentials is None:
            return self._base.client(service, region_name=region, config=CLIENT_CONFIG)  # type: ignore[call-overload]
        session = self._role_session()
        core = session._session
        # A botocore session binds a new client to the credentials object it holds then;
        # it has no public setter for a refreshable one, so it is handed this account's for
        # the one creation (under _build_lock) and forgets it after. One session for every
        # account instead of one each: building a botocore session registers its ~100
        # built-in handlers, about 10 ms of CPU, 10 s of a 1,000-account hunt.
        core._credentials = credentials  # type: ignore[attr-defined]
        try:
            return session.client(service, region_name=region, config=CLIENT_CONFIG)  # type: ignore[call-overload]
        finally:
            core._credentials = None  # type: ignore[attr-defined]

    def _role_session(self) -> boto3.Session:
        if self._roles is None:
            core = botocore.session.get_session()
            # Share the base session's loader: it caches the service models, which would
            # otherwise be read and parsed again (~0.1 s of CPU per service).
            core.register_component("data_loader", self._base._session.get_component("data_loader"))
            self._roles = boto3.Session(botocore_session=core, region_name=self._base.region_name)
        return self._roles

    def _role_credentials(self, account_id: str) -> RefreshableCredentials:
        with self._lock:
            cached = self._credentials.get(account_id)
            account_lock = self._account_locks.setdefault(account_id, threading.Lock())
        if cached is not None:
            return cached
        with account_lock:  # one AssumeRole per account even when regions race for it
            cached = self._credentials.get(account_id)
            if cached is None:
                first = self._assume(account_id)
                cached = RefreshableCredentials(
                    access_key=first["access_key"],
                    secret_key=first["secret_key"],
                    token=first["token"],
                    expiry_time=datetime.fromisoformat(first["expiry_time"]),
                    refresh_using=lambda: self._assume(account_id),
                    method="sts-assume-role",
                    time_fetcher=self._clock,
                )
                with self._lock:
                    self._credentials[account_id] = cached
            return cached

    def _sts_client(self) -> Any:
        """One STS client for every AssumeRole: building one per account costs ~3 ms of CPU
        each, a second and more of a 1,000-account hunt."""
        with self._lock:
            if self._sts is None:
                self._sts = self._base.client("sts", config=CLIENT_CONFIG)
            return self._sts

    def _assume(self, account_id: str) -> dict[str, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        from checks.awserror import error_of

        role_arn = f"arn:{self._partition}:iam::{account_id}:role/{self._role_name}"
        params: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": ROLE_SESSION_NAME}
        if self._external_id:
            params["ExternalId"] = self._external_id
        try:
            sts = self._sts_client()
            creds = sts.assume_role(**params)["Credentials"]
        except ClientError as exc:
            raise AssumeRoleFailed(account_id, *error_of(exc)) from None
        except BotoCoreError as exc:
            raise AssumeRoleFailed(account_id, type(exc).__name__, str(exc)) from None
        log.info("assumed %s in %s until %s", self._role_name, account_id, creds["Expiration"])
        expiration: datetime = creds["Expiration"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": expiration.astimezone(UTC).isoformat(),
        }
