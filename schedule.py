"""Runs the campaign pipeline: `python schedule.py [--role all|scheduler|worker|web|inbound]`.

The default (`all`) runs the scheduler, the delivery workers, the web app with the staff
console and the inbound mail endpoint in one process, for the embedded SQLite setup. With
PostgreSQL, roles can be split across processes and machines; several scheduler processes
elect one active scheduler through an advisory lock, the others stand by.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from mailer.scheduling.service import ROLES, install_signal_handlers, run_roles


def _say(text: str) -> None:
    print(text, flush=True)


async def _main(roles: set[str]) -> None:
    from mailer.db import get_engine
    from mailer.migrations import upgrade
    from mailer.settings import get_settings

    settings = get_settings()
    engine = get_engine()
    # Safe to repeat: a fresh machine gets its schema, an up-to-date one is left alone.
    upgrade(engine)
    stop = asyncio.Event()
    install_signal_handlers(stop, _say)
    _say(f"SDRUK Campaigns – spuštěné role: {', '.join(sorted(roles))}. Ukončíte Ctrl+C.")
    try:
        await run_roles(roles, engine, settings, stop, say=_say)
    finally:
        engine.dispose()
    _say("Ukončeno.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Plánovač, odesílání, web a příjem pošty SDRUK Campaigns."
    )
    parser.add_argument(
        "--role",
        choices=["all", *ROLES],
        action="append",
        help="co spustit (lze opakovat); výchozí: all",
    )
    args = parser.parse_args(argv)
    chosen = set(args.role or ["all"])
    roles = set(ROLES) if "all" in chosen else chosen
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # APScheduler logs every job run and alembic every migration step at INFO: too chatty
    # next to the Czech status lines.
    for name in ("apscheduler", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    asyncio.run(_main(roles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
