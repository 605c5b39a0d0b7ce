"""The hash chain that makes the attendance log tamper-evident (pure functions).

Each event row stores ``prev_hash`` (the chain value before it) and
``chain_hash = sha256(prev_hash + canonical(row))``. Changing a stored field
breaks that row's own hash; removing or inserting a row breaks the link from
the next row to its predecessor. Legitimate deletions (retention, erasure) are
recorded as *cuts* in ``audit_log``: "the chain may jump from ``after`` to
``head``", so a verifier can step over exactly the rows the store removed and
nothing else.

The chain is unkeyed: it shows edits made with ``sqlite3``, not a rewrite of the
whole chain with this code. A head written down or kept off the device is
what catches that (see docs/log-integrity.md); :func:`verify_chain` can check
such a head is still in the chain.

Nothing here touches SQLite: the store feeds rows in, so the rules can be
tested and reasoned about on their own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event ever recorded (or back-filled)."""

CHAINED_FIELDS = (
    "id",
    "person",
    "event_type",
    "timestamp_utc",
    "utc_offset_minutes",
    "distance",
    "source",
    "terminal_id",
)
"""The stored event columns the hash covers, in a fixed order (every column but the chain's own)."""


def canonical(row: Mapping[str, Any]) -> str:
    """One unambiguous text for an event's stored fields.

    JSON of a list in :data:`CHAINED_FIELDS` order: values keep their SQLite
    type (``0.3`` vs ``"0.3"`` differ), floats print as the shortest text
    that round-trips, so the same stored row always gives the same text.
    """
    return json.dumps([row[name] for name in CHAINED_FIELDS], separators=(",", ":"), ensure_ascii=False)


def link_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """The chain value after *row*: sha256 over the previous value and the row's canonical text."""
    return hashlib.sha256(f"{prev_hash}\n{canonical(row)}".encode()).hexdigest()


@dataclass(frozen=True)
class Cut:
    """A run of consecutive events removed by purge or erase: the chain jumps from ``after`` to ``head``."""

    after: str  # prev_hash of the first removed row
    head: str  # chain_hash of the last removed row

    def to_dict(self) -> dict[str, str]:
        return {"after": self.after, "head": self.head}


def cuts_for(rows: Iterable[tuple[str | None, str | None, bool]]) -> list[Cut]:
    """The cuts a deletion makes, from ``(prev_hash, chain_hash, removed)`` of every event in rowid order."""
    cuts: list[Cut] = []
    start: str | None = None
    last: str | None = None
    for prev_hash, chain_hash, removed in rows:
        if removed:
            if start is None:
                start = prev_hash or GENESIS
            last = chain_hash
        elif start is not None:
            cuts.append(Cut(start, last or GENESIS))
            start = None
    if start is not None:
        cuts.append(Cut(start, last or GENESIS))
    return cuts


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the log, as a verifier reports it."""

    kind: str  # "content changed" | "row missing" | "hash missing" | "trigger missing" | ...
    detail: str
    event_id: str | None = None
    timestamp_utc: str | None = None
    rowid: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "event_id": self.event_id,
            "timestamp_utc": self.timestamp_utc,
            "rowid": self.rowid,
            "detail": self.detail,
        }

    def line(self) -> str:
        where = f"event {self.event_id} ({self.timestamp_utc}, rowid {self.rowid}): " if self.event_id else ""
        return f"{self.kind}: {where}{self.detail}"


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify_chain` found: the head, how many events were checked, and every problem."""

    events: int
    head: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_broken(self) -> Problem | None:
        """The earliest broken link in the chain (row problems before schema ones)."""
        rows = [p for p in self.problems if p.event_id is not None]
        ordered = rows or self.problems
        return ordered[0] if ordered else None


def verify_chain(
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    cuts: Iterable[Cut],
    expect_head: str | None = None,
) -> ChainReport:
    """Walk *rows* (``(rowid, row)`` in rowid order) from :data:`GENESIS` over the recorded *cuts*.

    Each row must hash to its own ``chain_hash`` (else its content changed) and
    its ``prev_hash`` must be where the walk stands, possibly after stepping
    over recorded cuts (else rows are missing or were inserted before it).
    After a break the walk resynchronises on the row's own hash, so one
    deletion is reported once, not as every later row. *expect_head*, a head
    written down earlier, must appear in the chain (as a row's hash or a cut's).
    """
    cuts = list(cuts)
    jumps = {cut.after: cut.head for cut in cuts}
    seen_heads = {GENESIS, *jumps.values()}
    position = GENESIS
    problems: list[Problem] = []
    count = 0
    for rowid, row in rows:
        count += 1
        prev_hash, chain_hash = row.get("prev_hash"), row.get("chain_hash")

        def problem(kind: str, detail: str, row: Mapping[str, Any] = row, rowid: int = rowid) -> Problem:
            return Problem(kind, detail, str(row.get("id")), str(row.get("timestamp_utc")), rowid)

        if not prev_hash or not chain_hash:
            problems.append(problem("hash missing", "row has no chain hash (inserted outside clockface)"))
            continue
        if link_hash(prev_hash, row) != chain_hash:
            problems.append(problem("content changed", "stored fields do not match the row's hash"))
        visited = set()
        while position != prev_hash and position in jumps and position not in visited:
            visited.add(position)
            position = jumps[position]
        if position != prev_hash:
            problems.append(
                problem("row missing", "the event before this one is not in the log and no purge/erase records it")
            )
        position = chain_hash
        seen_heads.add(chain_hash)
    if count == 0 and cuts:  # everything purged: new events continue from the newest cut
        position = cuts[-1].head
    if expect_head is not None and expect_head not in seen_heads:
        problems.append(
            Problem("head not found", f"the expected head {expect_head[:16]}... is not in the chain (rows rewritten)")
        )
    return ChainReport(count, position, problems)
