"""Alembic environment: migrates the database that settings (or the caller) name."""

from typing import Any

from alembic import context
from sqlmodel import SQLModel

import mailer.models  # noqa: F401  (registers the tables)
from mailer.db import make_engine
from mailer.settings import get_settings

config = context.config
target_metadata = SQLModel.metadata


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Autogenerate compares only our own tables. Others live in the same database and are
    not ours to drop: APScheduler creates `apscheduler_job` at run time (its job store)."""
    if type_ == "table":
        return name in target_metadata.tables
    return True


def run_migrations_online() -> None:
    options: dict[str, Any] = {
        "target_metadata": target_metadata,
        "render_as_batch": True,
        "include_name": include_name,
    }
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url()
    engine = make_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, **options)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
