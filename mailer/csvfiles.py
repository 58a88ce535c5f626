"""CSV files exchanged with spreadsheets: reading what Excel and LibreOffice write, and writing
files that Czech Excel opens as they are and cannot be tricked into running.

Reading: UTF-8 with or without BOM, else Windows-1250 (Excel on Czech Windows); comma,
semicolon or tab. Writing: UTF-8 with a BOM (without it Excel assumes Windows-1250), `;` as
the separator (Czech Excel's list separator, since the decimal separator is the comma), and
every cell that a spreadsheet would take for a formula neutralised with a leading apostrophe,
as OWASP recommends against CSV injection. Every CSV the product writes goes through
`csv_document`.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

BOM = "\ufeff"
SEPARATOR = ";"
MEDIA_TYPE = "text/csv; charset=utf-8"
# A cell starting with one of these is run as a formula by Excel, LibreOffice or Sheets.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


class ImportFileError(Exception):
    """The file cannot be read at all (missing, unknown encoding, no e-mail column)."""


# --- writing -------------------------------------------------------------------------------


def safe_cell(value: Any) -> str:
    """One cell as text, with a leading apostrophe when a spreadsheet would run it.

    Numbers stay numbers: a negative count is data, not a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ano" if value else "ne"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def csv_document(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A whole CSV file as text: BOM, header, rows; `;`-separated, CRLF, cells made safe."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, delimiter=SEPARATOR, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()


def attachment_headers(filename: str) -> dict[str, str]:
    """Response headers that make a browser save a CSV under `filename` (Czech letters kept
    for browsers that read RFC 6266's filename*, without diacritics for the rest)."""
    plain = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    plain = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in plain) or "export.csv"
    return {
        "Content-Disposition": f'attachment; filename="{plain}"; '
        f"filename*=UTF-8''{quote(filename, safe='')}",
        "Cache-Control": "no-store",
    }


# --- reading -------------------------------------------------------------------------------


def decode_csv_bytes(raw: bytes) -> tuple[str, str]:
    """A CSV file's bytes as text and the encoding found: UTF-8 (with or without BOM), else
    Windows-1250 (Excel on Czech Windows). Raises ImportFileError for binary or other files.
    Every CSV import of the project (contacts, registrations) reads files through this."""
    if b"\x00" in raw[:4096]:
        raise ImportFileError("Soubor je binární nebo v UTF-16; uložte jej jako CSV (UTF-8).")
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise ImportFileError(
                f"Soubor začíná značkou UTF-8, ale není v UTF-8 (bajt č. {exc.start + 4})."
            ) from exc
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        # Excel's "CSV" on Czech Windows; strict, so a binary file (xlsx) fails here.
        return raw.decode("cp1250"), "cp1250"
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            "Soubor není text v UTF-8 ani ve Windows-1250 (není to XLSX? uložte jako CSV)."
        ) from exc


def sniff_dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    """The CSV dialect of decoded text: comma, semicolon (Czech Excel) or tab delimited."""
    header = text.split("\n", 1)[0]
    sample = "\n".join(text[:65536].split("\n")[:50])
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = None
    # Headers never contain the delimiter; trust the header line over a confused sniff.
    if dialect is None or header.count(dialect.delimiter) == 0:
        best = max(",;\t", key=header.count)

        class Fallback(csv.excel):
            delimiter = best

        return Fallback
    dialect.doublequote = True
    return dialect
