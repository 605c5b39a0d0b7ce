"""The one alignment: 5 landmarks -> least-squares similarity -> chip, on synthetic points and images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from device.vision.align import Aligner, Landmarks, fit_similarity, template_pixels
from device.vision.model_card import ChipGeometry

CHIP = ChipGeometry(
    size=(150, 150),
    landmarks=((0.3133, 0.2967), (0.6733, 0.3), (0.4867, 0.5133), (0.3267, 0.6633), (0.66, 0.66)),
)


def similarity(scale: float, degrees: float, tx: float, ty: float) -> np.ndarray:
    a = scale * np.exp(1j * np.radians(degrees))
    return np.array([[a.real, -a.imag, tx], [a.imag, a.real, ty]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.c_[points, np.ones(len(points))] @ matrix.T


@pytest.mark.parametrize("scale, degrees, tx, ty", [(1, 0, 0, 0), (0.37, 23, -40, 12.5), (2.9, -170, 300, -7)])
def test_a_known_similarity_is_recovered_exactly(scale, degrees, tx, ty):
    src = template_pixels(CHIP) * 3.1 + [17, 250]
    truth = similarity(scale, degrees, tx, ty)
    fit = fit_similarity(src, apply(truth, src))
    np.testing.assert_allclose(fit.matrix, truth, atol=1e-9)
    assert fit.max_residual < 1e-9
    assert fit.scale == pytest.approx(scale) and fit.angle_degrees == pytest.approx(degrees)


def test_noisy_points_give_the_least_squares_fit_and_its_residual():
    rng = np.random.default_rng(11)
    src = template_pixels(CHIP)
    dst = apply(similarity(1.7, 12, 5, -9), src) + rng.normal(0, 2.0, src.shape)
    fit = fit_similarity(src, dst)
    np.testing.assert_allclose(fit.residuals, np.linalg.norm(apply(fit.matrix, src) - dst, axis=1), atol=1e-9)
    assert 0 < fit.mean_residual <= fit.max_residual
    best = float((fit.residuals**2).sum())
    for _ in range(200):  # no nearby similarity fits better
        a, b, tx, ty = rng.normal(0, 1e-3, 4) * [1, 1, 100, 100]
        m = fit.matrix + np.array([[a, -b, tx], [b, a, ty]])
        assert float(((apply(m, src) - dst) ** 2).sum()) >= best - 1e-9


def test_mirrored_points_are_not_fitted_by_a_reflection():
    src = template_pixels(CHIP)
    mirrored = src * [-1, 1]
    fit = fit_similarity(src, mirrored)
    assert np.linalg.det(fit.matrix[:, :2]) > 0  # a rotation and scale, never a flip
    assert fit.max_residual > 10


def test_coincident_landmarks_are_refused():
    with pytest.raises(ValueError, match="coincide"):
        fit_similarity(np.full((5, 2), 3.0), template_pixels(CHIP))


def test_chip_puts_the_landmarks_on_the_template():
    """Draw five dots where a rotated, scaled face's landmarks are; the chip shows them at the template."""
    template = template_pixels(CHIP)
    face_to_image = similarity(3.4, 17, 400, 120)  # a large face (downscaled through INTER_AREA), tilted
    points = apply(face_to_image, template)
    image = np.zeros((900, 1100, 3), np.uint8)
    for x, y in points:
        cv2.circle(image, (round(x), round(y)), 12, (255, 255, 255), -1, lineType=cv2.LINE_AA)
    chip = Aligner(CHIP).chip(image, Landmarks(points, "mtcnn"))
    assert chip.shape == (150, 150, 3)
    grey = chip[..., 0].astype(np.float64)
    for x, y in template:
        x0, y0 = int(x) - 8, int(y) - 8
        window = grey[y0 : y0 + 17, x0 : x0 + 17]
        ys, xs = np.mgrid[y0 : y0 + 17, x0 : x0 + 17]
        centre = (float((xs * window).sum() / window.sum()), float((ys * window).sum() / window.sum()))
        assert np.hypot(centre[0] - x, centre[1] - y) < 0.5, (centre, (x, y))


def test_stills_are_searched_small_but_never_lose_an_enrollable_face():
    from device.vision.faces import SMALLEST_STILL_FACE_PX, STILL_MAX_SIDE, still_scale

    assert still_scale((300, 250, 3), 20) == 1.0  # a web portrait: as it is
    assert still_scale((1000, 800, 3), 20) == pytest.approx(0.64)  # longest side to 640
    scale = still_scale((2400, 3000, 3), 20)  # a 7 MP photo: a 60-px face must stay 20 px
    assert scale == pytest.approx(20 / SMALLEST_STILL_FACE_PX) and 3000 * scale > 640
    scale = still_scale((6000, 8000, 3), 20)  # a 48 MP photo: at most STILL_MAX_SIDE, memory bounded
    assert 8000 * scale == pytest.approx(STILL_MAX_SIDE) and 0.05 * 8000 * scale > 20
