"""Detection and alignment on real photos (../shared/faces), judged against dlib's own landmarks."""

import json

import cv2
import numpy as np
import pytest

from device.camera.images import ImageReadError, read_image
from device.vision.align import Aligner, pick_eye_pair, similarity_from_two_points
from device.vision.detect import FaceBox, FaceDetector, suppress_overlaps
from device.vision.model_card import ChipGeometry
from tests.conftest import require, shared_path

DLIB_CHIP = ChipGeometry((150, 150), (47.5 / 150, 47.3 / 150), (100.4 / 150, 47.4 / 150))


@pytest.fixture(scope="module")
def references():
    return json.loads(shared_path("reference", "dlib", "descriptors.json").read_text())


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def test_similarity_maps_eyes_exactly():
    m = similarity_from_two_points(np.array([[10.0, 20.0], [50.0, 60.0]]), np.array([[0.0, 0.0], [40.0, 0.0]]))
    pts = np.array([[10, 20, 1], [50, 60, 1]], float) @ m.T
    np.testing.assert_allclose(pts, [[0, 0], [40, 0]], atol=1e-9)


def test_eye_pair_rules():
    box = FaceBox(0, 0, 100, 100)
    assert pick_eye_pair([(30, 40, 15), (68, 41, 15)], box) == ((30, 40), (68, 41))
    assert pick_eye_pair([(30, 40, 15), (35, 41, 15)], box) is None  # same side
    assert pick_eye_pair([(30, 40, 15), (70, 70, 15)], box) is None  # not level
    assert pick_eye_pair([(10, 40, 15), (95, 40, 15)], box) is None  # too far apart


def test_overlapping_double_hits_collapse():
    big, inner, apart = FaceBox(0, 0, 100, 100), FaceBox(20, 40, 60, 60), FaceBox(200, 0, 90, 90)
    assert suppress_overlaps([big, inner, apart], 0.3) == [big, apart]


def test_largest_face_of_every_labelled_photo_is_the_labelled_one(references, detector):
    """The box dlib found (the labelled person) contains the centre of our largest box."""
    faces = shared_path("faces")
    for ref in references:
        boxes = detector.detect(read_image(faces / ref["image"]), still=True)
        assert boxes, f"no face in {ref['image']}"
        left, top, right, bottom = ref["box"]
        cx, cy = boxes[0].centre
        assert left - 10 <= cx <= right + 10 and top - 10 <= cy <= bottom + 10, ref["image"]


def test_no_face_photos_and_group_photos(detector):
    for path in sorted(shared_path("faces", "_noface").iterdir()):
        assert detector.detect(read_image(path), still=True) == [], path.name
    for path in sorted(shared_path("faces", "_multi").iterdir()):
        assert len(detector.detect(read_image(path), still=True)) >= 2, path.name


def test_id_badge_crop_is_found_by_padding(references, detector):
    """A photo cropped to the face alone gives Haar nothing until padded."""
    ref = references[0]
    image = read_image(shared_path("faces", ref["image"]))
    left, top, right, bottom = ref["box"]
    w = right - left
    crop = image[max(0, top - w // 8) : bottom + w // 8, max(0, left - w // 8) : right + w // 8]
    assert detector.detect(crop, still=True), "tight crop should be found on the padded retry"


def test_chips_put_dlibs_eye_centres_where_the_model_expects(references, detector):
    """Map dlib's landmark eye centres through our alignment: they should land on
    the chip template, within a few pixels for cascade-found eyes."""
    aligner = Aligner(DLIB_CHIP)
    errors = {"cascade": [], "box": []}
    for ref in references:
        image = read_image(shared_path("faces", ref["image"]))
        box = detector.detect(image, still=True)[0]
        eyes = aligner.locate_eyes(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), box)
        m = aligner.eye_transform(eyes)
        lm = np.array(ref["landmarks5"], float)
        truth = np.array([(lm[2] + lm[3]) / 2, (lm[0] + lm[1]) / 2])
        mapped = np.c_[truth, np.ones(2)] @ m.T
        template = np.array([[47.5, 47.3], [100.4, 47.4]])
        errors[eyes.source].append(np.abs(mapped - template).max())
    assert len(errors["cascade"]) >= len(references) // 2, "eye cascades should find most pairs"
    assert np.median(errors["cascade"]) < 3.0, errors["cascade"]
    assert np.median(errors["box"]) < 6.0, errors["box"]


def test_read_image_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    for path in (empty, text, tmp_path / "missing.jpg"):
        with pytest.raises(ImageReadError) as exc:
            read_image(path)
        assert path.name in str(exc.value) and "\n" not in str(exc.value)


def test_truncated_jpeg_is_unreadable(tmp_path):
    src = shared_path("faces", "angelina_jolie", "1.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(src[: len(src) // 20])
    with pytest.raises(ImageReadError):
        read_image(cut)


def test_exif_orientation_is_honoured(tmp_path):
    """A portrait stored sideways with EXIF orientation 6 decodes upright."""
    pil = require("PIL.Image", "Pillow comes with the test extra's scikit-image")
    upright = np.zeros((40, 20, 3), np.uint8)
    upright[:10] = 255  # white at the top
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # rotated 90 degrees counter-clockwise
    img = pil.fromarray(stored)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "sideways.jpg"
    img.save(path, exif=exif, quality=95)
    decoded = read_image(path)
    assert decoded.shape[:2] == (40, 20)
    assert decoded[:10].mean() > 200 and decoded[-10:].mean() < 50
