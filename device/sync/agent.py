"""The sync loop: push what the centre has not confirmed, note the confirmation, wait, repeat.

Exactly once, by construction rather than by care:

* events go oldest first (insertion order), ``batch_size`` per transaction, as
  ``INSERT ... ON CONFLICT (id) DO NOTHING`` (plain executemany: no COPY and no
  RETURNING, which row level security would need SELECT for);
* only after the server's COMMIT returns is the batch confirmed locally
  (``AttendanceStore.confirm``). A crash between the two re-sends the batch
  next time, and the centre ignores ids it has: never a duplicate, never a loss;
* before any push, the centre's new erasure requests are applied to the local
  log (device/sync/erasures.py) and the gallery is pulled: an erased person's
  unsent events are gone before they could be sent, and the recogniser stops
  matching them as early as possible;
* any failure (CentralError, a psycopg error, a locked local log) becomes one
  status line, the connection is dropped, and the agent waits with full-jitter
  back-off before reconnecting.

Timing uses ``time.monotonic`` only, so a wall clock stepped back an hour or on a
day neither stalls nor hurries the loop; wall time only stamps what is written
down. SIGTERM (the CLI calls :meth:`SyncAgent.stop`) is honoured between
batches: a batch is either committed and confirmed, or re-sent later.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from device.sync.backoff import Backoff
from device.sync.erasures import STATE_FILE_NAME, ErasureApplier
from device.sync.status import SyncStatus, write_status
from device.terminal.notify import Notifier
from logs.store import AttendanceEvent, AttendanceStore, StoreError

if TYPE_CHECKING:
    import psycopg

    from logs.central.connect import CentralTarget

log = logging.getLogger(__name__)

INSERT_EVENT = (
    "INSERT INTO clockface.events (id, person, event_type, timestamp_utc, utc_offset_minutes, distance, source) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
)
# Between watchdog pings when systemd asked for none (the wait still wakes to check for a stop).
IDLE_TICK_S = 5.0


@dataclass(frozen=True)
class GalleryNews:
    """What a gallery pull reported, in the agent's terms (gallery.central's PullOutcome carries more)."""

    version: int | None
    refused: str | None = None


Puller = Callable[["psycopg.Connection[Any]"], GalleryNews | None]


def event_row(event: AttendanceEvent) -> tuple[Any, ...]:
    """One event as the parameters of :data:`INSERT_EVENT` (the terminal column is the server's default)."""
    return (
        event.id,
        event.person,
        event.event_type,
        event.timestamp_utc,
        event.utc_offset_minutes,
        float(event.distance),
        event.source,
    )


def failure_line(exc: BaseException, where: str) -> str:
    """One line for any failure the loop survives; CentralError and StoreError already are one."""
    from logs.central.connect import CentralError

    if isinstance(exc, (CentralError, StoreError)):
        text = str(exc)
    else:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        text = f"central server {where}: {first}"
    return " ".join(text.split())


def _retryable() -> tuple[type[BaseException], ...]:
    import psycopg

    from logs.central.connect import CentralError

    return (CentralError, psycopg.Error, StoreError)


class SyncAgent:
    """Pushes one attendance log to one central server; :meth:`run` until :meth:`stop`, or :meth:`push_once`."""

    def __init__(
        self,
        store: AttendanceStore,
        target: CentralTarget,
        status_file: Path,
        *,
        batch_size: int = 500,
        interval_s: float = 30.0,
        notifier: Notifier | None = None,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        pull: Puller | None = None,
        erasure_state: Path | None = None,
    ) -> None:
        self.store = store
        self.target = target
        self.status_file = status_file
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.notifier = notifier or Notifier(None)
        self.backoff = backoff or Backoff()
        self.rng = rng or random.Random()
        self.monotonic = monotonic
        self.wall = wall
        self.pull = pull
        self._stop = threading.Event()
        self._conn: psycopg.Connection[Any] | None = None
        self.erasures = ErasureApplier(store, erasure_state or status_file.parent / STATE_FILE_NAME)
        self.status = SyncStatus(
            updated_utc=wall(), backlog=store.backlog(), erasures_applied=self.erasures.state.applied
        )

    # --- control -------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish (safe from a signal handler): it stops before the next batch."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- one cycle -------------------------------------------------------------
    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            from logs.central.connect import connect

            self._conn = connect(self.target)
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a broken connection may fail to close; it is gone either way
                log.debug("closing a broken central connection failed", exc_info=True)

    def push_batch(self, conn: psycopg.Connection[Any], events: list[AttendanceEvent]) -> None:
        """One transaction on the server, then the local note: in that order, always."""
        with conn.cursor() as cursor:
            cursor.executemany(INSERT_EVENT, [event_row(e) for e in events])
        conn.commit()
        # The centre has them now. A crash here only means they are sent again (and ignored).
        self.store.confirm([e.id for e in events], self.wall())

    def push_all(self) -> int:
        """Push the whole backlog, batch by batch; returns how many events were pushed."""
        pushed = 0
        while not self.stopping:
            events = self.store.unconfirmed(self.batch_size)
            if not events:
                break
            self.push_batch(self._connection(), events)
            pushed += len(events)
            self._note(pushed=self.status.pushed + len(events), backlog=self.store.backlog())
            self.notifier.watchdog()
        return pushed

    def apply_erasures(self, conn: psycopg.Connection[Any]) -> None:
        """Before the push: the centre's new erasure requests, applied to the local log."""
        state = self.erasures.apply_new(conn)
        self._note(
            erasures_applied=state.applied,
            erasures_unsupported=not self.erasures.centre_has_erasures,
            backlog=self.store.backlog(),
        )

    def pull_gallery(self, conn: psycopg.Connection[Any]) -> None:
        """Before the push: the one place the centre's gallery is fetched (gallery.central, when present)."""
        if self.pull is None:
            return
        news = self.pull(conn)
        conn.commit()  # end the read transaction: an idle connection must not sit "idle in transaction"
        if news is not None:
            self._note(central_gallery_version=news.version, gallery_refused=news.refused)

    def cycle(self) -> int:
        """Apply erasures, pull the gallery, then push everything; raises on failure (the caller backs off).

        In that order: an erasure must reach the local log before the push could
        send the person's events, and the pull is what removes them from the
        gallery the recogniser matches against.
        """
        conn = self._connection()
        self.apply_erasures(conn)
        if self.stopping:
            return 0
        self.pull_gallery(conn)
        pushed = self.push_all()
        if not self.stopping:
            self._note(last_success_utc=self.wall(), last_error=None, backlog=self.store.backlog())
        return pushed

    def push_once(self) -> int:
        """`clockface sync --once`: the whole backlog now, then return its size; failures raise."""
        try:
            return self.cycle()
        except _retryable() as exc:
            self._note(last_error=failure_line(exc, self.target.where()), backlog=self.store.backlog())
            raise
        finally:
            self._drop_connection()

    # --- the service loop ------------------------------------------------------
    def run(self) -> None:
        """Until stop(): cycle, wait interval_s; on failure wait a jittered back-off and reconnect."""
        self.notifier.ready(self.status.line())
        failures = 0
        try:
            while not self.stopping:
                try:
                    self.cycle()
                    failures = 0
                    wait = self.interval_s
                except _retryable() as exc:
                    self._drop_connection()
                    line = failure_line(exc, self.target.where())
                    wait = self.backoff.delay(failures, self.rng)
                    failures += 1
                    log.warning("sync: %s (retry in %.1f s)", line, wait)
                    self._note(last_error=line, backlog=self._backlog_or_last())
                self._wait(wait)
        finally:
            self.notifier.stopping()
            self._drop_connection()

    def _wait(self, seconds: float) -> None:
        """Sleep *seconds* of monotonic time, pinging the watchdog, waking at once on stop()."""
        deadline = self.monotonic() + seconds
        tick = self.notifier.watchdog_interval or IDLE_TICK_S
        while not self.stopping:
            remaining = deadline - self.monotonic()
            if remaining <= 0:
                return
            self._stop.wait(min(remaining, tick))
            self.notifier.watchdog()

    # --- status ------------------------------------------------------------------
    def _backlog_or_last(self) -> int:
        try:
            return self.store.backlog()
        except StoreError:
            return self.status.backlog

    def _note(self, **changes: Any) -> None:
        """Update the status, write the file and tell systemd; a status that cannot be written is only logged."""
        self.status = replace(self.status, updated_utc=self.wall(), **changes)
        self.notifier.status(self.status.line())
        try:
            write_status(self.status_file, self.status)
        except OSError as exc:
            log.warning("sync status not written to %s: %s", self.status_file, exc)
