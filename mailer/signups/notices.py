"""The words of transactional messages: what each confirmation, welcome and notification says
(Czech), as `Notice` values for `mailer.delivery.transactional.enqueue`."""

from __future__ import annotations

from mailer.compose.transactional import Notice
from mailer.models import LIBRARY_TYPE_LABELS, LibraryType, MembershipApplication
from mailer.settings import get_settings


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
