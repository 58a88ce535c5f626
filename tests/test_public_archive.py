"""The public archive: past campaigns, one per launch, as sent, for no particular recipient and
without tracking; a campaign can opt out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import ROOT
from console_support import CSV, load_contacts
from fastapi.testclient import TestClient
from public_support import client_for
from sqlalchemy import Engine
from sqlmodel import Session

from mailer import settings as mailer_settings
from mailer.compose.campaigns import load_blueprint
from mailer.compose.transactional import Notice
from mailer.delivery.runs import launch
from mailer.delivery.transactional import enqueue
from mailer.models import Run

RECRUITMENT = "join-this-year-2026"


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> TestClient:
    load_contacts(engine, tmp_path)
    return client_for(engine)


def _sent(engine: Engine, campaign: str) -> int:
    run_id = launch(engine, load_blueprint(campaign)).run_id
    with engine.begin() as conn:
        conn.execute(
            sa.update(Run.__table__)  # type: ignore[attr-defined]
            .where(Run.__table__.c.id == run_id)  # type: ignore[attr-defined]
            .values(status="sent", started_at=sa.func.now())
        )
    return run_id


def test_it_shows_a_launch_as_sent_for_no_one_and_without_tracking(
    engine: Engine, client: TestClient
) -> None:
    assert "Zatím jsme nic nerozeslali" in client.get("/archiv").text
    run_id = _sent(engine, RECRUITMENT)
    listing = client.get("/archiv")
    assert "Pozvánka do Sdružení knihoven ČR pro vaši knihovnu" in listing.text
    page = client.get(f"/archiv/{run_id}")
    assert page.status_code == 200
    html = page.text
    assert "Vážená paní, vážený pane," in html
    assert "/o/" not in html and "/c/" not in html and "/v/" not in html
    assert 'href="https://kampane.sdruk.test/chceme-byt-clenem"' in html  # the empty form
    for line in CSV.splitlines()[1:]:
        if line:
            assert line.split(",")[0] not in html  # no recipient's address


def test_a_campaign_can_opt_out_and_only_launches_are_shown(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_contacts(engine, tmp_path)
    folder = tmp_path / "kampane"
    shutil.copytree(ROOT / "campaigns", folder)
    toml = folder / RECRUITMENT / "campaign.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            'tracking = "anonymous"', 'tracking = "anonymous"\narchive = false'
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(folder))
    mailer_settings.get_settings.cache_clear()
    client = client_for(engine)
    hidden = _sent(engine, RECRUITMENT)
    shown = _sent(engine, "knihovny-soucasnosti-2027")
    listing = client.get("/archiv").text
    assert f"/archiv/{shown}" in listing and f"/archiv/{hidden}" not in listing
    assert client.get(f"/archiv/{hidden}").status_code == 404
    with Session(engine) as session:
        message = enqueue(
            session,
            Notice(
                kind="x",
                subject="S",
                heading="H",
                paragraphs=[],
                button_label="B",
                button_url="https://www.sdruk.cz",
                why="w",
            ),
            email="nekdo@example.cz",
        )
        session.commit()
        transactional = message.run_id
    assert client.get(f"/archiv/{transactional}").status_code == 404
    assert client.get("/archiv/99999999999999999999").status_code in (404, 422)
    # Ids that cannot exist are refused by the route's bounds (a Czech 422), like every route.
    assert client.get("/archiv/0").status_code == 422
