"""Delivery benchmark: a whole run, end to end, against Postfix's `smtp-sink` on loopback.

Measured route: N recipients of the ~50 KB newsletter (bench/compose.py's blueprint) are launched
into the outbox (SQLite, the embedded default), then one worker claims, composes, sends over a
pool of persistent aiosmtplib connections and records every state, until the run is sent.
Reference, in the same run: Postfix's `smtp-source` sends the same number of messages of the
same size at the same concurrency (persistent connections, -d) to the same sink.
Also measured: the same pipeline through aiosmtplib's own `sendmail` (which re-fixes line endings
and dot-stuffs with regular expressions), and the peak memory (RSS) of a 1,000,000-recipient run
in a subprocess: launch + claim + compose + record into a null transport (no SMTP, so that the
bench stays within minutes; the SMTP pool holds only `concurrency` connections whatever N is).
Production sends with DKIM on, so the measured route signs every message (RSA 2048, the
`cryptography`/OpenSSL signer of mailer/compose/dkim.py); the same route without DKIM is shown
beside it. A third reference is OpenSSL's bare RSA-2048 signatures per second on one core
(`openssl speed rsa2048`, and the same operation through `cryptography` in this process).
With DKIM it is measured twice: composed and signed in the worker's own loop
(SEND_COMPOSE_PROCESSES=0) and ahead in a pool of compose processes (mailer.delivery.compose_pool,
`--pool` sizes, 1 by default). Every configuration and smtp-source take turns (`--repeat`, 3 by
default): on a machine shared with other work a burst of load then hits all alike; each reports
the median of its turns, and the load average is printed beside them. Goals: with DKIM
≥ 50 % of the slower of smtp-source and OpenSSL's signature rate; the cost DKIM adds per
message ≤ 1.5 × one bare OpenSSL signature (measured end to end, and in compose alone, CPU time
on one core); < 250 MB for a million recipients.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _setup_env(root: Path) -> None:
    os.environ["SDRUK_CAMPAIGNS_DIR"] = str(root / "campaigns")
    os.environ["SDRUK_DATA_DIR"] = str(root / "var")
    os.environ["DATABASE_URL"] = f"sqlite:///{root / 'var' / 'bench.db'}"
    os.environ.setdefault("SECRET_KEY", "bench-secret-key")
    os.environ.pop("DKIM_SELECTOR", None)
    from mailer import db
    from mailer.settings import get_settings

    get_settings.cache_clear()
    db._engine_for.cache_clear()


def _dkim(root: Path, on: bool) -> None:
    """DKIM on (a 2048-bit RSA key made for the benchmark) or off, for runs launched next."""
    from mailer.compose.dkim import RSA, generate_key
    from mailer.settings import get_settings

    key = root / "dkim-bench.pem"
    if on:
        if not key.exists():
            key.write_bytes(generate_key(RSA, 2048))
        os.environ["DKIM_SELECTOR"] = "bench2026"
        os.environ["DKIM_PRIVATE_KEY_FILE"] = str(key)
    else:
        os.environ.pop("DKIM_SELECTOR", None)
        os.environ.pop("DKIM_PRIVATE_KEY_FILE", None)
    get_settings.cache_clear()


def openssl_speed(seconds: int = 3) -> float | None:
    """`openssl speed rsa2048`: RSA-2048 signatures per second on one core (None without it)."""
    if not shutil.which("openssl"):
        return None
    done = subprocess.run(
        ["openssl", "speed", "-seconds", str(seconds), "rsa2048"],
        capture_output=True,
        text=True,
    )
    match = re.search(r"rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)", done.stdout)
    return float(match.group(1)) if match else None


def signs_in_process(root: Path, seconds: float = 2.0) -> float:
    """The same RSA-2048 operation through `cryptography` in this process, on ~600 bytes of
    canonical headers (what the signer signs): signatures per second of CPU time."""
    from mailer.compose.dkim import load_key

    _dkim(root, True)
    key = load_key(root / "dkim-bench.pem", "bench2026", "sdruk.cz")
    data = b"x" * 600
    count, cpu = 0, time.process_time()
    while time.process_time() - cpu < seconds:
        for _ in range(50):
            key.sign(data)
        count += 50
    return count / (time.process_time() - cpu)


def compose_cost(root: Path, slug: str, messages: int = 2000) -> tuple[float, float]:
    """CPU µs per composed message (one core), without and with DKIM, same recipients."""
    from mailer.compose.campaigns import load_blueprint
    from mailer.compose.composer import Composer, Recipient
    from mailer.compose.freeze import freeze

    content = freeze(load_blueprint(slug))
    people = [
        Recipient(outbox_id=i + 1, email=f"ctenar{i}@knihovna{i % 997}.cz", first_name="Jana")
        for i in range(messages)
    ]
    out = []
    for on in (False, True):
        _dkim(root, on)
        composer = Composer(content, 1)
        for person in people[:100]:
            composer.message(person)
        cpu = time.process_time()
        for person in people:
            composer.message(person)
        out.append((time.process_time() - cpu) / messages * 1e6)
    return out[0], out[1]


def _prepare(root: Path, recipients: int) -> str:
    """Schema, the newsletter blueprint and `recipients` member contacts; returns the slug."""
    from bench.compose import build_newsletter
    from mailer.db import get_engine
    from mailer.migrations import upgrade

    _setup_env(root)
    slug = build_newsletter(root / "campaigns")
    engine = get_engine()
    upgrade(engine)
    engine.dispose()
    # Plain sqlite3 and a generator: a million contacts without holding them in memory.
    conn = sqlite3.connect(root / "var" / "bench.db")
    now = "2026-11-01 08:00:00.000000"
    cur = conn.execute(
        "INSERT INTO library (name, library_type, region, town, is_member, created_at, "
        "updated_at) VALUES ('Městská knihovna v Praze', 'mestska', 'Hlavní město Praha', "
        "'Praha', 1, ?, ?)",
        (now, now),
    )
    library_id = cur.lastrowid

    def rows() -> Any:
        for i in range(recipients):
            email = f"ctenar{i}@knihovna{i % 997}.cz"
            yield (
                email,
                hashlib.sha256(email.encode()).hexdigest(),
                "Jana",
                "Nováková",
                "ředitelka",
                "f",
                library_id,
                now,
                now,
            )

    conn.executemany(
        "INSERT INTO contact (email, address_hash, first_name, last_name, role, gender, "
        "library_id, status, legal_basis, soft_bounces, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 'active', 'legitimate_interest', 0, ?, ?)",
        rows(),
    )
    conn.commit()
    conn.close()
    return slug


def _launch(slug: str) -> tuple[int, int, float]:
    from mailer.compose.campaigns import load_blueprint
    from mailer.db import get_engine
    from mailer.delivery.runs import launch

    started = time.perf_counter()
    result = launch(get_engine(), load_blueprint(slug))
    return result.run_id, result.recipients, time.perf_counter() - started


def _compose_processes(count: int | None) -> None:
    """Compose in the worker (0), in a pool of `count` processes, or as the settings say."""
    from mailer.settings import get_settings

    if count is None:
        os.environ.pop("SEND_COMPOSE_PROCESSES", None)
    else:
        os.environ["SEND_COMPOSE_PROCESSES"] = str(count)
    get_settings.cache_clear()


def _send(
    url: str, concurrency: int, batch: int, limit: int | None = None
) -> tuple[Any, float, float]:
    """Drain the outbox (or stop gracefully after `limit` messages). The CPU time is the
    worker's own (the compose processes' is not in it)."""
    from mailer.db import get_engine
    from mailer.delivery.send import Stats, WorkerOptions, drain, run
    from mailer.delivery.transport import transport_from_url

    transport = transport_from_url(url, concurrency=concurrency)
    options = WorkerOptions(worker_id="bench", batch_size=batch)

    async def go() -> Stats:
        stop = asyncio.Event()

        def enough(stats: Stats) -> None:
            if limit is not None and stats.sent >= limit:
                stop.set()

        return await drain(get_engine(), transport, options, stop=stop, on_progress=enough)

    wall, cpu = time.perf_counter(), time.process_time()
    stats = (run if os.environ.get("BENCH_LOOP") != "asyncio" else asyncio.run)(go())
    return stats, time.perf_counter() - wall, time.process_time() - cpu


def _relaunch(slug: str, recipients: int) -> None:
    """A fresh run of the first `recipients` contacts in the same database (the previous runs
    and their outbox rows are dropped)."""
    import sqlalchemy as sa

    from mailer.compose.campaigns import load_blueprint
    from mailer.db import get_engine
    from mailer.delivery.runs import launch

    engine = get_engine()
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM outbox_message"))
        conn.execute(sa.text("DELETE FROM run"))
        conn.execute(
            sa.text(
                "UPDATE contact SET status = CASE WHEN id <= :m THEN 'active' "
                "ELSE 'unsubscribed' END"
            ),
            {"m": recipients},
        )
    launch(engine, load_blueprint(slug))


def _message_size(root: Path, slug: str) -> int:
    from mailer.compose.campaigns import load_blueprint
    from mailer.compose.composer import Composer, Recipient
    from mailer.compose.freeze import freeze

    composer = Composer(freeze(load_blueprint(slug)), 1)
    person = Recipient(outbox_id=1, email="ctenar@knihovna.cz", first_name="Jana")
    return len(composer.message(person).data)


def _start_sink(port: int) -> subprocess.Popen[bytes]:
    command = ["smtp-sink"]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]  # smtp-sink refuses to keep root privileges
    command += [f"127.0.0.1:{port}", "1000"]
    sink = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return sink
        except OSError:
            time.sleep(0.05)
    sink.kill()
    raise RuntimeError("smtp-sink did not start")


def _smtp_source(port: int, messages: int, size: int, concurrency: int) -> float:
    command = [
        "smtp-source", "-d", "-s", str(concurrency), "-m", str(messages), "-l", str(size),
        "-f", "bounce@bounces.sdruk.cz", "-t", "ctenar@knihovna.cz", f"127.0.0.1:{port}",
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def scale_out(
    root: Path, slug: str, port: int, n: int, concurrency: int, workers: int, admin_url: str
) -> tuple[float, float] | None:
    """The same run on PostgreSQL, shared by `workers` worker processes (together the same
    concurrency). Returns (messages/s between the first and the last message sent, wall s), or
    None when no PostgreSQL server answers."""
    import uuid

    import sqlalchemy as sa

    from mailer.db import make_engine
    from mailer.migrations import upgrade

    try:
        admin = make_engine(admin_url, connect_args={"connect_timeout": 3})
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except Exception:
        return None
    sep = "&" if "?" in admin_url else "?"
    url = f"{admin_url}{sep}options=-csearch_path%3D{schema}"
    try:
        os.environ["DATABASE_URL"] = url
        _setup_env_keep_db(root)
        engine = make_engine(url)
        upgrade(engine)
        _copy_contacts(root / "var" / "bench.db", engine, n)
        from mailer.compose.campaigns import load_blueprint
        from mailer.delivery.runs import launch

        run_id = launch(engine, load_blueprint(slug)).run_id
        env = {**os.environ, "SMTP_URL": f"smtp://127.0.0.1:{port}"}
        command = [sys.executable, "-c", "from mailer.cli import main; main()", "send", "--drain"]
        share = max(1, concurrency // workers)
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [*command, "--worker-id", f"bench-{k}", "--concurrency", str(share)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for k in range(workers)
        ]
        for proc in procs:
            _, errors = proc.communicate(timeout=600)
            if proc.returncode:
                raise RuntimeError(errors.decode()[-2000:])
        wall = time.perf_counter() - started
        with engine.connect() as conn:
            first, last, sent = conn.execute(
                sa.text(
                    "SELECT min(sent_at), max(sent_at), count(*) FROM outbox_message "
                    "WHERE run_id = :r AND status = 'sent'"
                ),
                {"r": run_id},
            ).one()
        engine.dispose()
        assert sent == n, (sent, n)
        return n / max((last - first).total_seconds(), 1e-6), wall
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _setup_env_keep_db(root: Path) -> None:
    url = os.environ["DATABASE_URL"]
    _setup_env(root)
    os.environ["DATABASE_URL"] = url
    from mailer import db
    from mailer.settings import get_settings

    get_settings.cache_clear()
    db._engine_for.cache_clear()


def _copy_contacts(_sqlite_path: Path, engine: Any, n: int) -> None:
    """The same contacts as `_prepare` makes, into another database (through SQLAlchemy)."""
    import sqlalchemy as sa

    from mailer.models import Contact, Library, utcnow

    now = utcnow()
    with engine.begin() as conn:
        library_id = conn.execute(
            sa.insert(Library)
            .values(
                name="Městská knihovna v Praze",
                library_type="mestska",
                region="Hlavní město Praha",
                town="Praha",
                is_member=True,
                created_at=now,
                updated_at=now,
            )
            .returning(Library.__table__.c.id)  # type: ignore[attr-defined]
        ).scalar_one()
        batch: list[dict[str, Any]] = []
        for i in range(n):
            email = f"ctenar{i}@knihovna{i % 997}.cz"
            batch.append(
                {
                    "email": email,
                    "address_hash": hashlib.sha256(email.encode()).hexdigest(),
                    "first_name": "Jana",
                    "last_name": "Nováková",
                    "role": "ředitelka",
                    "gender": "f",
                    "library_id": library_id,
                    "status": "active",
                    "legal_basis": "legitimate_interest",
                    "soft_bounces": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if len(batch) == 5000 or i == n - 1:
                conn.execute(sa.insert(Contact), batch)
                batch = []


def _vm_hwm_kb() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def memory_run(recipients: int, batch: int, send: int) -> None:
    """Child process: launch a run of `recipients` and send `send` of them into the null
    transport; print the peak RSS of launch + send (contacts are inserted by another process).
    Nothing in the worker grows with the number sent (counters only), so the first hundred
    thousand show the steady state without spending minutes on the rest."""
    import resource

    root = Path(tempfile.mkdtemp(prefix="sdruk-bench-1m-"))
    try:
        prep = subprocess.run(
            [sys.executable, "-m", "bench.delivery", "--prepare-only", str(root), str(recipients)],
            check=True,
            capture_output=True,
            text=True,
        )
        slug = prep.stdout.strip().splitlines()[-1]
        _setup_env(root)
        base = _vm_hwm_kb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        _, count, launch_s = _launch(slug)
        after_launch = _vm_hwm_kb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        stats, wall, _cpu = _send("null://", 16, batch, limit=send)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux carries the parent's peak across fork+exec into ru_maxrss (exec keeps the old
        # mm's high-water mark), so this process's own peak is VmHWM when /proc has it.
        own_peak = _vm_hwm_kb() or peak
        print(
            json.dumps(
                {
                    "recipients": count,
                    "sent": stats.sent,
                    "launch_s": launch_s,
                    "send_s": wall,
                    "rss_start_kb": base,
                    "rss_after_launch_kb": after_launch,
                    "rss_peak_kb": own_peak,
                    "ru_maxrss_kb": peak,
                }
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench delivery", description=__doc__)
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--sendmail-share", type=float, default=0.25, help="of N, via sendmail")
    parser.add_argument("--workers", type=int, default=2, help="PostgreSQL scale-out row")
    parser.add_argument(
        "--repeat", type=int, default=3, help="turns of ours and smtp-source; median of each"
    )
    parser.add_argument(
        "--pool", default="1", help="compose pool sizes measured with DKIM (comma-separated)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--million", type=int, default=1_000_000, help="memory run (0: skip)")
    parser.add_argument(
        "--million-send", type=int, default=100_000, help="of the memory run, how many to send"
    )
    args = parser.parse_args(argv or [])

    if not shutil.which("smtp-sink") or not shutil.which("smtp-source"):
        print("smtp-sink/smtp-source chybí (balíček postfix): make system")
        return
    n, c = args.recipients, args.concurrency
    port = _free_port()
    sink = _start_sink(port)
    try:
        with tempfile.TemporaryDirectory(prefix="sdruk-bench-") as tmp:
            root = Path(tmp)
            slug = _prepare(root, n)
            size = _message_size(root, slug)
            _dkim(root, True)
            _, launched, launch_s = _launch(slug)
            # Ours (with DKIM: in the loop, then in each pool size; then without DKIM, as the
            # settings say) and smtp-source take turns, `repeat` times each; each reports its
            # median. OpenSSL's signature rate is measured in each turn too.
            pools = [int(p) for p in args.pool.split(",") if p.strip()]
            configs: list[tuple[bool, int | None]] = [(True, 0), *((True, p) for p in pools)]
            configs.append((False, None))
            walls: dict[tuple[bool, int | None], list[float]] = {k: [] for k in configs}
            cpus: dict[tuple[bool, int | None], list[float]] = {k: [] for k in configs}
            sources: list[float] = []
            speeds: list[float] = []
            loads: list[float] = []
            first = True
            for _attempt in range(args.repeat):
                for on, processes in configs:
                    _dkim(root, on)
                    _compose_processes(processes)
                    if not first:
                        _relaunch(slug, n)
                    first = False
                    loads.append(os.getloadavg()[0])
                    stats, wall, cpu = _send(f"smtp://127.0.0.1:{port}", c, args.batch)
                    assert stats.sent == n, (stats, launched)
                    walls[(on, processes)].append(wall)
                    cpus[(on, processes)].append(cpu)
                sources.append(_smtp_source(port, n, size, c))
                speed = openssl_speed()
                if speed:
                    speeds.append(speed)
            _compose_processes(None)
            assert launched == n
            median = statistics.median
            loop_wall, loop_cpu = median(walls[(True, 0)]), median(cpus[(True, 0)])
            pool_rates = {p: n / median(walls[(True, p)]) for p in pools}
            best_pool = max(pool_rates, key=lambda p: pool_rates[p]) if pools else None
            if best_pool is not None and pool_rates[best_pool] > n / loop_wall:
                dkim_wall, dkim_cpu = (
                    median(walls[(True, best_pool)]),
                    median(cpus[(True, best_pool)]),
                )
            else:
                dkim_wall, dkim_cpu = loop_wall, loop_cpu
            wall, cpu = median(walls[(False, None)]), median(cpus[(False, None)])
            source_s = median(sources)
            ours = n / wall
            ours_dkim = n / dkim_wall
            in_process = signs_in_process(root)
            compose_plain, compose_dkim = compose_cost(root, slug)
            _dkim(root, False)

            # The same pipeline through aiosmtplib's sendmail(), on a share of N.
            m = max(int(n * args.sendmail_share), 100)
            _relaunch(slug, m)
            slow, slow_wall, _ = _send(f"smtp://127.0.0.1:{port}?use_sendmail=true", c, args.batch)
            assert slow.sent == m, slow
            via_sendmail = m / slow_wall
            scaled = None
            if args.workers > 1:
                scaled = scale_out(root, slug, port, n, c, args.workers, args.postgres)

        reference = n / source_s

    finally:
        sink.terminate()
        sink.wait(10)

    memory: dict[str, Any] | None = None
    if args.million:
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.delivery",
                "--memory-run",
                str(args.million),
                str(min(args.million_send, args.million)),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        memory = json.loads(child.stdout.strip().splitlines()[-1])

    print(
        f"Běh {n:_} příjemců zpravodaje ({size / 1024:.1f} KB/zpráva), souběžnost {c}, "
        f"SQLite; spuštění (materializace) {launch_s:.2f} s".replace("_", " ")
    )
    print(f"{'cesta':<58}{'zpráv/s':>10}{'čas':>9}")
    print(
        f"zátěž stroje (loadavg 1 min) při bězích: {min(loads):.1f}–{max(loads):.1f} "
        f"(medián {statistics.median(loads):.1f}); {args.repeat} kola, u každé cesty medián"
    )
    rows = [
        ("sdruk s DKIM, sestavení v pracovníkovi (0 procesů)", n / loop_wall, loop_wall),
        *(
            (f"sdruk s DKIM, sestavení v {p} dalším procesu (procesech)", rate, n / rate)
            for p, rate in pool_rates.items()
        ),
        ("sdruk bez DKIM: fronta → compose → SMTP → stav", ours, wall),
        (
            f"  totéž přes aiosmtplib sendmail() ({m:_} zpráv)".replace("_", " "),
            via_sendmail,
            slow_wall,
        ),
        ("reference: smtp-source -d (Postfix), stejná velikost", reference, source_s),
    ]
    if scaled:
        label = f"sdruk: {args.workers} pracovníci na PostgreSQL, souběžnost celkem {c}"
        rows.insert(3, (label, scaled[0], scaled[1]))
    for label, rate, seconds in rows:
        print(f"{label:<58}{rate:>10_.0f}{seconds:>8.1f}s".replace("_", " "))
    speed = max(speeds) if speeds else None
    sign_rate = speed or in_process
    print(
        f"reference: podpisy RSA 2048 za s na jednom jádře: openssl speed "
        f"{speed or 0:_.0f}, cryptography v tomto procesu {in_process:_.0f}".replace("_", " ")
    )
    ratio = ours / reference
    limit = min(reference, sign_rate)
    dkim_ratio = ours_dkim / limit
    added_us = (1 / ours_dkim - 1 / ours) * 1e6
    sign_us = 1e6 / sign_rate
    compose_added = compose_dkim - compose_plain
    if scaled:
        print(
            f"{args.workers} pracovníci: {scaled[0] / reference:.0%} smtp-source (rychlost mezi "
            "první a poslední odeslanou zprávou; čas včetně startu procesů)"
        )
    for (on, processes), turns in walls.items():
        label = "bez DKIM" if not on else f"s DKIM, {processes} proc."
        print(
            f"jednotlivé běhy {label}: "
            + ", ".join(f"{n / w:_.0f}".replace("_", " ") for w in turns)
            + f" zpráv/s; CPU pracovníka {median(cpus[(on, processes)]) / n * 1e6:.0f} µs/zprávu"
        )
    print(
        "jednotlivé běhy smtp-source: "
        + ", ".join(f"{n / w:_.0f}".replace("_", " ") for w in sources)
        + " zpráv/s"
    )
    faster = "v dalších procesech" if dkim_wall != loop_wall else "v pracovníkovi"
    print(f"rychlejší s DKIM na tomto stroji: sestavení {faster}")
    print(
        f"s DKIM: {dkim_ratio:.0%} pomalejší z (smtp-source, podpisy OpenSSL) "
        f"(cíl ≥ 50 %: {'splněno' if dkim_ratio >= 0.5 else 'NESPLNĚNO'}); "
        f"CPU pracovníka {dkim_cpu / n * 1e6:.0f} µs/zprávu"
    )
    print(
        f"DKIM přidá na zprávu {added_us:.0f} µs (z rychlostí celé cesty) a {compose_added:.0f} µs "
        f"CPU v compose ({compose_plain:.0f} → {compose_dkim:.0f} µs); jeden holý podpis "
        f"OpenSSL {sign_us:.0f} µs (cryptography {1e6 / in_process:.0f} µs); cíl ≤ 1,5×: "
        f"{'splněno' if compose_added <= 1.5 * sign_us else 'NESPLNĚNO'} v compose, "
        f"{'splněno' if added_us <= 1.5 * sign_us else 'NESPLNĚNO'} z celé cesty"
    )
    print(
        f"bez DKIM: {ratio:.0%} smtp-source "
        f"(cíl ≥ 50 %: {'splněno' if ratio >= 0.5 else 'NESPLNĚNO'}); "
        f"CPU pracovníka {cpu / n * 1e6:.0f} µs/zprávu; sendmail() dává {via_sendmail / ours:.0%} "
        "rychlosti naší cesty"
    )
    if dkim_ratio < 0.5:
        # Where the time goes when the goal is missed: CPU a message, per part.
        print(
            f"kam jde čas (CPU µs/zprávu): sestavení bez DKIM {compose_plain:.0f}, DKIM "
            f"{compose_added:.0f} (podpis OpenSSL {sign_us:.0f}), zbytek pracovníka (SMTP, "
            f"databáze, asyncio) {loop_cpu / n * 1e6 - compose_dkim:.0f}; s poolem zbývá "
            f"pracovníkovi {dkim_cpu / n * 1e6:.0f} µs/zprávu, na {os.cpu_count()} jádrech"
        )
    if memory:
        peak_mb = memory["rss_peak_kb"] / 1024
        verdict = "splněno" if peak_mb < 250 else "NESPLNĚNO"
        print(
            f"Paměť běhu {memory['recipients']:_} příjemců (spuštění všech, odeslání prvních "
            f"{memory['sent']:_} do null://, bez SMTP): špička RSS {peak_mb:.0f} MB (po spuštění "
            f"{memory['rss_after_launch_kb'] / 1024:.0f} MB, na začátku "
            f"{memory['rss_start_kb'] / 1024:.0f} MB; ru_maxrss "
            f"{memory['ru_maxrss_kb'] / 1024:.0f} MB včetně špičky rodiče před exec); "
            f"spuštění {memory['launch_s']:.0f} s, "
            f"odeslání {memory['send_s']:.0f} s; cíl < 250 MB: {verdict}".replace("_", " ")
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-run":
        memory_run(int(sys.argv[2]), 1000, int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--prepare-only":
        print(_prepare(Path(sys.argv[2]), int(sys.argv[3])))
    else:
        main(sys.argv[1:])
