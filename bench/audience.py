"""Audience benchmark: importing 100,000 contacts and counting a segment, beside references.

References measured in the same run on the same file and machine:
- import: a plain `csv.reader` pass over the file (the floor for reading it at all), and the
  same rows through `executemany` into a bare SQLite table (the floor for writing them);
- segment count: `SELECT count(*)` of the whole contact table.
"""

from __future__ import annotations

import argparse
import csv
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from mailer.audience.contacts import import_contacts
from mailer.audience.segments import count, parse_segment
from mailer.db import make_engine
from mailer.migrations import upgrade
from mailer.models import REGIONS, LibraryType

FIRST_F = ["Jana", "Eva", "Marie", "Hana", "Lucie", "Kateřina", "Věra", "Zuzana", "Šárka"]
FIRST_M = ["Jiří", "Petr", "Jan", "Tomáš", "Lukáš", "Václav", "Zdeněk", "Ondřej", "Štěpán"]
LAST = ["Novák", "Svoboda", "Dvořák", "Černý", "Procházka", "Kučera", "Veselý", "Růžička"]
TOWNS = ["Lhota", "Újezd", "Třebíč", "Žďár", "Kněžice", "Hořice", "Čáslav", "Říčany", "Ústí"]
SEGMENT = {
    "library_type": ["mestska", "obecni"],
    "member": False,
    "region": {"not": "Hlavní město Praha"},
}


def _feminine(surname: str) -> str:
    if surname.endswith("ý"):
        return surname[:-1] + "á"
    if surname.endswith("a"):
        return surname[:-1] + "ová"
    return surname + "ová"


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """A directory like the fixture: ~5 contacts a library, diacritics, tags, some unsubscribed."""
    rnd = random.Random(seed)
    types = [t.value for t in LibraryType]
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["email", "first_name", "last_name", "role", "library", "library_type", "siglum",
             "town", "region", "member", "member_since", "consent", "status", "tags"]
        )  # fmt: skip
        for i in range(rows):
            lib = i // 5
            woman = rnd.random() < 0.75
            first = rnd.choice(FIRST_F if woman else FIRST_M)
            last = rnd.choice(LAST)
            last = _feminine(last) if woman else last
            town = f"{rnd.choice(TOWNS)} {lib}"
            member = lib % 13 == 0
            out.writerow(
                [
                    f"kontakt{i}@knihovna-{lib}.example",
                    first,
                    last,
                    rnd.choice(["ředitelka" if woman else "ředitel", "vedoucí knihovny"]),
                    f"Knihovna {town}",
                    types[lib % len(types)],
                    f"S{lib:06d}",
                    town,
                    REGIONS[lib % len(REGIONS)],
                    "ano" if member else "ne",
                    2015 + lib % 10 if member else "",
                    "consent" if i % 7 == 0 else "legitimate_interest",
                    "unsubscribed" if i % 97 == 0 else "active",
                    "workshop-2026;konference-2026" if i % 11 == 0 else "",
                ]
            )


def _timed(fn: object) -> float:
    started = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.audience", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20, help="segment count repetitions")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure on this PostgreSQL database (in a temporary schema)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-audience-") as tmp:
        tmp_dir = Path(tmp)
        path = tmp_dir / "contacts.csv"
        generate(path, args.rows)

        rows: list[list[str]] = []

        def read_csv() -> None:
            with path.open(encoding="utf-8", newline="") as fh:
                rows.extend(csv.reader(fh))

        t_read = _timed(read_csv)
        data = rows[1:]

        bare = sqlite3.connect(tmp_dir / "bare.db")
        bare.execute("PRAGMA journal_mode=WAL")
        bare.execute(f"CREATE TABLE c ({', '.join(f'c{i} TEXT' for i in range(14))})")

        def bare_insert() -> None:
            with bare:
                bare.executemany(f"INSERT INTO c VALUES ({', '.join('?' * 14)})", data)

        t_bare = _timed(bare_insert)
        bare.close()

        results = [("SQLite", *_measure(f"sqlite:///{tmp_dir / 'bench.db'}", path, args.repeat))]
        if args.postgres:
            results.append(("PostgreSQL", *_measure_postgres(args.postgres, path, args.repeat)))

    n_rows = len(data)

    def rate(label: str, secs: float) -> None:
        print(f"{label:<58} {secs:>9.2f} s {n_rows / secs:>12,.0f}")

    def ms(label: str, value: float) -> None:
        print(f"{label:<58} {value:>8.2f} ms")

    print(f"{n_rows:,} kontaktů; segment {SEGMENT}")
    print(f"{'měření':<58} {'čas':>11} {'řádků/s':>12}")
    rate("reference: csv.reader (jen čtení souboru)", t_read)
    rate("reference: executemany do holé tabulky SQLite", t_bare)
    for name, t_import, t_reimport, seg, ref, n in results:
        rate(f"import_contacts, {name} (prázdná databáze)", t_import)
        rate(f"import_contacts, {name} znovu (vše beze změny)", t_reimport)
        ms(f"reference: SELECT count(*) FROM contact, {name}", ref)
        ms(f"segments.count, {name} ({n:,} kontaktů, medián)", seg)
        verdict = {True: "splněn", False: "NESPLNĚN"}
        print(
            f"  cíl {name}: import < 10 s {verdict[t_import < 10]}, "
            f"segment < 50 ms {verdict[seg < 50]}"
        )


def _measure(url: str, path: Path, repeat: int) -> tuple[float, float, float, float, int]:
    """(import s, re-import s, segment count ms, count(*) ms, segment size) on one database."""
    engine = make_engine(url)
    upgrade(engine)
    reports = []
    t_import = _timed(lambda: reports.append(import_contacts(engine, path)))
    assert not reports[0].rejected, reports[0].rejected[:3]
    t_reimport = _timed(lambda: import_contacts(engine, path))
    segment = parse_segment(SEGMENT)
    with Session(engine) as session:
        n = count(session, segment)
        seg_times = [_timed(lambda: count(session, segment)) for _ in range(repeat)]
        conn = session.connection()
        everything = sa.text("SELECT count(*) FROM contact")
        all_times = [_timed(lambda: conn.execute(everything).scalar()) for _ in range(repeat)]
    engine.dispose()
    seg = statistics.median(seg_times) * 1000
    ref = statistics.median(all_times) * 1000
    return t_import, t_reimport, seg, ref, n


def _measure_postgres(url: str, path: Path, repeat: int) -> tuple[float, float, float, float, int]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        return _measure(f"{url}{sep}options=-csearch_path%3D{schema}", path, repeat)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
