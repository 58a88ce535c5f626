"""The one place configuration is read: environment variables (or `.env`) into `Settings`."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Embedded defaults: SQLite in the data directory and a capture transport, so nothing leaves
    the machine until production points DATABASE_URL and SMTP_URL elsewhere."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Field(default=PROJECT_ROOT / "var", alias="SDRUK_DATA_DIR")
    database_url: str = Field(default="", alias="DATABASE_URL")
    # Where mail goes: capture://FOLDER (default, nothing leaves the machine), null://, or
    # smtp://user:pass@relay:587?starttls=true / smtps://user:pass@relay:465 with options
    # (mailer.delivery.transport.parse_smtp_url): concurrency, timeout, helo, pipelining=false,
    # ca_file=/path/ca.pem (trust this CA: a relay with a private or self-signed certificate),
    # validate_certs=false (no certificate check; only on a network you trust),
    # allow_insecure_auth=true (a password without certain encryption; loopback only).
    smtp_url: str = Field(default="", alias="SMTP_URL")
    # Sending limits shared by every worker (mailer.delivery.limits): a preset name
    # (microsoft365, gmail, seznam, generic, none) used when SMTP_URL names none with
    # ?limits=…; SMTP_URL's per_second, per_minute, per_hour, per_day, domain_concurrency
    # override single values.
    send_limits: str = Field(default="", alias="SEND_LIMITS")
    # Processes that compose and DKIM-sign messages ahead of each send worker's loop
    # (mailer.delivery.compose_pool); 0 composes in the worker itself.
    send_compose_processes: int = Field(default=1, ge=0, le=64, alias="SEND_COMPOSE_PROCESSES")
    base_url: str = Field(default="http://127.0.0.1:8000", alias="BASE_URL")
    secret_key: str = Field(default="", alias="SECRET_KEY")
    # Keys retired by rotation: tokens signed with them still verify.
    previous_secret_keys: list[str] = Field(default_factory=list, alias="PREVIOUS_SECRET_KEYS")
    campaigns_dir: Path = Field(default=PROJECT_ROOT / "campaigns", alias="SDRUK_CAMPAIGNS_DIR")
    templates_dir: Path = Field(default=PROJECT_ROOT / "templates", alias="SDRUK_TEMPLATES_DIR")
    timezone: str = Field(default="Europe/Prague", alias="SDRUK_TIMEZONE")

    # Sender identity, printed in every footer (Czech law: name, IČO, seat).
    sender_name: str = Field(default="Sdružení knihoven ČR", alias="SENDER_NAME")
    sender_email: str = Field(default="sdruk@sdruk.cz", alias="SENDER_EMAIL")
    sender_domain: str = Field(default="sdruk.cz", alias="SENDER_DOMAIN")
    sender_web: str = Field(default="https://www.sdruk.cz", alias="SENDER_WEB")
    # Placeholders until the association confirms them; the footer shows them as they are.
    sender_ico: str = Field(default="[IČO – doplnit]", alias="SENDER_ICO")
    sender_seat: str = Field(default="[sídlo – doplnit], Praha", alias="SENDER_SEAT")
    # Who is told of new membership applications and event registrations.
    staff_email: str = Field(default="sdruk@sdruk.cz", alias="STAFF_EMAIL")
    # Return path (VERP) and the List-Unsubscribe mailto address are served by `sdruk inbound`.
    bounce_domain: str = Field(default="bounces.sdruk.cz", alias="BOUNCE_DOMAIN")
    unsubscribe_mailbox: str = Field(default="unsubscribe", alias="UNSUBSCRIBE_MAILBOX")
    # Where `sdruk inbound` (and schedule.py's inbound role) listens; the MX of BOUNCE_DOMAIN
    # forwards to it (or it listens on port 25 itself).
    inbound_host: str = Field(default="127.0.0.1", alias="INBOUND_HOST")
    inbound_port: int = Field(default=2525, alias="INBOUND_PORT")
    # A mailbox that soft-bounces this many times, spread over at least this many days, is
    # treated as dead (suppressed): one full mailbox on a holiday week must not end a contact.
    soft_bounce_limit: int = Field(default=3, alias="SOFT_BOUNCE_LIMIT")
    soft_bounce_days: int = Field(default=7, alias="SOFT_BOUNCE_DAYS")

    # Scheduler: a step due while the scheduler was down still runs (reported late) within
    # this grace; beyond it the step is reported missed, never silently dropped.
    launch_grace_hours: float = Field(default=24.0, alias="SDRUK_LAUNCH_GRACE_HOURS")
    scheduler_tick_seconds: float = Field(default=30.0, alias="SDRUK_SCHEDULER_TICK_SECONDS")
    # How often a standby scheduler tries to become the active one (takeover within a minute).
    standby_poll_seconds: float = Field(default=15.0, alias="SDRUK_STANDBY_POLL_SECONDS")

    # Tracking of contacts whose tracking consent is "unknown" (mailer.compose.consent):
    # "individual" (default: open pixel and personal click links, as for "granted"; an
    # association writing to its members under legitimate interest) or "anonymous" (the strict
    # reading of the CNIL recommendation: only "granted" is tracked per person, the others get
    # anonymous links and no pixel). "denied" is never tracked per person, whatever this says.
    tracking_without_consent: Literal["individual", "anonymous"] = Field(
        default="individual", alias="TRACKING_WITHOUT_CONSENT"
    )

    # The largest request body the web server accepts (a contacts CSV is the largest upload:
    # 100,000 contacts take about 15 MB). Larger ones get a 413 with a Czech explanation.
    max_upload_mb: float = Field(default=20.0, alias="SDRUK_MAX_UPLOAD_MB")

    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs or CIDR
    # networks, comma-separated). Empty: the client is whoever opened the connection, so no
    # client can pick its own address for the sign-in throttle or the event log.
    trusted_proxies: str = Field(default="", alias="TRUSTED_PROXIES")

    # DKIM (mailer/compose/dkim.py): the current RSA key signs every message, d= is DKIM_DOMAIN
    # (default SENDER_DOMAIN). An Ed25519 key may add a second signature (RFC 8463). During a
    # key rotation the previous keys ("selector:/path/key.pem", JSON list) stay published:
    # `sdruk doctor` shows the TXT record of each.
    # A relay that delivers to nobody real (a staging mail catcher such as Mailpit, or a test's
    # own server): launches to it are warned about unfinished content, not refused.
    smtp_test_relay: bool = Field(default=False, alias="SMTP_TEST_RELAY")
    dkim_selector: str = Field(default="", alias="DKIM_SELECTOR")
    dkim_private_key_file: Path | None = Field(default=None, alias="DKIM_PRIVATE_KEY_FILE")
    dkim_domain: str = Field(default="", alias="DKIM_DOMAIN")
    dkim_ed25519_selector: str = Field(default="", alias="DKIM_ED25519_SELECTOR")
    dkim_ed25519_key_file: Path | None = Field(default=None, alias="DKIM_ED25519_KEY_FILE")
    dkim_previous_keys: list[str] = Field(default_factory=list, alias="DKIM_PREVIOUS_KEYS")

    def trusted_proxy_list(self) -> list[str]:
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'sdruk.db'}"

    def resolved_smtp_url(self) -> str:
        if self.smtp_url:
            return self.smtp_url
        return f"capture://{self.data_dir / 'outbox'}"

    def signing_keys(self) -> list[bytes]:
        """Current key first, then retired ones. Without SECRET_KEY the embedded default keeps
        a random key in the data directory, so tokens survive restarts."""
        current = self.secret_key
        if not current:
            key_file = self.data_dir / "secret.key"
            if not key_file.exists():
                self.data_dir.mkdir(parents=True, exist_ok=True)
                key_file.write_text(secrets.token_urlsafe(32))
                key_file.chmod(0o600)
            current = key_file.read_text().strip()
        return [k.encode() for k in [current, *self.previous_secret_keys]]


@lru_cache
def get_settings() -> Settings:
    return Settings()
