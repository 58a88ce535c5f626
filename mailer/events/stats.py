"""Results of a run: the one place where its numbers are computed and where they are defined.

`sdruk runs stats`, the console's results page (funnel, tiles, chart, tables) and its CSV
export all read these functions, so the command line and the browser cannot disagree.

One SQL query (`_recipient_query`) states, per recipient (one outbox row of the run), what
happened to it and when it first happened. Totals, the breakdowns by library type and region,
the funnel, the activity over time and the per-recipient CSV rows are all sums or projections
of those rows, in Python. Only raw event counts and clicks per link are separate queries.

What the numbers mean:

- recipients: outbox rows of the run; queued (incl. retry and sending), sent, failed, skipped:
  by message status.
- bounced / hard_bounces / soft_bounces: recipients whose message came back (DSN), hard or soft.
- delivered: sent, and no bounce of either kind came back.
- unique_human_opens ("opened"): recipients who opened as people. A person who clicked or
  opened the web version has opened the message even when their client blocked the pixel
  (the same rule as the segment field `opened`). Machine opens (Apple Mail Privacy
  Protection, image proxies, link scanners) never count here.
- unique_human_clicks ("clicked"): recipients who clicked a link as people.
- machine_only_recipients: recipients whose every open, click and view was a machine's.
- human_opens, machine_opens, human_clicks, machine_clicks, web_views: raw event counts.
  Anonymous tracking stores no recipient, so such runs have only these.
- unsubscribes: recipients who unsubscribed through this run (the event names their message,
  or names this run and their contact). complaints: recipients who reported it as spam.
- registered: recipients whose contact registered for the campaign's event after the run
  started (`since`), by the evidence reminder audiences use
  (`mailer.audience.engagement.registered_contacts`: an imported registration, or a person's
  click on the registration link).
- libraries: libraries among the sent recipients; joined_libraries: those of them whose joining
  SDRUK was recorded after the run started and is credited to this run's campaign (the
  recruitment campaign that reached the library last before it joined; see
  `mailer.audience.membership`). Event invitations never count joinings.
- tracked_sent / tracked_delivered: sent (delivered) messages that went out individually
  tracked: with the open pixel and personal links, as the contact's tracking consent allowed
  when the message was claimed (`OutboxMessage.individually_tracked`; rows from before it was
  recorded count as the run's tracking). Opens and clicks per recipient exist only for these,
  so their rates (funnel, breakdowns) are shares of tracked_sent, not of sent.
- funnel: sent → delivered → opened → clicked → joined (libraries) → registered. Without
  individual tracking "opened" and "clicked" are people's events (human_opens, human_clicks),
  since no recipient is known.
- activity: the funnel's sent, opened, clicked and unsubscribed spread over time, counting each
  recipient once at its first time (or each event, without individual tracking), so each
  series ends at the number shown in the funnel and the tiles.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlmodel import Session, col

from mailer.audience.engagement import registered_contacts
from mailer.audience.membership import credited_campaign
from mailer.models import (
    LIBRARY_TYPE_LABELS,
    Contact,
    Event,
    EventKind,
    Library,
    LibraryType,
    MessageStatus,
    OutboxMessage,
    Run,
)

_SEEN = (EventKind.OPEN, EventKind.CLICK, EventKind.WEB_VIEW)
_BOUNCES = (EventKind.BOUNCE_HARD, EventKind.BOUNCE_SOFT)
FUNNEL_STEPS = ("sent", "delivered", "opened", "clicked", "joined", "registered")
ACTIVITY_SERIES = ("sent", "opened", "clicked", "unsubscribed")


@dataclass
class LinkStats:
    index: int
    url: str
    people: int = 0  # recipients who clicked it (distinct, people only)
    human_clicks: int = 0
    machine_clicks: int = 0


@dataclass
class RecipientResult:
    """One recipient of a run (one outbox row) and what happened to it."""

    outbox_id: int
    email: str
    status: str
    sent_at: datetime | None
    contact_id: int | None
    library_id: int | None
    library: str
    library_type: str
    region: str
    opened_at: datetime | None = None  # first open, click or web view by a person
    clicked_at: datetime | None = None  # first click by a person
    unsubscribed_at: datetime | None = None
    bounced_hard: bool = False
    bounced_soft: bool = False
    complained: bool = False
    registered: bool = False
    joined: bool = False  # its library joined SDRUK after the run started, credited to it
    machine_only: bool = False  # opened, clicked or viewed by machines only
    tracked: bool = True  # went out individually tracked (pixel, personal links)

    @property
    def sent(self) -> bool:
        return self.status == MessageStatus.SENT

    @property
    def bounced(self) -> bool:
        return self.bounced_hard or self.bounced_soft

    @property
    def delivered(self) -> bool:
        return self.sent and not self.bounced

    @property
    def tracked_sent(self) -> bool:
        return self.sent and self.tracked

    @property
    def opened(self) -> bool:
        return self.opened_at is not None

    @property
    def clicked(self) -> bool:
        return self.clicked_at is not None

    @property
    def unsubscribed(self) -> bool:
        return self.unsubscribed_at is not None


@dataclass
class GroupStats:
    """One row of a breakdown (a library type or a region); counts of recipients unless named
    otherwise."""

    key: str
    label: str
    recipients: int = 0
    sent: int = 0
    delivered: int = 0
    tracked_sent: int = 0  # sent individually tracked: the base of opened and clicked rates
    tracked_delivered: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0
    registered: int = 0
    libraries: int = 0  # libraries among the sent recipients
    joined_libraries: int = 0

    def add(self, recipients: list[RecipientResult]) -> None:
        self.recipients += len(recipients)
        self.sent += sum(r.sent for r in recipients)
        self.delivered += sum(r.delivered for r in recipients)
        self.tracked_sent += sum(r.tracked_sent for r in recipients)
        self.tracked_delivered += sum(r.delivered and r.tracked for r in recipients)
        self.opened += sum(r.opened for r in recipients)
        self.clicked += sum(r.clicked for r in recipients)
        self.unsubscribed += sum(r.unsubscribed for r in recipients)
        self.bounced += sum(r.bounced for r in recipients)
        self.complained += sum(r.complained for r in recipients)
        self.registered += sum(r.registered for r in recipients)
        libraries = {r.library_id: r.joined for r in recipients if r.sent and r.library_id}
        self.libraries += len(libraries)
        self.joined_libraries += sum(libraries.values())


@dataclass
class RunStats:
    run_id: int
    campaign: str
    step: str
    status: str
    tracking: str
    since: datetime  # when the run started: joinings and registrations count from here
    kind: str = ""  # the campaign's kind (recruitment, event, newsletter): which goal it pursues
    recipients: int = 0
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    tracked_sent: int = 0
    tracked_delivered: int = 0
    failed: int = 0
    skipped: int = 0
    bounced: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    unique_human_opens: int = 0
    human_opens: int = 0  # all open events by people (anonymous runs have only this)
    machine_opens: int = 0
    machine_only_recipients: int = 0  # recipients whose every open/click was a machine
    unique_human_clicks: int = 0
    human_clicks: int = 0
    machine_clicks: int = 0
    web_views: int = 0
    unsubscribes: int = 0
    complaints: int = 0
    registered: int = 0
    libraries: int = 0
    joined_libraries: int = 0
    funnel: dict[str, int] = field(default_factory=dict)  # FUNNEL_STEPS in order
    links: list[LinkStats] = field(default_factory=list)
    by_library_type: list[GroupStats] = field(default_factory=list)
    by_region: list[GroupStats] = field(default_factory=list)

    @property
    def individual(self) -> bool:
        """Opens and clicks are known per recipient (not anonymous, not off)."""
        return self.tracking == "individual"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat()
        return data


@dataclass
class Activity:
    """The funnel's sent, opened, clicked and unsubscribed in equal time buckets from `start`:
    `counts[series][i]` happened in bucket i (the last bucket also takes anything later)."""

    start: datetime
    step: timedelta
    counts: dict[str, list[int]]

    @property
    def empty(self) -> bool:
        return not any(any(values) for values in self.counts.values())

    def at(self, index: int) -> datetime:
        return self.start + self.step * index

    def cumulative(self, series: str) -> list[int]:
        running, out = 0, []
        for n in self.counts[series]:
            running += n
            out.append(running)
        return out


@dataclass
class RunReport:
    """All of a run's results: the numbers, the recipients behind them, and their timing."""

    stats: RunStats
    recipients: list[RecipientResult]
    activity: Activity


class RunNotFound(LookupError):
    pass


def credit_from(run: Run) -> datetime:
    """Joinings and registrations after this moment are credited to the run."""
    return run.started_at or run.created_at


def _kinds(kinds: Iterable[EventKind]) -> ColumnElement[bool]:
    return col(Event.kind).in_([k.value for k in kinds])


def _first(*where: ColumnElement[bool]) -> Any:
    """When the first matching event happened (NULL if never), correlated to the outbox row."""
    return sa.select(sa.func.min(col(Event.occurred_at))).where(*where).scalar_subquery()


def _any(*where: ColumnElement[bool]) -> Any:
    return sa.case((sa.exists().where(*where), 1), else_=0)


def _recipient_query(run: Run) -> sa.Select[Any]:
    """One row per recipient: who, where, and what happened to the message. This is where
    each per-recipient measure is defined; see the module docstring."""
    outbox = OutboxMessage
    on_message = col(Event.outbox_id) == col(outbox.id)
    human = col(Event.is_machine).is_(sa.false())
    since = credit_from(run)
    unsubscribed = sa.or_(
        on_message,
        # The preferences page reached without a message's token still names the run.
        sa.and_(
            col(Event.outbox_id).is_(None),
            col(Event.run_id) == col(outbox.run_id),
            col(Event.contact_id) == col(outbox.contact_id),
        ),
    )
    # The same definition reminder audiences use (import or a click on the registration
    # link), limited to registrations after this run started.
    registered = col(outbox.contact_id).in_(registered_contacts(run.campaign, since=since))
    # A joining counts for the recruitment campaign that reached the library last before it
    # joined (mailer.audience.membership), not for every run the library happened to get.
    credited = credited_campaign(col(Library.id), col(Library.joined_at))
    return (
        sa.select(
            col(outbox.id),
            col(outbox.email),
            col(outbox.status),
            col(outbox.sent_at),
            col(outbox.contact_id),
            col(Library.id),
            col(Library.name),
            col(Library.library_type),
            col(Library.region),
            _first(on_message, _kinds(_SEEN), human),
            _first(on_message, col(Event.kind) == EventKind.CLICK.value, human),
            _first(unsubscribed, col(Event.kind) == EventKind.UNSUBSCRIBE.value),
            _any(on_message, col(Event.kind) == EventKind.BOUNCE_HARD.value),
            _any(on_message, col(Event.kind) == EventKind.BOUNCE_SOFT.value),
            _any(on_message, col(Event.kind) == EventKind.COMPLAINT.value),
            sa.case((registered, 1), else_=0),
            # Nested so that the credit is looked up only for libraries that joined since.
            sa.case(
                (
                    col(Library.joined_at) >= since,
                    sa.case((credited == run.campaign, 1), else_=0),
                ),
                else_=0,
            ),
            _any(on_message, _kinds(_SEEN)),
            col(outbox.individually_tracked),
        )
        .select_from(outbox)
        .outerjoin(Contact, col(Contact.id) == col(outbox.contact_id))
        .outerjoin(Library, col(Library.id) == col(Contact.library_id))
        .where(col(outbox.run_id) == run.id)
        .order_by(col(outbox.id))
    )


def _recipients(session: Session, run: Run) -> list[RecipientResult]:
    # Messages sent before the decision was recorded went out as the run tracked.
    run_tracks = (run.content or {}).get("tracking", "individual") == "individual"
    rows = []
    for r in session.execute(_recipient_query(run)).all():
        opened_at = r[9]
        rows.append(
            RecipientResult(
                outbox_id=r[0],
                email=r[1],
                status=r[2],
                sent_at=r[3],
                contact_id=r[4],
                library_id=r[5],
                library=r[6] or "",
                library_type=r[7] or "",
                region=r[8] or "",
                opened_at=opened_at,
                clicked_at=r[10],
                unsubscribed_at=r[11],
                bounced_hard=bool(r[12]),
                bounced_soft=bool(r[13]),
                complained=bool(r[14]),
                registered=bool(r[15]),
                joined=bool(r[16]),
                machine_only=bool(r[17]) and opened_at is None,
                tracked=run_tracks if r[18] is None else bool(r[18]),
            )
        )
    return rows


def _run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


_TYPE_ORDER = {t.value: i for i, t in enumerate(LibraryType)}
_TYPE_LABELS = {t.value: label for t, label in LIBRARY_TYPE_LABELS.items()}


def _breakdown(
    recipients: list[RecipientResult], key: str, labels: dict[str, str], order: dict[str, int]
) -> list[GroupStats]:
    groups: dict[str, list[RecipientResult]] = {}
    for r in recipients:
        groups.setdefault(getattr(r, key), []).append(r)
    rows = []
    # Known values in their natural order, then others alphabetically, "not stated" last.
    for name in sorted(groups, key=lambda k: (not k, order.get(k, len(order)), k)):
        group = GroupStats(key=name, label=labels.get(name, name or "neuvedeno"))
        group.add(groups[name])
        rows.append(group)
    return rows


def _stats(session: Session, run: Run, recipients: list[RecipientResult]) -> RunStats:
    assert run.id is not None
    content = run.content or {}
    stats = RunStats(
        run_id=run.id,
        campaign=run.campaign,
        step=run.step,
        status=run.status,
        tracking=str(content.get("tracking") or "individual"),
        since=credit_from(run),
        kind=str(content.get("kind") or ""),
    )
    total = GroupStats(key="", label="celkem")
    total.add(recipients)
    stats.recipients = total.recipients
    stats.sent = total.sent
    stats.delivered = total.delivered
    stats.tracked_sent = total.tracked_sent
    stats.tracked_delivered = total.tracked_delivered
    stats.unique_human_opens = total.opened
    stats.unique_human_clicks = total.clicked
    stats.unsubscribes = total.unsubscribed
    stats.bounced = total.bounced
    stats.complaints = total.complained
    stats.registered = total.registered
    stats.libraries = total.libraries
    stats.joined_libraries = total.joined_libraries
    stats.hard_bounces = sum(r.bounced_hard for r in recipients)
    stats.soft_bounces = sum(r.bounced_soft for r in recipients)
    stats.machine_only_recipients = sum(r.machine_only for r in recipients)
    waiting = (MessageStatus.QUEUED, MessageStatus.RETRY, MessageStatus.SENDING)
    stats.queued = sum(r.status in waiting for r in recipients)
    stats.failed = sum(r.status == MessageStatus.FAILED for r in recipients)
    stats.skipped = sum(r.status == MessageStatus.SKIPPED for r in recipients)

    events = session.execute(
        sa.select(col(Event.kind), col(Event.is_machine), sa.func.count())
        .where(col(Event.run_id) == run.id)
        .group_by(col(Event.kind), col(Event.is_machine))
    ).all()
    count = {(kind, bool(machine)): int(n) for kind, machine, n in events}
    stats.human_opens = count.get((EventKind.OPEN, False), 0)
    stats.machine_opens = count.get((EventKind.OPEN, True), 0)
    stats.human_clicks = count.get((EventKind.CLICK, False), 0)
    stats.machine_clicks = count.get((EventKind.CLICK, True), 0)
    stats.web_views = count.get((EventKind.WEB_VIEW, False), 0)

    individual = stats.individual
    stats.funnel = {
        "sent": stats.sent,
        "delivered": stats.delivered,
        "opened": stats.unique_human_opens if individual else stats.human_opens,
        "clicked": stats.unique_human_clicks if individual else stats.human_clicks,
        "joined": stats.joined_libraries,
        "registered": stats.registered,
    }
    stats.links = _links(session, run)
    stats.by_library_type = _breakdown(recipients, "library_type", _TYPE_LABELS, _TYPE_ORDER)
    stats.by_region = _breakdown(recipients, "region", {}, {})
    return stats


def _links(session: Session, run: Run) -> list[LinkStats]:
    links = [
        LinkStats(index=i, url=url) for i, url in enumerate((run.content or {}).get("links") or [])
    ]
    per_link = session.execute(
        sa.select(
            col(Event.link_index),
            col(Event.is_machine),
            sa.func.count(),
            sa.func.count(sa.distinct(col(Event.outbox_id))),
        )
        .where(col(Event.run_id) == run.id, col(Event.kind) == EventKind.CLICK)
        .group_by(col(Event.link_index), col(Event.is_machine))
    ).all()
    for index, machine, clicks, people in per_link:
        if index is None or not 0 <= index < len(links):
            continue
        link = links[index]
        if machine:
            link.machine_clicks += int(clicks)
        else:
            link.human_clicks += int(clicks)
            link.people += int(people)
    return links


def _activity(
    session: Session, run: Run, stats: RunStats, recipients: list[RecipientResult], points: int
) -> Activity:
    times: dict[str, list[datetime]] = {
        "sent": [r.sent_at for r in recipients if r.sent and r.sent_at],
        "unsubscribed": [r.unsubscribed_at for r in recipients if r.unsubscribed_at],
    }
    if stats.individual:
        times["opened"] = [r.opened_at for r in recipients if r.opened_at]
        times["clicked"] = [r.clicked_at for r in recipients if r.clicked_at]
    else:
        # No recipient is known: every event by a person, as the funnel counts them.
        for series, kind in (("opened", EventKind.OPEN), ("clicked", EventKind.CLICK)):
            times[series] = list(
                session.execute(
                    sa.select(col(Event.occurred_at)).where(
                        col(Event.run_id) == run.id,
                        col(Event.kind) == kind.value,
                        col(Event.is_machine).is_(sa.false()),
                    )
                ).scalars()
            )
    every = [t for series in times.values() for t in series]
    start = min([stats.since, *every])
    span = max(max(every, default=start) - start, timedelta(minutes=10))
    step = span / (points - 1)
    counts = {series: [0] * points for series in ACTIVITY_SERIES}
    for series, moments in times.items():
        for when in moments:
            counts[series][min(points - 1, int((when - start) / step))] += 1
    return Activity(start=start, step=step, counts=counts)


def tracking_share(stats: RunStats) -> str | None:
    """How many delivered messages were tracked individually, in Czech, for staff pages and
    the command line; None when the run does not track individually or delivered none."""
    if not stats.individual or not stats.delivered:
        return None
    share = round(100 * stats.tracked_delivered / stats.delivered)
    text = (
        f"Jednotlivě sledováno: {stats.tracked_delivered} z {stats.delivered} doručených "
        f"zpráv ({share} %)"
    )
    if stats.tracked_delivered == stats.delivered:
        return text + "."
    return (
        text + "; u ostatních (sledování odmítli nebo k němu nedali souhlas) známe jen souhrnná "
        "čísla. Míra otevření a kliknutí se počítá jen ze sledovaných zpráv."
    )


def run_stats(session: Session, run_id: int) -> RunStats:
    """Everything `sdruk runs stats` and the console show about one run."""
    run = _run(session, run_id)
    return _stats(session, run, _recipients(session, run))


def run_report(session: Session, run_id: int, *, points: int = 49) -> RunReport:
    """The numbers of `run_stats` with the recipients behind them and their activity over time
    in `points` buckets: what the console's results page and CSV export show."""
    run = _run(session, run_id)
    recipients = _recipients(session, run)
    stats = _stats(session, run, recipients)
    return RunReport(stats, recipients, _activity(session, run, stats, recipients, max(points, 2)))
