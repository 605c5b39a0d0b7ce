"""The shared CSV writer: formula-looking text is made inert, numbers and plain text are left alone."""

from __future__ import annotations

import csv
import io

import pytest

from logs.csv_export import CsvTextEscaper, CsvWriter, escape_cell, render_csv, write_csv

FORMULAS = [
    '=HYPERLINK("http:__x")_cmd.jpg',
    "=cmd|'/c calc'!A1",
    "+SUM(A1:A2)",
    "-2+3",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("text", FORMULAS)
def test_formula_text_gets_a_leading_quote(text: str) -> None:
    assert escape_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-5, 2.5, -0.25, "-5", "+1.5", "-2e3", "Alice Smith", "E-1", "", None, True])
def test_numbers_and_plain_text_are_unchanged(value) -> None:
    assert escape_cell(value) == value


def test_writer_blanks_none_spells_booleans_and_escapes_keys_it_knows() -> None:
    buf = io.StringIO()
    count = write_csv(
        buf,
        ["person", "open", "late_minutes", "offset"],
        [
            {"person": "=cmd|'/c calc'!A1", "open": True, "late_minutes": None, "offset": -60},
            {"person": "Bob", "open": False},
        ],
    )
    assert count == 2
    assert buf.getvalue().splitlines() == [
        "person,open,late_minutes,offset",
        "'=cmd|'/c calc'!A1,true,,-60",
        "Bob,false,,",
    ]


def test_incremental_writer_takes_sequences_too() -> None:
    buf = io.StringIO()
    writer = CsvWriter(buf, ["a", "b"], lineterminator="\r\n")
    writer.writerow(["@x", 1])
    assert buf.getvalue() == "'@x,1\r\n"
    assert render_csv(["=h"], []) == "'=h\r\n"


DATASETTE_CSV = (
    "person,note,offset\r\n"
    '"=HYPERLINK(""http://x"")",plain,-60\r\n'
    '"Zoë ""Z""","line one\r\n=line two",0\r\n'
    "@SUM(A1),,-1.5\r\n"
)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 1000])
def test_escaper_rewrites_streams_split_anywhere(chunk_size: int) -> None:
    raw = DATASETTE_CSV.encode("utf-8")
    escaper = CsvTextEscaper()
    out = b"".join(escaper.feed(raw[i : i + chunk_size]) for i in range(0, len(raw), chunk_size)) + escaper.close()
    rows = list(csv.reader(io.StringIO(out.decode("utf-8"), newline="")))
    assert rows == [
        ["person", "note", "offset"],
        ['\'=HYPERLINK("http://x")', "plain", "-60"],
        ['Zoë "Z"', "line one\r\n=line two", "0"],  # only a cell's first character counts
        ["'@SUM(A1)", "", "-1.5"],
    ]


def test_escaper_leaves_clean_csv_byte_for_byte() -> None:
    clean = b'date,person,hours\r\n2026-03-30,"Smith, Alice",8.22\r\n2026-03-30,Bob,-1\r\n'
    escaper = CsvTextEscaper()
    assert escaper.feed(clean) + escaper.close() == clean
    escaper = CsvTextEscaper()
    assert escaper.feed(b"a,b\r\n=1,2") + escaper.close() == b"a,b\r\n'=1,2"  # no newline added at the end
