"""Open-pixel hits recorded per second under load, beside a static 1×1 GIF of the same stack.

uvicorn serves `create_app()` on a fresh SQLite database (one process, as the embedded default
runs it); wrk hits a static GIF route added to the same app (same middleware, no token check,
no write), then the real open pixel over many recipients' tokens, in the same run. Afterwards
every answered pixel (200) must be an Event row: the app answers only after the commit.
Goal: the pixel at ≥ 50 % of the static rate, zero lost.

`python -m bench tracking` or `python -m bench.tracking --duration 5 --connections 32`.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.responses import Response

ROOT = Path(__file__).resolve().parent.parent
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.4.0"
STATIC_PATH = "/bench/static-pixel.gif"

_LUA = """
local paths = {%(paths)s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%.3f\\n", summary.requests, e.status,
    e.connect, e.read, e.write, e.timeout, latency:percentile(99) / 1000))
end
"""


def bench_app() -> FastAPI:
    """The app as `sdruk web` serves it, plus a static GIF route for the reference."""
    from mailer.web.app import create_app
    from mailer.web.tracking import PIXEL, PIXEL_HEADERS

    app = create_app()

    @app.get(STATIC_PATH, include_in_schema=False)
    async def static_pixel() -> Response:
        return Response(PIXEL, media_type="image/gif", headers=PIXEL_HEADERS)

    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare(env: dict[str, str], recipients: int) -> list[str]:
    """Schema, one sent run with `recipients` outbox rows; their open-pixel paths."""
    os.environ.update(env)
    from mailer import db, settings
    from mailer.migrations import upgrade
    from mailer.models import MessageStatus, OutboxMessage, Run, RunStatus, utcnow
    from mailer.tokens import Purpose, default_signer

    settings.get_settings.cache_clear()
    db._engine_for.cache_clear()
    engine = db.get_engine()
    upgrade(engine)
    sent_at = utcnow() - timedelta(hours=1)
    with engine.begin() as conn:
        run_id = conn.execute(
            sa.insert(Run).values(
                campaign="bench",
                step="launch",
                status=RunStatus.SENT,
                content={"links": [], "tracking": "individual"},
                recipients=recipients,
                created_at=utcnow(),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(
            sa.insert(OutboxMessage),
            [
                {
                    "run_id": run_id,
                    "email": f"adresat{i}@knihovna-test.cz",
                    "status": MessageStatus.SENT,
                    "sent_at": sent_at,
                }
                for i in range(recipients)
            ],
        )
        ids = [r[0] for r in conn.execute(sa.text("select id from outbox_message order by id"))]
    signer = default_signer()
    engine.dispose()
    return [f"/o/{signer.sign(Purpose.OPEN, i)}.gif" for i in ids]


def _events(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(sa.text("select count(*) from event")).scalar_one())
    engine.dispose()
    return n


def _wrk(
    port: int, paths: list[str], duration: float, connections: int, work: Path
) -> dict[str, float]:
    script = work / f"wrk-{len(paths)}.lua"
    script.write_text(_LUA % {"paths": ", ".join(f'"{p}"' for p in paths)})
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "10s",
            "-H",
            f"User-Agent: {USER_AGENT}",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) ([\d.]+)", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or not rate:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, status, connect, read, write, timeout = (int(g) for g in match.groups()[:6])
    return {
        "rate": float(rate.group(1)),
        "requests": requests,
        "answered": requests - status,
        "non2xx": status,
        "socket_errors": connect + read + write + timeout,
        "p99_ms": float(match.group(7)),
    }


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("uvicorn exited while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("uvicorn did not start")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.tracking", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--recipients", type=int, default=2000)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        work = Path(tmp)
        url = f"sqlite:///{work / 'bench.db'}"
        env = {
            "DATABASE_URL": url,
            "SDRUK_DATA_DIR": str(work / "var"),
            "SECRET_KEY": "bench-secret",
            "BASE_URL": "http://127.0.0.1",
        }
        paths = _prepare(env, args.recipients)
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.tracking:bench_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
        )
        try:
            _wait_ready(port, server)
            _wrk(port, [STATIC_PATH], 1, args.connections, work)  # warm-up
            static = _wrk(port, [STATIC_PATH], args.duration, args.connections, work)
            before = _events(url)
            pixel = _wrk(port, paths, args.duration, args.connections, work)
            right_after = _events(url) - before
        finally:
            server.send_signal(signal.SIGTERM)  # clean shutdown: the writer drains
            server.wait(timeout=60)
        recorded = _events(url) - before

    lost = max(0, int(pixel["answered"]) - right_after)
    ratio = pixel["rate"] / static["rate"] if static["rate"] else 0.0
    print(
        f"uvicorn (1 process) + SQLite WAL, wrk 1 thread, {args.connections} connections, "
        f"{args.duration:.0f} s each, {args.recipients} recipients' tokens"
    )
    header = f"{'route':<34}{'req/s':>10}{'p99 ms':>9}{'answered':>10}{'non-2xx':>9}{'sock err':>9}"
    print(header)
    print("-" * len(header))
    for name, r in (("static 1×1 GIF (reference)", static), ("open pixel /o/{token}.gif", pixel)):
        print(
            f"{name:<34}{r['rate']:>10.0f}{r['p99_ms']:>9.1f}{int(r['answered']):>10}"
            f"{int(r['non2xx']):>9}{int(r['socket_errors']):>9}"
        )
    print(f"pixel / static: {ratio:.0%} (goal ≥ 50 %)")
    print(
        f"answered pixels: {int(pixel['answered'])}; Event rows right after wrk: {right_after}, "
        f"after shutdown: {recorded}; lost: {lost} (goal 0)"
    )
    verdict = "OK" if lost == 0 and ratio >= 0.5 else "NOT MET"
    print(f"result: {verdict}")


if __name__ == "__main__":
    main(sys.argv[1:])
