"""A small web-sized portrait must enrol: faces of about 100 px, re-saved as JPEG 75.

Made from the real photos of ../shared/faces: each is downscaled so that its
detected face is 90-110 px wide and saved at JPEG quality 75, as a web page or
an HR system would hand it over. Every one must pass the enrolment rules, and
its embedding must still match its own person's other (full-size) photos
within the model's threshold whenever the full-size photo itself does: a rule that refused it would refuse a photo the
terminal can recognise.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.camera.images import read_image
from device.config import parse_config
from device.enrolment.photo_rules import EnrolRules, Outcome, examine_photo
from device.terminal.assembly import load_model
from device.vision.matcher import pairwise_distances
from gallery.layout import Photo
from tests.conftest import shared_path

TARGET_PX = 100  # the face width aimed at; 90-110 is accepted (the detector's box moves a little)


@pytest.fixture(scope="module")
def model(dlib_model, tmp_path_factory):
    config = parse_config(
        {"paths": {"data_dir": str(tmp_path_factory.mktemp("data")), "model": str(dlib_model)}}, env={}
    )
    return load_model(config)


def _small_copy(image: np.ndarray, face_px: float, out: Path) -> None:
    scale = TARGET_PX / face_px
    h, w = image.shape[:2]
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out), small, [cv2.IMWRITE_JPEG_QUALITY, 75])


def test_web_sized_portraits_enrol_and_are_recognised(model, tmp_path):
    faces = shared_path("faces")
    photos = sorted(p for p in faces.glob("*/*.jpg") if not p.parent.name.startswith("_"))
    originals: dict[Path, tuple[str, np.ndarray, float]] = {}
    for path in photos:
        found = model.pipeline.find(read_image(path), still=True, limit=1)
        if found:
            originals[path] = (path.parent.name, found[0].embedding, found[0].box.w)
    refused, unmatched, made = [], [], 0
    for path, (person, _, face_px) in originals.items():
        if face_px <= 110 * 1.05:
            continue  # already small: nothing to downscale
        out = tmp_path / f"{person}_{path.stem}.jpg"
        _small_copy(read_image(path), face_px, out)
        result = examine_photo(Photo(person, out), model.pipeline, EnrolRules())
        if result.face_px is not None and not 90 <= result.face_px <= 110:
            continue  # the detector boxed it differently: not the case under test
        made += 1
        if result.outcome is Outcome.SEVERAL_FACES:
            continue  # a detection question (a second face found), not a quality rule's refusal
        if not result.ok:
            refused.append(f"{person}/{path.name}: {result.outcome.value} ({result.detail})")
            continue
        own = [emb for p, (who, emb, _) in originals.items() if who == person and p != path]
        if not own:
            continue
        metric = model.card.metric
        if float(pairwise_distances(originals[path][1][None, :], np.stack(own), metric)[0].min()) > model.threshold:
            continue  # not recognised at full size either: nothing to prove about its small copy
        nearest = float(pairwise_distances(result.vector[None, :], np.stack(own), metric)[0].min())
        if nearest > model.threshold:
            unmatched.append(f"{person}/{path.name}: nearest own photo {nearest:.2f}")
    assert made >= 30, f"only {made} small faces made"
    assert refused == [], f"{len(refused)} of {made} web-sized portraits refused: {refused}"
    assert unmatched == [], f"{len(unmatched)} of {made} not recognised: {unmatched}"


def test_recognisable_web_portraits_of_the_second_set_are_not_refused(model):
    """faces-extra is mostly 250x250 press photos with faces of about 110 px: every
    photo there that the terminal would recognise (its nearest person among the
    other photos, within the threshold, is its own) passes the quality rules."""
    extra = shared_path("faces-extra")
    photos = sorted(p for p in extra.glob("*/*.jpg") if not p.parent.name.startswith("_"))
    found = {p: model.pipeline.find(read_image(p), still=True, limit=1) for p in photos}
    embedded = {p: f[0].embedding for p, f in found.items() if f}  # whatever the rules say
    paths = list(embedded)
    d = pairwise_distances(np.stack(list(embedded.values())), np.stack(list(embedded.values())), model.card.metric)
    np.fill_diagonal(d, np.inf)
    refused = []
    for i, path in enumerate(paths):
        nearest = int(np.argmin(d[i]))
        if paths[nearest].parent != path.parent or d[i, nearest] > model.threshold:
            continue  # not recognised: the rules may refuse it
        result = examine_photo(Photo(path.parent.name, path), model.pipeline, EnrolRules())
        if not result.ok and result.outcome is not Outcome.SEVERAL_FACES:  # detection, not a quality rule
            refused.append(f"{path.parent.name}/{path.name}: {result.outcome.value} ({result.detail})")
    assert refused == [], f"recognisable photos refused: {refused}"
