"""Shared test plumbing: the no-real-network guard, the AWS fake, the CLI environment.

No test may reach real AWS or Slack. In this process every socket connection and name lookup
goes through a guard that allows loopback only; a blocked attempt raises *and* is recorded,
so a library that swallows the error still fails the test that caused it. Real credentials,
profiles and config files are removed from the environment before any test runs.
Subprocesses cannot be patched: `keyhunt_env` points them at the fake and routes anything
else into a dead local proxy, so a stray request fails fast instead of leaving the machine.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from keyhunt_dev.aws import FakeAWS

# The caller's dummy credentials; moto maps them to its default account, 123456789012.
DUMMY_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
DUMMY_SECRET_KEY = "dummy"
# Nothing listens on port 9 (discard): a request sent through this proxy fails at once.
DEAD_PROXY = "http://127.0.0.1:9"
KEYHUNT = (sys.executable, "-m", "bot")

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
# Test services outside this process that a developer points the suite at on purpose.
_ALLOWED_HOSTS_FROM = ("KEYHUNT_TEST_POSTGRES_URL",)


class RealNetworkBlocked(RuntimeError):
    """A test tried to reach something other than loopback."""


class NetworkGuard:
    """Patches `socket` so only loopback (and explicitly allowed test hosts) can be reached."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self.allowed_hosts: set[str] = set()
        self._allowed_ips: set[str] = set()
        self._saved: dict[str, Any] = {}

    def install(self) -> None:
        self._saved = {
            "connect": socket.socket.connect,
            "connect_ex": socket.socket.connect_ex,
            "getaddrinfo": socket.getaddrinfo,
            "gethostbyname": socket.gethostbyname,
            "gethostbyname_ex": socket.gethostbyname_ex,
        }
        real_connect, real_connect_ex = self._saved["connect"], self._saved["connect_ex"]
        real_getaddrinfo = self._saved["getaddrinfo"]

        def connect(sock: socket.socket, address: Any) -> None:
            self._check_address(sock, address)
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            self._check_address(sock, address)
            result: int = real_connect_ex(sock, address)
            return result

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            self._check_name(host)
            answers = real_getaddrinfo(host, *args, **kwargs)
            if self._is_allowed_host(host):  # remember what an allowed name resolved to
                self._allowed_ips.update(str(answer[4][0]) for answer in answers)
            return answers

        def by_name(original: Callable[..., Any]) -> Callable[..., Any]:
            def lookup(host: Any) -> Any:
                self._check_name(host)
                return original(host)

            return lookup

        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
        socket.getaddrinfo = getaddrinfo
        socket.gethostbyname = by_name(self._saved["gethostbyname"])
        socket.gethostbyname_ex = by_name(self._saved["gethostbyname_ex"])

    def uninstall(self) -> None:
        socket.socket.connect = self._saved["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = self._saved["connect_ex"]  # type: ignore[method-assign]
        socket.getaddrinfo = self._saved["getaddrinfo"]
        socket.gethostbyname = self._saved["gethostbyname"]
        socket.gethostbyname_ex = self._saved["gethostbyname_ex"]

    def _check_address(self, sock: socket.socket, address: Any) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return  # Unix sockets and the like never leave the machine
        host = str(address[0])
        if not (_is_loopback(host) or host in self._allowed_ips):
            sock.close()  # callers only close on OSError; never leak the socket
            self._block(f"connect to {host}:{address[1]}")

    def _check_name(self, host: Any) -> None:
        if host is None or host in ("", b""):
            return  # a passive (bind) lookup
        text = host.decode() if isinstance(host, bytes) else str(host)
        if _is_ip_literal(text) or text.lower() in _LOOPBACK_NAMES or self._is_allowed_host(text):
            return  # no DNS query; a non-loopback IP is refused at connect()
        self._block(f"name lookup of {text}")

    def _is_allowed_host(self, host: Any) -> bool:
        return isinstance(host, str) and host.lower() in self.allowed_hosts

    def _block(self, what: str) -> None:
        self.attempts.append(what)
        raise RealNetworkBlocked(f"tests may not reach the network: {what}")


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


NETWORK_GUARD = NetworkGuard()


def scrub_environment(environ: MutableMapping[str, str]) -> None:
    """No real AWS credentials, profiles, endpoints or Slack tokens; no local keyhunt config."""
    for name in list(environ):
        if name.startswith(("AWS_", "SLACK_")) or (
            name.startswith("KEYHUNT_") and not name.startswith("KEYHUNT_TEST_")
        ):
            del environ[name]
    environ["AWS_CONFIG_FILE"] = os.devnull
    environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    environ["AWS_EC2_METADATA_DISABLED"] = "true"


def pytest_configure(config: pytest.Config) -> None:
    scrub_environment(os.environ)
    for variable in _ALLOWED_HOSTS_FROM:
        host = urlsplit(os.environ.get(variable, "")).hostname
        if host:
            NETWORK_GUARD.allowed_hosts.add(host.lower())
    NETWORK_GUARD.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    NETWORK_GUARD.uninstall()


@pytest.fixture(autouse=True)
def _no_real_network() -> Iterator[None]:
    """Fails the test if it tried to reach the network, even when the error was swallowed."""
    NETWORK_GUARD.attempts.clear()
    yield
    attempts = list(NETWORK_GUARD.attempts)
    NETWORK_GUARD.attempts.clear()
    if attempts:
        pytest.fail(f"test tried to reach the network: {attempts}")


@pytest.fixture
def network_guard() -> NetworkGuard:
    """For tests that provoke the guard on purpose: they clear `attempts` themselves."""
    return NETWORK_GUARD


# --------------------------------------------------------------------------- AWS fake


@pytest.fixture(scope="session")
def fake_aws() -> Iterator[FakeAWS]:
    """One FakeAWS (moto + LookupEvents emulator) for the whole run. Prefer `clean_fake_aws`."""
    with FakeAWS() as running:
        yield running


@pytest.fixture
def clean_fake_aws(fake_aws: FakeAWS) -> Iterator[FakeAWS]:
    """The shared fake with no events, faults or recorded calls (moto's IAM state persists,
    so tests create IAM users under unique names)."""
    fake_aws.reset()
    yield fake_aws
    fake_aws.reset()


# --------------------------------------------------------------------------- CLI processes


def keyhunt_env(fake_aws: FakeAWS, tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    """The whole environment of a `keyhunt` subprocess aimed at the fake.

    Built from scratch, not inherited: dummy credentials, the fake's endpoint, a state store
    inside `tmp_path`, no config file, and a dead proxy for anything not on loopback.
    An override of None removes the variable.
    """
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "AWS_ENDPOINT_URL": fake_aws.endpoint_url,
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "HTTP_PROXY": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        "KEYHUNT_DATABASE_URL": f"sqlite:///{tmp_path / 'keyhunt.db'}",
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def demo_env(home: Path) -> dict[str, str]:
    """What `keyhunt demo` runs with in tests: a newcomer's shell, nothing of AWS or Slack."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def run_keyhunt(
    args: Sequence[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (`python -m bot`, what the `keyhunt` script calls) and capture it.

    `cwd` should be a temporary directory: keyhunt reads `config/keyhunt.yaml` from there.
    """
    return subprocess.run(
        [*KEYHUNT, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


if TYPE_CHECKING:
    from tests.slackbot import BotFactory


@pytest.fixture
def make_bot(
    clean_fake_aws: FakeAWS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BotFactory]:
    """The whole bot (runtime, Bolt app over HTTP, SQLite store) against the fakes."""
    from tests.slackbot import BotFactory

    with BotFactory(clean_fake_aws, tmp_path, monkeypatch) as factory:
        yield factory
