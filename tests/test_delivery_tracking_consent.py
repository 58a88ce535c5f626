"""Tracking consent at send time: each sent message records whether it went out individually
tracked, decided from the contact's consent when it was claimed, and the message received by
the relay (in-process aiosmtpd) matches that record."""

from __future__ import annotations

import email
import email.policy

import pytest
import sqlalchemy as sa
from delivery_support import add_contacts, options, outbox_ids, rows
from smtp_server import SMTPServer, smtp_server
from sqlalchemy import Engine

from mailer import settings as mailer_settings
from mailer.compose.campaigns import load_blueprint
from mailer.delivery.runs import launch
from mailer.delivery.send import drain
from mailer.delivery.transport import transport_from_url
from mailer.models import Contact

__all__ = ["smtp_server"]

EVENT = "knihovny-soucasnosti-2027"  # tracking = individual
RECRUITMENT = "join-this-year-2026"  # tracking = anonymous
CONSENTS = ["unknown", "granted", "denied"]


def _set_consents(engine: Engine, ids: list[int]) -> dict[int, str]:
    table = Contact.__table__  # type: ignore[attr-defined]
    wanted = {cid: CONSENTS[i % 3] for i, cid in enumerate(ids)}
    with engine.begin() as conn:
        for cid, value in wanted.items():
            conn.execute(sa.update(table).where(table.c.id == cid).values(tracking_consent=value))
    return wanted


def _bodies(server: SMTPServer) -> dict[int, str]:
    out = {}
    for received in server.messages:
        parsed = email.message_from_bytes(received.data, policy=email.policy.default)
        parts = [
            p.get_content()
            for p in parsed.walk()
            if p.get_content_type() in ("text/plain", "text/html")
        ]
        out[outbox_ids([received.data])[0]] = "\n".join(parts)
    return out


@pytest.mark.parametrize("policy", ["individual", "anonymous"])
async def test_it_records_which_messages_went_out_individually_tracked(
    engine: Engine, smtp_server: SMTPServer, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKING_WITHOUT_CONSENT", policy)
    mailer_settings.get_settings.cache_clear()
    consents = _set_consents(engine, add_contacts(engine, 9))
    run_id = launch(engine, load_blueprint(EVENT)).run_id

    await drain(engine, transport_from_url(smtp_server.url(concurrency="2")), options())

    sent = rows(engine, run_id)
    bodies = _bodies(smtp_server)
    assert sorted(bodies) == sorted(sent)
    for oid, row in sent.items():
        consent = consents[row.contact_id]
        expected = consent == "granted" or (consent == "unknown" and policy == "individual")
        assert row.status == "sent"
        assert row.individually_tracked is expected, (consent, policy)
        # What the record says is what the recipient got.
        assert ("/o/" in bodies[oid]) is expected


async def test_it_decides_from_the_consent_at_the_time_of_sending(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    ids = add_contacts(engine, 2)
    run_id = launch(engine, load_blueprint(EVENT)).run_id
    # Denied after the launch materialised the run, before a worker claimed the message.
    table = Contact.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == ids[0]).values(tracking_consent="denied"))

    await drain(engine, transport_from_url(smtp_server.url()), options())

    by_contact = {r.contact_id: r for r in rows(engine, run_id).values()}
    assert by_contact[ids[0]].individually_tracked is False
    assert by_contact[ids[1]].individually_tracked is True
    assert "/o/" not in _bodies(smtp_server)[by_contact[ids[0]].id]


async def test_it_leaves_anonymous_campaigns_undecided(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    consents = _set_consents(engine, add_contacts(engine, 3))
    run_id = launch(engine, load_blueprint(RECRUITMENT)).run_id

    await drain(engine, transport_from_url(smtp_server.url()), options())

    sent = rows(engine, run_id)
    bodies = _bodies(smtp_server)
    # Nobody is tracked individually there: there is no consent to decide (and results count
    # such rows as the run tracks).
    assert {r.individually_tracked for r in sent.values()} == {None}
    for oid, row in sent.items():
        # The anonymous pixel, except for the contact who denied.
        assert ("/o/" in bodies[oid]) is (consents[row.contact_id] != "denied")
