"""Write the door chimes (logged.wav, unknown.wav, repeat.wav) next to this script.

The WAVs are committed and shipped as package data, so a terminal needs no
synthesiser; this script is how they were made, and re-running it must
reproduce them byte for byte (tests/device/test_door_outputs.py checks that):

    python device/terminal/sounds/make_sounds.py

Sine tones with a short attack and a decaying release, 16 kHz mono 16-bit, a
few KB each. Why these three:

- logged: two notes rising (E5 then A5), the "done, go ahead" sound that
  check-in terminals use; the same for check-in and check-out, because the
  screen says which one it was.
- unknown: two notes falling and lower (A4 then F4), plainly different from
  logged even to someone not looking at the screen, so they stop and look.
- repeat: one short, quiet note. The person was recognised but nothing new was
  written (they are within the cooldown); silence would make them wave at the
  camera again, a full chime would suggest a second check-in.
"""

from __future__ import annotations

import math
import struct
import sys
import wave
from dataclasses import dataclass
from pathlib import Path

RATE = 16_000
ATTACK_S = 0.008
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Note:
    hz: float
    seconds: float
    level: float  # peak amplitude, 0..1 of full scale


CHIMES: dict[str, tuple[Note, ...]] = {
    "logged": (Note(659.25, 0.11, 0.5), Note(880.0, 0.18, 0.5)),
    "unknown": (Note(440.0, 0.15, 0.55), Note(349.23, 0.25, 0.55)),
    "repeat": (Note(880.0, 0.09, 0.2),),
}


def note_samples(note: Note, rate: int = RATE) -> list[int]:
    """One note as 16-bit samples: linear attack, exponential decay to silence at its end (no click)."""
    n = round(note.seconds * rate)
    attack = max(1, round(ATTACK_S * rate))
    out = []
    for i in range(n):
        envelope = i / attack if i < attack else math.exp(-4.0 * (i - attack) / max(1, n - attack))
        envelope *= 1.0 - i / n  # reaches exactly zero at the last sample
        out.append(round(32767 * note.level * envelope * math.sin(2 * math.pi * note.hz * i / rate)))
    return out


def chime_frames(notes: tuple[Note, ...], rate: int = RATE) -> bytes:
    samples = [s for note in notes for s in note_samples(note, rate)]
    return struct.pack(f"<{len(samples)}h", *samples)


def write_chime(path: Path, notes: tuple[Note, ...]) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(chime_frames(notes))


def main(folder: Path = HERE) -> list[Path]:
    written = []
    for name, notes in CHIMES.items():
        path = folder / f"{name}.wav"
        write_chime(path, notes)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(f"{path} ({path.stat().st_size} bytes)")
