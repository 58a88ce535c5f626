"""Bounds for the numbers that arrive in paths, queries and forms, in one place.

Every route declares an id as `RowId`, a page number as `PageNumber` and any other count as
`Count`, so a value that no row can have (ids above 2^31, which PostgreSQL's INTEGER cannot
hold, or above 2^63, which SQLite cannot bind) is refused by validation with the same Czech
422 as any other wrong field, before it reaches the database. `parse_row_id` does the same
for the few fields a route reads by itself."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

# The largest primary key: the tables use INTEGER, which is 32-bit on PostgreSQL.
MAX_ID = 2**31 - 1
# More pages than any list here can have (50 rows a page), small enough for any OFFSET.
MAX_PAGE = 1_000_000
# Counts staff type (recipients confirmed, a year): anything that fits an INTEGER column.
MAX_COUNT = 2**31 - 1

RowId = Annotated[int, Ge(1), Le(MAX_ID)]
PageNumber = Annotated[int, Ge(1), Le(MAX_PAGE)]
Count = Annotated[int, Ge(0), Le(MAX_COUNT)]
Year = Annotated[int, Ge(1800), Le(2200)]


def parse_row_id(raw: object) -> int | None:
    """The id in a field read by hand (plain ASCII digits within the bounds), or None."""
    text = str(raw).strip() if raw is not None else ""
    if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_ID)):
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ID else None
