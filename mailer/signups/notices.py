"""The words of transactional messages: what each confirmation, welcome and notification says
(Czech), as `Notice` values for `mailer.delivery.transactional.enqueue`."""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar

from mailer.compose.campaigns import Blueprint
from mailer.compose.campaigns import Session as EventSession
from mailer.compose.czech import format_clock, format_day, format_weekday_day
from mailer.compose.transactional import Notice
from mailer.models import (
    LIBRARY_TYPE_LABELS,
    EventRegistration,
    LibraryType,
    MembershipApplication,
)
from mailer.settings import get_settings
from mailer.tokens import Purpose, default_signer


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


def application_received(application: MembershipApplication) -> Notice:
    """To the applicant, at once."""
    settings = get_settings()
    return Notice(
        kind="prihlaska-prijata",
        subject="Přijali jsme přihlášku vaší knihovny do Sdružení knihoven ČR",
        preheader="Děkujeme. Přihlášku posoudíme a ozveme se vám.",
        heading="Děkujeme za přihlášku",
        greeting="Dobrý den,",
        paragraphs=[
            f"přijali jsme přihlášku knihovny „{application.library_name}“ do Sdružení "
            "knihoven ČR. Přihlášku nyní posoudíme a o výsledku vás budeme informovat e-mailem. "
            "Fakturu na členský příspěvek pošleme po schválení.",
            "Pro kontrolu, co jste nám poslali:",
        ],
        details=_application_details(application),
        button_label="Web Sdružení knihoven ČR",
        button_url=settings.sender_web,
        after=[
            "Pokud je v údajích chyba nebo máte otázku, stačí odpovědět na tento e-mail.",
        ],
        why="Tuto zprávu jste obdrželi, protože jste na našem webu odeslali přihlášku "
        "knihovny do Sdružení knihoven ČR. Další zprávy vám kvůli ní posílat nebudeme, "
        "kromě výsledku.",
    )


def application_for_staff(application: MembershipApplication) -> Notice:
    """To the association's staff: a new application waits for a decision."""
    settings = get_settings()
    base = settings.base_url.rstrip("/")
    return Notice(
        kind="prihlaska-pro-sdruk",
        subject=f"Nová přihláška do SDRUK: {application.library_name}",
        preheader="Přihláška čeká na schválení v konzoli.",
        heading="Nová přihláška ke členství",
        greeting="Dobrý den,",
        paragraphs=[
            f"knihovna „{application.library_name}“ odeslala přihlášku ke členství. "
            "Přihláška čeká na schválení nebo zamítnutí v konzoli."
        ],
        details=_application_details(application),
        button_label="Otevřít přihlášku v konzoli",
        button_url=f"{base}/console/applications/{application.id}",
        why="Tuto zprávu dostáváte jako pracovník Sdružení knihoven ČR, na jehož adresu "
        "chodí oznámení o nových přihláškách.",
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


_EVENT_WHY = (
    "Tuto zprávu jste obdrželi, protože jste se na našem webu registrovali na akci Sdružení "
    "knihoven ČR. Další zprávy vám kvůli registraci pošleme jen k této akci."
)


def registration_confirmed(blueprint: Blueprint, registration: EventRegistration) -> Notice:
    occurrence = _occurrence(blueprint, registration)
    title = _session_title(blueprint, occurrence)
    return Notice(
        kind="registrace-potvrzena",
        subject=f"Registrace potvrzena: {title}",
        preheader=f"{format_day(occurrence.start)}, {occurrence.venue}",
        heading="Jste registrováni",
        greeting=f"Dobrý den, {registration.name},",
        paragraphs=[
            f"děkujeme za registraci. Místo na akci „{title}“ máte zajištěné. "
            "Termín si uložíte do kalendáře z přílohy.",
        ],
        details=_session_details(blueprint, occurrence),
        button_label="Zrušit registraci",
        button_url=cancel_url(registration),
        after=[
            "Pokud nakonec nemůžete přijít, zrušte prosím registraci tlačítkem výše: "
            "místo připadne dalšímu zájemci z čekací listiny.",
            "Dva dny před akcí vám pošleme praktické informace.",
        ],
        why=_EVENT_WHY,
        ics=session_ics(blueprint, registration),
    )


def registration_waitlisted(blueprint: Blueprint, registration: EventRegistration) -> Notice:
    occurrence = _occurrence(blueprint, registration)
    title = _session_title(blueprint, occurrence)
    return Notice(
        kind="registrace-cekaci-listina",
        subject=f"Čekací listina: {title}",
        preheader="Jakmile se uvolní místo, dáme vám vědět.",
        heading="Jste na čekací listině",
        greeting=f"Dobrý den, {registration.name},",
        paragraphs=[
            f"akce „{title}“ je zatím plně obsazená, proto jsme vás zapsali na čekací listinu. "
            "Jakmile se uvolní místo, automaticky vám ho přidělíme a pošleme potvrzení.",
        ],
        details=_session_details(blueprint, occurrence),
        button_label="Odhlásit se z čekací listiny",
        button_url=cancel_url(registration),
        why=_EVENT_WHY,
    )


def registration_promoted(blueprint: Blueprint, registration: EventRegistration) -> Notice:
    occurrence = _occurrence(blueprint, registration)
    title = _session_title(blueprint, occurrence)
    return Notice(
        kind="registrace-uvolnene-misto",
        subject=f"Uvolnilo se místo: {title}",
        preheader="Místo na akci je vaše.",
        heading="Uvolnilo se místo, je vaše",
        greeting=f"Dobrý den, {registration.name},",
        paragraphs=[
            f"na akci „{title}“ se uvolnilo místo a podle pořadí na čekací listině připadlo "
            "vám. Registrace je potvrzená, termín si uložíte do kalendáře z přílohy.",
        ],
        details=_session_details(blueprint, occurrence),
        button_label="Zrušit registraci",
        button_url=cancel_url(registration),
        after=["Pokud už přijít nemůžete, zrušte prosím registraci, ať místo dostane další."],
        why=_EVENT_WHY,
        ics=session_ics(blueprint, registration),
    )


_SUBSCRIBE_WHY = (
    "Tuto zprávu jste obdrželi, protože někdo zadal tuto adresu do formuláře odběru novinek "
    "na našem webu. Pokud jste to nebyli vy, zprávu ignorujte: bez potvrzení vám nic posílat "
    "nebudeme."
)


def subscription_confirm(token: str) -> Notice:
    """The double opt-in link: the same for every address, known or not."""
    base = get_settings().base_url.rstrip("/")
    return Notice(
        kind="odber-potvrzeni",
        subject="Potvrďte prosím odběr novinek Sdružení knihoven ČR",
        preheader="Jedno kliknutí a je hotovo. Odkaz platí 7 dní.",
        heading="Potvrďte prosím odběr",
        greeting="Dobrý den,",
        paragraphs=[
            "děkujeme za zájem o novinky Sdružení knihoven ČR. Odběr začne platit, až ho "
            "potvrdíte tlačítkem níže. Odkaz platí 7 dní.",
        ],
        button_label="Potvrdit odběr",
        button_url=f"{base}/odber/potvrdit/{token}",
        why=_SUBSCRIBE_WHY,
    )


def subscription_welcome(preferences_token: str) -> Notice:
    """After confirming: the same welcome for everyone."""
    base = get_settings().base_url.rstrip("/")
    return Notice(
        kind="odber-vitejte",
        subject="Vítejte mezi odběrateli novinek Sdružení knihoven ČR",
        preheader="Odběr je potvrzený. Co od nás můžete čekat.",
        heading="Vítejte",
        greeting="Dobrý den,",
        paragraphs=[
            "odběr je potvrzený. Budeme vám psát o tématech, která jste si vybrali: o akcích "
            "a workshopech pro knihovny, o členství ve Sdružení a zpravodaj s novinkami ze "
            "světa knihoven. Píšeme jen, když máme co říct.",
            "Témata můžete kdykoli změnit nebo se odhlásit jedním kliknutím, odkaz je v každé "
            "naší zprávě.",
        ],
        button_label="Nastavit témata odběru",
        button_url=f"{base}/p/{preferences_token}",
        why="Tuto zprávu jste obdrželi, protože jste potvrdili odběr novinek Sdružení "
        "knihoven ČR na našem webu.",
    )
