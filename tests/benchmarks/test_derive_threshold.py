"""The threshold script's maths on hand-made distances: pairs, quantiles, tail fit, the spec block."""

import argparse
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks.derive_threshold import (
    SPEC_BEGIN,
    SPEC_END,
    Pairs,
    pair_distances,
    shipped_threshold,
    spec_block,
    tail_fit_threshold,
    threshold_at_fmr,
    update_spec,
)


def test_pairs_split_every_photo_pair_by_person():
    people = ["a", "a", "b"]
    emb = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    pairs = pair_distances(people, emb, "euclidean")
    np.testing.assert_allclose(pairs.genuine, [1.0])
    np.testing.assert_allclose(pairs.impostor, [3.0, np.hypot(3.0, 1.0)])


def test_empirical_quantile_lets_exactly_k_pairs_in():
    impostor = np.arange(1, 2001) / 1000.0  # 0.001 .. 2.000
    genuine = np.array([0.005, 0.0105, 0.5])
    point = threshold_at_fmr(Pairs(genuine, impostor), 0.01)
    assert point.method == "empirical"
    assert point.threshold == pytest.approx(0.0205) and point.impostor_within == 20
    assert point.genuine_accept == pytest.approx(2 / 3)


def test_too_few_pairs_for_the_quantile_uses_the_tail_fit():
    rng = np.random.default_rng(1)
    impostor = np.sort(rng.normal(0.9, 0.1, 20_000))
    point = threshold_at_fmr(Pairs(np.array([0.3]), impostor), 1e-4)
    assert point.method == "tail fit"  # 2 pairs below 1e-4 of 20,000: too few for a quantile
    # A normal sample's tail fit recovers the normal quantile (0.9 - 3.72 x 0.1).
    assert point.threshold == pytest.approx(0.9 + 0.1 * -3.719, abs=0.02)
    assert tail_fit_threshold(impostor, 1e-2) == pytest.approx(np.quantile(impostor, 0.01), abs=0.01)


def test_the_tail_fit_follows_a_heavy_tail_that_a_whole_fit_misses():
    """A bulk far away plus a few per cent of look-alikes close in: the tail fit
    must track the look-alikes, as it does on the real photo pairs."""
    rng = np.random.default_rng(2)
    impostor = np.sort(np.concatenate([rng.normal(0.95, 0.06, 19_000), rng.normal(0.65, 0.06, 1_000)]))
    fit = tail_fit_threshold(impostor, 1e-3)
    assert fit == pytest.approx(np.quantile(impostor, 1e-3), abs=0.02)
    whole = impostor.mean() + impostor.std() * -3.09
    assert whole > fit + 0.03  # the fit of all distances would be too loose


def test_shipped_value_rounds_down_to_the_strict_side():
    point = threshold_at_fmr(Pairs(np.array([0.1]), np.arange(1, 2001) / 1000.0), 0.01)
    assert shipped_threshold(point) == 0.02
    assert shipped_threshold(point.__class__(0.01, 0.5399, "empirical", 0, 0.0, 0.0)) == 0.53


def test_update_spec_rewrites_only_its_block(tmp_path):
    spec = tmp_path / "models.py"
    spec.write_text(f"before = 1\n{SPEC_BEGIN} old\nDLIB_THRESHOLD = 0.55\n{SPEC_END}\nafter = 2\n")
    args = argparse.Namespace(sets=[Path("/x/faces")], probe_far=0.01, gallery_size=10)
    update_spec(spec_block(0.51, 0.001, "empirical 0.514 of faces", args, "2026-12-01"), spec)
    text = spec.read_text()
    assert text.startswith("before = 1\n") and text.endswith("after = 2\n")
    assert "DLIB_THRESHOLD = 0.51\n" in text and "0.55" not in text and "2026-12-01" in text
    namespace: dict = {}
    exec(text, namespace)
    assert namespace["DLIB_THRESHOLD"] == 0.51
