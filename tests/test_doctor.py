"""`sdruk doctor` and the launch gate: a deployment that cannot send real mail well says what to
fix and where; a launch to a real relay is refused while an error or a placeholder remains,
while capture and the demo go on with a warning. DNS answers come from a fake lookup (this
machine has no DNS to the internet); the relay is a real in-process SMTP server."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from delivery_support import add_contacts
from smtp_server import SMTPServer, server_tls_context, tls_files  # noqa: F401
from sqlalchemy import Engine
from typer.testing import CliRunner

from mailer import settings as mailer_settings
from mailer.cli import app
from mailer.compose.campaigns import load_blueprint
from mailer.compose.dkim import RSA, generate_key, load_key
from mailer.delivery import outbox as ob
from mailer.delivery import runs
from mailer.delivery.readiness import readiness, unfinished_content
from mailer.doctor import Check, Level, LookupUnavailable, run_doctor
from mailer.settings import PROJECT_ROOT, Settings

READY_SENDER = {
    "SENDER_ICO": "12345678",
    "SENDER_SEAT": "Národní 3, 110 00 Praha 1",
    "BASE_URL": "https://kampane.sdruk.cz",
}


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dkim") / "k2027.pem"
    path.write_bytes(generate_key(RSA))
    return path


def zone_for(key_file: Path) -> dict[str, list[str]]:
    key = load_key(key_file, "k2027", "sdruk.cz")
    return {
        "k2027._domainkey.sdruk.cz": [key.txt_record()],
        "bounces.sdruk.cz": ["v=spf1 ip4:192.0.2.10 -all"],
        "_dmarc.sdruk.cz": ["v=DMARC1; p=quarantine; rua=mailto:dmarc@sdruk.cz"],
    }


def fake_lookup(zone: dict[str, list[str]]) -> Callable[[str], list[str]]:
    return lambda name: list(zone.get(name, []))


def offline(name: str) -> list[str]:
    raise LookupUnavailable("síť není dostupná")


def ready_settings(key_file: Path, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "SECRET_KEY": "k",
        "DKIM_SELECTOR": "k2027",
        "DKIM_PRIVATE_KEY_FILE": str(key_file),
        "SMTP_URL": "smtp://relay.sdruk.cz:587?starttls=true",
        **READY_SENDER,
    }
    base.update(values)
    return Settings(**base)


def levels(checks: list[Check]) -> dict[str, Level]:
    return {c.key: c.level for c in checks}


def logged_in(url: str) -> None:
    return None


def test_it_passes_a_deployable_setup(key_file: Path) -> None:
    checks = run_doctor(
        ready_settings(key_file), lookup=fake_lookup(zone_for(key_file)), login=logged_in
    )
    assert set(levels(checks).values()) == {Level.OK}, [c.as_json() for c in checks]
    (dkim,) = [c for c in checks if c.key == "dkim_key"]
    assert dkim.records[0][0] == "k2027._domainkey.sdruk.cz"
    assert dkim.records[0][2].startswith("v=DKIM1; k=rsa; p=")


def test_it_says_what_to_fix_and_where(key_file: Path) -> None:
    zone = zone_for(key_file)
    # The published record is someone else's key.
    zone["k2027._domainkey.sdruk.cz"] = ["v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"]
    del zone["_dmarc.sdruk.cz"]
    del zone["bounces.sdruk.cz"]
    settings = Settings(SECRET_KEY="k", BASE_URL="http://kampane.sdruk.cz")
    checks = run_doctor(
        settings, lookup=fake_lookup(zone), login=logged_in, campaign_from=["info@jinde.cz"]
    )
    found = {c.key: c for c in checks}
    assert found["base_url"].level is Level.ERROR and "https" in found["base_url"].detail
    assert found["sender"].level is Level.ERROR and "SENDER_ICO" in found["sender"].detail
    assert (
        found["dkim_key"].level is Level.ERROR and "sdruk dkim keygen" in found["dkim_key"].detail
    )
    assert found["dkim_alignment"].level is Level.ERROR
    assert "jinde.cz" in found["dkim_alignment"].detail
    assert found["spf"].level is Level.ERROR and "bounces.sdruk.cz" in found["spf"].detail
    assert found["dmarc"].level is Level.ERROR and "_dmarc.sdruk.cz" in found["dmarc"].detail
    # Capture: nothing leaves the machine, said as a warning.
    assert found["relay"].level is Level.WARNING

    mismatch = run_doctor(ready_settings(key_file), lookup=fake_lookup(zone), login=logged_in)
    assert levels(mismatch)["dkim_dns"] is Level.ERROR


def test_it_cannot_check_the_dns_offline_and_says_so(key_file: Path) -> None:
    asked: list[str] = []

    def counting(name: str) -> list[str]:
        asked.append(name)
        return offline(name)

    checks = run_doctor(ready_settings(key_file), lookup=counting, login=logged_in)
    for check in checks:
        if check.key in ("dkim_dns", "spf", "dmarc"):
            assert check.level is Level.WARNING and "Nelze ověřit" in check.detail
    assert len(asked) == 1  # one timeout, not one per record


def test_it_refuses_a_weak_dkim_key_in_its_report(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = tmp_path / "weak.pem"
    weak.write_bytes(
        rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    checks = run_doctor(ready_settings(weak), network=False)
    (dkim,) = [c for c in checks if c.key == "dkim_key"]
    assert dkim.level is Level.ERROR and "1024 bitů" in dkim.detail


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_it_tries_the_relay_login_with_one_connection(
    key_file: Path,
    tls_files: tuple[Path, Path],  # noqa: F811
) -> None:
    cert, key = tls_files
    server = SMTPServer(implicit_tls=server_tls_context(cert, key), users={"sdruk": "správné"})
    server.start()
    try:
        good = f"smtps://sdruk:spr%C3%A1vn%C3%A9@localhost:{server.port}?ca_file={cert}"
        bad = f"smtps://sdruk:spatne@localhost:{server.port}?ca_file={cert}"
        zone = fake_lookup(zone_for(key_file))
        ok = run_doctor(ready_settings(key_file, SMTP_URL=good), lookup=zone)
        refused = run_doctor(ready_settings(key_file, SMTP_URL=bad), lookup=zone)
    finally:
        server.stop()
    assert levels(ok)["relay"] is Level.OK
    (relay,) = [c for c in refused if c.key == "relay"]
    assert relay.level is Level.ERROR and "SMTP_URL" in relay.detail
    assert server.auth_attempts == [
        (server.auth_attempts[0][0], "sdruk", True),
        (server.auth_attempts[1][0], "sdruk", False),
    ]  # one attempt each: a wrong password is tried once, not per mechanism


# -- the launch gate ---------------------------------------------------------------------------


@pytest.fixture
def campaigns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The shipped campaigns in a folder of the test's own."""
    folder = tmp_path / "campaigns"
    shutil.copytree(PROJECT_ROOT / "campaigns", folder)
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(folder))
    mailer_settings.get_settings.cache_clear()
    yield folder
    mailer_settings.get_settings.cache_clear()


def queued(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(ob.outbox)).scalar_one())


def real_relay(monkeypatch: pytest.MonkeyPatch, key_file: Path, **values: str) -> None:
    env = {
        "SMTP_URL": "smtp://relay.sdruk.cz:587?starttls=true",
        "DKIM_SELECTOR": "k2027",
        "DKIM_PRIVATE_KEY_FILE": str(key_file),
        **READY_SENDER,
        **values,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("mailer.doctor.dns_lookup", fake_lookup(zone_for(key_file)))
    mailer_settings.get_settings.cache_clear()


def test_it_refuses_a_real_launch_with_placeholders_left(
    engine: Engine, campaigns: Path, monkeypatch: pytest.MonkeyPatch, key_file: Path
) -> None:
    add_contacts(engine, 5)
    real_relay(monkeypatch, key_file, SENDER_ICO="[IČO – doplnit]")
    conference = load_blueprint("knihovny-soucasnosti-2027")
    with pytest.raises(runs.LaunchRefused) as refused:
        runs.launch(engine, conference)
    message = str(refused.value)
    assert "SENDER_ICO" in message
    assert "knihovny-soucasnosti-2027/campaign.toml:26" in message  # start = …  # POTVRDIT
    assert "nepotvrzené začátek, konec, místo" in message
    assert queued(engine) == 0
    # The console and the scheduler catch the same exception as a broken blueprint.
    assert isinstance(refused.value, runs.BlueprintRejected)


def test_it_refuses_a_real_launch_while_a_doctor_error_remains(
    engine: Engine, campaigns: Path, monkeypatch: pytest.MonkeyPatch, key_file: Path
) -> None:
    add_contacts(engine, 5)
    real_relay(monkeypatch, key_file, BASE_URL="http://kampane.sdruk.cz")
    join = load_blueprint("join-this-year-2026")
    assert unfinished_content(join) == []  # its only POTVRDIT is a comment on the convention
    with pytest.raises(runs.LaunchRefused, match="BASE_URL"):
        runs.launch(engine, join)
    assert queued(engine) == 0


def test_it_launches_to_a_real_relay_when_ready_and_warns(
    engine: Engine, campaigns: Path, monkeypatch: pytest.MonkeyPatch, key_file: Path
) -> None:
    add_contacts(engine, 5)
    real_relay(monkeypatch, key_file)
    zone = zone_for(key_file)
    zone["_dmarc.sdruk.cz"] = []
    join = load_blueprint("join-this-year-2026")

    def dns_down(name: str) -> list[str]:
        raise LookupUnavailable("timeout")

    # Unverifiable DNS is a warning: shown, not blocking.
    monkeypatch.setattr("mailer.doctor.dns_lookup", dns_down)
    found = readiness(join)
    assert found.real_relay and not found.refused
    assert any("Nelze ověřit" in w for w in found.warnings)
    result = runs.launch(engine, join)
    assert result.created and queued(engine) == 5


def test_it_lets_capture_go_on_with_a_visible_warning(
    engine: Engine, campaigns: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_contacts(engine, 5)
    monkeypatch.delenv("SMTP_URL", raising=False)
    mailer_settings.get_settings.cache_clear()
    conference = load_blueprint("knihovny-soucasnosti-2027")
    found = readiness(conference)
    assert not found.real_relay and not found.refused and found.errors == []
    text = " ".join([found.note, *found.warnings])
    assert "zachytávání" in text and "SENDER_ICO" in text and "to_be_confirmed" in text
    assert runs.launch(engine, conference).created


def test_it_warns_only_for_a_declared_test_relay(
    engine: Engine, campaigns: Path, monkeypatch: pytest.MonkeyPatch, key_file: Path
) -> None:
    """A staging mail catcher (or a test's own SMTP server) reaches nobody real."""
    add_contacts(engine, 5)
    real_relay(monkeypatch, key_file, SENDER_ICO="[IČO – doplnit]", SMTP_TEST_RELAY="true")
    conference = load_blueprint("knihovny-soucasnosti-2027")
    found = readiness(conference)
    assert not found.refused and "SENDER_ICO" in " ".join(found.warnings)
    assert runs.launch(engine, conference).created


def test_its_cli_prints_the_records_and_refuses_a_real_launch(
    engine: Engine, campaigns: Path, monkeypatch: pytest.MonkeyPatch, key_file: Path
) -> None:
    add_contacts(engine, 3)
    real_relay(monkeypatch, key_file)
    runner = CliRunner()
    doctor = runner.invoke(app, ["doctor", "--offline"])
    assert doctor.exit_code == 0, doctor.output
    assert "k2027._domainkey.sdruk.cz  TXT  v=DKIM1; k=rsa; p=" in doctor.output
    refused = runner.invoke(app, ["campaigns", "launch", "knihovny-soucasnosti-2027"])
    assert refused.exit_code == 1
    assert "nelze odeslat na skutečný server" in refused.output
    assert "campaign.toml:26" in refused.output
    assert queued(engine) == 0


# -- the console -------------------------------------------------------------------------------


def test_its_console_pages_show_the_setup_and_gate_the_launch(
    engine: Engine,
    campaigns: Path,
    monkeypatch: pytest.MonkeyPatch,
    key_file: Path,
    tmp_path: Path,
) -> None:
    from console_support import BASE_URL, add_user, load_contacts, make_app, sign_in
    from fastapi.testclient import TestClient

    load_contacts(engine, tmp_path)
    add_user(engine, "spravce@sdruk.example", "admin")
    add_user(engine, "ctenar@sdruk.example", "viewer")
    with TestClient(make_app(engine), base_url=BASE_URL) as client:
        # Capture (the demo): the launch page warns and still offers the launch.
        sign_in(client, "spravce@sdruk.example")
        page = client.get("/console/campaigns/knihovny-soucasnosti-2027/launch")
        assert page.status_code == 200
        assert 'id="launch-warnings"' in page.text and "SENDER_ICO" in page.text
        assert 'id="launch-now"' in page.text and 'id="launch-refused"' not in page.text

        real_relay(monkeypatch, key_file, SENDER_ICO="[IČO – doplnit]")
        page = client.get("/console/campaigns/knihovny-soucasnosti-2027/launch")
        assert 'id="launch-refused"' in page.text and 'id="launch-now"' not in page.text
        assert "campaign.toml:26" in page.text
        setup = client.get("/console/setup")
        assert setup.status_code == 200
        assert 'id="check-sender"' in setup.text and "SENDER_ICO" in setup.text
        assert "k2027._domainkey.sdruk.cz" in setup.text
        assert 'id="try-relay"' in setup.text  # the login is tried only on request
        # A key that cannot sign: the test send says why (never a 500, never unsigned).
        from console_support import csrf_of

        preview = client.get("/console/campaigns/knihovny-soucasnosti-2027/preview")
        contact_id = re.search(r'name="contact_id" value="(\d+)"', preview.text)
        assert contact_id is not None, preview.text[:2000]
        monkeypatch.setenv("DKIM_PRIVATE_KEY_FILE", str(tmp_path / "chybi.pem"))
        mailer_settings.get_settings.cache_clear()
        sent = client.post(
            "/console/campaigns/knihovny-soucasnosti-2027/test-send",
            data={"csrf_token": csrf_of(preview.text), "contact_id": contact_id.group(1)},
        )
        assert sent.status_code == 422 and "nelze přečíst" in sent.text
        client.post("/console/logout")
        sign_in(client, "ctenar@sdruk.example")
        assert client.get("/console/setup").status_code == 403


def test_it_shows_which_proxies_are_trusted_and_flags_what_is_not_an_address(
    key_file: Path,
) -> None:
    def proxies(value: str) -> Check:
        checks = run_doctor(ready_settings(key_file, TRUSTED_PROXIES=value), network=False)
        (found,) = [c for c in checks if c.key == "trusted_proxies"]
        return found

    none = proxies("")
    assert none.level is Level.OK and "X-Forwarded-For se nečte" in none.detail
    two = proxies("127.0.0.1, 10.0.0.0/8")
    assert two.level is Level.OK and "127.0.0.1, 10.0.0.0/8" in two.detail
    wrong = proxies("10.0.0.0/8, proxy-na-kraji")
    assert wrong.level is Level.WARNING and "Neplatné položky: proxy-na-kraji" in wrong.detail


@pytest.mark.parametrize("policy", ["individual", "anonymous"])
def test_it_says_who_is_tracked_individually(key_file: Path, policy: str) -> None:
    settings = ready_settings(key_file, TRACKING_WITHOUT_CONSENT=policy)
    checks = run_doctor(settings, network=False)
    (tracking,) = [c for c in checks if c.key == "tracking"]
    assert tracking.level is Level.OK
    assert tracking.detail.startswith(f"TRACKING_WITHOUT_CONSENT={policy}:")
