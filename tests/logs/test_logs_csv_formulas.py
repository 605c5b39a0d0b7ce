"""`clockface logs today/report/tail --csv`: a person named like a formula stays text in a spreadsheet."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from click.testing import CliRunner
from logs_helpers import event, local

from device.cli.logs import logs
from logs.store import AttendanceStore

FORMULA = "=cmd|'/c calc'!A1"


def seed(db: Path) -> None:
    with AttendanceStore(db) as store:
        store.record(event(FORMULA, "check-in", local("2026-03-30 08:52")))
        store.record(event(FORMULA, "check-out", local("2026-03-30 17:05")))
        store.record(event("-Bob+1", "check-in", local("2026-03-30 09:00")))


def csv_rows(args: list[str]) -> list[dict[str, str]]:
    result = CliRunner().invoke(logs, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_today_and_report_csv_quote_formula_names(db_path: Path) -> None:
    seed(db_path)
    common = ["--db", str(db_path), "--timezone", "Europe/London", "--csv", "-"]
    for rows in (
        csv_rows(["today", "--date", "2026-03-30", *common]),
        csv_rows(["report", "--from", "2026-03-30", *common]),
    ):
        assert {r["person"] for r in rows} == {"'" + FORMULA, "'-Bob+1"}
        alice = next(r for r in rows if r["person"] == "'" + FORMULA)
        assert (alice["hours"], alice["open"]) == ("8.22", "false")
    totals = csv_rows(["report", "--from", "2026-03-30", "--totals", *common])
    assert {r["person"] for r in totals} == {"'" + FORMULA, "'-Bob+1"}


def test_report_csv_file_quotes_formula_names(db_path: Path, tmp_path: Path) -> None:
    seed(db_path)
    out = tmp_path / "report.csv"
    CliRunner().invoke(logs, ["report", "--db", str(db_path), "--from", "2026-03-30", "--csv", str(out)])
    assert {r["person"] for r in csv.DictReader(out.open(encoding="utf-8"))} == {"'" + FORMULA, "'-Bob+1"}


def test_tail_csv_quotes_formula_names_and_keeps_offsets_numbers(db_path: Path) -> None:
    seed(db_path)
    rows = csv_rows(["tail", "--db", str(db_path), "--timezone", "Europe/London", "--csv", "-n", "3"])
    assert [r["person"] for r in rows] == ["'" + FORMULA, "'" + FORMULA, "'-Bob+1"]
    assert rows[0]["utc_offset_minutes"] == "60" and rows[0]["distance"] == "0.3"
