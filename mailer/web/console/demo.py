"""First run: a demo administrator, so `make run` can say how to sign in to the console."""

from __future__ import annotations

import secrets

from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.models import User, UserRole
from mailer.settings import get_settings
from mailer.web.console.audit import audit
from mailer.web.console.auth import hash_password, set_password, verify_password

DEMO_ADMIN_EMAIL = "admin@sdruk.example"
DEMO_ADMIN_FILE = "demo-admin.txt"


def ensure_demo_admin(engine: Engine) -> tuple[str, str]:
    """The demo administrator's e-mail and password, creating the account on first use.

    The password is random and kept in <data_dir>/demo-admin.txt (mode 0600) so that every
    `make run` can print it again; if staff changed it, a new one is set and stored."""
    path = get_settings().data_dir / DEMO_ADMIN_FILE
    stored = path.read_text().strip() if path.exists() else ""
    with Session(engine, expire_on_commit=False) as session:
        user = session.exec(select(User).where(User.email == DEMO_ADMIN_EMAIL)).first()
        if user is not None and stored and verify_password(user.password_hash, stored):
            return DEMO_ADMIN_EMAIL, stored
        password = secrets.token_urlsafe(12)
        if user is None:
            user = User(
                email=DEMO_ADMIN_EMAIL,
                name="Demo správce",
                role=UserRole.ADMIN,
                password_hash=hash_password(password),
            )
            audit(session, "make run", "user_add", DEMO_ADMIN_EMAIL, role="admin")
        else:
            set_password(session, user, password)
            audit(session, "make run", "user_password", DEMO_ADMIN_EMAIL)
        session.add(user)
        session.commit()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return DEMO_ADMIN_EMAIL, password
