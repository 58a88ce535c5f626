"""`sdruk inbound`: the SMTP endpoint for unsubscribe mail, bounces (DSN) and abuse reports."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer
from rich.console import Console

from mailer.settings import get_settings

console = Console()


def inbound(
    host: Annotated[
        str | None, typer.Option("--host", help="Adresa (výchozí INBOUND_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port (výchozí INBOUND_PORT, 2525; MX: 25).")
    ] = None,
) -> None:
    """Spustí příjem pošty: odhlášení e-mailem, nedoručenky a stížnosti na spam."""
    from mailer.web.inbound import serve_forever

    # One line per message: what was accepted, refused and recorded.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("mailer.web.inbound").setLevel(logging.INFO)
    settings = get_settings()
    host = host or settings.inbound_host
    port = port or settings.inbound_port

    def ready() -> None:
        console.print(
            f"Příjem pošty pro [bold]{settings.bounce_domain}[/bold] běží na {host}:{port} "
            f"({settings.unsubscribe_mailbox}+…, bounce+…, fbl@). Ukončíte ho Ctrl+C."
        )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_forever(stop=stop, host=host, port=port, on_ready=ready)

    asyncio.run(run())
    console.print("Příjem pošty ukončen.")
