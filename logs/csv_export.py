"""The one CSV writer behind every CSV clockface writes, safe to open in a spreadsheet.

Why: names and ids come from people we do not control (a photo file name on a
USB stick, an ``employee_id`` column in people.csv, a person's name in the
attendance log). A cell such as ``=HYPERLINK("http://x")`` or
``=cmd|'/c calc'!A1`` is a live formula once an admin opens the CSV in Excel or
LibreOffice. The OWASP rule is applied here, in one place: a text cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
leading single quote, which spreadsheets show as text and never evaluate.

Numbers stay numbers: ints and floats are never touched, and neither is text
that *is* a plain number (``-5``, ``+1.5``, ``-2e3``: Datasette's CSV, already
text, carries negative offsets like that), because a spreadsheet reads those
as numbers, not formulas.

Used by the stick report (:mod:`gallery.report`), ``clockface gallery
export``, ``clockface logs ... --csv`` and, through :class:`CsvTextEscaper`,
the web view's CSV downloads (:mod:`logs.datasette_plugin`).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def escape_cell(value: Any) -> Any:
    """The value a spreadsheet will show as typed: formula-looking text is quoted, all else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_cell(value: Any) -> Any:
    """One cell as written: blank for None, JSON-style true/false for booleans, text escaped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape_cell(value)


class CsvWriter:
    """Rows of mappings (or sequences) to an open text file, every cell through :func:`csv_cell`.

    Incremental (``clockface logs tail -f --csv`` writes a row per event); a
    missing key is a blank cell, as with :class:`csv.DictWriter`.
    """

    def __init__(self, fh: IO[str], columns: Sequence[str], lineterminator: str = "\n") -> None:
        self.columns = list(columns)
        self._writer = csv.writer(fh, lineterminator=lineterminator)

    def writeheader(self) -> None:
        self._writer.writerow([csv_cell(c) for c in self.columns])

    def writerow(self, row: Mapping[str, Any] | Sequence[Any]) -> None:
        values = [row.get(c) for c in self.columns] if isinstance(row, Mapping) else list(row)
        self._writer.writerow([csv_cell(v) for v in values])

    def writerows(self, rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> int:
        count = 0
        for row in rows:
            self.writerow(row)
            count += 1
        return count


def write_csv(
    fh: IO[str], columns: Sequence[str], rows: Iterable[Mapping[str, Any]], lineterminator: str = "\n"
) -> int:
    """A header and the rows; returns how many rows were written."""
    writer = CsvWriter(fh, columns, lineterminator)
    writer.writeheader()
    return writer.writerows(rows)


def render_csv(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], lineterminator: str = "\r\n") -> str:
    """The whole CSV as a string (for files written atomically)."""
    buf = io.StringIO()
    write_csv(buf, columns, rows, lineterminator)
    return buf.getvalue()


class CsvTextEscaper:
    """Escape CSV that someone else already wrote (Datasette's ``.csv``), chunk by chunk.

    Chunks may split a record, a quoted field with a newline inside, or a
    UTF-8 sequence anywhere: bytes are decoded incrementally, and only the
    complete records seen so far (up to the last newline outside quotes,
    found by counting quotes, since ``""`` inside a field toggles twice) are
    re-parsed and re-written in the same dialect (excel, ``\\r\\n``). Cells
    that need no escaping come out byte for byte as they went in.
    """

    def __init__(self, lineterminator: str = "\r\n") -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._in_quotes = False
        self._lineterminator = lineterminator

    def feed(self, chunk: bytes) -> bytes:
        text = self._decoder.decode(chunk)
        cut = self._last_record_end(text)
        if cut < 0:
            self._pending += text
            return b""
        complete, self._pending = self._pending + text[: cut + 1], text[cut + 1 :]
        return self._rewrite(complete)

    def close(self) -> bytes:
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        return self._rewrite(rest) if rest else b""

    def _last_record_end(self, text: str) -> int:
        """Index in *text* of the last newline outside quotes (-1 if none); tracks quote state across chunks."""
        last = -1
        position = 0
        *whole, tail = text.split("\n")
        for segment in whole:
            if segment.count('"') % 2:
                self._in_quotes = not self._in_quotes
            position += len(segment) + 1
            if not self._in_quotes:
                last = position - 1
        if tail.count('"') % 2:
            self._in_quotes = not self._in_quotes
        return last

    def _rewrite(self, text: str) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator=self._lineterminator)
        for record in csv.reader(io.StringIO(text, newline="")):
            writer.writerow([escape_cell(cell) for cell in record])
        if not text.endswith("\n"):  # an unterminated last record stays unterminated
            return out.getvalue().removesuffix(self._lineterminator).encode("utf-8")
        return out.getvalue().encode("utf-8")
