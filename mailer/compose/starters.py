"""Starters: real Czech campaigns in blocks that a new campaign begins from, so staff never face
a blank page (recruitment, an event invitation with an .ics, a workshop series, a newsletter).
Dates are set relative to the day the campaign is started; staff change them in the form."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from mailer.compose.drafts import Draft

WINDOW = {
    "start": "08:00",
    "end": "17:00",
    "days": ["po", "út", "st", "čt", "pá"],
    "holidays": True,
}
ALL_LIBRARIES = {
    "library_type": ["krajska", "mestska", "obecni", "vedecka", "univerzitni", "odborna"]
}


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute))


def _opening(text: str) -> dict[str, Any]:
    return {"type": "opening", "markdown": text}


def recruitment(today: date) -> Draft:
    send = today + timedelta(days=14)
    return Draft(
        settings={
            "name": f"Nábor členů {send.year}",
            "kind": "recruitment",
            "topic": "membership",
            "subject": "Pozvánka do Sdružení knihoven ČR pro vaši knihovnu",
            "preheader": "Společně hájíme zájmy knihoven, radíme, vzděláváme a propojujeme.",
            "send_at": _at(send, 9, 30),
            "tracking": "anonymous",
            "sending_window": dict(WINDOW),
            "segment": {"member": False},
            "reminder": [
                {
                    "name": "pripominka",
                    "after_launch": "10d",
                    "audience": {"received": "launch", "joined": False},
                    "subject": "Připomínáme: členství ve Sdružení knihoven ČR",
                }
            ],
        },
        blocks={
            "blocks": [
                {"type": "heading", "text": "Pozvánka do Sdružení knihoven ČR"},
                _opening(
                    "dovolte nám pozvat knihovnu [[knihovna]] mezi členy Sdružení knihoven ČR. "
                    "Sdružujeme knihovny krajské, městské, obecní, vědecké i odborné z celé "
                    "republiky."
                ),
                {
                    "type": "text",
                    "markdown": "Co členství přináší:\n\n"
                    "- **hlas v jednáních** se státem a zřizovateli,\n"
                    "- **právní poradenství** v otázkách provozu knihovny,\n"
                    "- **vzdělávání** pro vedoucí i knihovníky,\n"
                    "- **setkávání** na konferenci Knihovny současnosti.",
                },
                {
                    "type": "button",
                    "label": "Chceme být členem",
                    "url": "https://sdruk.cz/chceme-byt-clenem",
                },
                {
                    "type": "text",
                    "markdown": "S čímkoli vám rádi poradíme na adrese "
                    "[sdruk@sdruk.cz](mailto:sdruk@sdruk.cz).\n\n"
                    "S přátelským pozdravem  \nSdružení knihoven ČR",
                },
            ],
            "openings": {
                "pripominka": "před deseti dny jsme vám poslali pozvánku do Sdružení knihoven "
                "ČR. Pokud jste ji přehlédli, dovolujeme si ji krátce připomenout."
            },
        },
    )


def event_invitation(today: date) -> Draft:
    send = today + timedelta(days=14)
    day = send + timedelta(days=30)
    return Draft(
        settings={
            "name": f"Pozvánka na seminář {day.year}",
            "kind": "event",
            "topic": "events",
            "subject": "Pozvánka na seminář pro knihovny",
            "preheader": "Praktický seminář pro knihovnice a knihovníky. Registrace uvnitř.",
            "send_at": _at(send, 9, 30),
            "tracking": "individual",
            "sending_window": dict(WINDOW),
            "segment": dict(ALL_LIBRARIES),
            "event": {
                "title": "Seminář pro knihovny",
                "start": _at(day, 9, 30),
                "end": _at(day, 15, 0),
                "venue": "Praha, Městská knihovna v Praze",
                "address": "Mariánské náměstí 98/1, 110 00 Praha 1",
                "description": "Seminář Sdružení knihoven ČR pro knihovnice a knihovníky.",
            },
            "reminder": [
                {
                    "name": "2-dny-pred",
                    "before_event": "2d",
                    "audience": {"received": "launch", "registered": False},
                    "subject": "Pozítří začíná seminář pro knihovny",
                    "preheader": "Poslední příležitost se zaregistrovat.",
                }
            ],
        },
        blocks={
            "blocks": [
                {"type": "heading", "text": "Seminář pro knihovny"},
                _opening(
                    "srdečně vás zveme na seminář Sdružení knihoven ČR. Přijďte načerpat "
                    "inspiraci a sdílet zkušenosti s kolegyněmi a kolegy z dalších knihoven."
                ),
                {"type": "event"},
                {
                    "type": "text",
                    "markdown": "Účast je pro členské knihovny **zdarma**. Kapacita sálu je "
                    "omezená, proto prosíme o včasnou registraci.",
                },
                {"type": "button", "label": "Zaregistrovat se na seminář", "url": "registrace"},
            ],
            "openings": {
                "2-dny-pred": "už pozítří začíná seminář [[název akce]] a zatím jsme od vás "
                "nedostali registraci. Pokud se chcete přidat, ještě je čas."
            },
        },
    )


def workshop_series(today: date) -> Draft:
    send = today + timedelta(days=14)
    first = send + timedelta(days=28)
    sessions = [
        ("Strategické plánování knihovny", "Praha, Městská knihovna v Praze"),
        ("Vedení a motivace týmu", "Brno, Moravská zemská knihovna"),
        ("Knihovna a zřizovatel: jak spolu mluvit", "Olomouc, Vědecká knihovna v Olomouci"),
    ]
    dates = [first + timedelta(days=28 * i) for i in range(len(sessions))]
    return Draft(
        settings={
            "name": f"Cyklus workshopů {first.year}",
            "kind": "event",
            "topic": "events",
            "subject": "Cyklus workshopů pro vedoucí knihoven",
            "preheader": "Tři praktická setkání. Vyberte si termín, který se vám hodí.",
            "send_at": _at(send, 9, 30),
            "tracking": "individual",
            "sending_window": dict(WINDOW),
            "segment": dict(ALL_LIBRARIES),
            "event": {
                "title": "Cyklus workshopů pro vedoucí knihoven",
                "start": _at(dates[0], 9, 30),
                "end": _at(dates[-1], 15, 30),
                "venue": "tři krajská města",
                "description": "Praktické workshopy Sdružení knihoven ČR pro vedoucí knihoven.",
                "sessions": [
                    {
                        "title": title,
                        "start": _at(day, 9, 30),
                        "end": _at(day, 15, 30),
                        "venue": venue,
                    }
                    for (title, venue), day in zip(sessions, dates, strict=True)
                ],
            },
            "reminder": [
                {
                    "name": "tyden-pred",
                    "before_event": "7d",
                    "audience": {"received": "launch", "registered": False},
                    "subject": "Za týden začíná cyklus workshopů",
                }
            ],
        },
        blocks={
            "blocks": [
                {"type": "heading", "text": "Cyklus workshopů pro vedoucí knihoven"},
                _opening(
                    "připravili jsme pro vás tři praktická setkání o vedení knihovny. Každý "
                    "workshop trvá jeden den a můžete se přihlásit jen na ty, které vás zajímají."
                ),
                {
                    "type": "text",
                    "markdown": "\n".join(
                        f"- **{d.day}. {d.month}. {d.year}:** {t} ({v})"
                        for (t, v), d in zip(sessions, dates, strict=True)
                    ),
                },
                {"type": "button", "label": "Vybrat termín a přihlásit se", "url": "registrace"},
                {"type": "divider"},
                {
                    "type": "columns",
                    "left": "**Pro koho:** ředitelky, ředitelé a vedoucí oddělení knihoven.",
                    "right": "**Cena:** pro členy zdarma, pro ostatní 600 Kč za workshop.",
                },
            ],
            "openings": {},
        },
    )


def newsletter(today: date) -> Draft:
    send = today + timedelta(days=7)
    return Draft(
        settings={
            "name": f"Zpravodaj {send.month}/{send.year}",
            "kind": "newsletter",
            "topic": "newsletter",
            "subject": "Zpravodaj Sdružení knihoven ČR",
            "preheader": "Co se v posledních týdnech událo a co chystáme.",
            "send_at": _at(send, 10, 0),
            "tracking": "anonymous",
            "sending_window": dict(WINDOW),
            "segment": {"member": True},
        },
        blocks={
            "blocks": [
                {"type": "heading", "text": "Zpravodaj Sdružení knihoven ČR"},
                _opening("přinášíme vám přehled novinek ze Sdružení knihoven ČR."),
                {"type": "heading", "text": "Co se událo", "level": 2},
                {
                    "type": "text",
                    "markdown": "Krátce popište hlavní novinku. Podrobnosti najdete na "
                    "[webu Sdružení knihoven ČR](https://www.sdruk.cz).",
                },
                {"type": "divider"},
                {"type": "heading", "text": "Co chystáme", "level": 2},
                {"type": "text", "markdown": "- první plánovaná akce,\n- druhá plánovaná akce."},
            ],
            "openings": {},
        },
    )


STARTERS: dict[str, tuple[str, str, Callable[[date], Draft]]] = {
    "nabor": ("Nábor členů", "Pozvánka do sdružení s připomínkou po 10 dnech", recruitment),
    "akce": (
        "Pozvánka na akci",
        "Seminář s údaji o akci, pozvánkou do kalendáře (.ics) a připomínkou 2 dny předem",
        event_invitation,
    ),
    "workshopy": (
        "Cyklus workshopů",
        "Několik termínů v různých městech, připomínka týden předem",
        workshop_series,
    ),
    "zpravodaj": ("Zpravodaj", "Novinky pro členské knihovny, bez připomínek", newsletter),
}
