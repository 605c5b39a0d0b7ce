"""Retention: how long attendance events are kept, and the one routine that removes old ones.

Deletion is the exception in an append-only log, so it goes through exactly
two doors in :class:`~logs.store.AttendanceStore` (``purge_before`` here and
``erase_person`` for erasure requests); both write an ``audit_log`` row in the
same transaction. The daily job verifies the hash chain first and refuses to
delete anything from a log that shows tampering: purging would destroy the
evidence. The cut-off is a *local* midnight in the configured zone,
so "keep 30 days" means 30 calendar days as staff see them, DST included.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from logs.reports import day_bounds_utc
from logs.settings import LogsSettings
from logs.store import AttendanceStore, StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeResult:
    before_day: date  # first local day that was kept
    cutoff_utc: datetime
    removed: int


def retention_cutoff(today: date, retention_days: int) -> date:
    """The first local day to keep: today and the ``retention_days - 1`` days before it."""
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    return today - timedelta(days=retention_days - 1)


def purge_before(store: AttendanceStore, before_day: date, zone: ZoneInfo, reason: str = "manual") -> PurgeResult:
    """Remove events from local days strictly before *before_day*."""
    cutoff_utc, _ = day_bounds_utc(before_day, zone)
    removed = store.purge_before(cutoff_utc, reason=reason)
    log.info("purged %d attendance rows before %s (%s)", removed, before_day, reason)
    return PurgeResult(before_day, cutoff_utc, removed)


def apply_retention(store: AttendanceStore, settings: LogsSettings, now: datetime | None = None) -> PurgeResult | None:
    """What the service runs daily: purge by ``retention_days``, or do nothing if events are kept forever."""
    if settings.retention_days is None:
        return None
    report = store.verify()
    if not report.ok:
        first = report.first_broken
        raise StoreError(
            f"{store.path}: retention refused, the attendance log fails verification "
            f"({first.line() if first else 'broken'}); run `clockface logs verify`"
        )
    zone = settings.zone
    now = now or datetime.now(UTC)
    today = now.astimezone(zone).date()
    return purge_before(store, retention_cutoff(today, settings.retention_days), zone, reason="retention")
