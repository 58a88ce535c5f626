"""`sdruk send`: the delivery worker – sends due outbox messages until stopped, or with --drain
until every run that may send now is finished or paused; a live progress bar in a terminal.

Exit codes of `sdruk send --drain`, for scripts:
  0  every run it sent is finished (or nothing was waiting);
  2  SMTP_URL cannot be used as written (nothing was sent);
  3  a run is paused (a refusal, too many errors, staff or the sending window): the reason is
     printed, the run waits for `sdruk runs resume`;
  4  stopped by a signal (Ctrl+C, SIGTERM) before the runs finished; the rest waits in the
     queue for the next worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mailer.cli.contacts import require_schema
from mailer.compose.czech import format_clock, plural
from mailer.db import get_engine
from mailer.delivery import limits as lim
from mailer.delivery import outbox as ob
from mailer.delivery.runs import progress
from mailer.delivery.send import (
    Stats,
    WorkerOptions,
    default_worker_id,
    drain,
    run,
    work_forever,
)
from mailer.delivery.transport import Transport, TransportConfigError, transport_from_url
from mailer.models import utcnow
from mailer.settings import get_settings

console = Console()
err = Console(stderr=True)

EXIT_FINISHED = 0
EXIT_CONFIG = 2
EXIT_PAUSED = 3
EXIT_INTERRUPTED = 4


def _pending_now() -> int:
    o = ob.outbox
    sendable = sa.select(ob.runs.c.id).where(ob.runs.c.status.in_(ob.SENDABLE_RUNS))
    with get_engine().connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(
                    o.c.status.in_(ob.PENDING), o.c.run_id.in_(sendable.scalar_subquery())
                )
            ).scalar_one()
        )


def send(
    drain_only: Annotated[
        bool,
        typer.Option(
            "--drain",
            help=(
                "Skončit, až bude každá rozesílka, která smí odesílat, dokončená nebo "
                "pozastavená (počká i na opakování). Návratový kód: 0 vše dokončeno, "
                "2 chybné SMTP_URL, 3 některá rozesílka pozastavena, 4 přerušeno signálem."
            ),
        ),
    ] = False,
    worker_id: Annotated[
        str | None,
        typer.Option(help="Jméno pracovníka (jedinečné mezi běžícími; výchozí stroj:pid)."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Počet souběžných SMTP spojení (přebije SMTP_URL).")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(help="Nejvýš zpráv za sekundu (společně pro všechny pracovníky)."),
    ] = None,
    rate_hour: Annotated[
        float | None,
        typer.Option(help="Nejvýš zpráv za hodinu (společně pro všechny pracovníky)."),
    ] = None,
    domain_concurrency: Annotated[
        int | None, typer.Option(help="Nejvýš souběžných spojení na jednu cílovou doménu.")
    ] = None,
    batch: Annotated[int, typer.Option(help="Kolik zpráv brát z fronty najednou.")] = 200,
    lease: Annotated[
        float, typer.Option(help="Po kolika sekundách bez známky života převezme zprávy jiný.")
    ] = 120.0,
    max_attempts: Annotated[int, typer.Option(help="Pokusů při dočasné chybě.")] = 5,
    retry_base: Annotated[
        float, typer.Option(help="První opakování po tolika sekundách, pak dvojnásobně.")
    ] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Souhrn na konci jako JSON.")] = False,
) -> None:
    """Odesílá zprávy z fronty (SMTP_URL; výchozí capture:// nic neposílá ven).

    SMTP_URL: smtp://jmeno:heslo@server:587?starttls=true nebo smtps://jmeno:heslo@server:465;
    volby: limits=microsoft365|gmail|seznam|generic (sada limitů odesílání), per_second,
    per_minute, per_hour, per_day (limity společné všem pracovníkům, platí i po restartu),
    domain_concurrency, concurrency (souběžná spojení), timeout, ca_file=/cesta/ca.pem
    (důvěřovat této certifikační autoritě, např. u serveru s vlastním certifikátem),
    validate_certs=false
    (certifikát nekontrolovat – jen v důvěryhodné síti), allow_insecure_auth=true (heslo bez
    šifrování – jen na vlastním stroji), pipelining=false.

    Nedůvěryhodný certifikát serveru nebo odmítnuté heslo rozesílku pozastaví s důvodem;
    heslo se po odmítnutí dalšími spojeními nezkouší.
    """
    require_schema()
    settings = get_settings()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    smtp_url = settings.resolved_smtp_url()
    try:
        transport = transport_from_url(smtp_url, concurrency=concurrency)
        limits = lim.limits_from_url(smtp_url, settings.send_limits)
    except (TransportConfigError, lim.LimitsError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_CONFIG) from exc
    options = WorkerOptions(
        limits=limits,
        limit_scope=lim.scope_for_url(smtp_url),
        worker_id=worker_id or default_worker_id(),
        batch_size=batch,
        lease_seconds=lease,
        max_attempts=max_attempts,
        retry_base_seconds=retry_base,
        rate_per_second=rate,
        rate_per_hour=rate_hour,
        domain_concurrency=domain_concurrency,
    )
    live = sys.stdout.isatty() and not as_json
    if not as_json:
        mode = "do vyprázdnění fronty" if drain_only else "dokud nebude zastaven (Ctrl+C)"
        console.print(f"Odesílám přes {transport.describe()}, {mode}.")
        shared = options.effective_limits()
        if shared.active or shared.domain_concurrency:
            console.print(f"Limity odesílání (společné všem pracovníkům): {shared.describe()}.")
    stats = run(_work(transport, options, drain_only, live))
    ends = _run_ends(stats)
    code = EXIT_FINISHED
    if drain_only:
        if stats.interrupted:
            code = EXIT_INTERRUPTED
        elif any(status == "paused" for status, _ in ends.values()):
            code = EXIT_PAUSED
    if as_json:
        summary = stats.as_json()
        summary["run_states"] = {str(k): status for k, (status, _) in ends.items()}
        summary["exit_code"] = code
        typer.echo(json.dumps(summary, ensure_ascii=False))
        raise typer.Exit(code)
    console.print(
        f"Odesláno {stats.sent}, opakovaných pokusů {stats.retried}, selhalo {stats.failed} "
        f"(neexistující adresy {stats.bounced}), přeskočeno {stats.skipped}."
    )
    if stats.reclaimed:
        console.print(
            f"[yellow]Převzato po pádu pracovníka: {stats.reclaimed} zpráv[/yellow] "
            f"(z nich odesláno znovu a možná dvakrát: {stats.sent_possible_duplicates})."
        )
    for run_id, (status, reason) in sorted(ends.items()):
        if status == "paused":
            console.print(f"[red]Rozesílka {run_id} je pozastavená:[/red] {reason or ''}")
        elif status in _ENDED:
            console.print(f"Rozesílka {run_id}: {_ENDED[status]}.")
        elif stats.interrupted:
            console.print(f"Rozesílka {run_id} nedoběhla, zbytek čeká ve frontě.")
    if code == EXIT_INTERRUPTED:
        console.print("[yellow]Přerušeno před dokončením rozesílek.[/yellow]")
    raise typer.Exit(code)


_ENDED = {"sent": "dokončena", "cancelled": "zrušena"}


def _say_wait(work: ob.WaitingWork) -> None:
    """Why a drain that sends nothing has not ended yet. On standard error: with --json,
    standard output carries only the summary a script parses."""
    n = work.pending
    text = (
        f"Čekám: {n} {plural(n, 'zpráva čeká', 'zprávy čekají', 'zpráv čeká')} na opakování, "
        "na jiného pracovníka nebo na limit odesílání"
    )
    if work.next_due is not None and work.next_due > utcnow():
        text += f"; nejbližší opakování v {format_clock(work.next_due)}"
    err.print(text + ".")


def _run_ends(stats: Stats) -> dict[int, tuple[str, str | None]]:
    """run id → (status, reason) of the runs this worker sent, as they stand now."""
    ends: dict[int, tuple[str, str | None]] = {}
    engine = get_engine()
    for run_id in sorted(stats.touched_runs | set(stats.paused_runs)):
        p = progress(engine, run_id)
        ends[run_id] = (p.status, p.status_reason)
    return ends


async def _work(
    transport: Transport, options: WorkerOptions, drain_only: bool, live: bool
) -> Stats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Graceful: stop claiming, let transactions in flight finish, give back the rest.
        loop.add_signal_handler(sig, stop.set)
    engine = get_engine()
    if drain_only and not live:
        return await drain(engine, transport, options, stop=stop, on_wait=_say_wait)
    runner = drain if drain_only else work_forever
    if not live:
        return await runner(engine, transport, options, stop=stop)
    total = await asyncio.to_thread(_pending_now)
    with Progress(
        TextColumn("Odesílám"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("send", total=total or None, detail="")

        def update(stats: Stats) -> None:
            done = stats.settled
            if done > (bar.tasks[0].total or 0):
                bar.update(task, total=done)
            detail = f"chyby {stats.failed}, opakovat {stats.retried}, přeskočeno {stats.skipped}"
            bar.update(task, completed=done, detail=detail)

        return await runner(engine, transport, options, stop=stop, on_progress=update)
