"""The demo told relative to today, so that a first `make run` makes sense on any date.

The shipped campaigns carry fixed dates. On a first start after them, every step would be
missed. `prepare_demo` moves the demo's schedule instead. Each shipped campaign gets a new
stored revision (the shipped files stay as they are) whose dates are moved by the same whole
number of weeks, so weekdays, times of day and the gaps between steps stay as written. The
recruitment launch then falls two to nine days ago, its reminders lie ahead, and the event
campaigns come later. The recruitment launch is then played as a past run through the real
write paths: delivery's launch, the outbox's claims and sent marks at past times, and
events/record.py for opens and clicks of people and machines, a few joins, a hard bounce and an
unsubscribe. A few contacts answered the tracking question before it (some yes, some no), so
the contact pages and the results show tracking consent. Finally the steps are scheduled, and
the run is linked as the launch step's run.

Safe to run again: all of it happens only while the recruitment campaign has no launch run,
and the schedule is moved only once (a revision by the demo's author exists).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.audience import tracking_consent as consent
from mailer.audience.membership import record_join
from mailer.compose import store
from mailer.compose.campaigns import load_blueprint
from mailer.delivery import outbox as ob
from mailer.delivery import runs
from mailer.events import record
from mailer.models import (
    Contact,
    ContactStatus,
    EventKind,
    Library,
    OutboxMessage,
    Run,
    TrackingConsent,
)
from mailer.scheduling.sync import sync_blueprints

DEMO_AUTHOR = "ukázková data"
RECRUITMENT = "join-this-year-2026"
# The recruitment launch lands this long ago at least, and less than a week more: its first
# reminder, ten days after it, is then between one and eight days ahead.
LAUNCH_AGO = timedelta(days=2)
WEEK = timedelta(weeks=1)
WORKER = "ukazka"

# A TOML local date-time, or a year standing alone in text ("(2026)", "v roce 2026"), but not
# one inside a slug or URL ("…-2027").
_MOMENT_OR_YEAR = re.compile(
    r"(?P<moment>\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)|(?<![\w/-])(?P<year>20\d\d)(?![\w-])"
)


@dataclass
class DemoReport:
    shift: timedelta | None = None  # None: the schedule had been moved before
    moved: list[str] = field(default_factory=list)
    run_id: int | None = None  # None: the story had been played before
    launched_at: datetime | None = None
    sent: int = 0
    joined: int = 0
    tracking_answers: int = 0


def demo_shift(send_at: datetime, now: datetime) -> timedelta:
    """Whole weeks that bring the recruitment launch to 2–9 days before `now`."""
    return WEEK * ((now - LAUNCH_AGO - send_at) // WEEK)


def shift_text(text: str, shift: timedelta, years: int) -> str:
    """Every TOML local date-time moved by `shift` (wall-clock time kept), every standalone
    year in the text moved by `years`."""

    def move(match: re.Match[str]) -> str:
        if match.group("moment"):
            moment = datetime.fromisoformat(match.group("moment"))
            return (moment + shift).isoformat(timespec="seconds")
        return str(int(match.group("year")) + years)

    return _MOMENT_OR_YEAR.sub(move, text)


def prepare_demo(engine: Engine, *, now: datetime) -> DemoReport:
    """Move the demo's schedule to today and play the recruitment launch as a past run."""
    report = DemoReport()
    store.sync_folders(engine)
    with Session(engine) as session:
        played = session.exec(
            select(Run.id).where(Run.campaign == RECRUITMENT, Run.step == "launch")
        ).first()
    # Once the recruitment campaign has a launch run (this story's, or one staff made), its
    # dates are history: moving them again would leave the run behind.
    if played is None:
        _move_schedule(engine, now, report)
        _play_recruitment(engine, report)
    # Imported again, the demo directory says the story's libraries are not members; the
    # import keeps memberships recorded by staff, so the story's joinings stand.
    sync_blueprints(engine)
    return report


def _move_schedule(engine: Engine, now: datetime, report: DemoReport) -> None:
    slugs = store.stored_slugs(engine)
    if any(r.author == DEMO_AUTHOR for slug in slugs for r in store.history(engine, slug)):
        return
    recruitment = load_blueprint(RECRUITMENT)
    shift = demo_shift(recruitment.send_at, now)
    years = (recruitment.send_at + shift).year - recruitment.send_at.year
    report.shift = shift
    for slug in slugs:
        current = store.latest(engine, slug)
        if current is None or current.author != store.FOLDER_AUTHOR:
            continue  # a campaign written or edited in the console keeps its own dates
        files = {
            name: shift_text(text, shift, years) if name.endswith((".toml", ".mjml")) else text
            for name, text in current.files.items()
        }
        if files == current.files:
            continue
        store.save(
            engine,
            slug,
            files,
            author=DEMO_AUTHOR,
            summary=f"Ukázka: termíny posunuty o {shift.days // 7} týdnů, aby navazovaly na dnešek",
            base_revision=current.number,
            now=now,
        )
        report.moved.append(slug)


def _play_recruitment(engine: Engine, report: DemoReport) -> None:
    blueprint = load_blueprint(RECRUITMENT)
    launched_at = blueprint.send_at
    report.tracking_answers = _answer_tracking(engine, launched_at)
    launched = runs.launch(engine, blueprint, "launch", actor=DEMO_AUTHOR, now=launched_at)
    report.run_id, report.launched_at = launched.run_id, launched_at
    report.sent = _send_in_the_past(engine, launched.run_id, launched_at)
    _react(engine, launched.run_id, launched_at, report)


def _answer_tracking(engine: Engine, before: datetime) -> int:
    """Some contacts answered the tracking question in the days before the launch: about one
    in 40 said yes on the sign-up form, one in 60 said no on their preferences page."""
    answered = 0
    with Session(engine) as session:
        contacts = session.exec(
            select(Contact).where(Contact.status == ContactStatus.ACTIVE).order_by(col(Contact.id))
        ).all()
        for index, contact in enumerate(contacts):
            if index % 40 == 5:
                value, source = TrackingConsent.GRANTED.value, consent.SOURCE_SUBSCRIBE
            elif index % 60 == 11:
                value, source = TrackingConsent.DENIED.value, consent.SOURCE_PREFERENCES
            else:
                continue
            consent.record_consent(
                session,
                contact,
                value,
                source=source,
                wording=consent.wording(value),
                ip="192.0.2." + str(index % 250 + 1),  # a documentation address (RFC 5737)
                now=before - timedelta(days=index % 5 + 1),
            )
            answered += 1
        session.commit()
    return answered


def _send_in_the_past(engine: Engine, run_id: int, launched_at: datetime) -> int:
    """The outbox's own claims and sent marks, at the times the sending took."""
    sent = 0
    at = launched_at
    while True:
        with engine.begin() as conn:
            claimed = ob.claim(conn, worker=WORKER, limit=200, now=at, lease_seconds=600, topics={})
            if not claimed.messages:
                ob.finish_runs(conn, at)
                return sent
            at += timedelta(seconds=0.6 * len(claimed.messages))
            ob.mark_sent(conn, [(m.id, "250 2.0.0 Ok: ukázka") for m in claimed.messages], at)
            sent += len(claimed.messages)


def _react(engine: Engine, run_id: int, launched_at: datetime, report: DemoReport) -> None:
    """What the next days brought: people's and machines' opens and clicks (the recruitment
    campaign tracks anonymously), a bounce, an unsubscribe and a few libraries joining."""
    rng = random.Random(run_id)
    with Session(engine) as session:
        messages = list(
            session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.run_id == run_id, OutboxMessage.sent_at.is_not(None))  # type: ignore[union-attr]
                .order_by(col(OutboxMessage.id))
            )
        )
        for message in messages:
            assert message.sent_at is not None
            if rng.random() < 0.08:  # Apple Mail Privacy Protection, seconds after delivery
                record.record_event(
                    session,
                    EventKind.OPEN,
                    run_id=run_id,
                    is_machine=True,
                    machine_reason="apple_mpp",
                    occurred_at=message.sent_at + timedelta(seconds=rng.randint(2, 40)),
                )
            if rng.random() < 0.02:  # a security gateway follows the link at once
                record.record_event(
                    session,
                    EventKind.CLICK,
                    run_id=run_id,
                    link_index=0,
                    is_machine=True,
                    machine_reason="soon_after_delivery",
                    occurred_at=message.sent_at + timedelta(seconds=rng.randint(1, 9)),
                )
            if rng.random() < 0.34:  # a person reads it, most within the first day
                read = message.sent_at + timedelta(minutes=int(rng.expovariate(1 / 600)) + 3)
                record.record_event(session, EventKind.OPEN, run_id=run_id, occurred_at=read)
                if rng.random() < 0.3:
                    record.record_event(
                        session,
                        EventKind.CLICK,
                        run_id=run_id,
                        link_index=0,
                        occurred_at=read + timedelta(minutes=rng.randint(1, 5)),
                    )
        if len(messages) > 20:
            bounced = messages[7]
            target = record.BounceTarget(bounced.id or 0, run_id, bounced.contact_id)
            record.hard_bounce(
                session,
                target,
                status="5.1.1",
                diagnostic="Adresa příjemce neexistuje",
                now=launched_at + timedelta(minutes=3),
            )
            leaving = messages[13]
            if leaving.contact_id is not None:
                record.unsubscribe(
                    session,
                    leaving.contact_id,
                    "one-click",
                    run_id=run_id,
                    outbox_id=leaving.id,
                    now=launched_at + timedelta(hours=26),
                )
        session.commit()
        report.joined = _join_a_few(session, run_id, messages, launched_at)
        session.commit()


def _join_a_few(
    session: Session, run_id: int, messages: list[OutboxMessage], launched_at: datetime
) -> int:
    """Three libraries among the recipients join in the days after the launch, recorded by
    the function the console's "Zaznamenat vstup do SDRUK" uses."""
    contact_ids = [m.contact_id for m in messages if m.contact_id is not None]
    libraries: list[int] = []
    for contact_id in contact_ids[30::97]:
        contact = session.get(Contact, contact_id)
        if contact is not None and contact.library_id and contact.library_id not in libraries:
            libraries.append(contact.library_id)
        if len(libraries) == 3:
            break
    for day, library_id in enumerate(libraries, start=1):
        library = session.get(Library, library_id)
        assert library is not None
        record_join(
            session,
            library,
            actor=DEMO_AUTHOR,
            run_id=run_id,
            now=launched_at + timedelta(days=day, hours=2),
        )
    return len(libraries)
