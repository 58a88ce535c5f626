"""Membership applications from the public form: the list, one application with its evidence,
and staff's decision (approve: membership recorded as on the library's page; reject with a
note, sent to the applicant only when staff tick „Poslat zdůvodnění žadateli“). Either way
the applicant gets the decision by e-mail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select

from mailer.models import (
    LIBRARY_TYPE_LABELS,
    ApplicationStatus,
    Library,
    LibraryType,
    MembershipApplication,
    Run,
)
from mailer.signups.membership import ApplicationError, assign_library, decide
from mailer.web.console.auth import DB, Editor, Reader
from mailer.web.console.dashboard import campaign_names
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute
from mailer.web.params import RowId

router = APIRouter(route_class=ConsoleRoute)

STATUS_LABELS = {
    ApplicationStatus.PENDING.value: "čeká na rozhodnutí",
    ApplicationStatus.APPROVED.value: "schválena",
    ApplicationStatus.REJECTED.value: "zamítnuta",
}
NOTICES = {
    "approved": "Přihláška je schválena a členství knihovny zapsáno. Žadateli odešel e-mail "
    "s přivítáním.",
    "rejected": "Přihláška je zamítnuta. Žadateli odešel e-mail s výsledkem.",
    "assigned": "Přihláška je přiřazena ke knihovně z adresáře.",
}


def _type_label(code: str) -> str:
    try:
        return LIBRARY_TYPE_LABELS[LibraryType(code)]
    except ValueError:
        return code


@router.get("/applications", response_class=HTMLResponse)
def applications_list(request: Request, staff: Reader, session: DB) -> HTMLResponse:
    rows = session.exec(
        select(MembershipApplication).order_by(
            col(MembershipApplication.status) != ApplicationStatus.PENDING.value,
            col(MembershipApplication.id).desc(),
        )
    ).all()
    return page(
        request,
        "applications.html",
        staff,
        rows=rows,
        status_labels=STATUS_LABELS,
        type_label=_type_label,
    )


@router.get("/applications/{application_id}", response_class=HTMLResponse)
def application_detail(
    request: Request, application_id: RowId, staff: Reader, session: DB, notice: str = ""
) -> HTMLResponse:
    application = session.get(MembershipApplication, application_id)
    if application is None:
        raise HTTPException(status_code=404, detail="Přihláška neexistuje.")
    library = session.get(Library, application.library_id) if application.library_id else None
    run = session.get(Run, application.run_id) if application.run_id else None
    credited = None
    if run is not None:
        name = campaign_names({run.campaign}).get(run.campaign, run.campaign)
        credited = {"run_id": run.id, "campaign": name, "step": run.step}
    return page(
        request,
        "application.html",
        staff,
        a=application,
        library=library,
        credited=credited,
        status_labels=STATUS_LABELS,
        type_label=_type_label,
        notice=NOTICES.get(notice),
    )


def _decided(application_id: RowId, notice: str) -> Response:
    return RedirectResponse(f"/console/applications/{application_id}?notice={notice}", 303)


@router.post("/applications/{application_id}/decision")
def application_decision(
    application_id: RowId,
    staff: Editor,
    session: DB,
    decision: Annotated[str, Form()],
    note: Annotated[str, Form(max_length=1000)] = "",
    send_note: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    if decision not in ("approve", "reject"):
        raise HTTPException(status_code=422, detail="Vyberte schválit, nebo zamítnout.")
    try:
        decide(
            session,
            application_id,
            approve=decision == "approve",
            actor=staff.email,
            note=note,
            send_note=bool(send_note),
        )
    except ApplicationError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    session.commit()
    return _decided(application_id, "approved" if decision == "approve" else "rejected")


@router.post("/applications/{application_id}/library")
def application_library(
    application_id: RowId,
    staff: Editor,
    session: DB,
    siglum: Annotated[str, Form(max_length=16)],
) -> Response:
    try:
        assign_library(session, application_id, siglum, actor=staff.email)
    except ApplicationError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    session.commit()
    return _decided(application_id, "assigned")
