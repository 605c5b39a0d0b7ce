"""The chime and the GPIO lights: the right sound and the right pin for each door decision.

Real parts: a real `aplay` stand-in (a shell script on PATH that records its
arguments and takes time to "play"), gpiozero's own MockFactory for the pins
(the hardware edge), the real WAV files, and `clockface run` on the shared clip.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import time
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest

from device.cli.run import attach_door_outputs
from device.config import ConfigError, DoorSettings, parse_config
from device.terminal.chime import SOUNDS, Chime, find_player, open_chime, sound_cards
from device.terminal.door import DoorEvent, DoorKind, DoorSignals
from device.terminal.gpio import LightPins, open_lights
from tests.conftest import shared_path

NOW = datetime(2026, 3, 2, 8, 59, tzinfo=UTC)
CARD = "card 0: Headphones [bcm2835 Headphones], device 0: bcm2835 Headphones [bcm2835 Headphones]"


def event(kind: DoorKind) -> DoorEvent:
    return DoorEvent(kind, NOW, None if kind is DoorKind.UNKNOWN else "Anna Smith")


def fake_aplay(folder: Path, cards: str = CARD, play_seconds: float = 0.0) -> Path:
    """An `aplay` on PATH: `-l` lists *cards*; playing appends its arguments to calls.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "aplay"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-l" ]; then printf "%s\\n" "{cards}"; exit 0; fi\n'
        f'echo "$@" >> "{folder}/calls.txt"\n'
        f"sleep {play_seconds}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


def calls(folder: Path) -> list[list[str]]:
    path = folder / "calls.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# --- the sounds ------------------------------------------------------------------


def test_shipped_wavs_are_short_mono_and_distinct():
    sizes = {}
    for name in ("logged", "unknown", "repeat"):
        with wave.open(str(SOUNDS / f"{name}.wav")) as w:
            assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
            seconds = w.getnframes() / w.getframerate()
            assert 0.05 < seconds < 0.6, (name, seconds)
        sizes[name] = (SOUNDS / f"{name}.wav").stat().st_size
        assert sizes[name] < 16_000, sizes
    assert len({(SOUNDS / f"{n}.wav").read_bytes() for n in sizes}) == 3


def test_make_sounds_reproduces_the_shipped_wavs(tmp_path):
    """The committed WAVs are exactly what the committed script makes (nobody edited one by hand)."""
    run = subprocess.run(
        [sys.executable, str(SOUNDS / "make_sounds.py"), str(tmp_path)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    made = sorted(tmp_path.glob("*.wav"))
    assert [p.name for p in made] == ["logged.wav", "repeat.wav", "unknown.wav"]
    for path in made:
        assert path.read_bytes() == (SOUNDS / path.name).read_bytes(), path.name


# --- the chime -------------------------------------------------------------------


def test_sound_cards_parses_aplay_list():
    assert sound_cards(f"**** List of PLAYBACK Hardware Devices ****\n{CARD}\n  Subdevices: 8/8\n") == [CARD]
    assert sound_cards("") == []


def test_no_aplay_on_path_is_one_info_line(tmp_path, caplog):
    empty = tmp_path / "bin"
    empty.mkdir()
    with caplog.at_level(logging.INFO):
        assert open_chime(True, path=str(empty)) is None
    lines = [r for r in caplog.records if r.name == "device.terminal.chime"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert "aplay is not installed" in lines[0].getMessage()


def test_aplay_without_a_card_is_one_info_line(tmp_path, caplog):
    folder = fake_aplay(tmp_path / "bin", cards="aplay: device_list:279: no soundcards found...")
    with caplog.at_level(logging.INFO):
        assert open_chime(True, path=str(folder)) is None
    lines = [r for r in caplog.records if r.name == "device.terminal.chime"]
    assert [r.levelno for r in lines] == [logging.INFO]
    assert "no sound card" in lines[0].getMessage()
    assert calls(folder) == []


def test_chime_off_in_config_does_not_probe(tmp_path):
    folder = fake_aplay(tmp_path / "bin")
    assert open_chime(False, path=str(folder)) is None


@pytest.mark.parametrize(
    "kind,wav",
    [
        (DoorKind.CHECKED_IN, "logged.wav"),
        (DoorKind.CHECKED_OUT, "logged.wav"),
        (DoorKind.UNKNOWN, "unknown.wav"),
        (DoorKind.NOT_LOGGED, "unknown.wav"),
        (DoorKind.REPEAT, "repeat.wav"),
    ],
)
def test_each_decision_plays_its_wav(tmp_path, kind, wav):
    folder = fake_aplay(tmp_path / "bin")
    chime = open_chime(True, path=str(folder))
    assert chime is not None
    chime(event(kind))
    chime.close()
    assert calls(folder) == [["-q", str(SOUNDS / wav)]]


def test_chime_never_blocks_and_plays_one_at_a_time(tmp_path):
    folder = fake_aplay(tmp_path / "bin", play_seconds=1.0)
    player, _ = find_player(str(folder))
    assert player is not None
    chime = Chime(player)
    t0 = time.perf_counter()
    chime(event(DoorKind.CHECKED_IN))
    chime(event(DoorKind.UNKNOWN))  # still playing the first: skipped, not queued
    assert time.perf_counter() - t0 < 0.5
    assert chime.busy()
    assert wait_for(lambda: len(calls(folder)) == 1)
    chime.close()
    assert not chime.busy()
    assert [c[-1] for c in calls(folder)] == [str(SOUNDS / "logged.wav")]
    chime(event(DoorKind.UNKNOWN))  # the first has finished: this one plays
    chime.close()
    assert [Path(c[-1]).name for c in calls(folder)] == ["logged.wav", "unknown.wav"]
    assert chime.last == SOUNDS / "unknown.wav"


# --- the lights ------------------------------------------------------------------


@pytest.fixture
def mock_pins():
    gpiozero = pytest.importorskip("gpiozero")
    from gpiozero.pins.mock import MockFactory

    old = gpiozero.Device.pin_factory
    gpiozero.Device.pin_factory = factory = MockFactory()
    yield factory
    factory.reset()
    gpiozero.Device.pin_factory = old


GREEN, RED, BUZZER = 17, 27, 22


def high(factory, pin: int) -> bool:
    return bool(factory.pin(pin).state)


def test_logged_lights_green_then_goes_low(mock_pins):
    lights = open_lights(LightPins(GREEN, RED, BUZZER), light_seconds=0.15, buzzer_seconds=0.05)
    assert lights is not None
    assert not any(high(mock_pins, p) for p in (GREEN, RED, BUZZER))
    lights(event(DoorKind.CHECKED_IN))
    assert high(mock_pins, GREEN)
    assert not high(mock_pins, RED) and not high(mock_pins, BUZZER)
    assert wait_for(lambda: not high(mock_pins, GREEN), timeout=2.0)
    lights.close()


def test_unknown_lights_red_and_beeps_once(mock_pins):
    lights = open_lights(LightPins(GREEN, RED, BUZZER), light_seconds=0.3, buzzer_seconds=0.05)
    assert lights is not None
    lights(event(DoorKind.UNKNOWN))
    assert high(mock_pins, RED) and high(mock_pins, BUZZER)
    assert not high(mock_pins, GREEN)
    assert wait_for(lambda: not high(mock_pins, BUZZER), timeout=2.0)
    assert high(mock_pins, RED), "the beep is shorter than the light"
    assert wait_for(lambda: not high(mock_pins, RED), timeout=2.0)
    buzzer_changes = [c.state for c in mock_pins.pin(BUZZER).states]
    assert buzzer_changes.count(True) == 1, buzzer_changes
    lights.close()


def test_repeat_is_green_without_beep_and_turns_red_off(mock_pins):
    lights = open_lights(LightPins(GREEN, RED, BUZZER), light_seconds=5.0)
    assert lights is not None
    lights(event(DoorKind.NOT_LOGGED))
    assert high(mock_pins, RED)
    lights(event(DoorKind.REPEAT))
    assert high(mock_pins, GREEN) and not high(mock_pins, RED)
    assert [c.state for c in mock_pins.pin(BUZZER).states].count(True) == 1  # only the not-logged beep
    lights.close()
    assert not any(high(mock_pins, p) for p in (GREEN, RED, BUZZER))


def test_only_the_fitted_pins_are_used(mock_pins):
    lights = open_lights(LightPins(green=GREEN))
    assert lights is not None
    lights(event(DoorKind.UNKNOWN))  # no red LED, no buzzer: nothing lights, nothing fails
    assert not high(mock_pins, GREEN)
    lights(event(DoorKind.CHECKED_OUT))
    assert high(mock_pins, GREEN)
    lights.close()


def test_no_pins_means_no_lights_and_no_log(caplog):
    with caplog.at_level(logging.INFO):
        assert open_lights(LightPins()) is None
    assert caplog.records == []


def test_no_gpio_hardware_is_one_info_line(caplog, monkeypatch):
    """Off a Pi, gpiozero finds no pin library that works: one info line, no exception."""
    gpiozero = pytest.importorskip("gpiozero")
    if Path("/proc/device-tree/model").exists() and "Raspberry Pi" in Path("/proc/device-tree/model").read_text():
        pytest.skip("this machine has real GPIO")
    monkeypatch.setattr(gpiozero.Device, "pin_factory", None)
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    with caplog.at_level(logging.INFO):
        assert open_lights(LightPins(GREEN, RED)) is None
    lines = [r for r in caplog.records if r.name == "device.terminal.gpio"]
    assert [r.levelno for r in lines] == [logging.INFO]
    assert "door lights off" in lines[0].getMessage()


# --- config and wiring -----------------------------------------------------------


def test_door_config_defaults_and_pins():
    cfg = parse_config({"door": {"green_led_pin": 17, "buzzer_pin": 22, "chime": False}}, env={"HOME": "/h"})
    assert cfg.door == DoorSettings(chime=False, green_led_pin=17, buzzer_pin=22)
    assert parse_config({}, env={"HOME": "/h"}).door == DoorSettings()
    with pytest.raises(ConfigError, match=r"door.red_led_pin = 17 is already door.green_led_pin"):
        parse_config({"door": {"green_led_pin": 17, "red_led_pin": 17}}, env={"HOME": "/h"})
    with pytest.raises(ConfigError, match=r"door.buzzer_pin = 40 is out of range \(0 <= x <= 27\)"):
        parse_config({"door": {"buzzer_pin": 40}}, env={"HOME": "/h"})


def test_attach_subscribes_what_works_here(tmp_path, mock_pins):
    folder = fake_aplay(tmp_path / "bin")
    door = DoorSignals()
    closers = attach_door_outputs(DoorSettings(green_led_pin=GREEN, red_led_pin=RED), door, path=str(folder))
    assert len(closers) == 2
    door.publish(event(DoorKind.CHECKED_IN))
    assert high(mock_pins, GREEN)
    for close in closers:
        close()
    assert [Path(c[-1]).name for c in calls(folder)] == ["logged.wav"]


@pytest.mark.slow
def test_clockface_run_chimes_for_the_logged_person(tmp_path, dlib_model, monkeypatch):
    """`clockface run` on the shared clip, only Lin Manuel Miranda enrolled: his check-in plays logged.wav."""
    from tests.device.test_run import EXPECTED_IN_CLIP, cli, write_config

    people = tmp_path / "people"
    people.mkdir()
    (people / "lin_manuel_miranda").symlink_to(shared_path("faces", "lin_manuel_miranda"))
    config = write_config(tmp_path, dlib_model)
    assert cli(config, "enroll", str(people)).exit_code == 0
    folder = fake_aplay(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    result = cli(config, "run", "--source", str(shared_path("faces", "_video", "1.mp4")), "--json")
    assert result.exit_code == 0, result.output
    logged = [json.loads(line)["person"] for line in result.stdout.splitlines() if line.startswith("{")]
    assert logged == sorted(EXPECTED_IN_CLIP), result.output
    played = [Path(c[-1]).name for c in calls(folder)]
    # One check-in, one logged chime; the clip's other (not enrolled) faces are unknowns,
    # and a second track of the same person within the cooldown is a soft repeat.
    assert played.count("logged.wav") == len(logged), played
    assert "unknown.wav" in played and set(played) <= {"logged.wav", "unknown.wav", "repeat.wav"}, played
    assert played.index("logged.wav") < min((i for i, p in enumerate(played) if p == "repeat.wav"), default=99)
