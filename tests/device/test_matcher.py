"""Matching maths on hand-made vectors: pure functions, exact answers."""

import numpy as np
import pytest

from device.vision.matcher import Matcher


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
