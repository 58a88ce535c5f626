"""Rows the web and events tests need (libraries, contacts, a run, its outbox), inserted
directly with the models so these tests do not depend on the delivery code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from mailer.models import (
    Contact,
    Library,
    MessageStatus,
    OutboxMessage,
    Run,
    RunStatus,
    utcnow,
)

LINKS = [
    "https://www.sdruk.cz/clenstvi",
    "https://www.sdruk.cz/konference?rok=2026",
    "https://www.sdruk.cz/kontakt",
]


@dataclass
class World:
    run_id: int
    contact_ids: list[int]
    outbox_ids: list[int]
    sent_at: datetime


def make_world(
    engine: Engine,
    *,
    contacts: int = 3,
    status: str = MessageStatus.SENT,
    topic: str = "membership",
    campaign: str = "nabor-2026",
    step: str = "launch",
    links: list[str] | None = None,
    sent_at: datetime | None = None,
    content: dict[str, Any] | None = None,
) -> World:
    """One run of `contacts` contacts in libraries of different types and regions."""
    sent_at = sent_at or utcnow() - timedelta(hours=2)
    kinds = [
        ("mestska", "Jihomoravský kraj"),
        ("obecni", "Kraj Vysočina"),
        ("krajska", "Zlínský kraj"),
    ]
    with Session(engine, expire_on_commit=False) as session:
        run = Run(
            campaign=campaign,
            step=step,
            status=RunStatus.SENDING,
            content={
                "subject": "Přidejte se k Sdružení knihoven ČR",
                "links": list(links if links is not None else LINKS),
                "topic": topic,
                "tracking": "individual",
                **(content or {}),
            },
            recipients=contacts,
        )
        session.add(run)
        session.flush()
        contact_rows = []
        for i in range(contacts):
            library_type, region = kinds[i % len(kinds)]
            library = Library(
                name=f"Knihovna č. {i} {campaign}{step}",
                library_type=library_type,
                region=region,
                town="Brno",
            )
            session.add(library)
            session.flush()
            contact = Contact(
                email=f"reditelka{i}.{campaign}.{step}@knihovna-test.cz",
                first_name="Jana",
                last_name="Nováková",
                role="ředitelka",
                gender="f",
                library_id=library.id,
                legal_basis="legitimate_interest",
            )
            session.add(contact)
            contact_rows.append(contact)
        session.flush()
        outbox_rows = []
        for contact in contact_rows:
            row = OutboxMessage(
                run_id=run.id,  # type: ignore[arg-type]
                contact_id=contact.id,
                email=contact.email,
                status=status,
                sent_at=sent_at if status == MessageStatus.SENT else None,
            )
            session.add(row)
            outbox_rows.append(row)
        session.commit()
        return World(
            run_id=run.id,  # type: ignore[arg-type]
            contact_ids=[c.id for c in contact_rows],  # type: ignore[misc]
            outbox_ids=[o.id for o in outbox_rows],  # type: ignore[misc]
            sent_at=sent_at,
        )
