"""Blocks to MJML: typed text is never Jinja, placeholders come from the picker, each problem is
reported at the block (or source line) that caused it; starters pass every check; the image
library refuses what is not an image and cleans what is."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import Engine

from mailer.compose.blocks import Media
from mailer.compose.campaigns import load_blueprint
from mailer.compose.composer import Composer, Recipient
from mailer.compose.drafts import (
    BODY_FILE,
    Draft,
    block_problems,
    draft_files,
    draft_from_files,
    validate_files,
)
from mailer.compose.freeze import freeze
from mailer.compose.media import MAX_UPLOAD_BYTES, ImageRejected, media_map, store_image
from mailer.compose.starters import STARTERS, event_invitation
from mailer.compose.store import write_folder
from mailer.web.app import create_app

TODAY = date(2026, 11, 30)


def _html(draft: Draft, tmp_path: Path, media: dict[str, Media] | None = None) -> str:
    files, _ = draft_files(draft, media)
    write_folder(files, tmp_path / "zkouska")
    content = freeze(load_blueprint("zkouska", tmp_path))
    recipient = Recipient(
        outbox_id=1,
        email="jana@knihovna.cz",
        first_name="Jana",
        last_name="Nováková",
        role="ředitelka",
        gender="f",
        library_name="Městská knihovna Kroměříž",
    )
    return Composer(content, 1).html(recipient)


@pytest.mark.parametrize("key", sorted(STARTERS))
def test_every_starter_passes_the_whole_check(key: str) -> None:
    files, body = draft_files(STARTERS[key][2](TODAY))
    assert body is not None and body.problems == []
    assert validate_files(f"starter-{key}", files) == []


def test_typed_jinja_stays_text_and_placeholders_fill_in(tmp_path: Path) -> None:
    draft = event_invitation(TODAY)
    assert draft.blocks is not None
    draft.blocks["blocks"][1]["markdown"] = (
        "zveme knihovnu [[knihovna]]. {{ sender.name }} {% if true %}x{% endif %} {#c#}"
    )
    draft.blocks["blocks"][0]["text"] = "Dílna {{ 7*7 }} pro [[obec]]"
    files, body = draft_files(draft)
    assert body is not None and body.problems == []
    assert validate_files("zkouska", files) == []
    html = _html(draft, tmp_path)
    assert "zveme knihovnu Městská knihovna Kroměříž." in html
    assert "{{ sender.name }} {% if true %}x{% endif %} {#c#}" in html
    assert "Dílna {{ 7*7 }} pro" in html and "49" not in html
    assert "Vážená paní ředitelko," in html


def test_markdown_raw_html_and_script_links_are_not_passed_through(tmp_path: Path) -> None:
    draft = event_invitation(TODAY)
    assert draft.blocks is not None
    draft.blocks["blocks"][3]["markdown"] = (
        "<script>alert(1)</script> **tučně** [program](https://sdruk.cz/program) "
        "[zlé](javascript:alert(1))"
    )
    html = _html(draft, tmp_path)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<strong>tučně</strong>" in html and 'href="javascript' not in html


def test_problems_are_reported_at_their_block() -> None:
    draft = event_invitation(TODAY)
    assert draft.blocks is not None
    blocks = draft.blocks["blocks"]
    blocks[4]["url"] = "sdruk.cz/registrace"  # no scheme
    blocks.append({"type": "image", "image": "neni.png", "alt": ""})
    blocks[1]["markdown"] += " [[ředitel]]"
    _files, body = draft_files(draft)
    assert body is not None
    found = {(p.block, p.field) for p in body.problems}
    assert found == {(4, "url"), (5, "image"), (5, "alt"), (1, "markdown")}


def test_a_check_problem_in_the_generated_mjml_maps_back_to_its_block() -> None:
    draft = event_invitation(TODAY)
    assert draft.blocks is not None
    # Pale pink on pink: passes the block's own checks, fails WCAG contrast in the MJML check.
    draft.blocks["blocks"][4].update(background="#f4c7cc", color="#ffffff")
    files, body = draft_files(draft)
    assert body is not None and body.problems == []
    by_block, other = block_problems(validate_files("zkouska", files), body)
    assert list(by_block) == [4] and "kontrast" in by_block[4][0] and other == []


def test_a_broken_mjml_source_is_reported_at_its_line() -> None:
    files, _ = draft_files(event_invitation(TODAY))
    source = files[BODY_FILE].replace("<mj-text>", "<mj-txt>", 1)
    draft = draft_from_files({k: v for k, v in files.items() if k != "blocks.json"})
    draft.source = source
    files, body = draft_files(draft)
    assert body is None and "blocks.json" not in files
    line = next(n for n, t in enumerate(source.splitlines(), start=1) if "<mj-txt>" in t)
    problems = validate_files("zkouska", files)
    assert any(p.file == BODY_FILE and p.line == line for p in problems), problems


def test_files_round_trip_through_a_draft() -> None:
    files, _ = draft_files(event_invitation(TODAY))
    again, _ = draft_files(draft_from_files(files))
    assert again == files


# --- images ------------------------------------------------------------------------------


def _jpeg(width: int, height: int) -> bytes:
    image = Image.new("RGB", (width, height), (138, 28, 43))
    exif = image.getexif()
    exif[0x010F] = "Fotoaparát"
    exif[0x0132] = "2026:11:30 10:00:00"
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=b"GPS 49.3,17.4")
    return out.getvalue()


def test_it_refuses_a_php_file_named_png_and_an_oversized_upload(engine: Engine) -> None:
    with pytest.raises(ImageRejected, match="není obrázek"):
        store_image(
            engine, b"<?php system($_GET['c']); ?>", alt="x", original_name="a.png", uploaded_by="x"
        )
    with pytest.raises(ImageRejected, match="příliš velký"):
        store_image(
            engine,
            b"\x89PNG" + b"0" * MAX_UPLOAD_BYTES,
            alt="x",
            original_name="b.png",
            uploaded_by="x",
        )
    with pytest.raises(ImageRejected, match="popis obrázku"):
        store_image(engine, _jpeg(10, 10), alt="  ", original_name="c.jpg", uploaded_by="x")
    assert media_map(engine) == {}


def test_it_strips_metadata_scales_and_serves_with_long_caching(engine: Engine) -> None:
    stored = store_image(
        engine, _jpeg(2400, 1600), alt="Účastníci dílny", original_name="foto.jpg", uploaded_by="x"
    )
    assert (stored.width, stored.height, stored.extension) == (1200, 800, "jpg")
    client = TestClient(create_app(engine=engine))
    response = client.get(f"/media/{stored.filename}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert "immutable" in response.headers["cache-control"]
    served = Image.open(io.BytesIO(response.content))
    assert served.size == (1200, 800)
    assert not served.getexif() and "comment" not in served.info
    assert client.get("/media/" + "0" * 64 + ".png").status_code == 404
    assert client.get("/media/..%2F..%2Fetc%2Fpasswd").status_code == 404
    # The image block uses it at half its width (sharp on 2x screens), with its alt text.
    draft = event_invitation(TODAY)
    assert draft.blocks is not None
    draft.blocks["blocks"].insert(2, {"type": "image", "image": stored.filename, "alt": "Sál"})
    files, body = draft_files(draft, media_map(engine))
    assert body is not None and body.problems == []
    assert f'/media/{stored.filename}" alt="Sál" width="552px"' in files[BODY_FILE]
