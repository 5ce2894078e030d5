"""PostgreSQL for the tests: where the server is, and a scratch database for each test.

`scripts/test-postgres.sh start` runs a throwaway server on 127.0.0.1 and prints the URL of
its `keyhunt_test` database; `make unit` passes it to pytest as KEYHUNT_TEST_POSTGRES_URL.
Every test gets a database of its own, created from that server and dropped afterwards, so
tests never see each other's rows and a test can start from a truly empty schema.

Without the variable the PostgreSQL cases skip, saying why, so a laptop without PostgreSQL
still runs the rest. Under CI (`CI=true`) a missing or unreachable server fails every one of
them instead: CI promises the store was tested on both backends.

Fixtures here would have to be imported by name into each test module (which ruff reads as
an unused import); test modules define thin fixtures around these helpers instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

SERVER_URL_VARIABLE = "KEYHUNT_TEST_POSTGRES_URL"
SQLITE, POSTGRES = "sqlite", "postgres"
# For `pytest.mark.parametrize` / `pytest.fixture(params=...)`: `-m "not postgres"` drops the
# PostgreSQL cases.
BACKENDS: tuple[Any, ...] = (SQLITE, pytest.param(POSTGRES, marks=pytest.mark.postgres))
START_HINT = "start one with `scripts/test-postgres.sh start` and export its URL"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def server_url() -> str:
    """The test server's URL, checked to answer. Skips without it; fails under CI=true, and
    whenever the variable is set but the server does not answer (someone asked for it)."""
    raw = os.environ.get(SERVER_URL_VARIABLE, "").strip()
    if not raw:
        message = f"{SERVER_URL_VARIABLE} is not set: no PostgreSQL server to test against"
        if in_ci():
            pytest.fail(f"{message}; CI must test the store on PostgreSQL ({START_HINT})")
        pytest.skip(f"{message} ({START_HINT})")
    problem = _unreachable(raw)
    if problem is not None:
        pytest.fail(f"{SERVER_URL_VARIABLE}={_safe(raw)} does not answer: {problem}")
    return raw


_checked: dict[str, str | None] = {}


def _unreachable(url: str) -> str | None:
    """None when a `SELECT 1` works; the reason otherwise (checked once per run)."""
    if url not in _checked:
        engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            _checked[url] = None
        except SQLAlchemyError as exc:
            _checked[url] = str(exc).splitlines()[0]
        finally:
            engine.dispose()
    return _checked[url]


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def scratch_database(server: str, label: str = "test") -> Iterator[str]:
    """A new, empty database on `server`, dropped (with any connection still open to it,
    e.g. a killed process's) on exit. Yields its SQLAlchemy URL."""
    name = f"keyhunt_{label}_{uuid.uuid4().hex[:12]}"
    base: URL = make_url(server)
    admin = create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@contextmanager
def database_url(backend: str, tmp_path: Path, label: str = "test") -> Iterator[str]:
    """An empty database of the given backend: a SQLite file in `tmp_path`, or a scratch
    PostgreSQL database (skipping, or failing under CI, when there is no server)."""
    if backend == SQLITE:
        yield f"sqlite:///{tmp_path / 'keyhunt.db'}"
    elif backend == POSTGRES:
        with scratch_database(server_url(), label) as url:
            yield url
    else:  # pragma: no cover - a typo in a parametrisation
        raise ValueError(f"unknown backend {backend!r}")
