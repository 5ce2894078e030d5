"""Credentials per account: the caller's own, or an assumed role cached and refreshed.

Constructors do no I/O. The first call that needs the caller's identity or a role makes it,
from a worker thread, so a slow or denied AssumeRole only holds up its own account.

Every role account shares one client per (service, region): a botocore client costs ~4 ms of
CPU and most of a MiB to build, 1,000 accounts a second per service and a GiB. Each account
gets an `AccountClient`, which names its account around every call it makes; the shared
client signs with the credentials of the account named on the calling thread, and with none
when no account is named (botocore then refuses to send), so a request can never go out
signed for an account other than the one whose client made it. What the thread is calling
for is `calling_for()`: the rate limiters (checks.cloudtrail.gate_client) count by it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.exceptions import NoCredentialsError

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
# A client every role account shares is called from every hunt thread at once: its connection
# pool holds as many as KEYHUNT_MAX_WORKERS allows (128), where urllib3 would otherwise open
# and drop connections beyond its default 10.
SHARED_CLIENT_CONFIG = CLIENT_CONFIG.merge(Config(max_pool_connections=128))


@dataclass(frozen=True, slots=True)
class _Binding:
    account_id: str
    credentials: RefreshableCredentials


_CALLING_FOR: ContextVar[_Binding | None] = ContextVar("keyhunt_calling_for", default=None)


def calling_for() -> str | None:
    """The role account the current thread's AWS call is made for; None outside such a call
    and for the caller's own clients."""
    binding = _CALLING_FOR.get()
    return None if binding is None else binding.account_id


class _CallingAccountCredentials(Credentials):
    """The credentials of a shared client: those of the account named on the calling thread,
    read when botocore signs; none outside an AccountClient's call. It holds no keys of its
    own, so there is nothing to fall back to."""

    def __init__(self) -> None:
        pass

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        binding = _CALLING_FOR.get()
        if binding is None:
            raise NoCredentialsError()
        return binding.credentials.get_frozen_credentials()

    @property
    def method(self) -> str:  # type: ignore[override]
        """Where the credentials in use came from ("sts-assume-role"), as botocore says."""
        binding = _CALLING_FOR.get()
        return "none" if binding is None else str(binding.credentials.method)

    @property
    def account_id(self) -> str | None:  # botocore's endpoint rules may ask for it
        return calling_for()


class AccountClient:
    """One role account's client: the shared client of its service and region, with the
    account named around each API call. Operations only: a paginator's later pages would be
    fetched unnamed and refused (NoCredentialsError), so page with NextToken instead."""

    def __init__(self, shared: Any, binding: _Binding) -> None:
        self.shared = shared
        self.account_id = binding.account_id
        self._binding = binding

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.shared, name)
        if name not in self.shared.meta.method_to_api_mapping:
            return attribute  # meta, exceptions, can_paginate, ...
        binding = self._binding

        def call(*args: Any, **kwargs: Any) -> Any:
            token = _CALLING_FOR.set(binding)
            try:
                return attribute(*args, **kwargs)
            finally:
                _CALLING_FOR.reset(token)

        return call


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
        self._own: dict[tuple[str, str], Any] = {}  # the caller's account's clients
        self._shared: dict[tuple[str, str], Any] = {}  # every role account's
        self._roles: boto3.Session | None = None  # the session the shared clients come from
        self._caller_account: str | None = None

    def caller_account(self) -> str:
        """The account of the credentials keyhunt runs with (one GetCallerIdentity, cached)."""
        with self._lock:
            if self._caller_account is None:
                sts = self._base.client("sts", config=CLIENT_CONFIG)
                self._caller_account = str(sts.get_caller_identity()["Account"])
            return self._caller_account

    def client(self, account_id: str, service: str, region: str) -> Any:
        """The caller's own account: a client of the base session. Any other: an
        AccountClient over the client of (service, region) every role account shares. Each
        botocore client is built once and kept; clients are thread-safe."""
        if account_id == self.caller_account():
            return self._kept(self._own, service, region, self._own_client)
        credentials = self._role_credentials(account_id)
        shared = self._kept(self._shared, service, region, self._shared_client)
        return AccountClient(shared, _Binding(account_id, credentials))

    def _kept(
        self,
        clients: dict[tuple[str, str], Any],
        service: str,
        region: str,
        build: Callable[[str, str], Any],
    ) -> Any:
        key = (service, region)
        with self._lock:
            client = clients.get(key)
        if client is None:
            with self._build_lock:  # boto3 sessions are not thread-safe: one client at a time
                client = clients.get(key)
                if client is None:
                    client = build(service, region)
                    with self._lock:
                        clients[key] = client
        return client

    def _own_client(self, service: str, region: str) -> Any:
        base: Any = self._base  # service names are dynamic here
        return base.client(service, region_name=region, config=CLIENT_CONFIG)

    def _shared_client(self, service: str, region: str) -> Any:
        if self._roles is None:
            core = botocore.session.get_session()
            # Share the base session's loader: it caches the service models, which would
            # otherwise be read and parsed again (~0.1 s of CPU per service).
            core.register_component("data_loader", self._base._session.get_component("data_loader"))
            # botocore binds a new client to the credentials object its session holds, and
            # has no public setter for one that is not static keys.
            core._credentials = _CallingAccountCredentials()  # type: ignore[attr-defined]
            self._roles = boto3.Session(botocore_session=core, region_name=self._base.region_name)
        session: Any = self._roles
        return session.client(service, region_name=region, config=SHARED_CLIENT_CONFIG)

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
