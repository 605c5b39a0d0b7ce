"""bench_fleet.py --quick end to end (a real server, the real agent), so the script cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks import bench_fleet
from tests.central.pg import PgUnavailable, find_bin_dir
from tests.conftest import REPO_ROOT, require, skip_unless_ci


@pytest.mark.slow
def test_quick_run_delivers_exactly_once_and_writes_its_table(tmp_path: Path) -> None:
    require("psycopg", "pip install 'psycopg[binary]' (a clockface dependency)")
    try:
        find_bin_dir()
    except PgUnavailable as exc:
        skip_unless_ci(str(exc))
    out = tmp_path / "fleet.md"
    done = subprocess.run(
        [sys.executable, "tests/benchmarks/bench_fleet.py", "--quick", "--results", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("_Written by `tests/benchmarks/bench_fleet.py` on ")
    row = next(line for line in lines if line.startswith("| 5 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "1,000" and cells[4] == "50"  # the backlog, then 10 live rounds x 5 terminals
    assert cells[7] == "1,050 = 1,050, 0 missing" and cells[8] == "0"
    assert "same rows as the all-in-Python path: yes;" in out.read_text(encoding="utf-8")


def test_defaults_are_the_issues_fleet_and_write_where_the_docs_include_them() -> None:
    full = bench_fleet.parse_args([])
    assert (full.terminals, full.events, full.results) == (50, 2000, REPO_ROOT / "docs" / "results" / "fleet.md")
    quick = bench_fleet.parse_args(["--quick"])
    assert (quick.terminals, quick.events, quick.results) == (5, 200, None)


def test_the_day_is_dealt_evenly_and_people_cross_gates() -> None:
    day = bench_fleet.fleet_day(terminals=4, per_terminal=100)
    assert sorted(len(events) for events in day.values()) == [100] * 4
    gates: dict[tuple[str, str], str] = {}
    for gate, events in day.items():
        assert [e.timestamp_utc for e in events] == sorted(e.timestamp_utc for e in events)
        for e in events:
            if e.event_type != "seen":
                gates[(e.person, e.event_type)] = gate
    people = {person for person, _ in gates}
    crossed = sum(1 for p in people if gates.get((p, "check-in")) != gates.get((p, "check-out")))
    assert len(people) == 20 and crossed > len(people) // 2


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert bench_fleet.percentile(values, 0.5) == 50.0
    assert bench_fleet.percentile(values, 0.99) == 99.0
    assert bench_fleet.percentile([3.0], 0.99) == 3.0
