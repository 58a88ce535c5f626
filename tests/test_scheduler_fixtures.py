"""Shared pieces of the scheduler tests: a campaigns folder with a test event campaign, a few
libraries and contacts, and helpers to send a run through the real delivery worker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer import settings as mailer_settings
from mailer.models import Contact, LegalBasis, Library, OutboxMessage, Run, ScheduledStep

ROOT = Path(__file__).resolve().parent.parent
PRAGUE = ZoneInfo("Europe/Prague")
SLUG = "test-konference"
GRACE = timedelta(hours=24)
# Tuesday 3 March 2026, 9:00 Prague: a working day inside the sending window, and in the past,
# because the real delivery worker sends only what is due by the real clock.
SEND_AT = datetime(2026, 3, 3, 9, 0, tzinfo=PRAGUE)

CAMPAIGN_TOML = """\
name = "Testovací konference"
kind = "event"
topic = "events"
subject = "Pozvánka: {{{{ event.title }}}}"
preheader = "Program a registrace uvnitř."
send_at = {send_at}
tracking = "individual"
{window}
[segment]
library_type = ["mestska", "obecni"]

[event]
title = "Testovací konference 2027"
start = 2027-03-10T09:00:00
end = 2027-03-11T13:00:00
venue = "Olomouc"
registration_url = "https://sdruk.cz/registrace-test"

[[reminder]]
name = "pripominka"
after_launch = "3d"
audience = {{ received = "launch", joined = false, registered = false, opened = false }}
subject = "Připomínka: {{{{ event.title }}}}"
"""


def write_campaign(
    directory: Path,
    *,
    slug: str = SLUG,
    send_at: datetime = SEND_AT,
    window: str = "",
) -> Path:
    folder = directory / slug
    folder.mkdir(parents=True, exist_ok=True)
    local = send_at.astimezone(PRAGUE).replace(tzinfo=None).isoformat(timespec="seconds")
    (folder / "campaign.toml").write_text(
        CAMPAIGN_TOML.format(send_at=local, window=window), encoding="utf-8"
    )
    # The shipped body links the product's own registration page; this campaign registers on
    # an external page instead, whose link clicks count as registering.
    body = (ROOT / "campaigns" / "knihovny-soucasnosti-2027" / "body.mjml").read_text("utf-8")
    (folder / "body.mjml").write_text(
        body.replace("{{ links.register }}", "{{ event.registration_url }}"), encoding="utf-8"
    )
    return folder


@pytest.fixture(name="campaigns_dir")
def campaigns_dir_fixture(
    configured: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A private campaigns folder with the test campaign, on the configured database."""
    directory = tmp_path / "campaigns"
    directory.mkdir()
    write_campaign(directory)
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(directory))
    mailer_settings.get_settings.cache_clear()
    yield directory
    mailer_settings.get_settings.cache_clear()


@dataclass
class People:
    """Contact ids by role in the story."""

    ids: dict[str, int]

    def __getitem__(self, key: str) -> int:
        return self.ids[key]

    def names(self, ids: set[int]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i] for i in ids}


def add_people(
    engine: Engine, names: list[str], *, shared_library: dict[str, str] | None = None
) -> People:
    """One city library per person (or a shared one: name -> library owner), each contact
    active with a legal basis."""
    shared_library = shared_library or {}
    ids: dict[str, int] = {}
    libraries: dict[str, int] = {}
    with Session(engine) as session:
        for i, name in enumerate(names):
            owner = shared_library.get(name, name)
            if owner not in libraries:
                library = Library(
                    name=f"Městská knihovna {owner.capitalize()}",
                    library_type="mestska",
                    region="Olomoucký kraj",
                    town=f"Obec {owner}",
                    is_member=False,
                )
                session.add(library)
                session.flush()
                assert library.id is not None
                libraries[owner] = library.id
            contact = Contact(
                email=f"{name}{i}@knihovna-test.cz",
                first_name=name.capitalize(),
                last_name="Nováková",
                gender="f",
                library_id=libraries[owner],
                legal_basis=LegalBasis.LEGITIMATE_INTEREST,
            )
            session.add(contact)
            session.flush()
            assert contact.id is not None
            ids[name] = contact.id
        session.commit()
    return People(ids)


def send_all(engine: Engine, tmp_path: Path) -> None:
    """Send everything due through the real worker and the capture transport."""
    from mailer.delivery.send import drain
    from mailer.delivery.transport import CaptureTransport

    asyncio.run(drain(engine, CaptureTransport(tmp_path / "captured")))


def runs(engine: Engine, campaign: str = SLUG) -> list[Run]:
    with Session(engine) as session:
        return list(session.exec(select(Run).where(Run.campaign == campaign).order_by(Run.id)))


def steps(engine: Engine, campaign: str = SLUG) -> dict[str, ScheduledStep]:
    with Session(engine) as session:
        return {
            s.step: s
            for s in session.exec(select(ScheduledStep).where(ScheduledStep.campaign == campaign))
        }


def recipients_of(engine: Engine, run_id: int) -> set[int]:
    with Session(engine) as session:
        return {
            cid
            for cid in session.exec(
                select(OutboxMessage.contact_id).where(OutboxMessage.run_id == run_id)
            )
            if cid is not None
        }


def outbox_of(engine: Engine, run_id: int) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.run_id == run_id)))


STORY = [
    "alena",  # opened (a person)
    "bara",  # only a machine opened and a link scanner clicked
    "cecilie",  # clicked a link (a person): that is an open too
    "dana",  # registered, by the registration system's export
    "eva",  # her library joined after the launch
    "frantiska",  # eva's colleague at the same library
    "gita",  # unsubscribed after the launch
    "hana",  # did nothing
    "ivana",  # clicked the registration link (a person)
]


def play_story(engine: Engine, tmp_path: Path) -> tuple[People, int]:
    """Launch the test campaign, send it, and let people react; returns them and the run."""
    from mailer.compose.campaigns import load_blueprint
    from mailer.delivery.runs import launch
    from mailer.events.record import record_event, unsubscribe
    from mailer.models import EventKind
    from mailer.scheduling.registrations import import_registrations

    people = add_people(engine, STORY, shared_library={"frantiska": "eva"})
    blueprint = load_blueprint(SLUG)
    run_id = launch(engine, blueprint, "launch", now=SEND_AT).run_id
    send_all(engine, tmp_path)
    late_comer = add_people(engine, ["jana"])  # in the segment, but after the launch
    people.ids.update(late_comer.ids)
    outbox = {m.contact_id: m.id for m in outbox_of(engine, run_id)}
    with Session(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        registration_index = run.content["links"].index("https://sdruk.cz/registrace-test")
        other_index = next(
            i for i, link in enumerate(run.content["links"]) if i != registration_index
        )

        def event(name: str, kind: EventKind, **kw: object) -> None:
            record_event(
                session,
                kind,
                contact_id=people[name],
                run_id=run_id,
                outbox_id=outbox[people[name]],
                **kw,  # type: ignore[arg-type]
            )

        event("alena", EventKind.OPEN)
        event("bara", EventKind.OPEN, is_machine=True, machine_reason="apple-mpp")
        event("bara", EventKind.CLICK, link_index=other_index, is_machine=True)
        event("cecilie", EventKind.CLICK, link_index=other_index)
        event("ivana", EventKind.CLICK, link_index=registration_index)
        unsubscribe(session, people["gita"], "odkaz v e-mailu", run_id=run_id)
        library_id = session.get(Contact, people["eva"]).library_id  # type: ignore[union-attr]
        library = session.get(Library, library_id)
        assert library is not None
        library.is_member = True
        session.add(library)
        session.commit()
    export = tmp_path / "registrace.csv"
    export.write_text(
        "Jméno;Příjmení;E-mail;Datum registrace\n"
        f"Dana;Nováková;DANA{people['dana'] - 1}@knihovna-test.cz;4. 3. 2026 10:15\n",
        encoding="utf-8",
    )
    report = import_registrations(engine, export, campaign=SLUG)
    assert report.recorded == 1, report
    return people, run_id
