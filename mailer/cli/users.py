"""`sdruk users …`: staff accounts of the console (admin, editor, viewer)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, col, select

from mailer.cli.czech import CzechTyper
from mailer.db import get_engine
from mailer.models import User
from mailer.web.console import auth, sessions, twofactor
from mailer.web.console.audit import audit
from mailer.web.console.auth import (
    ROLE_LABELS,
    ROLES,
    create_user,
    validate_password,
)

app = CzechTyper(help="Uživatelé konzole.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
ACTOR = "příkazová řádka"


def _password(given: str | None) -> str:
    password = given or typer.prompt("Heslo", hide_input=True, confirmation_prompt=True)
    problem = validate_password(password)
    if problem:
        err.print(f"[red]{problem}[/red]")
        raise typer.Exit(2)
    return password


def _user(session: Session, email: str) -> User:
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        err.print(f"[red]Uživatel {email} neexistuje.[/red]")
        raise typer.Exit(1)
    return user


def _role(role: str) -> str:
    if role not in ROLES:
        err.print(f"[red]Neznámá role {role!r}.[/red] Možné role: {', '.join(ROLES)}.")
        raise typer.Exit(2)
    return role


@app.command("add")
def add(
    email: Annotated[str, typer.Argument(help="E-mail, kterým se uživatel přihlašuje.")],
    role: Annotated[str, typer.Option(help="admin, editor nebo viewer.")] = "viewer",
    name: Annotated[str, typer.Option(help="Jméno, které konzole zobrazí.")] = "",
    password: Annotated[
        str | None, typer.Option(help="Heslo (bez této volby se na něj zeptá).")
    ] = None,
) -> None:
    """Přidá uživatele konzole."""
    _role(role)
    secret = _password(password)
    with Session(get_engine()) as session:
        try:
            user = create_user(session, email, role, secret, name)
        except ValueError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        audit(session, ACTOR, "user_add", user.email, role=role)
        session.commit()
    console.print(f"Uživatel [bold]{email}[/bold] přidán s rolí {ROLE_LABELS.get(role, role)}.")


@app.command("list")
def list_users() -> None:
    """Vypíše uživatele konzole."""
    with Session(get_engine()) as session:
        users = session.exec(select(User).order_by(col(User.email))).all()
    table = Table("E-mail", "Jméno", "Role", "Naposledy přihlášen")
    for user in users:
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "–"
        table.add_row(user.email, user.name, ROLE_LABELS.get(user.role, user.role), last)
    console.print(table)


@app.command("set-role")
def set_role(email: str, role: str) -> None:
    """Změní roli uživatele."""
    _role(role)
    with Session(get_engine()) as session:
        user = _user(session, email)
        audit(session, ACTOR, "user_role", user.email, old=user.role, new=role)
        user.role = role
        session.add(user)
        session.commit()
    console.print(f"Uživatel {email} má nyní roli {ROLE_LABELS.get(role, role)}.")


@app.command("set-password")
def set_password(
    email: str,
    password: Annotated[str | None, typer.Option(help="Nové heslo (jinak se zeptá).")] = None,
) -> None:
    """Nastaví uživateli nové heslo a zruší zablokování po neúspěšných pokusech."""
    secret = _password(password)
    with Session(get_engine()) as session:
        user = _user(session, email)
        # Ends the user's console sessions and lifts the sign-in throttle of the account.
        auth.set_password(session, user, secret)
        audit(session, ACTOR, "user_password", user.email)
        session.commit()
    console.print(f"Heslo uživatele {email} bylo změněno.")


@app.command("reset-2fa")
def reset_two_factor(email: str) -> None:
    """Zruší uživateli dvoufázové ověření (ztracený telefon) a ukončí jeho přihlášení."""
    with Session(get_engine()) as session:
        user = _user(session, email)
        assert user.id is not None
        twofactor.turn_off(session, user)
        sessions.revoke_all(session, user.id)
        audit(session, ACTOR, "two_factor_reset", user.email)
        session.commit()
    console.print(
        f"Dvoufázové ověření uživatele {email} bylo zrušeno; přihlásí se jen heslem "
        "a v konzoli (Můj účet) si ho může nastavit znovu."
    )


@app.command("remove")
def remove(email: str) -> None:
    """Odebere uživatele konzole."""
    with Session(get_engine()) as session:
        user = _user(session, email)
        audit(session, ACTOR, "user_remove", user.email, role=user.role)
        session.delete(user)
        session.commit()
    console.print(f"Uživatel {email} byl odebrán.")


@app.command("demo-admin")
def demo_admin() -> None:
    """Vytvoří (jednou) ukázkového správce a vypíše, jak se přihlásit do konzole."""
    from mailer.settings import get_settings
    from mailer.web.console.demo import DEMO_ADMIN_FILE, ensure_demo_admin

    settings = get_settings()
    email, password = ensure_demo_admin(get_engine())
    console.print(
        f"Konzole: [bold]{settings.base_url.rstrip('/')}/console/[/bold]\n"
        f"Přihlaste se jako [bold]{email}[/bold], heslo [bold]{password}[/bold] "
        f"(uloženo v {settings.data_dir / DEMO_ADMIN_FILE})."
    )
