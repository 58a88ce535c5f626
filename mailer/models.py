"""SQLModel tables and the status enums they use: the single description of what is stored."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import JSON, Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, also on SQLite, which forgets the zone."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(**kw: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kw)


def _status(default: Any, length: int = 16) -> Any:
    # Stored as plain strings, not database ENUM types, so adding a state is not a migration.
    return Field(default=default, sa_type=sa.String(length), index=True)


class LibraryType(StrEnum):
    REGIONAL = "krajska"
    CITY = "mestska"
    VILLAGE = "obecni"
    RESEARCH = "vedecka"
    UNIVERSITY = "univerzitni"
    SPECIAL = "odborna"


LIBRARY_TYPE_LABELS: dict[LibraryType, str] = {
    LibraryType.REGIONAL: "krajská",
    LibraryType.CITY: "městská",
    LibraryType.VILLAGE: "obecní/místní",
    LibraryType.RESEARCH: "vědecká",
    LibraryType.UNIVERSITY: "univerzitní",
    LibraryType.SPECIAL: "odborná",
}

REGIONS: tuple[str, ...] = (
    "Hlavní město Praha",
    "Středočeský kraj",
    "Jihočeský kraj",
    "Plzeňský kraj",
    "Karlovarský kraj",
    "Ústecký kraj",
    "Liberecký kraj",
    "Královéhradecký kraj",
    "Pardubický kraj",
    "Kraj Vysočina",
    "Jihomoravský kraj",
    "Olomoucký kraj",
    "Zlínský kraj",
    "Moravskoslezský kraj",
)


class ContactStatus(StrEnum):
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class LegalBasis(StrEnum):
    LEGITIMATE_INTEREST = "legitimate_interest"
    CONSENT = "consent"


class TrackingConsent(StrEnum):
    """Whether a contact lets us see which messages they opened and which links they clicked
    (CNIL recommendation of March 2026, Italian Garante guidelines of October 2026)."""

    UNKNOWN = "unknown"
    GRANTED = "granted"
    DENIED = "denied"


TRACKING_CONSENT_LABELS: dict[TrackingConsent, str] = {
    TrackingConsent.UNKNOWN: "nevyjádřil(a) se",
    TrackingConsent.GRANTED: "souhlasí",
    TrackingConsent.DENIED: "odmítl(a)",
}


class Topic(StrEnum):
    MEMBERSHIP = "membership"
    EVENTS = "events"
    NEWSLETTER = "newsletter"


# The topic of transactional messages' runs (confirmations, welcomes): mail a person asked
# for, which no topic opt-out stops.
TRANSACTIONAL_TOPIC = "transactional"
# The `Run.campaign` of transactional messages (one run per message, see
# mailer.delivery.transactional); staff lists of campaign runs leave them out.
TRANSACTIONAL_CAMPAIGN = "transakcni"

TOPIC_LABELS: dict[Topic, str] = {
    Topic.MEMBERSHIP: "Členství a nábor",
    Topic.EVENTS: "Akce, workshopy a konference",
    Topic.NEWSLETTER: "Zpravodaj",
}


class RunStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"


class EventKind(StrEnum):
    OPEN = "open"
    CLICK = "click"
    WEB_VIEW = "web_view"
    UNSUBSCRIBE = "unsubscribe"
    RESUBSCRIBE = "resubscribe"
    TOPIC_OPT_OUT = "topic_opt_out"
    TOPIC_OPT_IN = "topic_opt_in"
    BOUNCE_HARD = "bounce_hard"
    BOUNCE_SOFT = "bounce_soft"
    COMPLAINT = "complaint"
    REGISTERED = "registered"
    JOINED = "joined"
    # A membership application sent from the public form (pending until staff decide).
    APPLIED = "applied"


class StepStatus(StrEnum):
    PENDING = "pending"
    LAUNCHED = "launched"
    LATE = "late"
    MISSED = "missed"
    FAILED = "failed"
    # Not to be run: the campaign's launch run was cancelled (see delivery.runs.cancel).
    CANCELLED = "cancelled"


class UserRole(StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"


class Library(SQLModel, table=True):
    __table_args__ = (sa.Index("ix_library_name_town", "name", "town"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=300)
    siglum: str | None = Field(default=None, max_length=16, unique=True)
    library_type: str = Field(sa_type=sa.String(16), index=True)
    region: str = Field(max_length=40, index=True)
    town: str = Field(default="", max_length=120, index=True)
    is_member: bool = Field(default=False, index=True)
    member_since: int | None = None
    # When membership was recorded here (import or console): reminders stop for the library.
    joined_at: datetime | None = _when(default=None)
    # Who recorded the membership: "import" (the directory file) or "staff" (the console,
    # `sdruk libraries join`, an approved application). An import ends only its own.
    membership_source: str | None = Field(default=None, max_length=16)
    created_at: datetime = _when(default_factory=utcnow)
    updated_at: datetime = _when(default_factory=utcnow)


def _email_hash(context: Any) -> str:
    # Same as mailer.audience.contacts.address_hash (identity is the lowercased address).
    email = context.get_current_parameters()["email"].strip().lower()
    return hashlib.sha256(email.encode()).hexdigest()


class Contact(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # Normalised by email-validator: the identity of a contact.
    email: str = Field(max_length=320, unique=True)
    # sha256 of `email` (mailer.audience.contacts.address_hash), filled on insert when not
    # given: segments join the suppression list on it.
    address_hash: str | None = Field(
        default=None, max_length=64, index=True, sa_column_kwargs={"default": _email_hash}
    )
    first_name: str = Field(default="", max_length=120)
    last_name: str = Field(default="", max_length=120)
    role: str = Field(default="", max_length=120)
    gender: str | None = Field(default=None, max_length=1)  # "f", "m" or unknown
    # Staff-written salutation that wins over the computed vocative.
    salutation: str | None = Field(default=None, max_length=200)
    library_id: int | None = Field(default=None, foreign_key="library.id", index=True)
    status: str = _status(ContactStatus.ACTIVE)
    status_changed_at: datetime | None = _when(default=None)
    status_reason: str | None = Field(default=None, max_length=500)
    legal_basis: str | None = Field(default=None, sa_type=sa.String(24), index=True)
    # TrackingConsent: whether messages to this contact may carry an open pixel and personal
    # click links (mailer.compose.consent decides; TrackingConsentRecord keeps the evidence).
    tracking_consent: str = Field(
        default=TrackingConsent.UNKNOWN,
        sa_type=sa.String(16),
        sa_column_kwargs={"server_default": TrackingConsent.UNKNOWN.value},
    )
    soft_bounces: int = 0
    last_soft_bounce_at: datetime | None = _when(default=None)
    created_at: datetime = _when(default_factory=utcnow)
    updated_at: datetime = _when(default_factory=utcnow)


class LegalBasisRecord(SQLModel, table=True):
    """Evidence of why a contact may be mailed: kept as history, never overwritten."""

    __tablename__ = "legal_basis_record"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True, ondelete="CASCADE")
    basis: str = Field(sa_type=sa.String(24))
    source: str = Field(max_length=300)
    evidence: str | None = Field(default=None, max_length=2000)
    # Who recorded it: a staff address, or the system user that ran the import.
    recorded_by: str | None = Field(default=None, max_length=320)
    recorded_at: datetime = _when(default_factory=utcnow)
    withdrawn_at: datetime | None = _when(default=None)


class TrackingConsentRecord(SQLModel, table=True):
    """Evidence of each tracking consent a contact gave or refused (or staff recorded): kept
    as history, never overwritten; the newest is `Contact.tracking_consent`."""

    __tablename__ = "tracking_consent_record"

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True, ondelete="CASCADE")
    value: str = Field(sa_type=sa.String(16))
    # Where it was given: "formulář odběru", "stránka nastavení", "konzole", "import".
    source: str = Field(max_length=120)
    # The exact question and answer the person saw, as shown.
    wording: str | None = Field(default=None, max_length=2000)
    # The client address, when a public page set it.
    ip: str | None = Field(default=None, max_length=64)
    # A staff address, the system user of an import, or None for the person themselves.
    recorded_by: str | None = Field(default=None, max_length=320)
    recorded_at: datetime = _when(default_factory=utcnow)


class TopicOptOut(SQLModel, table=True):
    """A contact receives every topic except those listed here."""

    __tablename__ = "topic_opt_out"

    contact_id: int = Field(foreign_key="contact.id", primary_key=True, ondelete="CASCADE")
    topic: str = Field(sa_type=sa.String(16), primary_key=True)
    created_at: datetime = _when(default_factory=utcnow)


class Tag(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True)


class ContactTag(SQLModel, table=True):
    __tablename__ = "contact_tag"

    contact_id: int = Field(foreign_key="contact.id", primary_key=True, ondelete="CASCADE")
    tag_id: int = Field(foreign_key="tag.id", primary_key=True, index=True, ondelete="CASCADE")


class Suppression(SQLModel, table=True):
    """Addresses never to be mailed again. Only a hash is kept, so it survives erasure."""

    address_hash: str = Field(primary_key=True, max_length=64)
    reason: str = Field(max_length=32)
    created_at: datetime = _when(default_factory=utcnow)


class SavedSegment(SQLModel, table=True):
    __tablename__ = "saved_segment"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    definition: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = _when(default_factory=utcnow)
    updated_at: datetime = _when(default_factory=utcnow)


class Run(SQLModel, table=True):
    """One send of one campaign step. Its content is frozen at launch so what went out can be
    shown later, whatever happens to the blueprint."""

    __table_args__ = (sa.UniqueConstraint("campaign", "step", name="uq_run_campaign_step"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(max_length=120, index=True)
    step: str = Field(default="launch", max_length=60)
    status: str = _status(RunStatus.SCHEDULED)
    status_reason: str | None = Field(default=None, max_length=1000)
    content: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    recipients: int = 0
    scheduled_for: datetime | None = _when(default=None)
    late: bool = False
    # Staff chose to send at once, outside the campaign's sending window: the scheduler does
    # not pause this run when the window closes.
    outside_window: bool = False
    created_by: str | None = Field(default=None, max_length=320)
    created_at: datetime = _when(default_factory=utcnow)
    started_at: datetime | None = _when(default=None)
    finished_at: datetime | None = _when(default=None)


class OutboxMessage(SQLModel, table=True):
    """The queue: one row per recipient of a run, claimed by workers."""

    __tablename__ = "outbox_message"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "contact_id", name="uq_outbox_run_contact"),
        # The claim query: due rows of one state, oldest first.
        sa.Index("ix_outbox_claim", "status", "next_attempt_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", index=True)
    email: str = Field(max_length=320)
    status: str = Field(default=MessageStatus.QUEUED, sa_type=sa.String(16))
    attempts: int = 0
    next_attempt_at: datetime | None = _when(default=None)
    lease_until: datetime | None = _when(default=None)
    worker: str | None = Field(default=None, max_length=120)
    sent_at: datetime | None = _when(default=None)
    smtp_response: str | None = Field(default=None, max_length=1000)
    error: str | None = Field(default=None, max_length=1000)
    # Claimed again after its worker died mid-transaction: it may have been delivered twice.
    possible_duplicate: bool = False
    # Whether the message carries the open pixel and personal click links: decided when it is
    # claimed, from the contact's tracking consent at that moment (mailer.compose.consent), in
    # runs that track individually. Results rate opens over these messages only; None: not
    # decided (a run that tracks nobody individually, a row never claimed, or sent before the
    # column existed: counted as the run tracked).
    individually_tracked: bool | None = None


class DeliveryWorker(SQLModel, table=True):
    """A delivery worker that is running (or died without saying so): who it is, where, and
    when it last showed a sign of life. Rows leased to a dead worker are taken over at once
    instead of when their lease runs out (mailer.delivery.workers)."""

    __tablename__ = "delivery_worker"

    id: str = Field(primary_key=True, max_length=120)
    host: str = Field(max_length=255)
    pid: int
    started_at: datetime = _when(default_factory=utcnow)
    heartbeat_at: datetime = _when(default_factory=utcnow)


class SendLedger(SQLModel, table=True):
    """One message handed to a relay under a shared sending limit: the record every worker
    counts before sending (mailer.delivery.limits). Kept for a day."""

    __tablename__ = "send_ledger"
    __table_args__ = (sa.Index("ix_send_ledger_scope_at", "scope", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=300)
    at: datetime = _when()
    worker: str = Field(max_length=120)


class DomainSlot(SQLModel, table=True):
    """An SMTP transaction under way to a recipient domain with a per-domain limit, counted
    by every worker (mailer.delivery.limits). A crashed worker's slots go when it is found
    dead, or at `until`."""

    __tablename__ = "domain_slot"

    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(max_length=255, index=True)
    worker: str = Field(max_length=120, index=True)
    until: datetime = _when()


class SendLimitScope(SQLModel, table=True):
    """One row per limit scope (a relay): a reservation locks it, so two workers never both
    take the last place in a window."""

    __tablename__ = "send_limit_scope"

    scope: str = Field(primary_key=True, max_length=300)
    touched_at: datetime = _when(default_factory=utcnow)


class Event(SQLModel, table=True):
    """Raw events (opens, clicks, unsubscribes, bounces…), written only by mailer.events.record."""

    __table_args__ = (
        sa.Index("ix_event_run_kind", "run_id", "kind"),
        sa.Index("ix_event_contact_kind", "contact_id", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_type=sa.String(16))
    occurred_at: datetime = _when(default_factory=utcnow)
    run_id: int | None = Field(default=None, foreign_key="run.id")
    outbox_id: int | None = Field(default=None, index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")
    link_index: int | None = None
    is_machine: bool = False
    machine_reason: str | None = Field(default=None, max_length=80)
    user_agent: str | None = Field(default=None, max_length=500)
    ip: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class ScheduledStep(SQLModel, table=True):
    """What the scheduler owes: each launch and reminder step exactly once."""

    __tablename__ = "scheduled_step"
    __table_args__ = (sa.UniqueConstraint("campaign", "step", name="uq_step_campaign_step"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(max_length=120)
    step: str = Field(max_length=60)
    due_at: datetime = _when()
    status: str = _status(StepStatus.PENDING)
    run_id: int | None = Field(default=None, foreign_key="run.id")
    launched_at: datetime | None = _when(default=None)
    note: str | None = Field(default=None, max_length=1000)


class User(SQLModel, table=True):
    """Staff who sign in to the console."""

    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    name: str = Field(default="", max_length=200)
    role: str = Field(default=UserRole.VIEWER, sa_type=sa.String(16))
    password_hash: str = Field(max_length=300)
    created_at: datetime = _when(default_factory=utcnow)
    last_login_at: datetime | None = _when(default=None)
    # Two-factor sign-in (TOTP, RFC 6238): the base32 secret, set while it is being set up and
    # kept once confirmed (totp_enabled_at); the last time step used, so a code works once.
    totp_secret: str | None = Field(default=None, max_length=64)
    totp_enabled_at: datetime | None = _when(default=None)
    totp_last_step: int | None = None


class ConsoleSession(SQLModel, table=True):
    """A signed-in console session. The cookie holds a random token; only its sha256 is kept,
    so the table cannot be used to sign in. Sign-out, a password change and "sign out
    everywhere" revoke it at once, in every worker."""

    __tablename__ = "console_session"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="staff_user.id", index=True, ondelete="CASCADE")
    csrf: str = Field(max_length=64)
    created_at: datetime = _when(default_factory=utcnow)
    last_seen_at: datetime = _when(default_factory=utcnow)
    expires_at: datetime = _when()
    revoked_at: datetime | None = _when(default=None)
    # Password accepted, the second factor not yet: the session opens nothing but the code page.
    second_factor_pending: bool = False
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)


class SignInThrottle(SQLModel, table=True):
    """Failed sign-ins, per account and client address together (both set), per account from
    anywhere (address "") and per address for any account (account ""). Kept in the database
    so the throttle holds across workers and restarts."""

    __tablename__ = "sign_in_throttle"

    account: str = Field(primary_key=True, max_length=320)
    address: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    last_failure_at: datetime | None = _when(default=None)
    blocked_until: datetime | None = _when(default=None)
    # A pair that signed in successfully before: the account-wide and address-wide throttles
    # do not apply to it, so an attacker elsewhere cannot lock the real user out.
    last_success_at: datetime | None = _when(default=None)


class FormRateCounter(SQLModel, table=True):
    """Hits on the public forms per key and fixed time window, shared by every web process and
    kept across restarts. The key is an HMAC of what is counted (a client address, an e-mail
    address, a spent proof-of-work salt), so no address is stored in clear."""

    __tablename__ = "form_rate_counter"

    key: str = Field(primary_key=True, max_length=64)
    # Unix seconds at which the window starts (0 for a one-time mark).
    window_start: int = Field(primary_key=True, sa_type=sa.BigInteger)
    count: int = 0
    # Unix seconds after which the row is no longer read and may be deleted.
    expires_at: int = Field(sa_type=sa.BigInteger, index=True)


class AuditEntry(SQLModel, table=True):
    """Who launched, paused, exported or erased what, and when."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _when(default_factory=utcnow, index=True)
    actor: str = Field(max_length=320)
    action: str = Field(max_length=60)
    target: str = Field(default="", max_length=300)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class Campaign(SQLModel, table=True):
    """A campaign as one record, whether staff wrote it in the console or it ships as a folder
    under campaigns/; its content lives in revisions, the newest is `current_revision`."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=120, unique=True)
    name: str = Field(default="", max_length=300)
    # "folder" (shipped in campaigns/, kept in step by sync) or "console" (made by staff).
    origin: str = Field(default="console", max_length=16)
    current_revision: int = 0
    # Hash of the folder's files when they were last synced: a changed folder is a new revision,
    # an unchanged one leaves console edits alone.
    folder_hash: str | None = Field(default=None, max_length=64)
    created_at: datetime = _when(default_factory=utcnow)
    updated_at: datetime = _when(default_factory=utcnow)


class CampaignRevision(SQLModel, table=True):
    """One saved state of a campaign: its files (campaign.toml, body MJML, blocks), who saved
    it, when and why. Never changed once written."""

    __tablename__ = "campaign_revision"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "number", name="uq_campaign_revision_number"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    number: int
    author: str = Field(max_length=320)
    created_at: datetime = _when(default_factory=utcnow)
    summary: str = Field(default="", max_length=1000)
    files: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    content_hash: str = Field(max_length=64)


class MediaImage(SQLModel, table=True):
    """An uploaded image, already checked and scaled, stored by the hash of its bytes so every
    machine serves the same file at BASE_URL/media/<hash>.<ext>."""

    __tablename__ = "media_image"

    content_hash: str = Field(primary_key=True, max_length=64)
    extension: str = Field(max_length=8)
    mime_type: str = Field(max_length=40)
    width: int
    height: int
    size: int
    data: bytes = Field(sa_type=sa.LargeBinary)
    alt: str = Field(default="", max_length=300)
    original_name: str = Field(default="", max_length=300)
    uploaded_by: str = Field(default="", max_length=320)
    created_at: datetime = _when(default_factory=utcnow)


class ApplicationStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class MembershipApplication(SQLModel, table=True):
    """A library's application for membership sent from the public form ("Chceme být členem"),
    kept as it was submitted, with the consent wording the applicant agreed to."""

    __tablename__ = "membership_application"

    id: int | None = Field(default=None, primary_key=True)
    status: str = _status(ApplicationStatus.PENDING)
    # The directory's library and contact when the form came from a campaign link or the
    # siglum matched; the applicant's own values are kept below either way.
    library_id: int | None = Field(default=None, foreign_key="library.id", index=True)
    contact_id: int | None = Field(
        default=None, foreign_key="contact.id", index=True, ondelete="SET NULL"
    )
    # The campaign message whose link was followed: the application is credited to its run
    # and step. Unique, so one link sends one application.
    outbox_id: int | None = Field(default=None, unique=True)
    run_id: int | None = Field(default=None, foreign_key="run.id", index=True)
    step: str | None = Field(default=None, max_length=60)
    library_name: str = Field(max_length=300)
    library_type: str = Field(sa_type=sa.String(16))
    region: str = Field(max_length=40)
    town: str = Field(max_length=120)
    siglum: str = Field(default="", max_length=16)
    contact_name: str = Field(max_length=240)
    contact_role: str = Field(default="", max_length=120)
    email: str = Field(max_length=320)
    phone: str = Field(default="", max_length=40)
    ico: str = Field(default="", max_length=8)
    dic: str = Field(default="", max_length=14)
    billing_address: str = Field(default="", max_length=500)
    consent_text: str = Field(max_length=2000)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)
    created_at: datetime = _when(default_factory=utcnow)
    decided_at: datetime | None = _when(default=None)
    decided_by: str | None = Field(default=None, max_length=320)
    decision_note: str = Field(default="", max_length=1000)


class RegistrationStatus(StrEnum):
    REGISTERED = "registered"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"


class EventRegistration(SQLModel, table=True):
    """A person's registration for one session of an event campaign, from the public page."""

    __tablename__ = "event_registration"
    # One seat per person and session, whatever the timing: a second registration of the same
    # address for the same session is refused by the database itself.
    __table_args__ = (
        sa.UniqueConstraint("campaign", "session_index", "email", name="uq_registration_person"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(max_length=120, index=True)
    session_index: int = 0
    status: str = _status(RegistrationStatus.REGISTERED)
    name: str = Field(max_length=240)
    role: str = Field(default="", max_length=120)
    library_name: str = Field(default="", max_length=300)
    email: str = Field(max_length=320)
    contact_id: int | None = Field(
        default=None, foreign_key="contact.id", index=True, ondelete="SET NULL"
    )
    run_id: int | None = Field(default=None, foreign_key="run.id")
    outbox_id: int | None = None
    ip: str | None = Field(default=None, max_length=64)
    created_at: datetime = _when(default_factory=utcnow)
    promoted_at: datetime | None = _when(default=None)
    cancelled_at: datetime | None = _when(default=None)


class RegistrationPage(SQLModel, table=True):
    """Per event campaign: whether staff closed registration. Its row is also what a
    registration locks, so seats are counted one registration at a time."""

    __tablename__ = "registration_page"

    campaign: str = Field(primary_key=True, max_length=120)
    closed_at: datetime | None = _when(default=None)
    closed_by: str | None = Field(default=None, max_length=320)
    changes: int = 0


class SubscriptionRequest(SQLModel, table=True):
    """A sign-up from the public form, waiting for its address to be confirmed (double
    opt-in). Kept after confirming, as the evidence of the consent."""

    __tablename__ = "subscription_request"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, index=True)
    first_name: str = Field(default="", max_length=120)
    last_name: str = Field(default="", max_length=120)
    library_name: str = Field(default="", max_length=300)
    topics: list[str] = Field(default_factory=list, sa_type=JSON)
    consent_text: str = Field(max_length=2000)
    # The answer to the tracking question (TrackingConsent; None: left unanswered) and its
    # wording as shown, recorded as the contact's tracking consent when confirmed.
    tracking_consent: str | None = Field(default=None, sa_type=sa.String(16))
    tracking_wording: str | None = Field(default=None, max_length=2000)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)
    created_at: datetime = _when(default_factory=utcnow)
    confirmed_at: datetime | None = _when(default=None)
    confirmed_ip: str | None = Field(default=None, max_length=64)
    contact_id: int | None = Field(
        default=None, foreign_key="contact.id", index=True, ondelete="SET NULL"
    )


class NoticeTextRevision(SQLModel, table=True):
    """One saved state of staff's wording of a transactional message kind (`texts`: the
    fields as Jinja templates), who saved it and when. `texts` None: reset to the wording in
    code. The newest revision of a kind is in force; none at all means the default."""

    __tablename__ = "notice_text_revision"
    __table_args__ = (sa.UniqueConstraint("kind", "number", name="uq_notice_text_revision"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=60, index=True)
    number: int
    texts: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    author: str = Field(max_length=320)
    created_at: datetime = _when(default_factory=utcnow)


# Runs of campaigns, not transactional messages: what staff lists of runs show.
CAMPAIGN_RUNS: Any = Run.__table__.c.campaign != TRANSACTIONAL_CAMPAIGN  # type: ignore[attr-defined]
