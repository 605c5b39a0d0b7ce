"""Optional door lights and buzzer on the Pi's GPIO header, through gpiozero.

What lights up for which decision:

- check-in, check-out, repeat: the green LED for ``light_seconds``. A repeat is
  green too: the person *is* checked in, and a red light would send them back
  to the camera.
- unknown, not-logged: the red LED for ``light_seconds`` and one short beep
  (``buzzer_seconds``). The beep only on these: a buzzer on every check-in at a
  busy entrance is noise, while "you were not logged" must be noticed by
  someone already walking past.

Each output lights only the one LED that applies and turns the other off, so
two people in quick succession never leave both lit. gpiozero times the "on"
period in its own background thread: :meth:`DoorLights.__call__` returns at
once, and the pin goes low again by itself.

gpiozero is optional (the ``gpio`` extra; ``python3-gpiozero`` from apt on a
Pi). Pins unset (the default) means no lights and not a word about it; pins set
but no gpiozero or no GPIO hardware (a laptop, a container) is one info line
from :func:`open_lights`, never an error.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

from device.terminal.door import DoorEvent, DoorKind

log = logging.getLogger(__name__)

GOOD = frozenset({DoorKind.CHECKED_IN, DoorKind.CHECKED_OUT, DoorKind.REPEAT})
BAD = frozenset({DoorKind.UNKNOWN, DoorKind.NOT_LOGGED})


@dataclass(frozen=True)
class LightPins:
    """BCM pin numbers (GPIO17 is 17); None: not fitted."""

    green: int | None = None
    red: int | None = None
    buzzer: int | None = None

    @property
    def any(self) -> bool:
        return any(p is not None for p in (self.green, self.red, self.buzzer))


class DoorLights:
    """A door output (subscribe it to :class:`DoorSignals`) driving gpiozero LEDs and a buzzer."""

    def __init__(
        self, green: Any | None, red: Any | None, buzzer: Any | None, light_seconds: float, buzzer_seconds: float
    ) -> None:
        self.green, self.red, self.buzzer = green, red, buzzer
        self.light_seconds = light_seconds
        self.buzzer_seconds = buzzer_seconds

    def _flash(self, device: Any | None, seconds: float) -> None:
        if device is not None:
            # One blink in gpiozero's own thread: on now, off after `seconds`, never blocking the loop.
            device.blink(on_time=seconds, off_time=0, n=1, background=True)

    def __call__(self, event: DoorEvent) -> None:
        if event.kind in GOOD:
            if self.red is not None:
                self.red.off()
            self._flash(self.green, self.light_seconds)
        elif event.kind in BAD:
            if self.green is not None:
                self.green.off()
            self._flash(self.red, self.light_seconds)
            if self.buzzer is not None:
                self.buzzer.beep(on_time=self.buzzer_seconds, off_time=0, n=1, background=True)

    def close(self) -> None:
        for device in (self.green, self.red, self.buzzer):
            if device is not None:
                device.off()  # stops a blink in progress; close() alone leaves the pin where it was
                device.close()


def open_lights(pins: LightPins, light_seconds: float = 2.0, buzzer_seconds: float = 0.2) -> DoorLights | None:
    """The lights on *pins*, or None: no pins set (silently), or no gpiozero / no GPIO here (one info line)."""
    if not pins.any:
        return None
    try:
        import gpiozero
    except ImportError:
        log.info("door lights off: gpiozero is not installed (apt install python3-gpiozero, or the `gpio` extra)")
        return None
    opened: list[Any] = []

    def make(kind: Any, pin: int | None) -> Any | None:
        if pin is None:
            return None
        device = kind(pin, active_high=True, initial_value=False)
        opened.append(device)
        return device

    try:
        with warnings.catch_warnings():
            # gpiozero warns for each pin library it tries before one works; the outcome is logged below.
            warnings.simplefilter("ignore")
            lights = DoorLights(
                make(gpiozero.LED, pins.green),
                make(gpiozero.LED, pins.red),
                make(gpiozero.Buzzer, pins.buzzer),
                light_seconds,
                buzzer_seconds,
            )
    except Exception as exc:  # gpiozero's BadPinFactory, PinInvalidPin, a busy pin ...: no lights, no error
        for device in opened:
            device.close()
        log.info("door lights off: no usable GPIO here (%s: %s)", type(exc).__name__, exc)
        return None
    log.info("door lights on: green %s, red %s, buzzer %s", pins.green, pins.red, pins.buzzer)
    return lights
