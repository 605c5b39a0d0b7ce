"""What the person at the door is told: one value per decision, for every output that greets them.

The recogniser decides once per track; :class:`Session` (device/terminal/service.py)
turns each decision into a :class:`DoorEvent` and hands it to a :class:`DoorSignals`
hub. The kiosk page, the chime and the LEDs subscribe to the hub, so they all
say the same thing, and none of them can stop the recognition loop: an output
that raises is logged and the others still run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

log = logging.getLogger(__name__)


class DoorKind(StrEnum):
    CHECKED_IN = "check-in"  # an attendance event was written (first of the day, or "seen")
    CHECKED_OUT = "check-out"
    REPEAT = "repeat"  # recognised again within the cooldown: nothing new written
    UNKNOWN = "unknown"  # a face that matched nobody in the gallery
    NOT_LOGGED = "not-logged"  # recognised, but the event could not be written (clock, disk)


@dataclass(frozen=True)
class DoorEvent:
    kind: DoorKind
    at: datetime  # UTC, when the decision was made
    person: str | None = None  # display name; None for an unknown face
    previous_at: datetime | None = None  # REPEAT: when this person was last logged
    event_type: str | None = None  # the attendance row's type when one was written
    reason: str = ""  # NOT_LOGGED: why


@dataclass(frozen=True)
class TerminalStatus:
    """What staff must know, shown as banners: each flag true while the problem lasts."""

    camera_lost: bool = False
    no_gallery: bool = False
    clock_unsynchronised: bool = False
    disk_full: bool = False


Subscriber = Callable[[DoorEvent], None]
StatusSubscriber = Callable[[TerminalStatus], None]


class DoorSignals:
    """A small in-process hub: the loop publishes, the outputs subscribe."""

    def __init__(self) -> None:
        self._events: list[Subscriber] = []
        self._status: list[StatusSubscriber] = []
        self.status = TerminalStatus()

    def subscribe(self, callback: Subscriber) -> None:
        self._events.append(callback)

    def subscribe_status(self, callback: StatusSubscriber) -> None:
        self._status.append(callback)
        callback(self.status)

    def publish(self, event: DoorEvent) -> None:
        for callback in self._events:
            try:
                callback(event)
            except Exception:  # an output must never stop the door
                log.exception("door output %r failed on %s", callback, event.kind)

    def set_status(self, status: TerminalStatus) -> None:
        if status == self.status:
            return
        self.status = status
        for callback in self._status:
            try:
                callback(status)
            except Exception:
                log.exception("status output %r failed", callback)
