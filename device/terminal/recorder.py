"""From a confirmed decision to an attendance row: cooldown, check-in/seen,
and a refusal to write evidence with a clock that is clearly wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from logs.store import AttendanceEvent, AttendanceStore, StoreError, UnknownFaceEvent

# A Raspberry Pi 4 has no real-time clock: until NTP syncs it boots at the last
# saved time, which can be months old. Nothing real happens before the release.
RELEASE_DATE = date(2026, 11, 1)
# Events that could not be written (disk full, database locked) wait in memory
# and are retried; past this many the oldest are kept and new ones reported.
MAX_PENDING = 1000


Checkout = Literal["none", "last-sighting", "exit"]
CHECKOUT_MODES: tuple[str, ...] = get_args(Checkout)


def event_type_for(first_today: bool, checkout: str) -> str:
    """What a sighting means. "none": the first of the day checks in, later ones
    are "seen". "last-sighting": later ones are check-outs (reports take the
    last). "exit": this terminal watches the way out, so every sighting is one."""
    if checkout == "exit":
        return "check-out"
    if first_today:
        return "check-in"
    return "check-out" if checkout == "last-sighting" else "seen"


@dataclass(frozen=True)
class RecordResult:
    event: AttendanceEvent | None
    reason: str  # "logged", "cooldown", "clock not synchronised", "pending: <error>"
    previous: AttendanceEvent | None = None  # with "cooldown": the event that started it


def clock_is_plausible(now_utc: datetime) -> bool:
    return now_utc.date() >= RELEASE_DATE


def utc_offset_minutes(now_utc: datetime, zone: ZoneInfo) -> int:
    offset = now_utc.astimezone(zone).utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


class Recorder:
    """Writes at most one event per person per cooldown; the store is opened once."""

    def __init__(
        self,
        store: AttendanceStore,
        zone: ZoneInfo,
        terminal_id: str,
        source: str,
        cooldown: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        checkout: str = "none",
    ) -> None:
        if checkout not in CHECKOUT_MODES:
            raise ValueError(f"checkout must be one of {', '.join(CHECKOUT_MODES)}, got {checkout!r}")
        self.checkout = checkout
        self.store = store
        self.zone = zone
        self.terminal_id = terminal_id
        self.source = source
        self.cooldown = cooldown
        self.clock = clock
        self.pending: list[AttendanceEvent] = []
        self.last_error: str | None = None
        self._recent: dict[str, AttendanceEvent] = {}  # newest event per person, including pending ones

    def flush(self) -> list[AttendanceEvent]:
        """Retry pending events in order; returns those written now."""
        written: list[AttendanceEvent] = []
        while self.pending:
            try:
                self.store.record(self.pending[0])
            except StoreError as exc:
                self.last_error = str(exc)
                break
            written.append(self.pending.pop(0))
        if not self.pending:
            self.last_error = None
        return written

    def record_unknown(self, nearest_distance: float) -> UnknownFaceEvent | None:
        """A face that matched nobody: when and where only, never an image or
        an embedding. Best effort: an unknown face is not evidence to keep."""
        now = self.clock()
        if not clock_is_plausible(now):
            return None
        event = UnknownFaceEvent(
            timestamp_utc=now,
            utc_offset_minutes=utc_offset_minutes(now, self.zone),
            nearest_distance=round(float(nearest_distance), 4) if nearest_distance != float("inf") else None,
            source=self.source,
            terminal_id=self.terminal_id,
        )
        try:
            self.store.record_unknown(event)
        except StoreError as exc:
            self.last_error = str(exc)
            return None
        return event

    def _last(self, person: str) -> AttendanceEvent | None:
        recent = self._recent.get(person)
        if recent is not None:
            return recent
        try:
            return self.store.last_event(person)
        except StoreError:
            return None

    def record(self, person: str, distance: float) -> RecordResult:
        now = self.clock()
        if not clock_is_plausible(now):
            return RecordResult(
                None, f"clock not synchronised (system time {now:%Y-%m-%d %H:%M}Z is before {RELEASE_DATE})"
            )
        last = self._last(person)
        if last is not None and now - last.timestamp_utc < self.cooldown:
            return RecordResult(None, "cooldown", previous=last)
        local_today = now.astimezone(self.zone).date()
        first_today = last is None or last.timestamp_utc.astimezone(self.zone).date() != local_today
        event = AttendanceEvent(
            person=person,
            event_type=event_type_for(first_today, self.checkout),
            timestamp_utc=now,
            utc_offset_minutes=utc_offset_minutes(now, self.zone),
            distance=round(float(distance), 4),
            source=self.source,
            terminal_id=self.terminal_id,
        )
        self._recent[person] = event
        if len(self.pending) >= MAX_PENDING:
            return RecordResult(
                None, f"not saved: {MAX_PENDING} events already wait for the database ({self.last_error})"
            )
        self.pending.append(event)
        if event not in self.flush():
            return RecordResult(event, f"pending: {self.last_error}")
        return RecordResult(event, "logged")
