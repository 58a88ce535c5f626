"""`sdruk demo`: loads the fictional directory of Czech libraries, sets the demo campaigns'
schedule relative to today with a past run to look at (mailer.demo), and prints what is there."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from mailer.audience.contacts import ImportFileError, import_contacts
from mailer.compose.czech import format_moment, plural
from mailer.db import get_engine
from mailer.demo import RECRUITMENT, prepare_demo
from mailer.migrations import upgrade
from mailer.models import LIBRARY_TYPE_LABELS, Contact, ContactStatus, Library, LibraryType
from mailer.scheduling.clock import SystemClock

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "libraries.csv"

STATUS_LABELS = {
    ContactStatus.ACTIVE.value: "aktivní",
    ContactStatus.UNSUBSCRIBED.value: "odhlášené",
    ContactStatus.BOUNCED.value: "nedoručitelné",
    ContactStatus.COMPLAINED.value: "stížnost na spam",
}

console = Console()


def demo() -> None:
    """Nahraje ukázkový adresář knihoven (opakovaně bezpečné) a vypíše souhrn."""
    engine = get_engine()
    upgrade(engine)
    try:
        report = import_contacts(engine, FIXTURE)
    except ImportFileError as exc:
        console.print(f"[red]Ukázková data nelze načíst:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"Ukázková data ({FIXTURE.name}): nové kontakty {report.created}, "
        f"změněné {report.updated}, beze změny {report.unchanged}, "
        f"odmítnuté {len(report.rejected)}."
    )
    story = prepare_demo(engine, now=SystemClock().now())
    col = sa.literal_column
    with engine.connect() as session:
        by_type: dict[str, int] = dict(
            session.execute(
                sa.select(col("library_type"), sa.func.count())
                .select_from(Library)
                .group_by(col("library_type"))
            ).all()
        )
        members = session.execute(
            sa.select(sa.func.count()).select_from(Library).where(col("is_member").is_(sa.true()))
        ).scalar_one()
        by_status: dict[str, int] = dict(
            session.execute(
                sa.select(col("status"), sa.func.count())
                .select_from(Contact)
                .group_by(col("status"))
            ).all()
        )
        member_contacts = session.execute(
            sa.select(sa.func.count())
            .select_from(sa.join(Contact, Library, col("contact.library_id") == col("library.id")))
            .where(col("library.is_member").is_(sa.true()))
        ).scalar_one()

    libraries = Table(title="Knihovny podle typu", title_justify="left")
    libraries.add_column("Typ")
    libraries.add_column("Počet", justify="right")
    for kind in LibraryType:
        libraries.add_row(LIBRARY_TYPE_LABELS[kind], str(by_type.get(kind.value, 0)))
    libraries.add_row("[bold]celkem[/bold]", f"[bold]{sum(by_type.values())}[/bold]")
    console.print(libraries)

    contacts = Table(title="Kontakty podle stavu", title_justify="left")
    contacts.add_column("Stav")
    contacts.add_column("Počet", justify="right")
    for status, label in STATUS_LABELS.items():
        contacts.add_row(label, str(by_status.get(status, 0)))
    contacts.add_row("[bold]celkem[/bold]", f"[bold]{sum(by_status.values())}[/bold]")
    console.print(contacts)
    console.print(
        f"Členské knihovny SDRUK: [bold]{members}[/bold] "
        f"(kontaktů v nich: {member_contacts}); nečlenské: {sum(by_type.values()) - members}."
    )
    if story.shift is not None and story.moved:
        weeks = story.shift.days // 7
        console.print(
            f"Termíny ukázkových kampaní jsou posunuty o {weeks} "
            f"{plural(abs(weeks), 'týden', 'týdny', 'týdnů')}, aby navazovaly na dnešek "
            "(nová verze každé kampaně v databázi; soubory v campaigns/ zůstávají beze změny)."
        )
    if story.run_id is not None and story.launched_at is not None:
        when = format_moment(story.launched_at)
        messages = plural(story.sent, "zpráva", "zprávy", "zpráv")
        joined = plural(story.joined, "knihovna", "knihovny", "knihoven")
        console.print(
            f"Ukázková rozesílka kampaně {RECRUITMENT} proběhla {when}: odesláno {story.sent} "
            f"{messages}, do SDRUK od té doby vstoupily {story.joined} {joined}. Výsledky "
            f"najdete v konzoli u rozesílky {story.run_id}, připomínky v sdruk schedule."
        )
        if story.tracking_answers:
            console.print(
                "Odpovědi kontaktů na otázku, zda smíme sledovat otevření a kliknutí: "
                f"{story.tracking_answers} (ano i ne); vidíte je v detailu kontaktu."
            )
