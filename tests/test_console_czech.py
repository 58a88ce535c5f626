"""Staff read Czech: every console page, walked as an administrator over the demo directory
with a sent campaign, a recorded join, a captured message and an import, shows no common
English word and no raw id (step slugs, campaign folder names, `*_id: 42`) in its visible text.

The walk follows the console's own links, so a new page is checked as soon as it is linked."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from console_support import BASE_URL, HTML, add_user, make_app, sign_in
from fastapi.testclient import TestClient
from lxml import html as lxml_html
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer import settings as mailer_settings
from mailer.audience.contacts import import_contacts
from mailer.cli.demo import FIXTURE
from mailer.compose.campaigns import load_blueprint
from mailer.models import Library

# Words an English interface leaks: framework defaults, status values, labels left untranslated.
ENGLISH = {
    "the", "and", "of", "to", "is", "not", "with", "for", "from", "this", "that", "page",
    "done", "same", "new", "sent", "queued", "failed", "skipped", "pending", "launched",
    "missed", "late", "active", "unsubscribed", "bounced", "complained", "sending", "paused",
    "cancelled", "scheduled", "open", "click", "error", "none", "true", "false", "null",
    "show", "usage", "options", "subject", "status", "campaign", "launch", "step", "reminder",
    "consent", "legitimate", "interest", "member", "library", "contact", "email", "edit",
    "delete", "save", "submit", "back", "next", "previous", "yes", "no", "unknown", "view",
    "opened", "clicked", "joined", "registered", "recruitment", "event", "newsletter",
    "individual", "anonymous", "admin", "viewer", "sun", "mon", "tue", "wed",
    "thu", "fri", "sat", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "oct",
    "nov", "dec",
}  # fmt: skip
# Identifiers that only code should see.
RAW_ID = re.compile(r"\b[a-z]+_id\b|\b[a-z]+_[a-z_]+:\s*\d+")
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# Tokens that legitimately hold Latin-script ids: addresses, links, file names, codes.
# TOML keys and tables named where staff are told what to fill in ([event], to_be_confirmed)
# are such codes too, and so are header names (X-Forwarded-For, List-Unsubscribe) and
# settings with their values (TRACKING_WITHOUT_CONSENT=anonymous).
TECHNICAL = re.compile(
    r"\S*[@/]\S*|\S+\.(csv|eml|json|mjml|toml|cz|example)\b|\b[A-Z]{2,}\d+\b"
    r"|\[[a-z_]+\]|\b[a-z]+(?:_[a-z]+)+\b|\b[A-Z][a-z]*(?:-[A-Z][a-z]*)+\b"
    r"|\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?:=[a-z]+)?"
)


def visible_text(page: str) -> str:
    """What a person reads on a page: text outside scripts and styles, plus the labels that
    assistive technology reads (title, aria-label, placeholder, button values)."""
    tree = lxml_html.fromstring(page)
    # translate="no" marks what is shown as sent or stored (raw headers), not interface text.
    hidden = "//script|//style|//code|//pre|//iframe|//textarea|//template|//*[@translate='no']"
    for node in tree.xpath(hidden):
        node.drop_tree()
    # Text of neighbouring elements apart, as a browser shows list items and cells.
    parts = [" ".join(tree.itertext())]
    for attribute in ("title", "aria-label", "placeholder"):
        parts += tree.xpath(f"//@{attribute}")
    parts += tree.xpath("//input[@type='submit' or @type='button']/@value")
    return " ".join(" ".join(parts).split())


def problems(text: str, forbidden_ids: set[str]) -> list[str]:
    found = []
    found += RAW_ID.findall(re.sub(r"\S*[@/]\S*", " ", text))
    plain = TECHNICAL.sub(" ", text)
    for word in WORD.findall(plain):
        if word.lower() in ENGLISH and word.isascii():
            found.append(word)
    for slug in forbidden_ids:
        if re.search(rf"(?<![\w/-]){re.escape(slug)}\b", plain):
            found.append(slug)
    return found


@pytest.fixture
def walked_app(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    """The demo directory, the recruitment campaign launched and sent to the capture folder,
    one recorded join, and an import with a bad row."""
    from mailer.delivery.runs import launch
    from mailer.delivery.send import WorkerOptions, drain
    from mailer.delivery.transport import transport_from_url

    import_contacts(engine, FIXTURE)
    add_user(engine, "spravce@sdruk.example", "admin")
    blueprint = load_blueprint("join-this-year-2026")
    result = launch(engine, blueprint, actor="spravce@sdruk.example")
    transport = transport_from_url(mailer_settings.get_settings().resolved_smtp_url())
    asyncio.run(drain(engine, transport, WorkerOptions(worker_id="test")))
    assert result.run_id
    with TestClient(make_app(engine), base_url=BASE_URL) as client:
        csrf = sign_in(client, "spravce@sdruk.example")
        with Session(engine) as session:
            library = session.exec(
                select(Library).where(col(Library.is_member).is_(False)).order_by(col(Library.id))
            ).first()
            assert library is not None
        client.post(
            f"/console/libraries/{library.id}/membership",
            data={"csrf_token": csrf, "note": "přihláška e-mailem"},
        )
        files = {"file": ("adresar.csv", b"email;knihovna\nneni-adresa;K\n", "text/csv")}
        client.post(
            "/console/contacts/import", data={"csrf_token": csrf, "mode": "import"}, files=files
        )
        yield client


def _kind(link: str) -> str:
    """What makes two links the same page: the path without ids and message file names, and
    the names (not values) of the query parameters, except which step a page is about."""
    parts = urlsplit(link)
    path = re.sub(r"/outbox/[^/]+\.eml", "/outbox/X", re.sub(r"\d+", "N", parts.path))
    keys = sorted(
        k if k != "step" else f"step={v}"
        for k, _, v in (q.partition("=") for q in parts.query.split("&") if q)
    )
    return path + "?" + "&".join(keys)


SKIP = re.compile(r"/logout|/static/|\.csv|/export|/report/|/raw$|/download")


def test_every_console_page_speaks_czech(walked_app: TestClient) -> None:
    from mailer.compose.campaigns import blueprint_slugs

    forbidden = set()
    for slug in blueprint_slugs():
        forbidden.add(slug)
        forbidden |= {s.name for s in load_blueprint(slug).steps if s.name != "launch"}
    queue, seen = deque(["/console/"]), {"/console/"}
    kinds = {_kind("/console/")}
    failures: dict[str, list[str]] = {}
    walked = 0
    while queue and walked < 150:
        path = queue.popleft()
        response = walked_app.get(path, headers=HTML)
        if response.status_code != 200 or "text/html" not in response.headers["content-type"]:
            continue
        walked += 1
        found = problems(visible_text(response.text), forbidden)
        if found:
            failures[path] = sorted(set(found))
        for href in lxml_html.fromstring(response.text).xpath("//a/@href"):
            target = urljoin(BASE_URL + path, href)
            parts = urlsplit(target)
            link = parts.path + (f"?{parts.query}" if parts.query else "")
            if (
                parts.netloc == urlsplit(BASE_URL).netloc
                and parts.path.startswith("/console")
                and not SKIP.search(parts.path)
                and link not in seen
                # One page of each kind is enough: /contacts/12 stands for /contacts/13.
                and _kind(link) not in kinds
            ):
                seen.add(link)
                kinds.add(_kind(link))
                queue.append(link)
    assert walked >= 15, f"the walk reached only {walked} pages: {sorted(seen)}"
    assert not failures, "\n".join(f"{p}: {', '.join(w)}" for p, w in failures.items())


def test_it_shows_a_subject_as_sent_not_its_template(engine: Engine) -> None:
    from mailer.compose.czech import format_day

    add_user(engine, "ctenar@sdruk.example", "viewer")
    blueprint = load_blueprint("knihovny-soucasnosti-2027")
    assert blueprint.event is not None and "{{" in blueprint.subject
    with TestClient(make_app(engine), base_url=BASE_URL) as client:
        sign_in(client, "ctenar@sdruk.example")
        page = client.get("/console/campaigns/knihovny-soucasnosti-2027", headers=HTML).text
    text = visible_text(page)
    assert "{{" not in text and "datum" not in text
    assert f"Knihovny současnosti 2027, {format_day(blueprint.event.start)}" in text


def test_it_names_steps_by_when_they_go_out() -> None:
    from mailer.compose.step_labels import describe_step

    recruitment = load_blueprint("join-this-year-2026")
    conference = load_blueprint("knihovny-soucasnosti-2027")
    assert describe_step(recruitment.step("launch")) == "hlavní rozeslání"
    assert describe_step(recruitment.step("pripominka")) == "připomínka 10 dní po rozeslání"
    assert describe_step(conference.step("2-dny-pred")) == "připomínka 2 dny před akcí"
    assert describe_step(recruitment.step("posledni-vyzva")).startswith("připomínka 15. prosince")


def test_the_audit_log_names_what_the_campaign_store_writes() -> None:
    from mailer.web.console.audit import ACTION_LABELS
    from mailer.web.console.names import Names

    names = Names()
    title = load_blueprint("join-this-year-2026").name
    assert names.target("campaign/join-this-year-2026") == title
    assert names.target("join-this-year-2026/pripominka") == (
        f"{title} – připomínka 10 dní po rozeslání"
    )
    shown = names.details({"revision": 2, "summary": "nový odstavec", "outside_window": False})
    assert shown == "verze: 2; popis změny: nový odstavec; mimo okno pro odesílání: ne"
    assert "campaign.save" in ACTION_LABELS
