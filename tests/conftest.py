"""Shared fixtures: a real database (SQLite always, PostgreSQL when reachable) per test.

PostgreSQL tests skip with a reason on a machine without a server, but fail in CI (CI=true),
where a skipped database would hide a broken half of the product."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from mailer import db as mailer_db
from mailer import settings as mailer_settings
from mailer.db import make_engine
from mailer.migrations import upgrade

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

_postgres_problem: str | None = None
_postgres_checked = False


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    global _postgres_checked, _postgres_problem
    if not _postgres_checked:
        _postgres_checked = True
        try:
            engine = make_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
            engine.dispose()
        except Exception as exc:
            _postgres_problem = f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}"[:300]
    return _postgres_problem


def require_postgres() -> None:
    problem = postgres_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests. {problem}")
        pytest.skip(problem)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema in the test database, as a URL that selects it (usable by subprocesses)."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that asks for it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def configured(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Settings pointed at the test database and a private data directory; schema migrated."""
    data_dir = tmp_path / "var"
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SDRUK_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("BASE_URL", "https://kampane.sdruk.test")
    mailer_settings.get_settings.cache_clear()
    mailer_db._engine_for.cache_clear()
    upgrade(mailer_db.get_engine())
    yield database_url
    mailer_db.get_engine().dispose()
    mailer_settings.get_settings.cache_clear()
    mailer_db._engine_for.cache_clear()


@pytest.fixture
def engine(configured: str) -> Engine:
    """The migrated engine of the test database (SQLite, then PostgreSQL)."""
    return mailer_db.get_engine()
