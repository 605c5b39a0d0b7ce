"""Erasure requests from the centre, applied to this terminal's own attendance log.

`clockface central remove NAME [--with-logs]` writes a row to
``clockface.erasures`` (central schema v3); a terminal reads (id, person,
with_logs) through the view ``clockface.erasure_requests``. Every cycle,
before it pushes, the agent applies each request with an id above the last
one it applied: with ``with_logs`` the person's local events go
(``AttendanceStore.erase_person``, which takes their central confirmations
with them), so an unsent event of theirs is never pushed. The gallery side is
the version pull's job (a new version without them).

The last applied id is kept in ``<data_dir>/sync-erasures.json`` (atomic:
temp file, fsync, rename), not in a table of the attendance log. Why: the
log's schema is frozen, checked history that read-only reports refuse to
read at another version; a new local schema version for one integer would
make every reader migrate. Nothing needs the erase and the note in one
transaction either, because applying a request twice is harmless: a crash
between the two, or a lost or unreadable file, only re-applies requests
whose events are already gone (nothing is erased, nothing is written). Names
match like a gallery's (gallery.layout.person_key: case and spacing do not
matter), as the centre's own erase does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.sync.statefile import write_json_atomically
from gallery.layout import person_key
from logs.store import AttendanceStore

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

STATE_FILE_NAME = "sync-erasures.json"
VIEW = "clockface.erasure_requests"


@dataclass(frozen=True)
class Erasure:
    """One request as a terminal sees it (who asked, and when, stay at the centre)."""

    id: int
    person: str
    with_logs: bool


@dataclass(frozen=True)
class ErasureState:
    """What this terminal has applied: the last request id, and totals for the status line."""

    last_applied_id: int = 0
    applied: int = 0  # requests applied on this terminal
    events_erased: int = 0  # local events those requests erased

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErasureState:
        return cls(int(data["last_applied_id"]), int(data.get("applied", 0)), int(data.get("events_erased", 0)))


def state_path(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_FILE_NAME


def read_state(path: Path) -> ErasureState:
    """The state on disk; a missing or unreadable file is the start (every request is applied again, harmlessly)."""
    try:
        return ErasureState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return ErasureState()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("erasure state %s unreadable (%s): every central erasure request is applied again", path, exc)
        return ErasureState()


def write_state(path: Path, state: ErasureState) -> None:
    """Replace *path* with *state* in one rename, after fsync: the old state or the new, never half."""
    write_json_atomically(path, asdict(state))


def pending(conn: psycopg.Connection[Any], after: int) -> list[Erasure] | None:
    """Requests with id > *after*, oldest first; None when the centre predates erasures (schema < v3)."""
    found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [VIEW]).fetchone()
    if not found or not found[0]:
        return None
    rows = conn.execute(f"SELECT id, person, with_logs FROM {VIEW} WHERE id > %s ORDER BY id", [after]).fetchall()
    return [Erasure(int(r[0]), str(r[1]), bool(r[2])) for r in rows]


def apply_erasure(store: AttendanceStore, erasure: Erasure) -> int:
    """Erase the person's local events when the request says so; returns how many went (0: none left)."""
    if not erasure.with_logs:
        return 0
    key = person_key(erasure.person)
    # Only names that still have events: a request applied again writes nothing, not even an audit row.
    return sum(store.erase_person(name) for name in store.people() if person_key(name) == key)


class ErasureApplier:
    """The agent's erasure step: read the state once, then apply what is new each cycle."""

    def __init__(self, store: AttendanceStore, path: Path) -> None:
        self.store = store
        self.path = path
        self.state = read_state(path)
        self.centre_has_erasures = True

    def apply_new(self, conn: psycopg.Connection[Any]) -> ErasureState:
        """Apply every new request, noting each one durably as soon as it is applied."""
        news = pending(conn, self.state.last_applied_id)
        conn.commit()  # end the read transaction: the erases below are local
        self.centre_has_erasures = news is not None
        for erasure in news or []:
            erased = apply_erasure(self.store, erasure)
            self.state = replace(
                self.state,
                last_applied_id=erasure.id,
                applied=self.state.applied + 1,
                events_erased=self.state.events_erased + erased,
            )
            log.info("central erasure request %d applied: %d local events erased", erasure.id, erased)
            try:
                write_state(self.path, self.state)
            except OSError as exc:
                # Kept in memory; after a restart the request is applied again, which is harmless.
                log.warning("erasure state not written to %s: %s", self.path, exc)
        return self.state
