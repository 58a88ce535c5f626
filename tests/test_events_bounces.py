"""Parsing what comes back: DSNs (RFC 3464), plain-text bounces, ARF (RFC 5965), VERP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailer.events import bounces
from mailer.tokens import Purpose, Signer

SIGNER = Signer([b"current-key", b"retired-key"])
DOMAIN = "bounces.sdruk.cz"


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from mailer import settings

    monkeypatch.setenv("BOUNCE_DOMAIN", DOMAIN)
    settings.get_settings.cache_clear()
    yield
    settings.get_settings.cache_clear()


def _gmail_dsn(outbox_id: int) -> bytes:
    token = SIGNER.sign(Purpose.UNSUBSCRIBE, outbox_id)
    mailto = SIGNER.sign_address(Purpose.UNSUBSCRIBE, outbox_id)
    return (
        "Delivered-To: bounce+x@bounces.sdruk.cz\r\n"
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\r\n"
        "To: bounce+x@bounces.sdruk.cz\r\n"
        "Subject: Delivery Status Notification (Failure)\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; boundary="000000000000a1"; report-type=delivery-status\r\n'
        "\r\n"
        "--000000000000a1\r\n"
        'Content-Type: text/plain; charset="UTF-8"\r\n'
        "\r\n"
        "Address not found\r\n"
        "\r\n"
        "--000000000000a1\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; googlemail.com\r\n"
        "Received-From-MTA: dns; mail.sdruk.cz\r\n"
        "\r\n"
        "Final-Recipient: rfc822; knihovna.neexistuje@gmail.com\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Remote-MTA: dns; gmail-smtp-in.l.google.com. (2a00:1450:4013:c03::1a, the server\r\n"
        " for the domain gmail.com.)\r\n"
        "Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does\r\n"
        " not exist. https://support.google.com/mail/?p=NoSuchUser\r\n"
        "Last-Attempt-Date: Tue, 24 Nov 2026 13:15:00 -0800 (PST)\r\n"
        "\r\n"
        "--000000000000a1\r\n"
        "Content-Type: message/rfc822\r\n"
        "\r\n"
        "From: sdruk@sdruk.cz\r\n"
        "To: knihovna.neexistuje@gmail.com\r\n"
        "Subject: =?utf-8?q?Pozv=C3=A1nka?=\r\n"
        f"List-Unsubscribe: <https://kampane.sdruk.cz/u/{token}>,\r\n"
        f" <mailto:unsubscribe+{mailto}@{DOMAIN}>\r\n"
        "\r\n"
        "Text.\r\n"
        "--000000000000a1--\r\n"
    ).encode()


def test_it_reads_a_gmail_dsn_and_finds_the_message_from_the_returned_original() -> None:
    message = bounces.parse_message(_gmail_dsn(4711))
    report = bounces.parse_dsn(message)
    assert report is not None
    [status] = report.recipients
    assert (status.final_recipient, status.action, status.status, status.hard) == (
        "knihovna.neexistuje@gmail.com",
        "failed",
        "5.1.1",
        True,
    )
    assert "does not exist" in status.diagnostic
    assert bounces.outbox_id_from_original(report.original_headers, SIGNER) == 4711
    assert bounces.parse_arf(message) is None


@pytest.mark.parametrize(
    ("status", "hard"),
    [
        ("5.1.1", True),
        ("5.1.10", True),
        ("5.2.1", True),
        ("5.2.2", False),
        ("5.7.1", False),
        ("4.2.2", False),
    ],
)
def test_it_tells_hard_from_soft_statuses(status: str, hard: bool) -> None:
    assert bounces.is_hard_status(status) is hard


def test_it_reads_a_plain_text_bounce_but_not_an_auto_reply() -> None:
    qmail = (
        b"From: MAILER-DAEMON@mail.obec-test.cz\r\nSubject: failure notice\r\n\r\n"
        b"Hi. This is the qmail-send program at mail.obec-test.cz.\r\n"
        b"<knihovna@obec-test.cz>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n"
    )
    report = bounces.parse_nonstandard_bounce(bounces.parse_message(qmail))
    assert report is not None and report.recipients[0].hard
    reply = b"From: reditel@knihovna.cz\r\nSubject: Re: Pozvanka\r\n\r\nDekuji, 5.1.1 nevim.\r\n"
    assert bounces.parse_nonstandard_bounce(bounces.parse_message(reply)) is None
    assert bounces.parse_dsn(bounces.parse_message(reply)) is None


def test_it_resolves_only_signed_verp_addresses_of_our_domain() -> None:
    token = SIGNER.sign_address(Purpose.RETURN_PATH, 99)
    retired = Signer([b"retired-key"]).sign_address(Purpose.RETURN_PATH, 98)
    assert bounces.return_path_outbox_id(f"<bounce+{token}@{DOMAIN}>", SIGNER) == 99
    assert bounces.return_path_outbox_id(f"bounce+{retired}@{DOMAIN.upper()}", SIGNER) == 98
    assert bounces.return_path_outbox_id(f"bounce+{token}@example.org", SIGNER) is None
    assert bounces.unsubscribe_outbox_id(f"unsubscribe+{token}@{DOMAIN}", SIGNER) is None
    unsubscribe = SIGNER.sign_address(Purpose.UNSUBSCRIBE, 7)
    assert bounces.unsubscribe_outbox_id(f"unsubscribe+{unsubscribe}@{DOMAIN}", SIGNER) == 7
