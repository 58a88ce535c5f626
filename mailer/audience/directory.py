"""The library directory during an import: which library a row names, found or new, and
which new ones look like libraries already there.

A row's library is found by its siglum, then by its name and town, both normalised (case,
diacritics, punctuation and spacing do not count), then by its name alone when the file gives
no town and only one library has that name. A row whose siglum differs from the one stored
for the same name and town is linked to the stored library and reported: a library does not
appear twice because a file mistyped its siglum. A new library whose name resembles one in
the same town, or that has the same name elsewhere, is reported as a likely duplicate.

Membership: a file that makes a library already in the directory a member marks it as
joining; the import then records the joining as the console does (`membership.record_join`).
A library new to the directory is simply a member, not a joining. A file that says "not a
member" ends only a membership the directory recorded (or has since listed); one recorded by
staff is kept and reported, until the directory lists it or staff record the resignation
(`sdruk libraries leave`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from difflib import SequenceMatcher
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlmodel import Session

from mailer.audience.membership import IMPORT, record_join
from mailer.audience.rows import Rejection, fold
from mailer.models import Library

LIBRARIES: sa.Table = Library.__table__  # type: ignore[attr-defined]

# Names at least this alike (difflib ratio of the normalised names) in one town are reported.
SIMILAR = 0.85


def name_key(text: str | None) -> str:
    """A name or town as compared: folded, punctuation as spaces, single spaces."""
    folded = fold(text or "")
    return " ".join("".join(ch if ch.isalnum() else " " for ch in folded).split())


@dataclass
class LibraryState:
    id: int | None
    name: str
    siglum: str | None
    library_type: str | None
    region: str | None
    town: str
    is_member: bool
    member_since: int | None
    joined_at: datetime | None
    membership_source: str | None = None
    dirty: bool = False
    new: bool = False
    # The file makes this library a member: the import records the joining.
    joining: bool = False

    def described(self) -> str:
        """ "Městská knihovna Tišnov (Tišnov, sigla BOO633)" for a report line."""
        where = [self.town] if self.town else []
        if self.siglum:
            where.append(f"sigla {self.siglum}")
        return f"„{self.name}“" + (f" ({', '.join(where)})" if where else "")


class RowLibraryError(Exception):
    """The row's library cannot be found or created; `column` and `reason` say why (Czech)."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column, self.reason = column, reason


class LibraryDirectory:
    """The libraries in memory, keyed by siglum, by (name, town) and by name; and the notes
    for staff that matching produced (siglum conflicts, likely duplicates)."""

    def __init__(self, conn: Connection) -> None:
        self.by_siglum: dict[str, LibraryState] = {}
        self.by_name_town: dict[tuple[str, str], LibraryState] = {}
        self.by_name: dict[str, list[LibraryState]] = defaultdict(list)
        self.by_town: dict[str, list[LibraryState]] = defaultdict(list)
        self.all: list[LibraryState] = []
        self.notes: list[Rejection] = []
        self.likely_duplicates = 0
        # Libraries the file makes members, and members it says are not whose membership
        # staff recorded (kept).
        self.joining: list[LibraryState] = []
        self.kept: list[LibraryState] = []
        self._noted: set[tuple[int, str]] = set()
        for r in conn.execute(sa.select(LIBRARIES)).mappings():
            self._add(
                LibraryState(
                    r["id"],
                    r["name"],
                    r["siglum"],
                    r["library_type"],
                    r["region"],
                    r["town"],
                    bool(r["is_member"]),
                    r["member_since"],
                    r["joined_at"],
                    r["membership_source"],
                )
            )

    def _add(self, lib: LibraryState) -> None:
        self.all.append(lib)
        if lib.siglum:
            self.by_siglum[lib.siglum] = lib
        name, town = name_key(lib.name), name_key(lib.town)
        self.by_name_town.setdefault((name, town), lib)
        self.by_name[name].append(lib)
        self.by_town[town].append(lib)

    def _note(self, line: int, column: str, lib: LibraryState, text: str) -> None:
        # One note per library and kind, however many rows name it.
        key = (id(lib), column + text[:40])
        if key not in self._noted:
            self._noted.add(key)
            self.notes.append(Rejection(line, column, text))

    def _find(self, name: str, siglum: str | None, town: str) -> LibraryState | None:
        if siglum and siglum in self.by_siglum:
            return self.by_siglum[siglum]
        if not name:
            return None
        key = name_key(name)
        if town:
            return self.by_name_town.get((key, name_key(town)))
        same_name = self.by_name.get(key, [])
        return same_name[0] if len(same_name) == 1 else None

    def resolve(self, v: dict[str, Any], line: int, now: datetime) -> LibraryState | None:
        """The row's library (found, updated or new), or None when the row names none.
        Raises RowLibraryError when a new library lacks what it needs."""
        name, siglum, town = v["library"], v["siglum"], v["town"] or ""
        if not name and not siglum:
            return None
        lib = self._find(name, siglum, town)
        if lib is None:
            return self._create(v, line, now)
        if siglum and lib.siglum and lib.siglum != siglum:
            self._note(
                line,
                "siglum",
                lib,
                f"sigla {siglum} v souboru se liší od sigly {lib.siglum} knihovny "
                f"{lib.described()} v adresáři; kontakt je přiřazen k ní, sigla zůstala "
                "beze změny. Je-li sigla v souboru správná, opravte ji v adresáři.",
            )
            siglum = None  # keep the stored siglum
        changes = {
            "name": name,
            "siglum": siglum,
            "library_type": v["library_type"],
            "region": v["region"],
            "town": v["town"],
            "member_since": v["member_since"],
        }
        for key, value in changes.items():
            if key in ("name", "town") and name_key(value) == name_key(getattr(lib, key)):
                continue  # another spelling of the same name ("TIŠNOV") changes nothing
            if value is not None and getattr(lib, key) != value:
                if key == "siglum":
                    self.by_siglum[value] = lib
                setattr(lib, key, value)
                lib.dirty = True
        if v["member"] is not None and not lib.new:
            self._membership(lib, bool(v["member"]), line)
        return lib

    def _membership(self, lib: LibraryState, member: bool, line: int) -> None:
        if member and not lib.is_member:
            if not lib.joining:
                lib.joining = True
                self.joining.append(lib)
        elif member and lib.membership_source != IMPORT:
            # The directory lists a membership staff recorded: from now on it speaks for it.
            lib.membership_source = IMPORT
            lib.dirty = True
        elif not member and lib.is_member and lib.membership_source == IMPORT:
            lib.is_member = False
            lib.member_since = None
            lib.membership_source = None
            lib.dirty = True
        elif not member and lib.is_member:
            if lib not in self.kept:
                self.kept.append(lib)
            self._note(
                line,
                "member",
                lib,
                f"knihovna {lib.described()} podle souboru není členem, ale členství "
                "zaznamenané v konzoli, které adresář zatím neuvádí, ponecháno (zapsala ho "
                "konzole, příkaz sdruk libraries join nebo schválená přihláška). Pokud "
                "knihovna ze SDRUK opravdu vystoupila, zapište to příkazem "
                f"sdruk libraries leave {lib.siglum or lib.id}.",
            )

    def _create(self, v: dict[str, Any], line: int, now: datetime) -> LibraryState:
        name, siglum, town = v["library"], v["siglum"], v["town"] or ""
        if not name:
            raise RowLibraryError(
                "library", f"knihovna se siglou {siglum} není v adresáři a chybí její název"
            )
        if not v["library_type"]:
            raise RowLibraryError("library_type", f"nová knihovna „{name}“ potřebuje typ")
        if not v["region"]:
            raise RowLibraryError("region", f"nová knihovna „{name}“ potřebuje kraj")
        lib = LibraryState(
            None,
            name,
            siglum,
            v["library_type"],
            v["region"],
            town,
            bool(v["member"]),
            v["member_since"],
            now if v["member"] else None,
            IMPORT if v["member"] else None,
            new=True,
        )
        look_alike = self._look_alike(lib)
        if look_alike is not None:
            self.likely_duplicates += 1
            self._note(
                line,
                "library",
                lib,
                f"nová knihovna {lib.described()} je možná tatáž jako {look_alike.described()} "
                "v adresáři. Jde-li o tutéž, sjednoťte název, obec a siglu v souboru.",
            )
        self._add(lib)
        return lib

    def _look_alike(self, lib: LibraryState) -> LibraryState | None:
        name, town = name_key(lib.name), name_key(lib.town)
        for other in self.by_town.get(town, []):
            if SequenceMatcher(None, name, name_key(other.name)).ratio() >= SIMILAR:
                return other
        same_name = self.by_name.get(name, [])
        return same_name[0] if same_name else None

    def write(self, conn: Connection, now: datetime) -> None:
        """Insert the new libraries (filling their ids) and update the changed ones."""
        new_libs = [lib for lib in self.all if lib.new and lib.id is None]
        if new_libs:
            rows = [
                {
                    "name": lib.name,
                    "siglum": lib.siglum,
                    "library_type": lib.library_type,
                    "region": lib.region,
                    "town": lib.town,
                    "is_member": lib.is_member,
                    "member_since": lib.member_since,
                    "joined_at": lib.joined_at,
                    "membership_source": lib.membership_source,
                    "created_at": now,
                    "updated_at": now,
                }
                for lib in new_libs
            ]
            # A plain executemany, then one select for the ids: RETURNING in parameter order
            # makes SQLAlchemy insert row by row on SQLite.
            before = conn.execute(sa.select(sa.func.max(LIBRARIES.c.id))).scalar() or 0
            conn.execute(sa.insert(LIBRARIES), rows)
            by_siglum: dict[str, int] = {}
            by_name: dict[tuple[str, str], int] = {}
            query = sa.select(
                LIBRARIES.c.id, LIBRARIES.c.siglum, LIBRARIES.c.name, LIBRARIES.c.town
            ).where(LIBRARIES.c.id > before)
            for lib_id, siglum, name, town in conn.execute(query):
                if siglum:
                    by_siglum[siglum] = lib_id
                by_name[(name, town)] = lib_id
            for lib in new_libs:
                lib.id = by_siglum[lib.siglum] if lib.siglum else by_name[(lib.name, lib.town)]
        dirty = [lib for lib in self.all if lib.dirty and not lib.new]
        if dirty:
            columns = (
                "name",
                "siglum",
                "library_type",
                "region",
                "town",
                "is_member",
                "member_since",
                "joined_at",
                "membership_source",
            )
            conn.execute(
                sa.update(LIBRARIES)
                .where(LIBRARIES.c.id == sa.bindparam("b_id"))
                .values({col: sa.bindparam(f"b_{col}") for col in (*columns, "updated_at")}),
                [
                    {
                        "b_id": lib.id,
                        **{f"b_{col}": getattr(lib, col) for col in columns},
                        "b_updated_at": now,
                    }
                    for lib in dirty
                ],
            )

    def record_joinings(self, conn: Connection, note: str, actor: str, now: datetime) -> None:
        """Record each library the file made a member as joined, exactly as the console does
        (JOINED event credited by the same rule, audit entry), in the caller's transaction,
        after `write`."""
        if not self.joining:
            return
        with Session(bind=conn) as session:
            for state in self.joining:
                library = session.get(Library, state.id)
                assert library is not None
                record_join(
                    session,
                    library,
                    actor=actor,
                    member_since=state.member_since,
                    note=note,
                    now=now,
                    source=IMPORT,
                )
                state.is_member, state.joined_at = True, now
            session.flush()
