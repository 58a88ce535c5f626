"""Review findings about runs: every launch path refuses a blueprint that fails its checks, with
the file and line, before a single outbox row exists; racing launches make one run; a cancel
racing a worker's claim does not deadlock on PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from delivery_support import CAMPAIGN, add_contacts
from sqlalchemy import Engine

from mailer import settings as mailer_settings
from mailer.compose.campaigns import load_blueprint
from mailer.delivery.runs import BlueprintRejected, launch
from mailer.models import OutboxMessage, Run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def campaigns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Engine) -> Path:
    """A private copy of the join campaign (after `engine`, which resets the settings)."""
    target = tmp_path / "campaigns"
    shutil.copytree(ROOT / "campaigns" / CAMPAIGN, target / CAMPAIGN)
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(target))
    mailer_settings.get_settings.cache_clear()
    return target


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if needle in line)


def test_it_refuses_to_launch_a_blueprint_that_fails_its_check(
    engine: Engine, campaigns: Path
) -> None:
    add_contacts(engine, 3)
    body = campaigns / CAMPAIGN / "body.mjml"
    text = body.read_text(encoding="utf-8")
    # An undefined variable: mjml compiles it, only the check (StrictUndefined) catches it.
    body.write_text(text.replace("{{ salutation }}", "{{ salutace }}", 1), encoding="utf-8")
    blueprint = load_blueprint(CAMPAIGN)

    with pytest.raises(BlueprintRejected) as caught:
        launch(engine, blueprint)

    line = _line_of(body, "{{ salutace }}")
    assert f"{body}:{line}:" in str(caught.value)
    assert caught.value.problems
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Run)).scalar_one() == 0
        outbox = sa.select(sa.func.count()).select_from(OutboxMessage)
        assert conn.execute(outbox).scalar_one() == 0

    body.write_text(text, encoding="utf-8")
    assert launch(engine, load_blueprint(CAMPAIGN)).recipients == 3


def test_it_shows_the_console_why_a_broken_blueprint_cannot_be_launched(
    engine: Engine, campaigns: Path, tmp_path: Path
) -> None:
    from console_support import BASE_URL, add_user, load_contacts, make_app, sign_in
    from fastapi.testclient import TestClient

    load_contacts(engine, tmp_path)
    add_user(engine, "editor@sdruk.example", "editor")
    body = campaigns / CAMPAIGN / "body.mjml"
    text = body.read_text(encoding="utf-8")
    body.write_text(text.replace("{{ salutation }}", "{{ salutace }}", 1), encoding="utf-8")
    with TestClient(make_app(engine), base_url=BASE_URL) as client:
        csrf = sign_in(client, "editor@sdruk.example")
        # The size the confirmation page shows, posted back as its form does.
        confirm = client.get(f"/console/campaigns/{CAMPAIGN}/launch").text
        size = confirm.split('name="confirmed_size" value="', 1)[1].split('"', 1)[0]
        response = client.post(
            f"/console/campaigns/{CAMPAIGN}/launch",
            data={"csrf_token": csrf, "step": "launch", "confirmed_size": size},
            follow_redirects=False,
        )
    assert response.status_code == 422
    assert f"{body}:{_line_of(body, '{{ salutace }}')}:" in response.text
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Run)).scalar_one() == 0


def test_it_launches_once_when_launches_race(engine: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    add_contacts(engine, 200)
    blueprint = load_blueprint(CAMPAIGN)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: launch(engine, blueprint), range(4)))
    assert len({r.run_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert {r.recipients for r in results} == {200}
    with engine.connect() as conn:
        outbox = sa.select(sa.func.count()).select_from(OutboxMessage)
        assert conn.execute(outbox).scalar_one() == 200


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_it_cancels_a_run_while_a_worker_claims_its_first_batch(engine: Engine) -> None:
    """A worker locks messages first and the run row second (claim marks the run sending);
    a cancel at that moment must wait for it, not deadlock with it."""
    import threading
    from datetime import timedelta

    from mailer.delivery import outbox as ob
    from mailer.delivery.runs import cancel
    from mailer.models import utcnow

    add_contacts(engine, 5)
    run_id = launch(engine, load_blueprint(CAMPAIGN)).run_id
    now = utcnow() + timedelta(seconds=1)
    errors: list[BaseException] = []
    skipped: list[int] = []

    def cancelling() -> None:
        try:
            skipped.append(cancel(engine, run_id, "staff"))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    with engine.connect() as worker:
        with worker.begin():
            worker.execute(sa.text("SET LOCAL deadlock_timeout = '100ms'"))
            claimed = ob._claim_state(worker, "queued", "w1", 50, now, now + timedelta(seconds=60))
            assert len(claimed) == 5
            thread = threading.Thread(target=cancelling)
            thread.start()
            with engine.connect() as probe:  # wait until the cancel waits on a lock
                for _ in range(500):
                    waiting = probe.execute(
                        sa.text(
                            "select count(*) from pg_stat_activity "
                            "where wait_event_type = 'Lock' and datname = current_database()"
                        )
                    ).scalar_one()
                    probe.rollback()
                    if waiting:
                        break
                    threading.Event().wait(0.01)
            # The rest of claim(): the run starts sending.
            worker.execute(
                sa.update(ob.runs)
                .where(ob.runs.c.id == run_id, ob.runs.c.status == "scheduled")
                .values(status="sending", started_at=now)
            )
        thread.join(30)
    assert errors == []
    assert skipped == [5]
