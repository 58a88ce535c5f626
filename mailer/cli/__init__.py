"""The `sdruk` command line: one Typer app; each command group lives in its own module."""

from __future__ import annotations

from mailer.cli import campaign_files as campaign_files_cli  # noqa: F401  (export, import)
from mailer.cli import campaigns as campaigns_cli
from mailer.cli import contacts as contacts_cli
from mailer.cli import db as db_cli
from mailer.cli import demo as demo_cli
from mailer.cli import doctor as doctor_cli
from mailer.cli import inbound as inbound_cli
from mailer.cli import launch as launch_cli  # noqa: F401  (adds `campaigns launch`)
from mailer.cli import libraries as libraries_cli
from mailer.cli import runs as runs_cli
from mailer.cli import schedule as schedule_cli
from mailer.cli import segments as segments_cli
from mailer.cli import send as send_cli
from mailer.cli import stats as stats_cli  # noqa: F401  (adds `runs stats`)
from mailer.cli import users as users_cli
from mailer.cli import web as web_cli
from mailer.cli.czech import CzechTyper, localise_panels

app = CzechTyper(
    help="SDRUK Campaigns – e-mailové kampaně Sdružení knihoven ČR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db_cli.app, name="db")
app.add_typer(contacts_cli.app, name="contacts")
app.add_typer(segments_cli.app, name="segments")
app.add_typer(libraries_cli.app, name="libraries")
app.command("demo")(demo_cli.demo)
app.command("schedule")(schedule_cli.schedule_cmd)
app.add_typer(schedule_cli.registrations_app, name="registrations")
app.add_typer(users_cli.app, name="users")
app.command("web")(web_cli.web)
app.command("inbound")(inbound_cli.inbound)
app.add_typer(campaigns_cli.app, name="campaigns")
app.add_typer(runs_cli.app, name="runs")
app.command("send")(send_cli.send)
app.command("doctor")(doctor_cli.doctor)
app.add_typer(doctor_cli.dkim_app, name="dkim")


# Typer reads its panel titles when it prints; set before any command runs (also under tests).
localise_panels()


def main() -> None:
    app()
