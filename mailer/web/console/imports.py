"""The console's contact import: upload a CSV, read the report (rejected rows, contacts left
without a legal basis, libraries to check), choose a legal basis for the whole file, and
import the checked file without uploading it again.

The file is read, validated and imported on a worker thread, and the page shows only the
first rejected rows: a file of a million bad rows neither stalls other requests nor builds a
page of hundreds of megabytes. The full report is a CSV to download."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine

from mailer.audience.contacts import (
    BasisChoice,
    ImportFileError,
    ImportReport,
    import_contact_bytes,
)
from mailer.compose.czech import count_noun
from mailer.csvfiles import MEDIA_TYPE, attachment_headers, csv_document
from mailer.web.console import uploads
from mailer.web.console.audit import audit
from mailer.web.console.auth import DB, DBEngine, Editor, Reader, Staff
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)

# Rows of each list the page shows; the rest are in the downloadable report.
SHOWN_ROWS = 100
BASES = {"legitimate_interest": "oprávněný zájem", "consent": "souhlas"}
REPORT_LABELS = {
    "rows": "řádků v souboru",
    "created": "nových kontaktů",
    "updated": "aktualizovaných kontaktů",
    "unchanged": "beze změny",
    "merged_duplicates": "sloučených duplicit",
    "libraries_created": "nových knihoven",
    "libraries_updated": "aktualizovaných knihoven",
    "libraries_joined": "knihoven nově členy SDRUK",
    "memberships_kept": "ponechaných členství zapsaných v konzoli",
    "suppressed": "blokovaných adres",
    "basis_assigned": "se zvoleným právním základem",
    "without_basis": "bez právního základu",
}
REPORT_HEADER = ["řádek", "sloupec", "druh", "popis"]


@dataclass
class ImportForm:
    """What staff filled in, kept when the page comes back with an error or a report."""

    mode: str = "check"
    legal_basis: str = ""
    basis_note: str = ""
    upload: str = ""
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class ReportView:
    """The import report as the page shows it."""

    numbers: dict[str, int]
    rejected: list[Any]
    rejected_total: int
    notes: list[Any]
    notes_total: int
    without_basis: int
    basis_assigned: int
    full_report: str | None


def report_rows(report: ImportReport) -> list[tuple[int, str, str, str]]:
    """Every rejected row and every note, in line order, as rows of the report CSV."""
    rows = [(r.line, r.column, "odmítnuto", r.reason) for r in report.rejected]
    rows += [(n.line, n.column, "ke kontrole", n.reason) for n in report.notes]
    rows.sort(key=lambda row: row[0])
    return rows


def report_view(report: ImportReport) -> ReportView:
    """The numbers, the first rejected rows and notes, and the full report kept to download."""
    numbers = {
        label: getattr(report, key)
        for key, label in REPORT_LABELS.items()
        if key not in ("basis_assigned", "without_basis", "libraries_joined", "memberships_kept")
        or getattr(report, key)
    }
    numbers["odmítnutých řádků"] = len(report.rejected)
    full = None
    if report.rejected or report.notes:
        text = csv_document(REPORT_HEADER, report_rows(report))
        full = uploads.keep("reports", text.encode("utf-8"), report.file_name)
    return ReportView(
        numbers=numbers,
        rejected=report.rejected[:SHOWN_ROWS],
        rejected_total=len(report.rejected),
        notes=report.notes[:SHOWN_ROWS],
        notes_total=len(report.notes),
        without_basis=report.without_basis,
        basis_assigned=report.basis_assigned,
        full_report=full,
    )


def _render(
    request: Request,
    staff: Staff,
    form: ImportForm,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    return page(
        request,
        "import.html",
        staff,
        status_code=status_code,
        form=form,
        bases=BASES,
        shown_rows=SHOWN_ROWS,
        count_noun=count_noun,
        **context,
    )


@router.get("/contacts/import", response_class=HTMLResponse)
def import_form(request: Request, staff: Reader) -> HTMLResponse:
    return _render(request, staff, ImportForm(), report=None)


def _run_import(
    engine: Engine, raw: bytes, name: str, dry_run: bool, choice: BasisChoice | None, actor: str
) -> tuple[ImportReport, ReportView]:
    report = import_contact_bytes(
        engine, raw, name, dry_run=dry_run, basis_choice=choice, actor=actor
    )
    return report, report_view(report)


@router.post("/contacts/import", response_class=HTMLResponse)
async def import_upload(
    request: Request,
    staff: Editor,
    session: DB,
    engine: DBEngine,
    file: UploadFile | None = None,
    mode: Annotated[str, Form()] = "check",
    upload: Annotated[str, Form()] = "",
    legal_basis: Annotated[str, Form()] = "",
    basis_note: Annotated[str, Form()] = "",
) -> HTMLResponse:
    form = ImportForm(
        mode="import" if mode == "import" else "check",
        legal_basis=legal_basis if legal_basis in BASES else "",
        basis_note=basis_note.strip()[:1000],
        upload=upload,
    )
    if legal_basis and legal_basis not in BASES:
        form.errors["legal_basis"] = "Zvolte oprávněný zájem, souhlas, nebo nic."
    if form.legal_basis == "consent" and not form.basis_note:
        form.errors["basis_note"] = (
            "Souhlas pro celý soubor potřebuje doklad: napište, kdy a jak jej kontakty daly."
        )
    stored = uploads.find("imports", upload) if upload else None
    if upload and stored is None and (file is None or not file.filename):
        form.upload = ""
        form.errors["file"] = "Zkontrolovaný soubor už není k dispozici; nahrajte jej znovu."
    elif stored is None and (file is None or not file.filename):
        form.errors["file"] = "Vyberte soubor CSV."
    if form.errors:
        return _render(
            request,
            staff,
            form,
            status_code=422,
            report=None,
            filename=stored[1] if stored else None,
            error="Formulář obsahuje chyby; opravte označená pole.",
        )
    if file is not None and file.filename:
        raw, name = await file.read(), uploads.display_name(file.filename)
    else:
        assert stored is not None
        raw, name = stored
    dry_run = form.mode != "import"
    choice = (
        BasisChoice(form.legal_basis, staff.email, form.basis_note) if form.legal_basis else None
    )
    try:
        # Reading, validating and writing may take long: never on the event loop.
        report, view = await run_in_threadpool(
            _run_import, engine, raw, name, dry_run, choice, staff.email
        )
    except ImportFileError as exc:
        form.upload = ""
        return _render(
            request,
            staff,
            form,
            status_code=422,
            report=None,
            error=f"Soubor {name} nelze načíst: {exc}",
        )
    if dry_run:
        form.upload = await run_in_threadpool(uploads.keep, "imports", raw, name)
    else:
        form.upload = ""
        audit(
            session,
            staff.email,
            "import",
            name,
            created=report.created,
            updated=report.updated,
            unchanged=report.unchanged,
            rejected=len(report.rejected),
            without_basis=report.without_basis,
            basis_assigned=report.basis_assigned,
            legal_basis=form.legal_basis or None,
            libraries_created=report.libraries_created,
        )
        session.commit()
    return _render(request, staff, form, report=view, dry_run=dry_run, filename=name)


@router.get("/contacts/import/report/{token}")
def import_report_download(token: str, staff: Reader) -> Response:
    # Rejected rows quote addresses: only those who may import may read them.
    if not staff.can_edit:
        raise HTTPException(status_code=403, detail="Zprávu o importu vidí editor nebo správce.")
    found = uploads.find("reports", token)
    if found is None:
        raise HTTPException(status_code=404, detail="Zpráva o importu už není k dispozici.")
    data, name = found
    stem = name.rsplit(".", 1)[0]
    return Response(
        data, media_type=MEDIA_TYPE, headers=attachment_headers(f"import-{stem}-problemy.csv")
    )
