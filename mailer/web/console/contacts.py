"""Contacts and libraries: search, detail with history, edits that respect consent, membership,
and the GDPR export and erasure. (The CSV import is in imports.)"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, delete, select

from mailer.audience import tracking_consent as consent
from mailer.audience.membership import MembershipError
from mailer.audience.suppression import address_hash
from mailer.compose.composer import Recipient
from mailer.models import (
    REGIONS,
    Contact,
    ContactStatus,
    ContactTag,
    Event,
    LegalBasisRecord,
    Library,
    OutboxMessage,
    Run,
    Suppression,
    Tag,
    Topic,
    TopicOptOut,
    TrackingConsent,
    TrackingConsentRecord,
)
from mailer.web.console import integration
from mailer.web.console.audit import audit
from mailer.web.console.auth import DB, Admin, Editor, Reader, Staff
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute
from mailer.web.params import PageNumber, RowId, Year

router = APIRouter(route_class=ConsoleRoute)
PAGE_SIZE = 50
NOTICES = {
    "saved": "Změny byly uloženy.",
    "member": "Členství knihovny bylo zaznamenáno.",
    "already_member": "Knihovna už je členem SDRUK, nic se nezměnilo.",
    "tracking": "Souhlas se sledováním byl zaznamenán.",
    "erased": "Kontakt byl vymazán. Zůstal jen otisk adresy na seznamu blokovaných adres.",
}


def _contact_or_404(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise HTTPException(status_code=404, detail="Kontakt neexistuje.")
    return contact


def _library_or_404(session: Session, library_id: int) -> Library:
    library = session.get(Library, library_id)
    if library is None:
        raise HTTPException(status_code=404, detail="Knihovna neexistuje.")
    return library


@router.get("/contacts", response_class=HTMLResponse)
def contact_list(
    request: Request,
    staff: Reader,
    session: DB,
    q: str = "",
    status: str = "",
    library_type: str = "",
    region: str = "",
    member: str = "",
    page_no: Annotated[PageNumber, Query(alias="page")] = 1,
) -> HTMLResponse:
    stmt = select(Contact, Library).join(
        Library,
        Contact.library_id == Library.id,  # type: ignore[arg-type]
        isouter=True,
    )
    if q.strip():
        like = f"%{q.strip()}%"
        stmt = stmt.where(
            sa.or_(
                col(Contact.email).ilike(like),
                col(Contact.first_name).ilike(like),
                col(Contact.last_name).ilike(like),
                col(Library.name).ilike(like),
                col(Library.town).ilike(like),
                col(Library.siglum).ilike(like),
            )
        )
    if status:
        stmt = stmt.where(Contact.status == status)
    if library_type:
        stmt = stmt.where(Library.library_type == library_type)
    if region:
        stmt = stmt.where(Library.region == region)
    if member in ("ano", "ne"):
        stmt = stmt.where(Library.is_member == (member == "ano"))
    total = session.execute(
        stmt.with_only_columns(sa.func.count(col(Contact.id)), maintain_column_froms=True)
    ).scalar_one()
    pages = max(1, math.ceil(total / PAGE_SIZE))
    rows = session.exec(
        stmt.order_by(col(Library.name), col(Contact.email))
        .offset((page_no - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    filters = {
        "q": q,
        "status": status,
        "library_type": library_type,
        "region": region,
        "member": member,
    }
    base = "/console/contacts?" + "&".join(f"{k}={v}" for k, v in filters.items() if v) + "&"
    return page(
        request,
        "contacts.html",
        staff,
        rows=rows,
        total=total,
        page_no=page_no,
        pages=pages,
        filters=filters,
        regions=REGIONS,
        base=base,
    )


def _history(session: Session, contact: Contact) -> dict[str, Any]:
    assert contact.id is not None
    messages = session.exec(
        select(OutboxMessage, Run)
        .join(Run, Run.id == OutboxMessage.run_id)  # type: ignore[arg-type]
        .where(OutboxMessage.contact_id == contact.id)
        .order_by(col(OutboxMessage.id).desc())
    ).all()
    events = integration.contact_events(session, contact.id)
    runs = {r.id: r for _, r in messages}
    missing = {e.run_id for e in events if e.run_id and e.run_id not in runs}
    if missing:
        for run in session.exec(select(Run).where(col(Run.id).in_(missing))).all():
            runs[run.id] = run
    return {"messages": messages, "events": events, "runs": runs}


def _salutation(contact: Contact, library: Library | None) -> str:
    """The salutation messages use for this contact (the override, else the vocative)."""
    return Recipient.from_rows(0, contact, library).salutation()


def _contact_context(session: Session, contact: Contact) -> dict[str, Any]:
    assert contact.id is not None
    library = session.get(Library, contact.library_id) if contact.library_id else None
    opted_out = set(
        session.exec(select(TopicOptOut.topic).where(TopicOptOut.contact_id == contact.id)).all()
    )
    tags = session.exec(
        select(Tag.name)
        .join(ContactTag, ContactTag.tag_id == Tag.id)  # type: ignore[arg-type]
        .where(ContactTag.contact_id == contact.id)
    ).all()
    bases = session.exec(
        select(LegalBasisRecord)
        .where(LegalBasisRecord.contact_id == contact.id)
        .order_by(col(LegalBasisRecord.recorded_at).desc())
    ).all()
    suppressed = bool(
        contact.address_hash and session.get(Suppression, contact.address_hash) is not None
    )
    return {
        "contact": contact,
        "library": library,
        "computed_salutation": _salutation(contact, library),
        "opted_out": opted_out,
        "tags": tags,
        "bases": bases,
        "suppressed": suppressed,
        "tracking_history": consent.history(session, contact.id),
        "tracking_label": consent.label(contact.tracking_consent),
        "tracking_choices": [(c.value, consent.label(c.value)) for c in TrackingConsent],
        **_history(session, contact),
    }


@router.get("/contacts/{contact_id}", response_class=HTMLResponse)
def contact_detail(
    request: Request, contact_id: RowId, staff: Reader, session: DB, notice: str = ""
) -> HTMLResponse:
    contact = _contact_or_404(session, contact_id)
    return page(
        request,
        "contact.html",
        staff,
        notice=NOTICES.get(notice),
        **_contact_context(session, contact),
    )


@router.post("/contacts/{contact_id}", response_class=HTMLResponse)
async def contact_edit(request: Request, contact_id: RowId, staff: Editor, session: DB) -> Response:
    contact = _contact_or_404(session, contact_id)
    assert contact.id is not None
    form = await request.form()
    salutation = str(form.get("salutation", "")).strip()
    status = str(form.get("status", contact.status))
    wanted = {str(t) for t in form.getlist("topics")} & {t.value for t in Topic}
    consent = form.get("consent") == "ano"
    evidence = str(form.get("evidence", "")).strip()
    opted_out = set(
        session.exec(select(TopicOptOut.topic).where(TopicOptOut.contact_id == contact.id)).all()
    )
    topics_back = {t for t in opted_out if t in wanted}
    reactivating = status == ContactStatus.ACTIVE and contact.status != ContactStatus.ACTIVE
    # What was typed comes back with an error, so nothing has to be typed twice.
    typed = {
        "salutation": salutation,
        "status": status,
        "topics": wanted,
        "consent": consent,
        "evidence": evidence,
    }
    if (reactivating or topics_back) and not (consent and evidence):
        ctx = _contact_context(session, contact)
        return page(
            request,
            "contact.html",
            staff,
            status_code=422,
            error="Opětovné přihlášení kontaktu nebo tématu, které sám odhlásil, je možné jen "
            "s doloženým souhlasem: zaškrtněte souhlas a popište, kdy a jak jej kontakt dal.",
            typed=typed,
            **ctx,
        )
    changes: dict[str, Any] = {}
    source = f"konzole: {staff.email}"
    if (contact.salutation or "") != salutation:
        changes["salutation"] = salutation
        contact.salutation = salutation or None
        contact.updated_at = datetime.now(UTC)
        session.add(contact)
    if reactivating:
        if not integration.resubscribe(session, contact, source, evidence):
            ctx = _contact_context(session, contact)
            return page(
                request,
                "contact.html",
                staff,
                status_code=422,
                error="Kontakt s nedoručitelnou adresou nebo se stížností nelze znovu přihlásit.",
                typed=typed,
                **ctx,
            )
        changes["status"] = ContactStatus.ACTIVE.value
        audit(session, staff.email, "resubscribe", f"kontakt #{contact.id}", evidence=evidence)
    elif status == ContactStatus.UNSUBSCRIBED and contact.status == ContactStatus.ACTIVE:
        integration.unsubscribe(session, contact, source)
        changes["status"] = ContactStatus.UNSUBSCRIBED.value
    for topic in sorted({t.value for t in Topic} - wanted - opted_out):
        integration.opt_out_topic(session, contact.id, topic, source)
        changes.setdefault("topics_out", []).append(topic)
    for topic in sorted(topics_back):
        integration.opt_in_topic(session, contact.id, topic, f"{source}; souhlas: {evidence}")
        changes.setdefault("topics_in", []).append(topic)
    if changes:
        audit(session, staff.email, "contact_edit", f"kontakt #{contact.id}", **changes)
    session.commit()
    return RedirectResponse(f"/console/contacts/{contact.id}?notice=saved", status_code=303)


@router.post("/contacts/{contact_id}/tracking", response_class=HTMLResponse)
async def contact_tracking(
    request: Request, contact_id: RowId, staff: Editor, session: DB
) -> Response:
    """Staff record a tracking consent the person gave or refused elsewhere (by phone, in a
    letter); the staff address is the evidence's author, the note its wording."""
    contact = _contact_or_404(session, contact_id)
    form = await request.form()
    value = consent.parse_answer(str(form.get("tracking", "")))
    note = str(form.get("tracking_note", "")).strip()
    error = None
    if value is None:
        error = "Vyberte, zda kontakt sledování povolil, odmítl, nebo se nevyjádřil."
    elif value == TrackingConsent.GRANTED and not note:
        error = "Souhlas se sledováním je třeba doložit: napište, kdy a jak jej kontakt dal."
    if error is not None:
        return page(
            request,
            "contact.html",
            staff,
            status_code=422,
            error=error,
            tracking_note=note,
            **_contact_context(session, contact),
        )
    assert value is not None
    consent.record_consent(
        session,
        contact,
        value,
        source=consent.SOURCE_CONSOLE,
        wording=note[:2000] or None,
        recorded_by=staff.email,
    )
    audit(session, staff.email, "tracking_consent", f"kontakt #{contact.id}", value=value)
    session.commit()
    return RedirectResponse(f"/console/contacts/{contact.id}?notice=tracking", status_code=303)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def contact_export(session: Session, contact: Contact) -> dict[str, Any]:
    """Everything stored about one contact (GDPR art. 15), as plain JSON values."""
    assert contact.id is not None
    ctx = _contact_context(session, contact)
    library = ctx["library"]
    return {
        "exported_at": datetime.now(UTC).isoformat(),
        "contact": contact.model_dump(mode="json"),
        "library": library.model_dump(mode="json") if library else None,
        "legal_basis_records": [b.model_dump(mode="json") for b in ctx["bases"]],
        "tracking_consent_records": [
            {**asdict(r), "recorded_at": r.recorded_at.isoformat()} for r in ctx["tracking_history"]
        ],
        "topic_opt_outs": sorted(ctx["opted_out"]),
        "tags": list(ctx["tags"]),
        "suppressed": ctx["suppressed"],
        "messages": [
            {
                **message.model_dump(
                    mode="json", include={"id", "email", "status", "attempts", "sent_at", "error"}
                ),
                "campaign": run.campaign,
                "step": run.step,
                # A transactional run's subject is a reference to its text; `name` is the text.
                "subject": (run.content or {}).get(
                    "name" if (run.content or {}).get("transactional") else "subject"
                ),
            }
            for message, run in ctx["messages"]
        ],
        "events": [
            {
                **event.model_dump(mode="json", exclude={"contact_id"}),
                "campaign": ctx["runs"][event.run_id].campaign
                if event.run_id in ctx["runs"]
                else None,
            }
            for event in ctx["events"]
        ],
    }


@router.post("/contacts/{contact_id}/export")
def contact_export_download(contact_id: RowId, staff: Editor, session: DB) -> Response:
    contact = _contact_or_404(session, contact_id)
    data = contact_export(session, contact)
    audit(session, staff.email, "export", f"kontakt #{contact_id}", kind="gdpr")
    session.commit()
    return Response(
        json.dumps(data, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="kontakt-{contact_id}.json"',
            "Cache-Control": "no-store",
        },
    )


def erase_contact(session: Session, contact: Contact, actor: str) -> str:
    """GDPR erasure: the contact and all personal data go; only the address hash stays, on the
    suppression list, so the address is never mailed again. Returns the hash."""
    assert contact.id is not None
    digest = contact.address_hash or address_hash(contact.email)
    if session.get(Suppression, digest) is None:
        session.add(Suppression(address_hash=digest, reason="erased"))
    # Messages and events stay for the campaign statistics, without anything personal.
    session.exec(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.contact_id) == contact.id)
        .values(contact_id=None, email="[vymazáno]", smtp_response=None, error=None)
    )
    session.exec(
        sa.update(Event)
        .where(col(Event.contact_id) == contact.id)
        .values(contact_id=None, ip=None, user_agent=None, detail={})
    )
    session.exec(delete(LegalBasisRecord).where(col(LegalBasisRecord.contact_id) == contact.id))
    session.exec(delete(TopicOptOut).where(col(TopicOptOut.contact_id) == contact.id))
    session.exec(
        delete(TrackingConsentRecord).where(col(TrackingConsentRecord.contact_id) == contact.id)
    )
    session.exec(delete(ContactTag).where(col(ContactTag.contact_id) == contact.id))
    session.delete(contact)
    audit(session, actor, "erase", f"kontakt #{contact.id}", address_hash=digest)
    return digest


@router.post("/contacts/{contact_id}/erase")
def contact_erase(contact_id: RowId, staff: Admin, session: DB) -> Response:
    contact = _contact_or_404(session, contact_id)
    library_id = contact.library_id
    erase_contact(session, contact, staff.email)
    session.commit()
    target = f"/console/libraries/{library_id}" if library_id else "/console/contacts"
    return RedirectResponse(f"{target}?notice=erased", status_code=303)


def _library_page(
    request: Request,
    staff: Staff,
    session: Session,
    library: Library,
    *,
    notice: str | None = None,
    error: str | None = None,
    typed: dict[str, str] | None = None,
) -> HTMLResponse:
    contacts = session.exec(
        select(Contact).where(Contact.library_id == library.id).order_by(col(Contact.email))
    ).all()
    return page(
        request,
        "library.html",
        staff,
        status_code=422 if error else 200,
        library=library,
        contacts=contacts,
        notice=notice,
        error=error,
        # What staff typed into the membership form, kept when it comes back with an error.
        typed=typed or {"member_since": str(datetime.now(UTC).year), "contact_id": "", "note": ""},
    )


@router.get("/libraries/{library_id}", response_class=HTMLResponse)
def library_detail(
    request: Request, library_id: RowId, staff: Reader, session: DB, notice: str = ""
) -> HTMLResponse:
    library = _library_or_404(session, library_id)
    return _library_page(request, staff, session, library, notice=NOTICES.get(notice))


@router.post("/libraries/{library_id}/membership")
def library_membership(
    request: Request,
    library_id: RowId,
    staff: Editor,
    session: DB,
    member_since: Annotated[Year | None, Form()] = None,
    contact_id: Annotated[RowId | None, Form()] = None,
    note: Annotated[str, Form()] = "",
) -> Response:
    """The library joined SDRUK: reminders stop at all its addresses and the joining counts
    for the recruitment campaign that reached it last (the same as `sdruk libraries join`)."""
    library = _library_or_404(session, library_id)
    if contact_id is not None:
        contact = session.get(Contact, contact_id)
        if contact is None or contact.library_id != library_id:
            raise HTTPException(status_code=404, detail="Kontakt v této knihovně neexistuje.")
    typed = {
        "member_since": "" if member_since is None else str(member_since),
        "contact_id": "" if contact_id is None else str(contact_id),
        "note": note,
    }
    try:
        result = integration.record_join(
            session,
            library,
            actor=staff.email,
            member_since=member_since,
            contact=contact_id,
            note=note,
        )
    except MembershipError as exc:
        session.rollback()
        return _library_page(request, staff, session, library, error=str(exc), typed=typed)
    session.commit()
    notice = "member" if result.recorded else "already_member"
    return RedirectResponse(f"/console/libraries/{library_id}?notice={notice}", status_code=303)
