"""The campaign editor over HTTP: a new campaign from a starter or a copy, saves as revisions,
the second of two concurrent saves refused with nothing lost, viewers read but cannot write,
problems shown beside their block before any launch, the live preview, image uploads."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_support import BASE_URL, HTML, add_user, load_contacts, make_app, sign_in
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine
from sqlmodel import Session

from mailer.audience.segments import count, parse_segment
from mailer.compose import store
from mailer.compose.campaigns import load_blueprint

SHIPPED = "join-this-year-2026"


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    load_contacts(engine, tmp_path)
    add_user(engine, "editor@sdruk.example", "editor")
    add_user(engine, "druhy@sdruk.example", "editor")
    add_user(engine, "ctenar@sdruk.example", "viewer")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        yield test_client


def _create(client: TestClient, csrf: str, starter: str = "akce", name: str = "") -> str:
    response = client.post(
        "/console/campaigns/new",
        data={"csrf_token": csrf, "starter": starter, "name": name},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return response.headers["location"].split("/campaigns/")[1].split("/")[0]


def _form(page: str) -> dict[str, Any]:
    """The editor's fields as the browser would submit them (text inputs, selects, textareas,
    checked boxes), read from the page's HTML."""
    import html as html_lib
    import re

    data: dict[str, Any] = {}
    form = page[
        page.index('id="editor-form"') : page.index("</form>", page.index('id="editor-form"'))
    ]
    for match in re.finditer(r"<input ([^>]*)>", form):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', match.group(1)))
        if "name" not in attrs or attrs.get("type") == "file":
            continue
        if attrs.get("type") == "checkbox" and "checked" not in match.group(1):
            continue
        value = html_lib.unescape(attrs.get("value", ""))
        if attrs.get("type") == "checkbox" and attrs["name"] in data:
            previous = data[attrs["name"]]
            data[attrs["name"]] = (
                [*previous, value] if isinstance(previous, list) else [previous, value]
            )
        else:
            data.setdefault(attrs["name"], value)
    for match in re.finditer(r'<textarea [^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        data[match.group(1)] = html_lib.unescape(match.group(2))
    for match in re.finditer(r'<select [^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', match.group(2))
        first = re.search(r'<option value="([^"]*)"', match.group(2))
        data[match.group(1)] = (
            html_lib.unescape((chosen or first).group(1)) if (chosen or first) else ""
        )
    return data


def test_it_creates_edits_and_saves_a_campaign_as_revisions(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    slug = _create(client, csrf, name="Seminář o čtenářství")
    page = client.get(f"/console/campaigns/{slug}/edit", headers=HTML)
    assert page.status_code == 200 and "Úprava kampaně" in page.text
    form = _form(page.text)
    assert form["revision"] == "1" and form["name"] == "Seminář o čtenářství"
    form["b-0-text"] = "Seminář o čtenářství dětí"
    saved = client.post(f"/console/campaigns/{slug}/edit", data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    latest = store.latest(engine, slug)
    assert latest is not None and latest.number == 2 and latest.author == "editor@sdruk.example"
    assert "Seminář o čtenářství dětí" in latest.files["body.mjml"]
    assert load_blueprint(slug).revision == 2


def test_the_second_of_two_concurrent_saves_is_refused_and_keeps_its_text(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    slug = _create(client, csrf)
    mine = _form(client.get(f"/console/campaigns/{slug}/edit", headers=HTML).text)
    theirs = dict(mine)
    mine["b-0-text"] = "Moje verze nadpisu"
    assert (
        client.post(
            f"/console/campaigns/{slug}/edit", data=mine, follow_redirects=False
        ).status_code
        == 303
    )

    theirs["b-0-text"] = "Druhá verze nadpisu"
    refused = client.post(
        f"/console/campaigns/{slug}/edit", data=theirs, headers=HTML, follow_redirects=False
    )
    assert refused.status_code == 409
    assert "Vaše změny nebyly uloženy" in refused.text and "editor@sdruk.example" in refused.text
    # Nothing lost: the refused text is still in the form, and the stored one is the first save.
    assert 'value="Druhá verze nadpisu"' in refused.text
    latest = store.latest(engine, slug)
    assert latest is not None and "Moje verze nadpisu" in latest.files["body.mjml"]


def test_a_viewer_reads_the_editor_but_cannot_save(client: TestClient, engine: Engine) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    slug = _create(client, csrf)
    form = _form(client.get(f"/console/campaigns/{slug}/edit", headers=HTML).text)
    client.cookies.clear()
    viewer_csrf = sign_in(client, "ctenar@sdruk.example")
    page = client.get(f"/console/campaigns/{slug}/edit", headers=HTML)
    assert page.status_code == 200 and "Máte roli čtenáře" in page.text
    assert 'id="save"' not in page.text
    form["csrf_token"] = viewer_csrf
    refused = client.post(f"/console/campaigns/{slug}/edit", data=form, headers=HTML)
    assert refused.status_code == 403
    assert (
        client.post(
            "/console/campaigns/new", data={"csrf_token": viewer_csrf, "starter": "akce"}
        ).status_code
        == 403
    )
    assert store.latest(engine, slug).number == 1  # type: ignore[union-attr]


def test_a_broken_block_is_shown_beside_it_and_stops_the_launch(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    slug = _create(client, csrf, starter="nabor")
    form = _form(client.get(f"/console/campaigns/{slug}/edit", headers=HTML).text)
    form["b-3-url"] = "sdruk.cz/prihlaska"  # the button: no https://
    form["b-4-markdown"] = "Více informací [zde](https://sdruk.cz/clenstvi)."
    page = client.post(f"/console/campaigns/{slug}/edit", data=form, headers=HTML)
    assert page.status_code == 200 and "Uloženo jako verze 2" in page.text
    block3 = page.text[page.text.index('data-block="3"') : page.text.index('data-block="4"')]
    assert "has-problem" in block3 and "musí začínat https://" in block3
    assert "„zde“ neříká, kam vede" not in block3
    # The vague link is found in the rendered message (the check's trial render) only when
    # the rest passes; fix the button and it shows at its own block.
    form["revision"] = "2"
    form["b-3-url"] = "https://sdruk.cz/prihlaska"
    page = client.post(f"/console/campaigns/{slug}/edit", data=form, headers=HTML)
    text = page.text
    block3 = text[text.index('data-block="3"') : text.index('data-block="4"')]
    block4 = text[text.index('data-block="4"') : text.index("</ol>")]
    assert "neříká, kam vede" in block4 and "neříká" not in block3
    assert '<li class="block " data-block="3"' in text

    launch = client.post(
        f"/console/campaigns/{slug}/launch",
        data={"csrf_token": csrf, "step": "launch", "confirmed_size": "3", "immediately": "true"},
        headers=HTML,
    )
    assert launch.status_code == 422 and "neprošla kontrolou" in launch.text


def test_a_broken_mjml_source_is_reported_at_its_line(client: TestClient) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    slug = _create(client, csrf, starter="zpravodaj")
    form = _form(client.get(f"/console/campaigns/{slug}/edit", headers=HTML).text)
    form["op"] = "to-source"
    page = client.post(f"/console/campaigns/{slug}/edit", data=form, headers=HTML)
    form = _form(page.text)
    assert form["mode"] == "source" and "<mjml" in form["source"]
    lines = form["source"].splitlines()
    number = next(n for n, line in enumerate(lines, start=1) if "<mj-divider" in line)
    lines[number - 1] = lines[number - 1].replace("<mj-divider", "<mj-divder")
    form["source"] = "\n".join(lines)
    form["op"] = "save"
    saved = client.post(f"/console/campaigns/{slug}/edit", data=form, headers=HTML)
    assert f"obsah, řádek {number}:" in saved.text or f"řádek {number}" in saved.text


def test_the_live_preview_renders_the_unsaved_draft_for_a_contact(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    slug = _create(client, csrf)
    form = _form(client.get(f"/console/campaigns/{slug}/edit", headers=HTML).text)
    form["b-0-text"] = "Nadpis, který ještě není uložený"
    form["preview_step"] = "2-dny-pred"
    response = client.post(
        f"/console/campaigns/{slug}/draft-preview", data=form, headers={"x-csrf-token": csrf}
    )
    assert response.status_code == 200
    data = response.json()
    assert "Nadpis, který ještě není uložený" in data["html"]
    assert "už pozítří" in data["html"]
    assert data["blocks"] == {} and data["problems"] == []
    blueprint = load_blueprint(slug)
    with Session(engine) as session:
        expected = count(session, parse_segment(blueprint.segment), topic=blueprint.topic)
    assert data["counts"]["launch"] == expected > 0 and data["counts"]["2-dny-pred"] == 0
    assert data["subject"] == "Pozítří začíná seminář pro knihovny"


def test_a_copy_of_a_shipped_campaign_keeps_its_body_and_opens_as_source(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    response = client.post(
        "/console/campaigns/new",
        data={"csrf_token": csrf, "copy_from": SHIPPED, "name": "Nábor 2027"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    slug = response.headers["location"].split("/campaigns/")[1].split("/")[0]
    assert slug == "nabor-2027"
    copy, original = store.latest(engine, slug), store.latest(engine, SHIPPED)
    assert copy is not None and original is not None
    assert copy.files["body.mjml"] == original.files["body.mjml"]
    assert load_blueprint(slug).name == "Nábor 2027"
    page = client.get(f"/console/campaigns/{slug}/edit", headers=HTML)
    assert 'name="source"' in page.text


def test_unknown_campaigns_and_odd_addresses_are_404_not_500(client: TestClient) -> None:
    sign_in(client, "editor@sdruk.example")
    for path in ("/console/campaigns/neni-tu/edit", "/console/campaigns/..%2F..%2Fetc/edit"):
        assert client.get(path, headers=HTML).status_code == 404


def test_an_upload_that_is_not_an_image_is_refused_in_czech(client: TestClient) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    refused = client.post(
        "/console/media",
        data={"csrf_token": csrf, "alt": "Logo"},
        files={"file": ("logo.png", b"<?php system($_GET['c']); ?>", "image/png")},
        headers={"accept": "application/json"},
    )
    assert refused.status_code == 422 and "není obrázek" in refused.json()["detail"]
    out = io.BytesIO()
    Image.new("RGB", (50, 30), (10, 90, 140)).save(out, "PNG")
    ok = client.post(
        "/console/media",
        data={"csrf_token": csrf, "alt": "Modrý obdélník"},
        files={"file": ("obdelnik.png", out.getvalue(), "image/png")},
        headers={"accept": "application/json"},
    )
    assert ok.status_code == 200 and ok.json()["filename"].endswith(".png")
    library = client.get("/console/media", headers=HTML)
    assert "Modrý obdélník" in library.text
