"""Matching maths on hand-made vectors: pure functions, exact answers."""

from types import SimpleNamespace

import numpy as np
import pytest

from device.vision.matcher import Matcher, combine_templates, one_row_per_person


def test_euclidean_nearest_within_threshold():
    m = Matcher(["ann", "bob"], np.array([[0.0, 0.0], [1.0, 0.0]]), "euclidean", 0.5)
    hit = m.match(np.array([0.9, 0.1]))
    assert hit.person == "bob" and hit.distance == pytest.approx(np.hypot(0.1, 0.1), abs=1e-6)


def test_beyond_threshold_is_unknown_but_nearest_is_reported():
    m = Matcher(["ann"], np.array([[0.0, 0.0]]), "euclidean", 0.5)
    miss = m.match(np.array([3.0, 4.0]))
    assert miss.person is None and miss.nearest == "ann" and miss.distance == pytest.approx(5.0)
    assert not miss.known


def test_cosine_ignores_scale():
    m = Matcher(["ann", "bob"], np.array([[1.0, 0.0], [0.0, 2.0]]), "cosine", 0.1)
    assert m.match(np.array([0.0, 100.0])).person == "bob"
    assert m.match(np.array([1.0, 1.0])).person is None  # 45 degrees: distance 0.29


def test_several_rows_per_person_and_exclusion():
    m = Matcher(["ann", "ann", "bob"], np.array([[0.0, 0.0], [5.0, 5.0], [1.0, 1.0]]), "euclidean", 10.0)
    assert m.match(np.array([4.9, 5.0])).person == "ann"
    assert m.match(np.array([4.9, 5.0]), exclude="ann").person == "bob"


def test_matches_brute_force_on_random_gallery():
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(200, 128)).astype(np.float32)
    names = [f"p{i}" for i in range(200)]
    query = rng.normal(size=128).astype(np.float32)
    for metric in ("euclidean", "cosine"):
        m = Matcher(names, gallery, metric, 100.0)
        if metric == "euclidean":
            expected = np.linalg.norm(gallery - query, axis=1)
        else:
            expected = 1 - gallery @ query / np.linalg.norm(gallery, axis=1) / np.linalg.norm(query)
        np.testing.assert_allclose(m.distances(query), expected, rtol=1e-4, atol=1e-4)
        assert m.match(query).person == names[int(np.argmin(expected))]


def test_empty_gallery_matches_nobody():
    m = Matcher([], np.zeros((0, 4)), "cosine", 0.5)
    assert m.match(np.ones(4)).person is None


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError):
        Matcher(["a"], np.ones((1, 2)), "manhattan", 1.0)


def test_nearest_template_per_person_decides_and_a_far_photo_does_not_hurt():
    """With a person's rows kept apart (the "nearest" rule) the match is the nearest of
    their templates: a second, far-away photo of ann costs her nothing."""
    m = Matcher(["ann", "ann", "bob"], np.array([[0.0, 0.0], [9.0, 9.0], [0.0, 0.8]]), "euclidean", 0.5)
    hit = m.match(np.array([0.0, 0.3]))
    assert hit.person == "ann" and hit.distance == pytest.approx(0.3)


def test_mean_template_is_the_mean_direction_at_the_mean_length():
    a, b = np.array([2.0, 0.0]), np.array([0.0, 4.0])
    (mean,) = combine_templates([a, b], "mean")
    np.testing.assert_allclose(mean, 3.0 * np.array([1.0, 1.0]) / np.sqrt(2), rtol=1e-6)
    assert [v.tolist() for v in combine_templates([a, b], "nearest")] == [a.tolist(), b.tolist()]
    assert combine_templates([a], "mean")[0] is a  # one photo: the template itself


def test_one_row_per_person_keeps_order_and_single_photos():
    names, rows = one_row_per_person(["ann", "ann", "bob"], np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]], np.float32))
    assert names == ["ann", "bob"]
    np.testing.assert_allclose(rows, [[np.sqrt(0.5), np.sqrt(0.5)], [0.0, 2.0]], rtol=1e-6)
    empty_names, empty = one_row_per_person([], np.zeros((0, 3), np.float32))
    assert empty_names == [] and empty.shape == (0, 3)


def test_the_terminal_matches_the_mean_of_a_persons_photos(tmp_path):
    """A real gallery file with two photos of ann: `clockface run`'s matcher holds one row for her."""
    from device.terminal.assembly import load_matcher
    from gallery.store import ModelBinding, Template, write_gallery
    from tests.conftest import make_config

    config = make_config(tmp_path / "data", tmp_path / "m.tflite")
    binding = ModelBinding("m", "0" * 64, 2)
    write_gallery(
        config.paths.gallery,
        binding,
        [
            Template("ann", "1.jpg", np.array([1.0, 0.0], np.float32)),
            Template("ann", "2.jpg", np.array([0.0, 1.0], np.float32)),
            Template("bob", "1.jpg", np.array([-1.0, 0.0], np.float32)),
        ],
    )
    model = SimpleNamespace(binding=binding, card=SimpleNamespace(embedding_size=2, metric="euclidean"), threshold=0.5)
    matcher = load_matcher(config, model)
    assert matcher.names == ["ann", "bob"]
    # Halfway between ann's photos: 0.29 from their mean, 0.71 from either photo.
    assert matcher.match(np.array([0.5, 0.5])).distance == pytest.approx(1 - np.sqrt(0.5), abs=1e-6)
