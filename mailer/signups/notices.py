"""Transactional messages as `Notice` values for `mailer.delivery.transactional.enqueue`: each
confirmation, welcome and notification with its recipient's values, fixed parts (details,
button link, calendar file) and the default wording of its kind (`notice_kinds`) filled in.
Staff's own wording, when there is one, replaces the default when the message is queued."""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar

from mailer.compose.campaigns import Blueprint
from mailer.compose.campaigns import Session as EventSession
from mailer.compose.czech import format_clock, format_day, format_weekday_day
from mailer.compose.notice_texts import render_wording
from mailer.compose.transactional import Notice
from mailer.models import (
    LIBRARY_TYPE_LABELS,
    EventRegistration,
    LibraryType,
    MembershipApplication,
)
from mailer.settings import get_settings
from mailer.signups.notice_kinds import KINDS, common_values
from mailer.tokens import Purpose, default_signer


def build(
    kind: str,
    values: dict[str, str],
    *,
    button_url: str,
    details: list[tuple[str, str]] | None = None,
    ics: str | None = None,
) -> Notice:
    """A notice of `kind` saying its default wording filled with `values`."""
    filled_values = {**values, **common_values()}
    wording = render_wording(KINDS[kind].default, filled_values)
    return Notice(
        kind=kind,
        subject=wording.subject,
        preheader=wording.preheader,
        heading=wording.heading,
        greeting=wording.greeting,
        paragraphs=list(wording.paragraphs),
        details=list(details or []),
        button_label=wording.button_label,
        button_url=button_url,
        after=list(wording.after),
        why=wording.why,
        ics=ics,
        values=filled_values,
    )


def _type_label(code: str) -> str:
    try:
        return LIBRARY_TYPE_LABELS[LibraryType(code)]
    except ValueError:
        return code


def _application_details(application: MembershipApplication) -> list[tuple[str, str]]:
    rows = [
        ("Knihovna", application.library_name),
        ("Typ", _type_label(application.library_type)),
        ("Obec, kraj", f"{application.town}, {application.region}"),
        ("Sigla", application.siglum or "neuvedena"),
        ("Kontaktní osoba", f"{application.contact_name}, {application.contact_role}".strip(", ")),
        ("E-mail", application.email),
        ("Telefon", application.phone or "neuveden"),
        ("IČO", application.ico or "neuvedeno"),
        ("DIČ", application.dic or "neuvedeno"),
        ("Fakturační adresa", application.billing_address or "neuvedena"),
    ]
    return rows


def _applicant_values(application: MembershipApplication) -> dict[str, str]:
    return {"knihovna": application.library_name, "kontakt": application.contact_name}


def application_received(application: MembershipApplication) -> Notice:
    """To the applicant, at once."""
    return build(
        "prihlaska-prijata",
        _applicant_values(application),
        button_url=get_settings().sender_web,
        details=_application_details(application),
    )


def application_for_staff(application: MembershipApplication) -> Notice:
    """To the association's staff: a new application waits for a decision."""
    base = get_settings().base_url.rstrip("/")
    return build(
        "prihlaska-pro-sdruk",
        {"knihovna": application.library_name, "obec": application.town,
         "kraj": application.region},
        button_url=f"{base}/console/applications/{application.id}",
        details=_application_details(application),
    )  # fmt: skip


def application_approved(application: MembershipApplication) -> Notice:
    """To the applicant, when staff approve: welcome, and what comes next (the invoice)."""
    return build(
        "clenstvi-schvaleno",
        _applicant_values(application),
        button_url=get_settings().sender_web,
    )


def application_rejected(application: MembershipApplication, reason: str = "") -> Notice:
    """To the applicant, when staff reject; `reason` only when staff chose to send it."""
    return build(
        "clenstvi-zamitnuto",
        {**_applicant_values(application), "zduvodneni": reason.strip()},
        button_url=get_settings().sender_web,
    )


def _occurrence(blueprint: Blueprint, registration: EventRegistration) -> EventSession:
    assert blueprint.event is not None
    return blueprint.event.occurrences()[registration.session_index]


def _session_title(blueprint: Blueprint, occurrence: EventSession) -> str:
    assert blueprint.event is not None
    title = blueprint.event.title
    return title if occurrence.title == title else f"{title}: {occurrence.title}"


def _session_details(blueprint: Blueprint, occurrence: EventSession) -> list[tuple[str, str]]:
    rows = [
        ("Akce", _session_title(blueprint, occurrence)),
        ("Kdy", f"{format_weekday_day(occurrence.start)}, {format_clock(occurrence.start)}–"
         f"{format_clock(occurrence.end)}"),
        ("Kde", ", ".join(x for x in (occurrence.venue, occurrence.address) if x)),
    ]  # fmt: skip
    if occurrence.to_be_confirmed:
        rows.append(("Upozornění", "Termín a místo ještě potvrdíme."))
    return rows


def session_ics(blueprint: Blueprint, registration: EventRegistration) -> str:
    """An iCalendar (METHOD:PUBLISH) of the one session the person registered for."""
    settings = get_settings()
    occurrence = _occurrence(blueprint, registration)
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Sdruzeni knihoven CR//SDRUK Campaigns//CS")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    item = icalendar.Event()
    item.add("uid", f"{blueprint.slug}-{registration.session_index + 1}@{settings.sender_domain}")
    item.add("dtstamp", datetime.now(UTC).replace(microsecond=0))
    item.add("dtstart", occurrence.start)
    item.add("dtend", occurrence.end)
    item.add("summary", _session_title(blueprint, occurrence))
    item.add("location", ", ".join(x for x in (occurrence.venue, occurrence.address) if x))
    item.add("status", "TENTATIVE" if occurrence.to_be_confirmed else "CONFIRMED")
    organizer = icalendar.vCalAddress(f"mailto:{settings.sender_email}")
    organizer.params["cn"] = icalendar.vText(settings.sender_name)
    item.add("organizer", organizer)
    cal.add_component(item)
    add_tz = getattr(cal, "add_missing_timezones", None)
    if add_tz is not None:
        add_tz()
    return str(cal.to_ical().decode("utf-8"))


def cancel_url(registration: EventRegistration) -> str:
    assert registration.id is not None
    settings = get_settings()
    token = default_signer().sign(Purpose.CANCEL_REGISTRATION, registration.id)
    return f"{settings.base_url.rstrip('/')}/zrusit-registraci/{token}"


def _event_values(
    blueprint: Blueprint, registration: EventRegistration, occurrence: EventSession
) -> dict[str, str]:
    return {
        "jmeno": registration.name,
        "akce": _session_title(blueprint, occurrence),
        "datum": format_day(occurrence.start),
        "termin": f"{format_weekday_day(occurrence.start)}, {format_clock(occurrence.start)}–"
        f"{format_clock(occurrence.end)}",
        "misto": occurrence.venue,
    }


def _event_notice(
    kind: str, blueprint: Blueprint, registration: EventRegistration, *, ics: bool
) -> Notice:
    occurrence = _occurrence(blueprint, registration)
    return build(
        kind,
        _event_values(blueprint, registration, occurrence),
        button_url=cancel_url(registration),
        details=_session_details(blueprint, occurrence),
        ics=session_ics(blueprint, registration) if ics else None,
    )


def registration_confirmed(blueprint: Blueprint, registration: EventRegistration) -> Notice:
    return _event_notice("registrace-potvrzena", blueprint, registration, ics=True)


def registration_waitlisted(blueprint: Blueprint, registration: EventRegistration) -> Notice:
    return _event_notice("registrace-cekaci-listina", blueprint, registration, ics=False)


def registration_promoted(blueprint: Blueprint, registration: EventRegistration) -> Notice:
    return _event_notice("registrace-uvolnene-misto", blueprint, registration, ics=True)


def subscription_confirm(token: str) -> Notice:
    """The double opt-in link: the same for every address, known or not."""
    base = get_settings().base_url.rstrip("/")
    return build("odber-potvrzeni", {}, button_url=f"{base}/odber/potvrdit/{token}")


def subscription_welcome(preferences_token: str, first_name: str = "") -> Notice:
    """After confirming: the same welcome for everyone."""
    base = get_settings().base_url.rstrip("/")
    return build("odber-vitejte", {"jmeno": first_name}, button_url=f"{base}/p/{preferences_token}")
