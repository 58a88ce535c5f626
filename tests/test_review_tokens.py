"""Review findings about tokens: address-borne tokens (VERP return path, List-Unsubscribe mailto)
survive an MTA that changes the case of the local part; forged or altered ones never resolve."""

from __future__ import annotations

import smtplib

import pytest
from events_factory import make_world
from sqlalchemy import Engine
from test_inbound import BOUNCE_DOMAIN, postfix_dsn, smtp_port  # noqa: F401 (fixture)

from mailer import settings
from mailer.events import bounces
from mailer.models import Contact
from mailer.tokens import Purpose, Signer, default_signer

SIGNER = Signer([b"current-key", b"retired-key"])


@pytest.fixture
def bounce_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOUNCE_DOMAIN", BOUNCE_DOMAIN)
    settings.get_settings.cache_clear()


def _flip(token: str, at: int) -> str:
    alphabet = "0123456789abcdef"  # address tokens are lowercase hex
    old = token[at]
    return token[:at] + alphabet[(alphabet.index(old) + 1) % 16] + token[at + 1 :]


def test_it_resolves_an_upper_cased_verp_address_but_not_a_forged_one(
    bounce_domain: None,
) -> None:
    token = SIGNER.sign_address(Purpose.RETURN_PATH, 123456)
    assert token == token.lower()
    address = f"bounce+{token}@{BOUNCE_DOMAIN}"
    assert bounces.return_path_outbox_id(address, SIGNER) == 123456
    assert bounces.return_path_outbox_id(address.upper(), SIGNER) == 123456
    assert bounces.return_path_outbox_id(f"Bounce+{token.title()}@{BOUNCE_DOMAIN}", SIGNER) == (
        123456
    )
    for at in (0, 3, len(token) // 2, len(token) - 1):
        assert (
            bounces.return_path_outbox_id(f"bounce+{_flip(token, at)}@{BOUNCE_DOMAIN}", SIGNER)
            is None
        )
    foreign = Signer([b"someone-else"]).sign_address(Purpose.RETURN_PATH, 123456)
    assert bounces.return_path_outbox_id(f"bounce+{foreign}@{BOUNCE_DOMAIN}", SIGNER) is None
    other = SIGNER.sign_address(Purpose.UNSUBSCRIBE, 123456)
    assert bounces.return_path_outbox_id(f"bounce+{other}@{BOUNCE_DOMAIN}", SIGNER) is None
    mailto = f"unsubscribe+{other}@{BOUNCE_DOMAIN}".upper()
    assert bounces.unsubscribe_outbox_id(mailto, SIGNER) == 123456
    assert bounces.unsubscribe_outbox_id(f"unsubscribe+{token}@{BOUNCE_DOMAIN}", SIGNER) is None


def test_it_keeps_url_tokens_case_sensitive_and_refuses_other_spellings() -> None:
    token = SIGNER.sign(Purpose.UNSUBSCRIBE, 77)
    assert SIGNER.verify(Purpose.UNSUBSCRIBE, token) == (77,)
    assert SIGNER.verify(Purpose.UNSUBSCRIBE, token.swapcase()) is None
    # The base64 decoder would skip these characters; the token must not.
    for altered in (token + "!", token[:5] + "." + token[5:], token + "=", f" {token}"):
        assert SIGNER.verify(Purpose.UNSUBSCRIBE, altered) is None, altered
    # An address token is not a URL token and the other way round.
    assert SIGNER.verify(Purpose.UNSUBSCRIBE, SIGNER.sign_address(Purpose.UNSUBSCRIBE, 77)) is None
    assert SIGNER.verify_address(Purpose.UNSUBSCRIBE, token) is None


def test_it_marks_a_hard_bounce_sent_to_an_upper_cased_verp_address(
    engine: Engine,
    smtp_port: int,  # noqa: F811
) -> None:
    world = make_world(engine)
    outbox_id = world.outbox_ids[0]
    verp = f"bounce+{default_signer().sign_address(Purpose.RETURN_PATH, outbox_id)}@{BOUNCE_DOMAIN}"
    dsn = postfix_dsn(outbox_id, "reditelka0@knihovna-test.cz", "5.1.1")
    with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
        smtp.sendmail("", [verp.upper()], dsn)
        smtp.mail("")
        forged = f"bounce+{_flip(verp.split('+')[1].split('@')[0], 2)}@{BOUNCE_DOMAIN}"
        assert smtp.rcpt(forged.upper())[0] == 550
    with engine.connect() as conn:
        from sqlmodel import Session

        with Session(bind=conn) as session:
            contact = session.get(Contact, world.contact_ids[0])
            assert contact is not None and contact.status == "bounced"
            other = session.get(Contact, world.contact_ids[1])
            assert other is not None and other.status == "active"
