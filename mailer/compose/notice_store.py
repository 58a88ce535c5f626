"""Staff's wording of transactional messages in the database: the wording in force for a kind,
saving a new revision (refused when someone saved in between), resetting to the default, and
the history of who changed what when. Revisions are never changed once written."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer.compose.notice_texts import Wording
from mailer.models import NoticeTextRevision, utcnow


class ConcurrentEdit(ValueError):
    """Someone saved the kind's wording after the editor opened it (Czech message)."""


@dataclass(frozen=True)
class InForce:
    """The newest revision of a kind: its number (0: never edited) and staff's wording, or
    None when the default applies."""

    number: int
    wording: Wording | None
    author: str | None = None
    at: datetime | None = None


def in_force(session: Session, kind: str) -> InForce:
    row = session.exec(
        select(NoticeTextRevision)
        .where(NoticeTextRevision.kind == kind)
        .order_by(col(NoticeTextRevision.number).desc())
        .limit(1)
    ).first()
    if row is None:
        return InForce(0, None)
    wording = Wording.from_json(row.texts) if row.texts is not None else None
    return InForce(row.number, wording, row.author, row.created_at)


def all_in_force(session: Session) -> dict[str, InForce]:
    """The newest revision of every kind that has one."""
    newest = (
        select(NoticeTextRevision.kind, sa.func.max(NoticeTextRevision.number).label("number"))
        .group_by(col(NoticeTextRevision.kind))
        .subquery()
    )
    rows = session.exec(
        select(NoticeTextRevision).join(
            newest,
            sa.and_(
                col(NoticeTextRevision.kind) == newest.c.kind,
                col(NoticeTextRevision.number) == newest.c.number,
            ),
        )
    ).all()
    return {
        r.kind: InForce(
            r.number,
            Wording.from_json(r.texts) if r.texts is not None else None,
            r.author,
            r.created_at,
        )
        for r in rows
    }


def save(
    session: Session, kind: str, wording: Wording | None, *, author: str, base_revision: int
) -> NoticeTextRevision:
    """A new revision of `kind` (None: back to the default), on top of `base_revision`, the
    one the editor started from. The caller checked the wording and commits; two saves racing
    on one number are refused by the unique (kind, number)."""
    current = in_force(session, kind).number
    if current != base_revision:
        raise ConcurrentEdit(
            "Text mezitím uložil někdo jiný. Načtěte stránku znovu a změny zopakujte; "
            "nic se neuložilo."
        )
    row = NoticeTextRevision(
        kind=kind,
        number=current + 1,
        texts=wording.to_json() if wording is not None else None,
        author=author,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def history(session: Session, kind: str, limit: int = 20) -> list[NoticeTextRevision]:
    return list(
        session.exec(
            select(NoticeTextRevision)
            .where(NoticeTextRevision.kind == kind)
            .order_by(col(NoticeTextRevision.number).desc())
            .limit(limit)
        ).all()
    )
