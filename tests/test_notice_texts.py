"""Transactional messages in staff's wording: the wording saved in the console is what the next
message says (checked in the mail the SMTP server receives), a reset brings the default back,
a text that does not render is refused at save with its field and line and nothing saved, a
stored text that fails when a message is queued falls back to the default, and the applicant
hears staff's decision once, in the decision's own transaction."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from console_support import BASE_URL, HTML, add_user, make_app, sign_in
from delivery_support import options
from fastapi.testclient import TestClient
from smtp_server import SMTPServer, smtp_server
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from mailer.compose import notice_store
from mailer.compose.composer import Composer
from mailer.compose.notice_texts import Wording, check_wording
from mailer.compose.transactional import freeze_notice
from mailer.delivery.send import drain
from mailer.delivery.transactional import enqueue
from mailer.delivery.transport import transport_from_url
from mailer.models import (
    TRANSACTIONAL_CAMPAIGN,
    AuditEntry,
    Library,
    MembershipApplication,
    NoticeTextRevision,
    OutboxMessage,
    Run,
)
from mailer.signups import notices
from mailer.signups.membership import ApplicationError, decide
from mailer.signups.notice_kinds import KINDS

__all__ = ["smtp_server"]

EDITOR = "editor@sdruk.example"
VIEWER = "ctenar@sdruk.example"
APPLICANT = "reditelka@knihovna-tisnov.example"


def _parts(message: Message) -> tuple[str, str]:
    parts = {p.get_content_type(): p for p in message.walk()}
    html = parts["text/html"].get_payload(decode=True)
    text = parts["text/plain"].get_payload(decode=True)
    assert isinstance(html, bytes) and isinstance(text, bytes)
    return html.decode(), text.decode()


def _subject(message: Message) -> str:
    return str(make_header(decode_header(str(message["Subject"]))))


def _queued(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage.email, Run.content)
            .join(Run, col(Run.id) == col(OutboxMessage.run_id))
            .where(Run.campaign == TRANSACTIONAL_CAMPAIGN)
            .order_by(col(OutboxMessage.id))
        ).all()
    return [(email, content) for email, content in rows]


def _welcome_wording(paragraph: str) -> Wording:
    default = KINDS["odber-vitejte"].default
    return Wording(
        subject="Vítejte, {{ jmeno }}! Novinky {{ odesilatel }}",
        preheader=default.preheader,
        heading="Jsme rádi, že jste s námi",
        greeting="Dobrý den, {{ jmeno }},",
        paragraphs=(paragraph, "{% if jmeno == 'nikdo' %}Tento odstavec se vynechá.{% endif %}"),
        button_label="Vybrat témata",
        why=default.why,
        after=("Těšíme se na vás.",),
    )


def _revisions(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(NoticeTextRevision)).one())


async def test_it_sends_the_wording_staff_saved_and_the_default_after_a_reset(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    with Session(engine) as session:
        notice_store.save(
            session,
            "odber-vitejte",
            _welcome_wording("Knihovna „R&D <Brno>“ vás vítá, {{ jmeno }}."),
            author=EDITOR,
            base_revision=0,
        )
        enqueue(session, notices.subscription_welcome("tok", "Jana"), email="jana@example.cz")
        session.commit()
    with Session(engine) as session:
        notice_store.save(session, "odber-vitejte", None, author=EDITOR, base_revision=1)
        enqueue(session, notices.subscription_welcome("tok", "Petr"), email="petr@example.cz")
        session.commit()

    await drain(engine, transport_from_url(smtp_server.url()), options())

    edited, default = (m.message for m in smtp_server.messages)
    assert _subject(edited) == "Vítejte, Jana! Novinky Sdružení knihoven ČR"
    html, text = _parts(edited)
    # Plain in the text part, escaped once in the HTML part.
    assert "Knihovna „R&D <Brno>“ vás vítá, Jana." in text
    assert "Knihovna „R&amp;D &lt;Brno&gt;“ vás vítá, Jana." in html
    assert "Dobrý den, Jana," in text and "Těšíme se na vás." in text
    assert "Vybrat témata" in text and "Tento odstavec" not in text
    assert "Jsme rádi, že jste s námi" in html
    assert _subject(default) == "Vítejte mezi odběrateli novinek Sdružení knihoven ČR"
    html, text = _parts(default)
    assert "odběr je potvrzený" in text and "R&D" not in text and "R&amp;D" not in html


def test_it_falls_back_to_the_default_when_a_stored_wording_fails(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    broken = _welcome_wording("Dobrý den, {{ jmeno.prijmeni.velkymi }}")
    with Session(engine) as session:
        # Stored past the checks (an older version's text, a hand edit): the message must
        # still go out.
        session.add(
            NoticeTextRevision(kind="odber-vitejte", number=1, texts=broken.to_json(), author="x")
        )
        session.commit()
    with (
        caplog.at_level(logging.ERROR, logger="mailer.delivery.transactional"),
        Session(engine) as session,
    ):
        enqueue(session, notices.subscription_welcome("tok", "Jana"), email="jana@example.cz")
        session.commit()
    [(to, content)] = _queued(engine)
    assert to == "jana@example.cz"
    assert content["values"]["message"]["subject"] == (
        "Vítejte mezi odběrateli novinek Sdružení knihoven ČR"
    )
    assert "odběr je potvrzený" in content["values"]["message"]["paragraphs"][0]
    assert any("odber-vitejte" in r.getMessage() for r in caplog.records)


def test_every_default_wording_renders_with_its_samples() -> None:
    for kind in KINDS.values():
        assert check_wording(kind.default, kind.samples()) == [], kind.kind


def test_it_keeps_a_brace_typed_into_a_public_form_as_text(engine: Engine) -> None:
    application = MembershipApplication(
        library_name="Knihovna {{ 7 * 7 }} {% if true %}x{% endif %}",
        library_type="mestska",
        region="Jihomoravský kraj",
        town="Tišnov",
        contact_name="Marie",
        email=APPLICANT,
        consent_text="souhlas",
    )
    with Session(engine) as session:
        session.add(application)
        session.flush()
        content = freeze_notice(notices.application_for_staff(application))
    subject = Composer(content, 0).subject(None)
    assert subject == "Nová přihláška do SDRUK: Knihovna {{ 7 * 7 }} {% if true %}x{% endif %}"


# --- the console ---------------------------------------------------------------------------


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    add_user(engine, EDITOR, "editor")
    add_user(engine, VIEWER, "viewer")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        yield test_client


def _form(csrf: str, **fields: str) -> dict[str, str]:
    default = KINDS["prihlaska-prijata"].default
    data = {
        "csrf_token": csrf,
        "revision": "0",
        "subject": default.subject,
        "preheader": default.preheader,
        "heading": default.heading,
        "greeting": default.greeting,
        "paragraphs": "\n\n".join(default.paragraphs),
        "button_label": default.button_label,
        "after": "\n\n".join(default.after),
        "why": default.why,
        "op": "save",
    }
    data.update(fields)
    return data


def test_it_refuses_an_unknown_placeholder_naming_field_and_line_and_saves_nothing(
    engine: Engine, client: TestClient
) -> None:
    csrf = sign_in(client, EDITOR)
    answer = client.post(
        "/console/notices/prihlaska-prijata",
        data=_form(csrf, paragraphs="Děkujeme.\n\nPřihláška {{ knihovnaa }} je u nás."),
        headers=HTML,
    )
    assert answer.status_code == 422
    assert (
        "Odstavec 2, řádek 1: neznámý zástupný text {{ knihovnaa }} — dostupné: "
        "{{ knihovna }}, {{ kontakt }}, {{ odesilatel }}, {{ web }}"
    ) in answer.text.replace("&#34;", '"')
    assert "Text nebyl uložen" in answer.text
    # What was typed stays in the form.
    assert "Přihláška {{ knihovnaa }} je u nás." in answer.text
    broken = client.post(
        "/console/notices/prihlaska-prijata",
        data=_form(csrf, subject="Přihláška", why="Protože\n{% if knihovna %}jste ji poslali"),
        headers=HTML,
    )
    assert broken.status_code == 422
    assert "Proč zprávu dostáváte, řádek 2: chyba v zápisu" in broken.text
    assert _revisions(engine) == 0
    assert client.get("/console/notices", headers=HTML).text.count("upravený") == 0


def test_staff_preview_save_and_reset_with_history_and_audit(
    engine: Engine, client: TestClient
) -> None:
    csrf = sign_in(client, EDITOR)
    listing = client.get("/console/notices", headers=HTML)
    assert listing.status_code == 200
    assert all(kind.label in listing.text for kind in KINDS.values())
    edit = client.get("/console/notices/prihlaska-prijata", headers=HTML)
    assert edit.status_code == 200 and "{{ knihovna }}" in edit.text
    assert "Městská knihovna Tišnov" in edit.text  # the preview's sample value
    preview = client.post(
        "/console/notices/prihlaska-prijata",
        data=_form(csrf, op="preview", heading="Máme ji, {{ kontakt }}!"),
        headers=HTML,
    )
    assert preview.status_code == 200 and "Máme ji, Marie Svobodová!" in preview.text
    assert _revisions(engine) == 0  # a preview saves nothing
    saved = client.post(
        "/console/notices/prihlaska-prijata",
        data=_form(csrf, heading="Máme ji, {{ kontakt }}!"),
        follow_redirects=False,
    )
    assert saved.status_code == 303
    # A second editor's save on top of the old revision is refused, nothing lost.
    stale = client.post(
        "/console/notices/prihlaska-prijata",
        data=_form(csrf, heading="Jiný nadpis"),
        headers=HTML,
    )
    assert stale.status_code == 409 and "Jiný nadpis" in stale.text
    page = client.get("/console/notices/prihlaska-prijata", headers=HTML).text
    assert "Máme ji, {{ kontakt }}!" in page and "verze 1" in page and EDITOR in page
    reset = client.post(
        "/console/notices/prihlaska-prijata/reset",
        data={"csrf_token": csrf, "revision": "1"},
        follow_redirects=False,
    )
    assert reset.status_code == 303
    with Session(engine) as session:
        assert notice_store.in_force(session, "prihlaska-prijata").wording is None
        actions = session.exec(select(AuditEntry.action).order_by(col(AuditEntry.id))).all()
    assert [a for a in actions if a.startswith("notice_text")] == [
        "notice_text_save",
        "notice_text_reset",
    ]
    assert "obnoven výchozí text" in client.get("/console/notices/prihlaska-prijata").text


def test_a_viewer_reads_but_cannot_save_and_an_unknown_kind_is_404(
    engine: Engine, client: TestClient
) -> None:
    csrf = sign_in(client, VIEWER)
    page = client.get("/console/notices/odber-vitejte", headers=HTML)
    assert page.status_code == 200 and "Uložit text" not in page.text
    refused = client.post("/console/notices/odber-vitejte", data=_form(csrf), headers=HTML)
    assert refused.status_code == 403
    assert client.get("/console/notices/neni-takovy", headers=HTML).status_code == 404
    assert _revisions(engine) == 0


# --- the decision mail -----------------------------------------------------------------------


def _application(engine: Engine) -> int:
    with Session(engine) as session:
        library = Library(
            name="Městská knihovna Tišnov",
            siglum="BOG504",
            library_type="mestska",
            region="Jihomoravský kraj",
            town="Tišnov",
        )
        session.add(library)
        session.flush()
        application = MembershipApplication(
            library_id=library.id,
            library_name="Městská knihovna Tišnov",
            library_type="mestska",
            region="Jihomoravský kraj",
            town="Tišnov",
            contact_name="Marie Svobodová",
            email=APPLICANT,
            consent_text="souhlas",
        )
        session.add(application)
        session.commit()
        assert application.id is not None
        return application.id


async def test_the_applicant_hears_the_approval_once_even_on_a_double_submit(
    engine: Engine, client: TestClient, smtp_server: SMTPServer
) -> None:
    application_id = _application(engine)
    csrf = sign_in(client, EDITOR)
    url = f"/console/applications/{application_id}/decision"
    first = client.post(
        url, data={"decision": "approve", "csrf_token": csrf}, follow_redirects=False
    )
    second = client.post(url, data={"decision": "approve", "csrf_token": csrf}, headers=HTML)
    assert first.status_code == 303 and second.status_code == 409
    assert [(to, c["step"]) for to, c in _queued(engine)] == [(APPLICANT, "clenstvi-schvaleno")]

    await drain(engine, transport_from_url(smtp_server.url()), options())
    [received] = smtp_server.messages
    assert received.rcpt_tos == [APPLICANT]
    _, text = _parts(received.message)
    assert "schválili přihlášku knihovny „Městská knihovna Tišnov“" in text
    assert "fakturu na členský příspěvek" in text


@pytest.mark.parametrize("send_note", [True, False])
def test_a_rejection_carries_the_note_only_when_staff_send_it(
    engine: Engine, client: TestClient, send_note: bool
) -> None:
    application_id = _application(engine)
    csrf = sign_in(client, EDITOR)
    data = {
        "decision": "reject",
        "note": "Knihovna je členem přes zřizovatele.",
        "csrf_token": csrf,
    }
    if send_note:
        data["send_note"] = "1"
    answer = client.post(
        f"/console/applications/{application_id}/decision", data=data, follow_redirects=False
    )
    assert answer.status_code == 303
    [(to, content)] = _queued(engine)
    assert to == APPLICANT and content["step"] == "clenstvi-zamitnuto"
    paragraphs = content["values"]["message"]["paragraphs"]
    note_sent = any("Zdůvodnění: Knihovna je členem přes zřizovatele." in p for p in paragraphs)
    assert note_sent is send_note
    assert len(paragraphs) == (3 if send_note else 2)  # the empty note paragraph is left out


def test_no_decision_without_its_mail_and_no_mail_without_the_decision(engine: Engine) -> None:
    application_id = _application(engine)
    with Session(engine) as session:
        decide(session, application_id, approve=False, actor=EDITOR)
        session.rollback()
    with Session(engine) as session:
        application = session.get(MembershipApplication, application_id)
        assert application is not None and application.status == "pending"
    assert _queued(engine) == []
    with Session(engine) as session:
        decide(session, application_id, approve=True, actor=EDITOR)
        session.commit()
    with Session(engine) as session, pytest.raises(ApplicationError):
        decide(session, application_id, approve=False, actor=EDITOR)
    assert [c["step"] for _, c in _queued(engine)] == ["clenstvi-schvaleno"]


def test_two_staff_deciding_at_once_send_one_mail(engine: Engine) -> None:
    # The second editor's page (and session) read the application while it was pending; the
    # first decides and commits in between. Only one decision, and one mail, may stand.
    application_id = _application(engine)
    with Session(engine) as late:
        assert late.get(MembershipApplication, application_id) is not None
        with Session(engine) as first:
            decide(first, application_id, approve=True, actor=EDITOR)
            first.commit()
        with pytest.raises(ApplicationError):
            decide(late, application_id, approve=False, actor="jiny@sdruk.example")
        late.rollback()
    with Session(engine) as session:
        application = session.get(MembershipApplication, application_id)
        assert application is not None and application.status == "approved"
    assert [c["step"] for _, c in _queued(engine)] == ["clenstvi-schvaleno"]


def test_two_decisions_racing_past_the_pending_check_send_one_mail(engine: Engine) -> None:
    # Both requests read the application as pending before either writes (SQLite has no
    # FOR UPDATE; PostgreSQL's lock makes the second wait, and the barrier gives up).
    application_id = _application(engine)
    barrier = threading.Barrier(2, timeout=3)

    def after_read(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "membership_application" in (
            statement
        ):
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()

    outcomes: list[str] = []

    def decide_in_thread(approve: bool) -> None:
        with Session(engine) as session:
            try:
                decide(session, application_id, approve=approve, actor=EDITOR)
                session.commit()
                outcomes.append("decided")
            except ApplicationError:
                session.rollback()
                outcomes.append("refused")

    sa.event.listen(engine, "after_cursor_execute", after_read)
    try:
        threads = [threading.Thread(target=decide_in_thread, args=(a,)) for a in (True, False)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sa.event.remove(engine, "after_cursor_execute", after_read)
    assert sorted(outcomes) == ["decided", "refused"]
    assert len(_queued(engine)) == 1
