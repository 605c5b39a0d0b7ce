"""The motion gate: a still, noisy entrance keeps the detector off; a person
entering opens it on their first frame; tracked faces keep it open."""

import cv2
import numpy as np
import pytest

from device.config import ConfigError, parse_config
from device.terminal.motion import MotionGate, MotionSettings, changed_fraction, thumbnail
from tests.conftest import make_config, shared_path

H, W = 480, 640


def hall() -> np.ndarray:
    """The demo's empty entrance: a gradient wall with some texture."""
    yy, xx = np.mgrid[0:H, 0:W]
    return (60 + 40 * (yy / H) + 10 * np.sin(xx / 37.0))[..., None].repeat(3, axis=2)


def noisy(scene: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Sensor (luma) noise: every frame of a still scene differs a little everywhere."""
    return np.clip(scene + rng.normal(0, sigma, scene.shape[:2])[..., None], 0, 255).astype(np.uint8)


def with_face(scene: np.ndarray, x: int, size: int = 200) -> np.ndarray:
    """The scene with a real face photo at column x (negative: partly outside the frame's left edge)."""
    face = cv2.resize(cv2.imread(str(shared_path("faces", "angelina_jolie", "1.jpg"))), (size, size))
    out = scene.copy()
    out[140 : 140 + size, max(x, 0) : x + size] = face[:, max(-x, 0) :]
    return out


@pytest.mark.parametrize("sigma", [2.0, 8.0, 12.0])
def test_a_still_noisy_entrance_keeps_the_gate_closed(sigma):
    rng = np.random.default_rng(1)
    gate = MotionGate(MotionSettings(hold_frames=3))
    scene = hall()
    opened = [gate.is_open(noisy(scene, rng, sigma), tracking=False) for _ in range(40)]
    assert opened[0]  # nothing to compare the first frame with
    assert not any(opened[4:]), f"noise of sigma {sigma} read as motion ({gate.last_fraction:.4f} changed)"


def test_a_brightness_step_is_not_motion():
    rng = np.random.default_rng(2)
    gate = MotionGate(MotionSettings(hold_frames=0))
    gate.is_open(noisy(hall(), rng, 5), tracking=False)
    assert not gate.is_open(noisy(hall() + 12, rng, 5), tracking=False)  # exposure or mains flicker


def test_a_person_entering_opens_the_gate_on_their_first_frame():
    rng = np.random.default_rng(3)
    gate = MotionGate(MotionSettings(hold_frames=0))
    scene = hall()
    for _ in range(10):
        gate.is_open(noisy(scene, rng, 8), tracking=False)
    assert not gate.is_open(noisy(scene, rng, 8), tracking=False)
    # Only a 40-px strip of the face has come into view at the frame's left edge.
    assert gate.is_open(noisy(with_face(scene, -160, 200), rng, 8), tracking=False)


def test_the_gate_stays_open_for_hold_frames_after_motion_then_closes():
    gate = MotionGate(MotionSettings(hold_frames=2))
    scene = hall().astype(np.uint8)
    frames = [scene] * 3 + [with_face(scene, 100)] * 5
    assert [gate.is_open(f, tracking=False) for f in frames] == [True, True, True, True, True, True, False, False]


def test_tracked_faces_keep_the_gate_open_while_the_scene_is_still():
    gate = MotionGate(MotionSettings(hold_frames=0))
    still = with_face(hall(), 200).astype(np.uint8)
    gate.is_open(still, tracking=False)
    assert not gate.is_open(still, tracking=False)
    assert all(gate.is_open(still, tracking=True) for _ in range(5))


def test_disabled_gate_is_always_open():
    gate = MotionGate(MotionSettings(enabled=False))
    still = hall().astype(np.uint8)
    assert all(gate.is_open(still, tracking=False) for _ in range(5))


def test_changed_fraction_counts_pixels_beyond_the_noise_level():
    a = np.zeros((10, 10), np.int16)
    b = a.copy()
    b[:2, :] = 50  # 20% of the thumbnail changed
    b[5, 5] = 5  # within the noise level
    assert changed_fraction(a, b, 8.0) == pytest.approx(0.2)
    assert thumbnail(np.zeros((480, 640, 3), np.uint8), 80).shape == (60, 80)


def test_motion_settings_come_from_the_config_with_their_ranges(tmp_path):
    config = parse_config({"motion": {"threshold": 0.02, "hold_frames": 0}}, env={})
    assert config.motion == MotionSettings(threshold=0.02, hold_frames=0)
    with pytest.raises(ConfigError, match=r"motion.threshold = 2 is out of range \(0 < x <= 1\)"):
        parse_config({"motion": {"threshold": 2}}, env={})


def test_recogniser_skips_detection_on_still_frames_and_still_recognises_a_person_standing_still(tmp_path, dlib_model):
    """Real model, real detector: the empty hall costs no detection after its first
    frame; a person who walks in and then stands still is embedded until decided."""
    from device.enrolment.photo_rules import examine_photo
    from device.terminal.assembly import load_matcher, load_model
    from device.terminal.recognise import Recogniser
    from device.terminal.tracking import TrackerSettings
    from gallery.layout import Photo
    from gallery.store import Template, write_gallery

    config = make_config(tmp_path / "data", dlib_model, motion={"hold_frames": 0})
    model = load_model(config)
    r = examine_photo(
        Photo("Angelina Jolie", shared_path("faces", "angelina_jolie", "2.jpg")), model.pipeline, config.enrol
    )
    write_gallery(config.paths.gallery, model.binding, [Template(r.person, "2.jpg", r.embedding)])
    recogniser = Recogniser(
        model.pipeline, load_matcher(config, model), TrackerSettings(confirm_k=2, confirm_n=4), 40, config.motion
    )
    rng = np.random.default_rng(4)
    scene = hall()
    standing = with_face(scene, 220, 220)
    frames = [noisy(scene, rng, 6) for _ in range(20)] + [noisy(standing, rng, 6) for _ in range(6)]
    decisions = [d for i, f in enumerate(frames) for d in recogniser.process(f, i)]
    assert recogniser.stats.still == 19  # every empty frame but the first
    assert [d.person for d in decisions] == ["Angelina Jolie"]
    assert recogniser.stats.embeddings >= 2  # the track stayed open after the person stopped moving
