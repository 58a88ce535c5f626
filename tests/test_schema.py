"""The migrations create exactly the tables the models describe, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine
from sqlmodel import SQLModel

import mailer.models  # noqa: F401


def test_it_migrates_to_the_models_without_drift(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_it_upgrades_twice_without_harm(engine: Engine) -> None:
    from mailer.migrations import upgrade

    upgrade(engine)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None
