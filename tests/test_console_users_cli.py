"""`sdruk users …`: adding staff with a role and a hashed password, listing, role and password
changes, removal, and the demo administrator `make run` prints."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from mailer.cli import app
from mailer.models import AuditEntry, User
from mailer.web.console.auth import verify_password

runner = CliRunner()


def _user(engine: Engine, email: str) -> User | None:
    with Session(engine) as session:
        return session.exec(select(User).where(User.email == email)).first()


def test_it_adds_lists_changes_and_removes_users(engine: Engine) -> None:
    result = runner.invoke(
        app,
        [
            "users",
            "add",
            "Jana.Nova@sdruk.example",
            "--role",
            "editor",
            "--name",
            "Jana Nová",
            "--password",
            "dlouhe-heslo-123",
        ],
    )
    assert result.exit_code == 0, result.output
    user = _user(engine, "jana.nova@sdruk.example")
    assert user is not None and user.role == "editor" and user.name == "Jana Nová"
    assert user.password_hash.startswith("$argon2") and verify_password(
        user.password_hash, "dlouhe-heslo-123"
    )
    listing = runner.invoke(app, ["users", "list"])
    assert "jana.nova@sdruk.example" in listing.output and "editor" in listing.output

    assert (
        runner.invoke(app, ["users", "set-role", "jana.nova@sdruk.example", "viewer"]).exit_code
        == 0
    )
    changed = runner.invoke(
        app, ["users", "set-password", "jana.nova@sdruk.example", "--password", "jine-heslo-456"]
    )
    assert changed.exit_code == 0
    user = _user(engine, "jana.nova@sdruk.example")
    assert user is not None and user.role == "viewer"
    assert verify_password(user.password_hash, "jine-heslo-456")
    assert runner.invoke(app, ["users", "remove", "jana.nova@sdruk.example"]).exit_code == 0
    assert _user(engine, "jana.nova@sdruk.example") is None
    with Session(engine) as session:
        actions = [a.action for a in session.exec(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["user_add", "user_role", "user_password", "user_remove"]


def test_it_refuses_a_short_password_an_unknown_role_and_a_duplicate(engine: Engine) -> None:
    short = runner.invoke(app, ["users", "add", "a@sdruk.example", "--password", "kratke"])
    assert short.exit_code != 0 and "alespoň 10 znaků" in short.output
    role = runner.invoke(
        app, ["users", "add", "a@sdruk.example", "--role", "boss", "--password", "dlouhe-heslo-1"]
    )
    assert role.exit_code != 0 and "Neznámá role" in role.output
    args = ["users", "add", "a@sdruk.example", "--password", "dlouhe-heslo-1"]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code != 0 and "už existuje" in again.output


def test_it_prints_how_to_sign_in_as_the_demo_admin(engine: Engine) -> None:
    first = runner.invoke(app, ["users", "demo-admin"])
    assert first.exit_code == 0, first.output
    assert "https://kampane.sdruk.test/console/" in first.output
    assert "admin@sdruk.example" in first.output
    second = runner.invoke(app, ["users", "demo-admin"])
    password = first.output.split("heslo ", 1)[1].split()[0]
    assert password in second.output
    user = _user(engine, "admin@sdruk.example")
    assert (
        user is not None and user.role == "admin" and verify_password(user.password_hash, password)
    )
