"""Is this deployment fit to send real mail? The checks behind `sdruk doctor`, the console's
"Stav nasazení" page and the launch gate (mailer/delivery/readiness.py).

Each check says ok, warning or error, with a Czech explanation of what to fix and where:
- BASE_URL is https (RFC 8058 one-click unsubscribe needs it) and reachable from outside;
- no placeholder is left in the sender identity (the footer prints it: name, IČO, seat);
- a DKIM key is configured and can sign; the TXT record to publish for each selector;
- the From domains align with DKIM's d=, and the published DKIM, SPF and DMARC records match
  (dnspython; "nelze ověřit" when the DNS cannot be asked, e.g. offline);
- the relay accepts the login, tried with one connection (a locked account costs more than a
  slow check);
- which contacts are tracked individually (TRACKING_WITHOUT_CONSENT): information, never a
  fault, so staff can see which reading of the CNIL recommendation the deployment follows.

DNS lookups go through a `Lookup` function so tests (and an offline machine) can supply their
own. Organisational domains are taken as the last two labels (right for .cz and .com; a
domain under a public suffix such as co.uk would need the Public Suffix List).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from mailer.compose.dkim import DkimKey, DkimKeyError, configured_keys, dkim_domain


class Level(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


LEVEL_LABELS = {Level.OK: "v pořádku", Level.WARNING: "upozornění", Level.ERROR: "chyba"}


@dataclass
class Check:
    """One finding: `title` names what was checked, `detail` what to do (Czech)."""

    key: str
    title: str
    level: Level
    detail: str
    # DNS records to publish: (name, type, value).
    records: list[tuple[str, str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.key,
            "title": self.title,
            "level": self.level.value,
            "detail": self.detail,
            "records": [{"name": n, "type": t, "value": v} for n, t, v in self.records],
        }


class LookupUnavailable(Exception):
    """The DNS could not be asked (offline, timeout): the record is neither there nor absent."""


# TXT strings at a name ([] when the name or record does not exist).
Lookup = Callable[[str], list[str]]

PLACEHOLDER_RE = re.compile(r"doplnit|potvrdit|\[[^\]]*\]", re.I)
SENDER_FIELDS = (
    ("sender_name", "SENDER_NAME", "název odesílatele"),
    ("sender_email", "SENDER_EMAIL", "adresa odesílatele"),
    ("sender_ico", "SENDER_ICO", "IČO"),
    ("sender_seat", "SENDER_SEAT", "sídlo"),
    ("sender_web", "SENDER_WEB", "web"),
)


def dns_lookup(name: str) -> list[str]:
    """TXT records at `name` through the system's resolver (dnspython)."""
    import dns.exception
    import dns.resolver

    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=4.0)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, OSError) as exc:
        raise LookupUnavailable(str(exc) or type(exc).__name__) from exc
    return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


def is_real_relay(smtp_url: str, settings: Any | None = None) -> bool:
    """Whether mail reaches real people: not capture:// or null://, nor a relay the settings
    declare a test relay (SMTP_TEST_RELAY)."""
    if settings is not None and getattr(settings, "smtp_test_relay", False):
        return False
    return not smtp_url.startswith(("capture://", "null://"))


def organisational(domain: str) -> str:
    labels = domain.lower().rstrip(".").split(".")
    return ".".join(labels[-2:])


def aligned(from_domain: str, other: str) -> bool:
    """DMARC relaxed alignment: the same organisational domain."""
    return organisational(from_domain) == organisational(other)


def placeholders_in(text: str) -> list[str]:
    return [m.group(0) for m in PLACEHOLDER_RE.finditer(text)]


# -- the checks --------------------------------------------------------------------------------


def check_base_url(settings: Any) -> Check:
    title = "Veřejná adresa odkazů (BASE_URL)"
    url = str(settings.base_url)
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https":
        return Check(
            "base_url",
            title,
            Level.ERROR,
            f"BASE_URL je {url}. Gmail a Yahoo uznají odhlášení jedním klikem (RFC 8058) jen "
            "přes https: nastavte BASE_URL=https://… (adresa, na které běží webová část).",
        )
    if host in ("localhost", "") or host.startswith("127.") or host.endswith(".local"):
        return Check(
            "base_url",
            title,
            Level.ERROR,
            f"BASE_URL {url} není dosažitelná z internetu: odkazy ve zprávách by příjemcům "
            "nefungovaly. Nastavte veřejnou adresu webové části.",
        )
    return Check("base_url", title, Level.OK, f"{url} (https).")


def check_sender(settings: Any) -> Check:
    title = "Údaje o odesílateli v patičce"
    found = []
    for attr, env, label in SENDER_FIELDS:
        value = str(getattr(settings, attr, "") or "")
        if not value.strip():
            found.append(f"{label} ({env}) chybí")
        elif placeholders_in(value):
            found.append(f"{label} ({env}) je zástupný text „{value}“")
    if found:
        return Check(
            "sender",
            title,
            Level.ERROR,
            "Zákon vyžaduje, aby každá zpráva jmenovala odesílatele. Doplňte v nastavení "
            "(proměnné prostředí nebo .env): " + "; ".join(found) + ".",
        )
    return Check(
        "sender",
        title,
        Level.OK,
        f"{settings.sender_name}, IČO {settings.sender_ico}, {settings.sender_seat}.",
    )


def check_dkim_keys(settings: Any) -> tuple[Check, list[tuple[DkimKey, str]]]:
    title = "Klíč DKIM"
    try:
        keys = configured_keys(settings)
    except DkimKeyError as exc:
        return Check("dkim_key", title, Level.ERROR, str(exc)), []
    if not keys:
        return (
            Check(
                "dkim_key",
                title,
                Level.ERROR,
                "Zprávy nejsou podepsané DKIM; Gmail, Yahoo i Outlook hromadnou poštu bez podpisu "
                "odmítají. Vytvořte klíč (sdruk dkim keygen --selector NAZEV), nastavte "
                "DKIM_SELECTOR a DKIM_PRIVATE_KEY_FILE a zveřejněte záznam TXT, který vypíše "
                "sdruk doctor.",
            ),
            [],
        )
    roles = {"current": "podepisuje", "ed25519": "druhý podpis Ed25519", "previous": "předchozí"}
    described = ", ".join(
        f"{k.selector} ({roles[role]}, {'Ed25519' if k.bits == 256 else f'RSA {k.bits} b'})"
        for k, role in keys
    )
    records = [(k.dns_name, "TXT", k.txt_record()) for k, _ in keys]
    detail = f"Selektory: {described}. Zveřejněte v DNS záznamy TXT níže"
    if any(role == "previous" for _, role in keys):
        detail += (
            "; záznam předchozího klíče nechte zveřejněný ještě týden po výměně, ať se ověří i "
            "zprávy podepsané před ní"
        )
    return Check("dkim_key", title, Level.OK, detail + ".", records), keys


def check_trusted_proxies(settings: Any) -> Check:
    """Whose X-Forwarded-For the web part believes (the client address for the public forms'
    rate limits, the sign-in throttle and the event log)."""
    title = "Důvěryhodné reverzní proxy (TRUSTED_PROXIES)"
    entries = settings.trusted_proxy_list()
    if not entries:
        return Check(
            "trusted_proxies",
            title,
            Level.OK,
            "Žádné: klientem je vždy adresa spojení a hlavička X-Forwarded-For se nečte. "
            "Běží-li web za reverzní proxy, uveďte její adresu, jinak se limity formulářů "
            "počítají pro proxy jako pro jednoho klienta.",
        )
    invalid = []
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            invalid.append(entry)
    if invalid:
        return Check(
            "trusted_proxies",
            title,
            Level.WARNING,
            f"Neplatné položky: {', '.join(invalid)}. Uveďte adresy IP nebo sítě CIDR oddělené "
            "čárkou, např. 127.0.0.1, 10.0.0.0/8.",
        )
    return Check(
        "trusted_proxies",
        title,
        Level.OK,
        f"{', '.join(entries)}: od nich se klientem stává poslední adresa v X-Forwarded-For, "
        "která sama není proxy.",
    )


def check_tracking(settings: Any) -> Check:
    """Who gets the open pixel and personal links (mailer.compose.consent): always ok."""
    title = "Sledování otevření a kliknutí (TRACKING_WITHOUT_CONSENT)"
    if settings.tracking_without_consent == "anonymous":
        detail = (
            "TRACKING_WITHOUT_CONSENT=anonymous: jednotlivě sledujeme jen kontakty, které se "
            "sledováním souhlasily; ostatní dostávají zprávy bez sledovacího obrázku "
            "a s anonymními odkazy."
        )
    else:
        detail = (
            "TRACKING_WITHOUT_CONSENT=individual: jednotlivě sledujeme všechny kontakty kromě "
            "těch, které sledování odmítly (oprávněný zájem); přísnější výklad doporučení CNIL "
            "je TRACKING_WITHOUT_CONSENT=anonymous."
        )
    return Check("tracking", title, Level.OK, detail)


def from_domains(settings: Any, campaign_from: Iterable[str] = ()) -> list[str]:
    addresses = [str(settings.sender_email), *campaign_from]
    return sorted({a.rpartition("@")[2].lower() for a in addresses if "@" in a})


def check_alignment(settings: Any, domains: Sequence[str]) -> Check:
    title = "Zarovnání domény odesílatele s DKIM (d=)"
    d = dkim_domain(settings)
    bad = [dom for dom in domains if not aligned(dom, d)]
    if bad:
        return Check(
            "dkim_alignment",
            title,
            Level.ERROR,
            f"Podpis DKIM je za doménu {d} (DKIM_DOMAIN, jinak SENDER_DOMAIN), ale zprávy jsou "
            f"od {', '.join(bad)}. DMARC pak neprojde. Sjednoťte adresu odesílatele (SENDER_EMAIL "
            "nebo from_email v campaign.toml) s doménou podpisu.",
        )
    return Check("dkim_alignment", title, Level.OK, f"Od: {', '.join(domains)}; d={d}.")


def _unverifiable(key: str, title: str, exc: LookupUnavailable) -> Check:
    return Check(
        key,
        title,
        Level.WARNING,
        f"Nelze ověřit: DNS neodpovídá ({exc}). Spusťte sdruk doctor na stroji s přístupem "
        "k internetu.",
    )


def check_dkim_dns(keys: Sequence[tuple[DkimKey, str]], lookup: Lookup) -> Check:
    title = "Záznamy DKIM v DNS"
    if not keys:
        return Check("dkim_dns", title, Level.ERROR, "Není co ověřit: chybí klíč DKIM.")
    problems = []
    for key, _ in keys:
        try:
            found = lookup(key.dns_name)
        except LookupUnavailable as exc:
            return _unverifiable("dkim_dns", title, exc)
        published = [
            r.replace(" ", "").partition("p=")[2].split(";")[0] for r in found if "p=" in r
        ]
        if not published:
            problems.append(f"{key.dns_name}: záznam TXT chybí")
        elif key.public_key_b64() not in published:
            problems.append(f"{key.dns_name}: zveřejněný klíč neodpovídá souboru {key.path}")
    if problems:
        return Check(
            "dkim_dns",
            title,
            Level.ERROR,
            "; ".join(problems) + ". Zveřejněte záznamy z kontroly „Klíč DKIM“.",
        )
    return Check("dkim_dns", title, Level.OK, "Každý selektor má v DNS svůj klíč.")


def check_spf(settings: Any, domains: Sequence[str], lookup: Lookup) -> Check:
    title = "SPF obálkové domény (BOUNCE_DOMAIN)"
    envelope = str(settings.bounce_domain)
    try:
        found = [r for r in lookup(envelope) if r.lower().startswith("v=spf1")]
    except LookupUnavailable as exc:
        return _unverifiable("spf", title, exc)
    if not found:
        return Check(
            "spf",
            title,
            Level.ERROR,
            f"Doména {envelope} (návratová adresa zpráv) nemá záznam SPF. Zveřejněte TXT "
            f"„v=spf1 include:… -all“ s rozesílacím serverem.",
        )
    if len(found) > 1:
        return Check(
            "spf", title, Level.ERROR, f"{envelope} má {len(found)} záznamy SPF; smí mít jeden."
        )
    off = [d for d in domains if not aligned(d, envelope)]
    if off:
        return Check(
            "spf",
            title,
            Level.WARNING,
            f"SPF domény {envelope} není zarovnané s {', '.join(off)}: DMARC se pak opírá "
            "jen o DKIM. Zvolte BOUNCE_DOMAIN pod doménou odesílatele.",
        )
    return Check("spf", title, Level.OK, f"{envelope}: {found[0]}")


def check_dmarc(domains: Sequence[str], lookup: Lookup) -> Check:
    title = "DMARC domény odesílatele"
    missing, notes = [], []
    for domain in domains:
        try:
            found = lookup(f"_dmarc.{domain}")
            if not found and organisational(domain) != domain:
                found = lookup(f"_dmarc.{organisational(domain)}")
        except LookupUnavailable as exc:
            return _unverifiable("dmarc", title, exc)
        records = [r for r in found if r.replace(" ", "").lower().startswith("v=dmarc1")]
        if not records:
            missing.append(domain)
        else:
            notes.append(f"{domain}: {records[0]}")
    if missing:
        return Check(
            "dmarc",
            title,
            Level.ERROR,
            f"Chybí záznam DMARC pro {', '.join(missing)}; Gmail a Yahoo ho od hromadných "
            f"odesílatelů vyžadují. Zveřejněte TXT {', '.join(f'_dmarc.{d}' for d in missing)} "
            "s hodnotou „v=DMARC1; p=none; rua=mailto:…“ a později zpřísněte.",
        )
    return Check("dmarc", title, Level.OK, "; ".join(notes))


def check_relay(settings: Any, login: Callable[[str], None] | None = None) -> Check:
    """The relay's greeting, TLS and login, with one connection."""
    title = "Přihlášení k odesílacímu serveru (SMTP_URL)"
    url = settings.resolved_smtp_url()
    if getattr(settings, "smtp_test_relay", False):
        return Check(
            "relay",
            title,
            Level.WARNING,
            "Odesílací server je označený jako zkušební (SMTP_TEST_RELAY): spuštění se "
            "neodmítají. Pro ostré rozesílání tuto volbu vypněte.",
        )
    if not is_real_relay(url):
        return Check(
            "relay",
            title,
            Level.WARNING,
            f"Zprávy se jen zachytávají ({url.split('://')[0]}://), nic neodchází. Pro ostré "
            "rozesílání nastavte SMTP_URL na skutečný server, např. "
            "smtps://uzivatel:heslo@smtp.example.cz:465.",
        )
    try:
        (login or relay_login)(url)
    except Exception as exc:  # every failure is a finding, with its reason
        return Check(
            "relay",
            title,
            Level.ERROR,
            f"Server odmítl spojení nebo přihlášení: {str(exc) or type(exc).__name__}. "
            "Zkontrolujte SMTP_URL (adresa, port, jméno a heslo, TLS).",
        )
    from mailer.delivery.transport import parse_smtp_url

    return Check("relay", title, Level.OK, parse_smtp_url(url).describe())


def relay_login(url: str) -> None:
    """Open one connection to the relay (TLS and AUTH as configured), then quit."""
    from mailer.delivery.transport import SMTPConfig, SMTPTransport, parse_smtp_url

    config = parse_smtp_url(url)
    config = SMTPConfig(**{**config.__dict__, "concurrency": 1, "timeout": 15.0})

    async def once() -> None:
        client = await SMTPTransport(config).connect_once()
        try:
            await client.quit()
        finally:
            client.close()

    asyncio.run(once())


def campaign_senders() -> list[str]:
    """The From addresses the campaigns set (those that cannot be read are left to
    `sdruk campaigns check`)."""
    from mailer.compose.campaigns import BlueprintError, load_blueprints

    try:
        return [bp.from_email for bp in load_blueprints() if bp.from_email]
    except (BlueprintError, OSError, ValueError):
        return []


def run_doctor(
    settings: Any,
    *,
    lookup: Lookup | None = None,
    login: Callable[[str], None] | None = None,
    campaign_from: Iterable[str] = (),
    network: bool = True,
    relay: bool = True,
) -> list[Check]:
    """Every check, in the order staff should fix them. `network=False` skips the DNS and the
    relay (for a capture deployment or a quick look); `relay=False` skips only the relay."""
    domains = from_domains(settings, campaign_from)
    keys_check, keys = check_dkim_keys(settings)
    checks = [
        check_base_url(settings),
        check_sender(settings),
        check_trusted_proxies(settings),
        keys_check,
        check_alignment(settings, domains),
        check_tracking(settings),
    ]
    if network:
        ask = _once_offline(lookup or dns_lookup)
        checks += [
            check_dkim_dns(keys, ask),
            check_spf(settings, domains, ask),
            check_dmarc(domains, ask),
        ]
        if relay:
            checks.append(check_relay(settings, login))
    return checks


def _once_offline(lookup: Lookup) -> Lookup:
    """After one lookup found the DNS unreachable, the others say so at once instead of each
    waiting for its own timeout."""
    failed: list[LookupUnavailable] = []

    def ask(name: str) -> list[str]:
        if failed:
            raise failed[0]
        try:
            return lookup(name)
        except LookupUnavailable as exc:
            failed.append(exc)
            raise

    return ask


def worst(checks: Iterable[Check]) -> Level:
    levels = {c.level for c in checks}
    if Level.ERROR in levels:
        return Level.ERROR
    return Level.WARNING if Level.WARNING in levels else Level.OK
