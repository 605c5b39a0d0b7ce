"""Benchmark the fleet: many terminals' backlogs into one PostgreSQL, then the central report.

    .venv/bin/python tests/benchmarks/bench_fleet.py [--quick] [--terminals N] [--events E]
        [--live-s S] [--interval-s I] [--results PATH]

Everything is real and on this machine: a throwaway PostgreSQL cluster of its
own (tests/central/pg.py), one role per terminal (``add_terminal``, a passfile
each, password auth over TCP), one SQLite attendance log per terminal
(``AttendanceStore``, in /dev/shm so filling them is not the benchmark) and the
sync agent itself (``device.sync.agent.SyncAgent``), one thread and one
connection per terminal, all at once (the machine has few cores: the terminals'
agents, the server and the report share them).

The data is one local day (Europe/Berlin) of a site where people walk past many
gates: each person checks in once, is seen 18 times and checks out once, each
event at a random gate, so nearly everyone enters by one terminal and leaves by
another. The events are dealt so every terminal holds exactly E of them
(N x E in all: 50 x 2,000 = 100,000 by default; --quick is 5 x 200).

Phases and what is measured:

- backlog: every log full, every agent pushes its whole backlog (``push_once``):
  events/s = N x E / the wall time from the first agent starting to the last
  finishing.
- live: the agents keep running (``run``, ``interval_s`` = --interval-s) while the
  terminals keep recording, one event per terminal every --live-s / 10 seconds.
  *Sync lag* of an event = the central ``received_at`` (the server's clock at
  INSERT) minus the event's ``timestamp_utc`` (the terminal's clock when it
  recorded it; one machine, one clock): how long a fact takes to reach the
  centre, waiting for the next interval included. p50 and p99 over the live
  events.
- delivery: the central UUIDs equal the union of the local UUIDs (no loss, no
  extra), every id once (no duplicate), and every local backlog is 0.
- report: the central report of the backlog's day (``logs.central.reports.daily_rows``:
  the report rules applied by the server, one row per person-day back), median
  of 5, after an ANALYZE (what autovacuum does after a bulk load); beside it the
  same rows from every event of the day fetched into Python and the local
  report maths (they must be equal), to show what the server side buys.

The issue's aims: the whole backlog in under a minute with zero loss, the day's
report in under 1 s.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from logs import reports  # noqa: E402
from logs.central import reports as central_reports  # noqa: E402
from logs.central.connect import CentralTarget, connect  # noqa: E402
from logs.central.roles import add_terminal, write_passfile  # noqa: E402
from logs.central.schema import migrate  # noqa: E402
from logs.store import AttendanceEvent, AttendanceStore  # noqa: E402
from tests.benchmarks.results import RESULTS_DIR, provenance, write_results  # noqa: E402
from tests.central.pg import DATABASE, PgServer  # noqa: E402

if TYPE_CHECKING:
    from device.sync.agent import SyncAgent

ZONE = ZoneInfo("Europe/Berlin")
DAY = date(2026, 11, 30)
EVENTS_PER_PERSON = 20  # one check-in, 18 sightings, one check-out
LIVE_ROUNDS = 10
DEFAULT_RESULTS = RESULTS_DIR / "fleet.md"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 terminals x 200 events, short live phase")
    parser.add_argument("--terminals", type=int, help="simulated terminals (default 50; --quick 5)")
    parser.add_argument("--events", type=int, help="events in each terminal's backlog (default 2000; --quick 200)")
    parser.add_argument("--live-s", type=float, help="seconds of live recording (default 20; --quick 3)")
    parser.add_argument("--interval-s", type=float, default=1.0, help="the agents' interval_s in the live phase")
    parser.add_argument("--batch-size", type=int, default=500, help="the agents' batch_size")
    parser.add_argument(
        "--results", type=Path, help=f"where to write the table (default {DEFAULT_RESULTS}; --quick: nowhere)"
    )
    args = parser.parse_args(argv)
    args.terminals = args.terminals or (5 if args.quick else 50)
    args.events = args.events or (200 if args.quick else 2000)
    args.live_s = args.live_s if args.live_s is not None else (3.0 if args.quick else 20.0)
    if args.results is None and not args.quick:
        args.results = DEFAULT_RESULTS
    return args


# --- the simulated fleet -------------------------------------------------------------------------
def terminal_name(index: int) -> str:
    return f"gate-{index:02d}"


def fleet_day(terminals: int, per_terminal: int, seed: int = 13) -> dict[str, list[AttendanceEvent]]:
    """One local day of events, dealt so each terminal holds exactly *per_terminal*, in time order."""
    rng = random.Random(seed)
    total = terminals * per_terminal
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=ZONE)
    moments: list[tuple[str, str, datetime]] = []
    for number in range(-(-total // EVENTS_PER_PERSON)):
        person = f"Person {number:05d}"
        arrive = start + timedelta(hours=rng.uniform(7, 9.5))
        leave = start + timedelta(hours=rng.uniform(16, 18.5))
        moments.append((person, "check-in", arrive))
        moments.append((person, "check-out", leave))
        for _ in range(EVENTS_PER_PERSON - 2):
            moments.append((person, "seen", arrive + (leave - arrive) * rng.random()))
    moments = moments[:total]
    slots = [terminal_name(t) for t in range(terminals) for _ in range(per_terminal)]
    rng.shuffle(slots)
    by_terminal: dict[str, list[AttendanceEvent]] = {terminal_name(t): [] for t in range(terminals)}
    for (person, kind, moment), gate in zip(moments, slots, strict=True):
        offset = int(moment.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
        by_terminal[gate].append(
            AttendanceEvent(person, kind, moment.astimezone(UTC), offset, rng.uniform(0.2, 0.5), "camera:0", gate)
        )
    for events in by_terminal.values():
        events.sort(key=lambda e: e.timestamp_utc)
    return by_terminal


def fill(path: Path, events: list[AttendanceEvent]) -> int:
    """A terminal's local log as its recorder would have written it (one event per transaction)."""
    with AttendanceStore(path) as store:
        for event in events:
            store.record(event)
    return len(events)


@dataclass(frozen=True)
class Terminal:
    name: str
    log: Path
    status: Path
    target: CentralTarget


def set_up(server: PgServer, work: Path, terminals: int) -> list[Terminal]:
    """Create and migrate the central database, and one role + passfile per terminal."""
    with connect(server.maintenance_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    made = []
    with connect(server.admin_dsn) as conn:
        migrate(conn)
        conn.commit()
        for index in range(terminals):
            name = terminal_name(index)
            creds = add_terminal(conn, name)
            target = CentralTarget(
                host=server.host, port=server.port, user=creds.role, sslmode="disable", passfile=work / f"{name}.pgpass"
            )
            write_passfile(target.passfile, target, creds)  # type: ignore[arg-type]
            made.append(Terminal(name, work / f"{name}.db", work / f"{name}-status.json", target))
        conn.commit()
    return made


# --- syncing: the one place that decides what pushes a terminal's log -----------------------------
def make_agent(terminal: Terminal, store: AttendanceStore, batch_size: int, interval_s: float) -> SyncAgent:
    """The real sync agent (H2's device/sync/agent.py) for one terminal; swap here to bench another pusher."""
    from device.sync.agent import SyncAgent

    return SyncAgent(store, terminal.target, terminal.status, batch_size=batch_size, interval_s=interval_s)


def in_threads(terminals: list[Terminal], work: Callable[[Terminal], None]) -> float:
    """Run *work* for every terminal at once, one thread each; the wall time until the last one is done."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(terminals) + 1)

    def body(terminal: Terminal) -> None:
        barrier.wait()
        try:
            work(terminal)
        except BaseException as exc:  # reported after the join: a thread's failure must fail the bench
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(t,), name=t.name) for t in terminals]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} terminal(s) failed: {errors[0]!r}") from errors[0]
    return time.perf_counter() - started


def sync_backlog(terminals: list[Terminal], batch_size: int) -> float:
    """Every agent pushes its whole backlog at once; seconds until the last is done."""

    def push(terminal: Terminal) -> None:
        with AttendanceStore(terminal.log) as store:  # opened in its own thread (sqlite3 is per thread)
            make_agent(terminal, store, batch_size, interval_s=1.0).push_once()

    return in_threads(terminals, push)


def live_phase(terminals: list[Terminal], args: argparse.Namespace) -> list[str]:
    """Agents running while terminals record; returns the ids recorded live (their lag is read centrally)."""
    stop = threading.Event()
    agents: dict[str, SyncAgent] = {}
    ready = threading.Barrier(len(terminals) + 1, timeout=60)
    recorded: list[str] = []

    def agent(terminal: Terminal) -> None:
        with AttendanceStore(terminal.log) as store:
            running = make_agent(terminal, store, args.batch_size, args.interval_s)
            agents[terminal.name] = running
            ready.wait()
            running.run()

    threads = [threading.Thread(target=agent, args=(t,), name=f"sync-{t.name}") for t in terminals]
    for thread in threads:
        thread.start()
    ready.wait()
    stores = {t.name: AttendanceStore(t.log) for t in terminals}
    try:
        rng = random.Random(7)
        for _ in range(LIVE_ROUNDS):
            for terminal in terminals:
                now = datetime.now(UTC)
                event = AttendanceEvent(
                    f"Person {rng.randrange(1000):05d}", "seen", now, 60, 0.3, "camera:0", terminal.name
                )
                stores[terminal.name].record(event)
                recorded.append(event.id)
            stop.wait(args.live_s / LIVE_ROUNDS)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(s.backlog() for s in stores.values()):
            time.sleep(0.1)
    finally:
        for running in agents.values():
            running.stop()
        for thread in threads:
            thread.join()
        for store in stores.values():
            store.close()
    return recorded


# --- checks and the report ------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    local: int
    central: int
    distinct: int
    missing: int
    extra: int
    backlog: int

    @property
    def exact(self) -> bool:
        return self.local == self.central == self.distinct and not self.missing and not self.extra and not self.backlog


def delivery(server: PgServer, terminals: list[Terminal]) -> Delivery:
    """Zero loss and zero duplicates, by UUID: every local id centrally, nothing else, each once."""
    local: set[str] = set()
    count = 0
    backlog = 0
    for terminal in terminals:
        conn = sqlite3.connect(f"file:{terminal.log}?mode=ro", uri=True)
        ids = [row[0] for row in conn.execute("SELECT id FROM events")]
        conn.close()
        count += len(ids)
        local.update(ids)
        with AttendanceStore(terminal.log, readonly=True) as store:
            backlog += store.backlog()
    with connect(server.admin_dsn) as conn:
        rows, distinct = conn.execute("SELECT count(*), count(DISTINCT id) FROM clockface.events").fetchone()  # type: ignore[misc]
        central = {str(row[0]) for row in conn.execute("SELECT id FROM clockface.events")}
    return Delivery(count, rows, distinct, len(local - central), len(central - local), backlog)


def lags(server: PgServer, ids: list[str]) -> list[float]:
    with connect(server.admin_dsn) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM received_at - timestamp_utc)::float8 FROM clockface.events WHERE id = ANY(%s::uuid[])",
            [ids],
        ).fetchall()
    return sorted(row[0] for row in rows)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted *values*."""
    return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]


@dataclass(frozen=True)
class ReportTimes:
    events: int
    rows: int
    central_s: float
    all_in_python_s: float
    equal: bool
    load_average: float  # the 1-minute load when the report ran: other work on the machine shows here


def report_times(server: PgServer, repeats: int = 5) -> ReportTimes:
    """The central report of DAY (median of *repeats*), and the same rows with every event fetched."""
    central_runs, python_runs = [], []
    with connect(server.admin_dsn, autocommit=True) as conn:
        conn.execute("ANALYZE clockface.events")  # what autovacuum does after a bulk load, without waiting for it
    with connect(server.admin_dsn) as conn:
        start, end = reports.fetch_window_utc(DAY, DAY, ZONE)
        for _ in range(repeats):
            began = time.perf_counter()
            rows = central_reports.daily_rows(conn, ZONE, DAY, DAY)
            central_runs.append(time.perf_counter() - began)
            began = time.perf_counter()
            events = central_reports.events_between(conn, start, end)
            everything = reports.daily_rows(events, ZONE, DAY, DAY)
            python_runs.append(time.perf_counter() - began)
    return ReportTimes(
        len(events),
        len(rows),
        statistics.median(central_runs),
        statistics.median(python_runs),
        rows == everything,
        os.getloadavg()[0],
    )


# --- output ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FleetResult:
    terminals: int
    per_terminal: int
    backlog_s: float
    live_events: int
    lag_p50_s: float
    lag_p99_s: float
    delivered: Delivery
    report: ReportTimes
    interval_s: float
    batch_size: int

    @property
    def backlog_events(self) -> int:
        return self.terminals * self.per_terminal


def fleet_table(result: FleetResult) -> str:
    """The markdown the docs include: one row of the run, then whether the issue's aims were met."""
    d, r = result.delivered, result.report
    rate = result.backlog_events / result.backlog_s
    lines = [
        f"{result.terminals} terminals x {result.per_terminal:,} events into one PostgreSQL on this machine "
        f"(sync agent: batch_size {result.batch_size}, one thread and connection per terminal; "
        f"live phase interval_s {result.interval_s:g}).",
        "",
        "| terminals | backlog events | backlog synced in | events/s | live events | sync lag p50 | sync lag p99 "
        "| central = local (UUIDs) | duplicates | day's report (median of 5) | all events into Python |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {result.terminals} | {result.backlog_events:,} | {result.backlog_s:.1f} s | {rate:,.0f} "
        f"| {result.live_events} | {result.lag_p50_s:.2f} s | {result.lag_p99_s:.2f} s "
        f"| {d.central:,} = {d.local:,}, {d.missing} missing | {d.central - d.distinct} "
        f"| {r.central_s:.2f} s ({r.events:,} events, {r.rows:,} rows) | {r.all_in_python_s:.2f} s |",
        "",
        f"Aims: backlog under 60 s with zero loss: **{'met' if result.backlog_s < 60 and d.exact else 'not met'}**; "
        f"a day's report over {r.events:,} events under 1 s: **{'met' if r.central_s < 1 else 'not met'}** "
        f"(same rows as the all-in-Python path: {'yes' if r.equal else 'NO'}; "
        f"load average {r.load_average:.1f} on {os.cpu_count()} cores while the report ran).",
    ]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> FleetResult:
    server = PgServer()
    try:
        server.start()
        with tempfile.TemporaryDirectory(
            prefix="bench-fleet-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
        ) as tmp:
            work = Path(tmp)
            terminals = set_up(server, work, args.terminals)
            day = fleet_day(args.terminals, args.events)
            began = time.perf_counter()
            with ProcessPoolExecutor(max_workers=2) as pool:
                filled = sum(pool.map(fill, [t.log for t in terminals], [day[t.name] for t in terminals]))
            print(f"filled {len(terminals)} local logs with {filled:,} events in {time.perf_counter() - began:.1f} s")
            backlog_s = sync_backlog(terminals, args.batch_size)
            print(f"backlog: {filled:,} events in {backlog_s:.1f} s")
            live_ids = live_phase(terminals, args)
            delivered = delivery(server, terminals)
            live_lags = lags(server, live_ids)
            report = report_times(server)
    finally:
        server.remove()
    return FleetResult(
        terminals=args.terminals,
        per_terminal=args.events,
        backlog_s=backlog_s,
        live_events=len(live_lags),
        lag_p50_s=percentile(live_lags, 0.5) if live_lags else float("nan"),
        lag_p99_s=percentile(live_lags, 0.99) if live_lags else float("nan"),
        delivered=delivered,
        report=report,
        interval_s=args.interval_s,
        batch_size=args.batch_size,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    table = fleet_table(result)
    print(table)
    if args.results:
        path = write_results(args.results, table, provenance(__file__))
        print(f"wrote {path}")
    return 0 if result.delivered.exact and result.report.equal else 1


if __name__ == "__main__":
    sys.exit(main())
