"""The door chime: a short WAV per decision, played with ALSA's `aplay`.

Why `aplay` in a subprocess and not a Python audio library: it is in every
Raspberry Pi OS image (alsa-utils), needs no compiled wheel, and a child
process cannot stall the recognition loop: :meth:`Chime.__call__` starts it
and returns at once. At most one chime plays at a time; a decision that
arrives while one is still playing stays silent (the chimes last a quarter of
a second, and two overlapping chimes say nothing clearly).

Which sound for which decision (device/terminal/sounds/make_sounds.py says why):
check-in and check-out -> logged.wav, unknown and not-logged -> unknown.wav
(nothing was written: the person should look at the screen), repeat ->
repeat.wav (one soft note).

No sound device is normal (a Pi without a speaker, a container): then
:func:`open_chime` logs one info line and returns None, and the door has no
chime. It never raises for that.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

from device.terminal.door import DoorEvent, DoorKind

log = logging.getLogger(__name__)

SOUNDS = Path(__file__).resolve().parent / "sounds"
SOUND_FOR: Mapping[DoorKind, str] = {
    DoorKind.CHECKED_IN: "logged.wav",
    DoorKind.CHECKED_OUT: "logged.wav",
    DoorKind.UNKNOWN: "unknown.wav",
    DoorKind.NOT_LOGGED: "unknown.wav",
    DoorKind.REPEAT: "repeat.wav",
}
PROBE_TIMEOUT_S = 5.0


def sound_cards(aplay_list_output: str) -> list[str]:
    """The playback cards `aplay -l` lists ("card 0: Headphones [bcm2835 Headphones], device 0: ...")."""
    return [line for line in aplay_list_output.splitlines() if line.startswith("card ")]


def find_player(path: str | None = None) -> tuple[list[str] | None, str]:
    """The argv prefix that plays a WAV, or None and why there is no sound here.

    *path* is the PATH to search (None: the process's own)."""
    aplay = shutil.which("aplay", path=path)
    if aplay is None:
        return None, "aplay is not installed (apt install alsa-utils)"
    try:
        probe = subprocess.run(
            [aplay, "-l"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"`aplay -l` failed ({exc})"
    cards = sound_cards(probe.stdout)
    if not cards:
        return None, "no sound card (`aplay -l` lists none)"
    return [aplay, "-q"], cards[0]


class Chime:
    """A door output (subscribe it to :class:`DoorSignals`) that plays one WAV per decision."""

    def __init__(self, player: list[str], sounds: Path = SOUNDS) -> None:
        self.player = player
        self.sounds = sounds
        self._playing: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.last: Path | None = None  # the WAV started last

    def busy(self) -> bool:
        return self._playing is not None and self._playing.poll() is None

    def __call__(self, event: DoorEvent) -> None:
        name = SOUND_FOR.get(event.kind)
        if name is None:
            return
        with self._lock:
            if self.busy():
                log.debug("chime for %s skipped: the previous one is still playing", event.kind)
                return
            wav = self.sounds / name
            try:
                self._playing = subprocess.Popen(
                    [*self.player, str(wav)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    close_fds=True,
                )
            except OSError as exc:  # aplay removed since start-up: not worth stopping the door for
                log.warning("chime not played: %s", exc)
                return
            self.last = wav

    def close(self, timeout: float = 2.0) -> None:
        """Let the last chime finish (or stop it), so no child outlives the terminal."""
        with self._lock:
            proc, self._playing = self._playing, None
        if proc is None:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def open_chime(enabled: bool, path: str | None = None) -> Chime | None:
    """The chime if it is wanted and this machine can play sound; else None, with one info line why."""
    if not enabled:
        return None
    player, detail = find_player(path)
    if player is None:
        log.info("door chime off: %s", detail)
        return None
    log.info("door chime on: %s", detail)
    return Chime(player)
