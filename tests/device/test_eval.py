"""`clockface eval` on the real photo set: the accuracy acceptance numbers and the protocol's arithmetic."""

import json

import pytest
from click.testing import CliRunner

from device.cli.main import main
from device.evaluate import Trials, best_threshold, people_folders, score
from tests.conftest import shared_path


def test_score_counts_outcomes_and_false_accepts():
    trials = Trials(
        genuine=[("ann", 0.3), ("bob", 0.4), ("ann", 0.9), (None, float("inf"))],
        genuine_truth=["ann", "ann", "ann", "ann"],
        impostor=[0.35, 0.8, float("inf"), 0.7],
    )
    outcomes, fa = score(trials, 0.5)
    assert dict(outcomes) == {"correct": 1, "wrong": 1, "rejected": 1, "no face": 1}
    assert fa == 1
    t, tar = best_threshold(trials, max_far=0.0)
    assert t is not None and t < 0.35 and tar == 0.25


def test_people_folders_skip_underscore_folders(tmp_path):
    for name in ("ann", "_video", ".hidden"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "1.jpg").write_bytes(b"x")
    (tmp_path / "ann" / "notes.txt").write_text("x")
    assert list(people_folders(tmp_path)) == ["ann"]
    assert [p.name for p in people_folders(tmp_path)["ann"]] == ["1.jpg"]


@pytest.mark.slow
def test_eval_on_shared_faces_meets_acceptance(tmp_path, dlib_model):
    faces = shared_path("faces")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path}"\nmodel = "{dlib_model}"\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "eval", str(faces), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    print(json.dumps({k: v for k, v in report.items() if k != "false_accept_details"}))
    assert report["people_enrolled"] == 13 and report["strangers"] == 6
    assert report["genuine_probes"] == 38 and report["impostor_trials"] == 49
    assert report["enrolment_failures"] == []
    assert report["true_accept_rate"] >= 0.92
    assert report["false_accept_rate"] <= 0.03
    assert report["genuine_outcomes"]["wrong"] == 0  # a wrong-person record is the worst outcome
    assert report["threshold"] == pytest.approx(0.55)
