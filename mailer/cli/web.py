"""`sdruk web`: serves the web app (unsubscribe, preferences, tracking, console) with uvicorn."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

from mailer.settings import get_settings

console = Console()


def web(
    host: Annotated[str, typer.Option("--host", help="Adresa, na které server naslouchá.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="Port.")] = 8000,
) -> None:
    """Spustí webový server: odhlášení, nastavení odběru, měření a konzoli."""
    from mailer.web.app import make_server

    console.print(
        f"Webový server běží na [bold]http://{host}:{port}[/bold] "
        f"(odkazy v e-mailech: {get_settings().base_url}). Ukončíte ho Ctrl+C."
    )
    asyncio.run(make_server(host, port).serve())
