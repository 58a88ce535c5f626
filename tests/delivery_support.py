"""Helpers for the delivery tests: contacts in bulk, a blueprint, worker options, and mapping
received messages back to outbox rows."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from mailer.delivery.send import WorkerOptions
from mailer.models import Contact, Library, OutboxMessage, utcnow

CAMPAIGN = "join-this-year-2026"  # recruitment: segment `member = false`, topic membership
MESSAGE_ID = re.compile(rb"Message-ID: <sdruk\.(\d+)\.(\d+)\.[0-9a-f]+@", re.IGNORECASE)


def add_contacts(
    engine: Engine, n: int, *, prefix: str = "k", domain: str = "knihovna.cz", **extra: Any
) -> list[int]:
    """n active contacts with a legal basis, at one non-member city library; their ids."""
    now = utcnow()
    with engine.begin() as conn:
        library_id = conn.execute(
            sa.insert(Library.__table__)  # type: ignore[attr-defined]
            .values(
                name=f"Městská knihovna {prefix}",
                library_type="mestska",
                region="Jihomoravský kraj",
                town="Brno",
                is_member=False,
                created_at=now,
                updated_at=now,
            )
            .returning(Library.__table__.c.id)  # type: ignore[attr-defined]
        ).scalar_one()
        rows = []
        for i in range(n):
            email = f"{prefix}{i}@{domain}"
            rows.append(
                {
                    "email": email,
                    "address_hash": hashlib.sha256(email.encode()).hexdigest(),
                    "first_name": "Jana",
                    "last_name": f"Nováková{i}",
                    "role": "ředitelka",
                    "gender": "f",
                    "library_id": library_id,
                    "status": "active",
                    "legal_basis": "legitimate_interest",
                    "soft_bounces": 0,
                    "created_at": now,
                    "updated_at": now,
                    **extra,
                }
            )
        table = Contact.__table__  # type: ignore[attr-defined]
        for start in range(0, len(rows), 5000):
            conn.execute(sa.insert(table), rows[start : start + 5000])
        ids = conn.execute(
            sa.select(table.c.id)
            .where(table.c.email.like(f"{prefix}%@{domain}"))
            .order_by(table.c.id)
        ).scalars()
        return list(ids)


def blueprint() -> Any:
    from mailer.compose.campaigns import load_blueprint

    return load_blueprint(CAMPAIGN)


def options(**overrides: Any) -> WorkerOptions:
    """Fast settings for tests: retries due at once, no pause after a dropped connection."""
    values: dict[str, Any] = {
        "worker_id": "test-worker",
        "retry_base_seconds": 0.0,
        "connect_error_pause": 0.0,
        "lease_seconds": 30.0,
        "batch_size": 50,
    }
    values.update(overrides)
    return WorkerOptions(**values)


def outbox_ids(data_items: list[bytes]) -> list[int]:
    """The outbox id of each received message, from its Message-ID."""
    ids = []
    for data in data_items:
        match = MESSAGE_ID.search(data)
        assert match, data[:500]
        ids.append(int(match.group(2)))
    return ids


def rows(engine: Engine, run_id: int) -> dict[int, Any]:
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return {r.id: r for r in conn.execute(sa.select(table).where(table.c.run_id == run_id))}
