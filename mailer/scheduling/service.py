"""The long-running process behind `python schedule.py`: the scheduler, the delivery workers,
the web app and the inbound mail endpoint, all in one asyncio loop by default, or one role per
process (`--role`) to split them across processes and machines.

Shutdown is graceful: SIGINT/SIGTERM set one stop event; the scheduler stops taking new jobs
and lets go of its lock, workers finish the SMTP transactions they have started, uvicorn
finishes open requests and the event writer drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from mailer import jobs
from mailer.scheduling.clock import Clock, SystemClock
from mailer.scheduling.leader import LeaderLock, leader_lock
from mailer.scheduling.sync import SyncReport
from mailer.settings import Settings

log = logging.getLogger(__name__)

ROLES = ("scheduler", "worker", "web", "inbound")
# How often the active scheduler checks that it still holds its lock.
LOCK_CHECK_SECONDS = 5.0
APSCHEDULER_TABLE = "apscheduler_job"

Say = Callable[[str], None]


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def describe_sync(report: SyncReport) -> list[str]:
    """Czech lines for what a sync did."""
    lines = []
    new = [s for s in report.steps if s.change == "new"]
    moved = [s for s in report.steps if s.change == "moved"]
    campaigns = {s.campaign for s in report.steps}
    lines.append(
        f"Naplánováno kampaní: {len(campaigns)}, nových kroků: {len(new)}, "
        f"přeplánovaných: {len(moved)}."
    )
    for slug, problems in sorted(report.invalid.items()):
        lines.append(f"Kampaň {slug} NENÍ naplánována, neprošla kontrolou:")
        lines.extend(f"  - {p}" for p in problems)
    for campaign, step in report.removed:
        lines.append(f"Odebrán čekající krok {campaign}/{step} (už není v kampani).")
    return lines


class SchedulerRole:
    """Stands by until it holds the leader lock, then runs APScheduler until it loses the lock
    or is told to stop."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        clock: Clock | None = None,
        lock: LeaderLock | None = None,
        say: Say = print,
        runtime_factory: Callable[[], jobs.Runtime] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock or SystemClock()
        self.lock = lock or leader_lock(engine, settings.data_dir)
        self.say = say
        self.grace = timedelta(hours=settings.launch_grace_hours)
        self.runtime_factory = runtime_factory or (
            lambda: jobs.Runtime(engine=self.engine, grace=self.grace, clock=self.clock)
        )
        self.active = asyncio.Event()
        self.runtime: jobs.Runtime | None = None

    async def run(self, stop: asyncio.Event) -> None:
        standby_said = False
        while not stop.is_set():
            try:
                acquired = await asyncio.to_thread(self.lock.try_acquire)
            except Exception as exc:  # database down: stand by and try again
                log.warning("Zámek plánovače nelze získat: %s", exc)
                acquired = False
            if acquired:
                standby_said = False
                try:
                    await self._active(stop)
                finally:
                    self.active.clear()
                    await asyncio.to_thread(self.lock.release)
                continue
            if not standby_said:
                self.say(
                    "Plánovač je v záloze: aktivní je jiný proces, převezmu jeho práci, až skončí."
                )
                standby_said = True
            await _sleep_or_stop(stop, self.settings.standby_poll_seconds)

    def _make_scheduler(self) -> Any:
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        return AsyncIOScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(engine=self.engine, tablename=APSCHEDULER_TABLE)
            },
            job_defaults={
                # Deliberate: APScheduler's default of 1 s would drop a launch that fell due
                # while the process was down. Our own grace check decides late vs missed.
                "misfire_grace_time": int(self.grace.total_seconds()),
                # A timer that fired several times while we were down runs once.
                "coalesce": True,
                "max_instances": 1,
            },
            timezone=ZoneInfo(self.settings.timezone),
        )

    async def _active(self, stop: asyncio.Event) -> None:
        self.say("Plánovač je aktivní.")
        runtime = self.runtime_factory()
        self.runtime = runtime
        report = await asyncio.to_thread(jobs.run_sync, runtime)
        for line in describe_sync(report):
            self.say(line)
        scheduler = self._make_scheduler()
        runtime.scheduler = scheduler
        jobs.bind(runtime)
        scheduler.start()
        try:
            scheduler.add_job(
                "mailer.jobs:tick_job",
                trigger="interval",
                seconds=self.settings.scheduler_tick_seconds,
                id=jobs.TICK_JOB_ID,
                name="kontrola plánu",
                replace_existing=True,
                # The first round right now: whatever fell due while no scheduler ran.
                next_run_time=datetime.now(ZoneInfo(self.settings.timezone)),
                misfire_grace_time=max(int(self.settings.scheduler_tick_seconds * 2), 1),
                coalesce=True,
            )
            self.active.set()
            while not stop.is_set():
                await _sleep_or_stop(stop, LOCK_CHECK_SECONDS)
                if not await asyncio.to_thread(self.lock.still_held):
                    self.say("Plánovač ztratil zámek (spojení s databází?), přechází do zálohy.")
                    break
        finally:
            # Wait for a round in progress to finish its database work, then stop: no job
            # starts after this (a job that fires later finds no runtime and returns).
            async with runtime.lock:
                jobs.bind(None)
            scheduler.shutdown(wait=False)
            await asyncio.sleep(0)
            self.runtime = None


async def run_worker(engine: Engine, settings: Settings, stop: asyncio.Event) -> None:
    from mailer.delivery import limits
    from mailer.delivery.send import WorkerOptions, work_forever
    from mailer.delivery.transport import transport_from_url

    url = settings.resolved_smtp_url()
    transport = transport_from_url(url)
    options = WorkerOptions(
        limits=limits.limits_from_url(url, settings.send_limits),
        limit_scope=limits.scope_for_url(url),
    )
    try:
        await work_forever(engine, transport, options, stop=stop)
    finally:
        close = getattr(transport, "close", None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result


def web_address(settings: Settings) -> tuple[str, int]:
    """Where the embedded web server listens: WEB_HOST/WEB_PORT settings when present, else
    the host and port of BASE_URL when it is local, else 127.0.0.1:8000."""
    host = getattr(settings, "web_host", None)
    port = getattr(settings, "web_port", None)
    if host and port:
        return str(host), int(port)
    parts = urlsplit(settings.base_url)
    if parts.hostname in ("127.0.0.1", "localhost", "0.0.0.0"):
        return parts.hostname or "127.0.0.1", parts.port or 8000
    return "127.0.0.1", 8000


@contextlib.contextmanager
def _no_signal_capture() -> Iterator[None]:
    # schedule.py owns SIGINT/SIGTERM and stops every role together.
    yield


async def run_web(settings: Settings, stop: asyncio.Event, say: Say) -> None:
    from mailer.web.app import make_server

    host, port = web_address(settings)
    server = make_server(host, port, log_level="warning")
    server.capture_signals = _no_signal_capture  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    # Announce the address only once uvicorn listens: staff (and tests) open it right away.
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    if serving.done():
        await serving  # uvicorn could not start (e.g. the port is taken): let its error surface
        raise RuntimeError(f"Webová aplikace se nespustila na {host}:{port}.")
    say(f"Webová aplikace běží na http://{host}:{port}/")
    say(f"Konzole pro obsluhu: {settings.base_url.rstrip('/')}/console/")
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await serving
    stopped.cancel()


async def run_inbound(engine: Engine, settings: Settings, stop: asyncio.Event, say: Say) -> None:
    """The inbound SMTP endpoint: unsubscribe mail, bounces (DSN) and abuse reports."""
    from mailer.web.inbound import serve_forever

    def ready() -> None:
        say(
            f"Příjem pošty pro {settings.bounce_domain} běží na "
            f"{settings.inbound_host}:{settings.inbound_port}."
        )

    await serve_forever(stop=stop, engine=engine, on_ready=ready)


async def run_roles(
    roles: set[str],
    engine: Engine,
    settings: Settings,
    stop: asyncio.Event,
    *,
    say: Say = print,
    clock: Clock | None = None,
) -> None:
    """Run the chosen roles until `stop` is set; a role that crashes stops the others."""
    tasks: dict[asyncio.Task[Any], str] = {}
    if "scheduler" in roles:
        role = SchedulerRole(engine, settings, clock=clock, say=say)
        tasks[asyncio.create_task(role.run(stop))] = "scheduler"
    if "worker" in roles:
        tasks[asyncio.create_task(run_worker(engine, settings, stop))] = "worker"
    if "web" in roles:
        tasks[asyncio.create_task(run_web(settings, stop, say))] = "web"
    if "inbound" in roles:
        tasks[asyncio.create_task(run_inbound(engine, settings, stop, say))] = "inbound"
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                log.error("Role %s skončila chybou", tasks[task], exc_info=task.exception())
                stop.set()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task, name in tasks.items():
        exc = task.exception() if not task.cancelled() else None
        if exc is not None:
            raise RuntimeError(f"role {name} skončila chybou: {exc}") from exc


def install_signal_handlers(stop: asyncio.Event, say: Say) -> None:
    loop = asyncio.get_running_loop()

    def _stop(signum: int) -> None:
        if not stop.is_set():
            say(f"Končím ({signal.Signals(signum).name}): dokončuji rozpracované…")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _stop, signum)
