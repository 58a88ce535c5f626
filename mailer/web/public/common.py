"""What the public pages' routes share: rendering a page with a protected form, reading such a
form back (refusing what the guard refuses), and the short answer pages."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from mailer.audience.contacts import InvalidAddress, normalize_email
from mailer.web import pages
from mailer.web.public import guard

# Answer pages: (title, text). One per outcome, the same for everyone who gets there.
MESSAGES: dict[str, tuple[str, str]] = {
    "applied": (
        "Děkujeme za přihlášku",
        "Přihlášku jsme přijali. Na zadanou adresu jsme poslali potvrzení s jejím obsahem. "
        "O výsledku vás budeme informovat e-mailem.",
    ),
    "used": (
        "Přihláška už byla odeslána",
        "Z tohoto odkazu už přihláška odešla, podruhé ji odeslat nelze. Pokud potřebujete "
        "údaje opravit, napište nám prosím.",
    ),
    "registered": (
        "Děkujeme za registraci",
        "Registraci jsme přijali. Potvrzení, nebo zprávu o zařazení na čekací listinu, "
        "jsme poslali e-mailem; najdete v něm i odkaz pro zrušení registrace.",
    ),
    "registration_closed": (
        "Registrace je uzavřena",
        "Registrace na tuto akci je uzavřena, nic se neuložilo. S dotazy se na nás obraťte "
        "e-mailem.",
    ),
    "cancelled": (
        "Registrace zrušena",
        "Registraci jsme zrušili. Děkujeme, že jste dali vědět: místo připadne dalšímu zájemci.",
    ),
    "subscribe_sent": (
        "Zkontrolujte prosím svou schránku",
        "Poslali jsme vám e-mail s odkazem pro potvrzení odběru. Odběr začne platit, až na "
        "odkaz kliknete a potvrdíte ho; odkaz platí 7 dní. Pokud e-mail nepřišel, podívejte "
        "se i do složky s nevyžádanou poštou.",
    ),
    "confirmed": (
        "Odběr je potvrzený",
        "Děkujeme, odběr novinek Sdružení knihoven ČR je potvrzený. Uvítací e-mail je na cestě.",
    ),
    "link_expired": (
        "Odkaz už neplatí",
        "Odkaz pro potvrzení odběru platí 7 dní a tento už vypršel; nic se nezměnilo. "
        "Přihlaste se k odběru prosím znovu, pošleme vám nový odkaz.",
    ),
    "throttled": (
        "Příliš mnoho odeslání",
        "Z vaší adresy přišlo v krátké době příliš mnoho formulářů. Zkuste to prosím znovu "
        "za hodinu, nebo nám napište e-mailem.",
    ),
    "csrf": (
        "Formulář vypršel",
        "Formulář byl otevřen příliš dávno nebo v jiném okně. Načtěte prosím stránku znovu "
        "a odešlete ho ještě jednou; nic se neuložilo.",
    ),
    "pow": (
        "Ověření se nezdařilo",
        "Formulář potřebuje krátké ověření, které počítá váš prohlížeč (JavaScript). "
        "Načtěte prosím stránku znovu, počkejte na „Ověřeno“ a odešlete ji; nic se neuložilo.",
    ),
    "too_large": (
        "Formulář je příliš velký",
        "Odeslaný formulář je větší, než jaký může z této stránky přijít. Zkraťte prosím "
        "delší texty a odešlete ho znovu; nic se neuložilo.",
    ),
    "bot": (
        "Formulář nelze přijmout",
        "Formulář obsahoval pole, které lidé nevyplňují. Pokud jste ho odeslali vy, "
        "napište nám prosím e-mailem.",
    ),
}


def form_page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A page with a protected form: CSRF cookie, honeypot and proof-of-work challenge."""
    protection, nonce, fresh = guard.form_context(request)
    response = pages.render(request, template, {**context, **protection}, status_code)
    response.headers["content-security-policy"] = guard.PAGE_CSP_WITH_SCRIPT
    if fresh:
        guard.set_form_cookie(response, nonce, request)
    return response


def csrf_page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """A page whose form needs only the CSRF token (its link is already the credential)."""
    nonce, fresh = guard.form_nonce(request)
    context = {**context, "csrf_field": guard.CSRF_FIELD, "csrf_token": guard.csrf_token(nonce)}
    response = pages.render(request, template, context, status_code)
    if fresh:
        guard.set_form_cookie(response, nonce, request)
    return response


async def csrf_checked(request: Request) -> HTMLResponse | None:
    """None when the posted form carries the CSRF token, else the page that refuses it."""
    form = await guard.read_form(request)
    if form is None:
        return message_page(request, "too_large", status_code=413)
    if not guard.csrf_ok(request, form):
        return message_page(request, "csrf", status_code=403)
    return None


def message_page(
    request: Request,
    kind: str,
    *,
    status_code: int = 200,
    context: dict[str, Any] | None = None,
) -> HTMLResponse:
    title, text = MESSAGES[kind]
    return pages.render(
        request,
        "public/message.html",
        {"title": title, "text": text, "kind": kind, **(context or {})},
        status_code,
    )


async def read_protected_form(request: Request) -> FormData | HTMLResponse:
    """The posted form, or the Czech page saying why it is refused (nothing is stored)."""
    form = await guard.read_form(request)
    if form is None:
        return message_page(request, "too_large", status_code=413)
    refusal = await guard.check_protection(request, form)
    if refusal is not None:
        return message_page(request, refusal, status_code=400 if refusal != "csrf" else 403)
    return form


async def throttled(request: Request, family: str, email: str | None) -> bool:
    return await guard.throttled(request, family, email)


def clean_fields(
    form: Any, fields: dict[str, tuple[str, int, bool]]
) -> tuple[dict[str, str], dict[str, str]]:
    """A public form's text fields, with white space folded, and the problems per field in
    Czech: required and missing, too long, or (for a field named `email`) not an address."""
    values: dict[str, str] = {}
    problems: dict[str, str] = {}
    for name, (label, size, required) in fields.items():
        value = " ".join(str(form.get(name) or "").split())
        values[name] = value
        if required and not value:
            problems[name] = f"Vyplňte prosím pole „{label}“."
        elif len(value) > size:
            problems[name] = f"Pole „{label}“ je příliš dlouhé (nejvýš {size} znaků)."
    if values.get("email") and "email" not in problems:
        try:
            values["email"] = normalize_email(values["email"])
        except InvalidAddress as exc:
            problems["email"] = f"E-mailová adresa není platná: {exc.reason}."
    return values, problems
