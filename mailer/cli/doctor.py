"""`sdruk doctor`: is this deployment fit to send real mail (mailer/doctor.py), and `sdruk dkim
keygen`: a new DKIM key with the TXT record to publish."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from mailer.cli.czech import CzechTyper

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)
dkim_app = CzechTyper(help="Klíče DKIM pro podepisování zpráv.", no_args_is_help=True)

MARKS = {"ok": "[green]✓ v pořádku[/green]", "warning": "[yellow]! upozornění[/yellow]"}


def doctor(
    offline: Annotated[
        bool, typer.Option("--offline", help="Bez dotazů do DNS a bez přihlášení k serveru.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Výstup jako JSON.")] = False,
) -> None:
    """Zkontroluje nasazení před ostrým rozesíláním: https, údaje odesílatele, DKIM (a záznamy
    TXT k zveřejnění), SPF, DMARC a přihlášení k odesílacímu serveru. Při chybě skončí kódem 1."""
    from mailer.doctor import LEVEL_LABELS, Level, campaign_senders, run_doctor, worst
    from mailer.settings import get_settings

    settings = get_settings()
    checks = run_doctor(settings, campaign_from=campaign_senders(), network=not offline)
    verdict = worst(checks)
    if as_json:
        typer.echo(
            json.dumps(
                {"result": verdict.value, "checks": [c.as_json() for c in checks]},
                ensure_ascii=False,
            )
        )
    else:
        console.print(f"Stav nasazení (odesílání: {escape(_where(settings))})")
        for check in checks:
            mark = MARKS.get(check.level.value, "[red]✗ chyba[/red]")
            console.print(f"{mark}  [bold]{escape(check.title)}[/bold]")
            console.print(f"    {escape(check.detail)}")
            for name, kind, value in check.records:
                console.print(
                    f"    {escape(name)}  {kind}  [cyan]{escape(value)}[/cyan]", soft_wrap=True
                )
        summary = {
            Level.OK: "Vše v pořádku.",
            Level.WARNING: "Bez chyb, ale s upozorněními.",
            Level.ERROR: "Opravte chyby: dokud trvají, spuštění na skutečný server se odmítne.",
        }[verdict]
        console.print(f"Výsledek: {LEVEL_LABELS[verdict]}. {summary}")
    if verdict is Level.ERROR:
        raise typer.Exit(1)


def _where(settings: object) -> str:
    from mailer.delivery.transport import TransportConfigError, parse_smtp_url
    from mailer.doctor import is_real_relay

    url = settings.resolved_smtp_url()  # type: ignore[attr-defined]
    if not is_real_relay(url, settings):
        return "jen zachytávání nebo zkušební server, nic nedojde příjemcům"
    try:
        return parse_smtp_url(url).describe()
    except TransportConfigError as exc:
        return str(exc)


@dkim_app.command("keygen")
def keygen(
    selector: Annotated[str, typer.Option(help="Selektor, např. k2027 (název záznamu v DNS).")],
    ed25519: Annotated[
        bool, typer.Option("--ed25519", help="Klíč Ed25519 pro druhý podpis (RFC 8463).")
    ] = False,
    bits: Annotated[int, typer.Option(help="Délka klíče RSA v bitech.")] = 2048,
    out: Annotated[
        Path | None, typer.Option(help="Soubor klíče; jinak <datový adresář>/dkim/SELEKTOR.pem.")
    ] = None,
) -> None:
    """Vytvoří nový soukromý klíč DKIM a vypíše záznam TXT k zveřejnění a nastavení."""
    from mailer.compose.dkim import ED25519, RSA, DkimKeyError, dkim_domain, generate_key, load_key
    from mailer.settings import get_settings

    settings = get_settings()
    path = out or settings.data_dir / "dkim" / f"{selector}.pem"
    if path.exists():
        err.print(f"[red]Soubor {escape(str(path))} už existuje; klíč nepřepíšu.[/red]")
        raise typer.Exit(1)
    try:
        pem = generate_key(ED25519 if ed25519 else RSA, bits)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        key = load_key(path, selector, dkim_domain(settings))
    except DkimKeyError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Klíč uložen do {escape(str(path))} (čitelný jen pro vlastníka).")
    console.print("Zveřejněte v DNS záznam:")
    console.print(f"  {key.dns_name}  TXT  [cyan]{escape(key.txt_record())}[/cyan]", soft_wrap=True)
    console.print("Pak nastavte (a starý klíč při výměně přesuňte do DKIM_PREVIOUS_KEYS):")
    if ed25519:
        console.print(f"  DKIM_ED25519_SELECTOR={selector}\n  DKIM_ED25519_KEY_FILE={path}")
    else:
        console.print(f"  DKIM_SELECTOR={selector}\n  DKIM_PRIVATE_KEY_FILE={path}")
    console.print("Zda je záznam vidět, ověří sdruk doctor.")
