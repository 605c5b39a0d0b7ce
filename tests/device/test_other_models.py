"""`enroll` and `run` work unchanged with a keras-vggface model selected in the
config, and a gallery enrolled with one model is refused by another.

The VGG16 architecture is used (the quickest to convert) with seeded random
weights: the weights make recognition meaningless, but every part of the path
(224x224 BGR chips from the sidecar, 512-d cosine matching) is the real one.
"""

import importlib.util
import json
import shutil

import pytest
from click.testing import CliRunner

from device.cli.main import main
from tests.conftest import require, shared_path, skip_unless_ci

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vggface_model(tmp_path_factory, models_dir):
    require("tensorflow", "conversion needs pip install '.[converter]'")
    require("tf_keras", "keras-vggface needs tf-keras (setup.sh installs it)")
    if importlib.util.find_spec("keras_vggface") is None:
        skip_unless_ci("keras-vggface is not installed: pip install '.[converter]'")
    from converter.cli import convert
    from converter.vggface import SPECS
    from tests.converter.seeded import write_seeded_weights

    folder = tmp_path_factory.mktemp("vggface")
    weights = folder / "seeded_vgg16.h5"
    write_seeded_weights(SPECS["vggface-vgg16"], weights, seed=7)
    result = CliRunner().invoke(convert, ["vggface-vgg16", "--weights", str(weights), "-o", str(folder)])
    assert result.exit_code == 0, result.output
    for mtcnn in models_dir.glob("mtcnn*"):  # stills and frame landmarks need MTCNN beside the model
        shutil.copy(mtcnn, folder / mtcnn.name)
    return folder / "vggface-vgg16.tflite"


def config_for(tmp_path, model):
    path = tmp_path / f"{model.stem}.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\nmodel = "{model}"\n')
    (tmp_path / "data").mkdir(exist_ok=True)
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for person in ("angelina_jolie", "jack_dorsey"):
        shutil.copy(shared_path("faces", person, "1.jpg"), folder / f"{person}.jpg")
    return folder


def test_enroll_and_run_with_a_vggface_model(tmp_path, vggface_model, photos):
    config = config_for(tmp_path, vggface_model)
    enrolled = CliRunner().invoke(main, ["--config", str(config), "enroll", str(photos), "--json"])
    assert enrolled.exit_code == 0, enrolled.output
    people = CliRunner().invoke(main, ["--config", str(config), "gallery", "list", "--json"])
    listed = json.loads(people.stdout)
    assert sorted(p["name"] for p in listed) == ["Angelina Jolie", "Jack Dorsey"]
    run = CliRunner().invoke(main, ["--config", str(config), "run", "--source", str(photos)])
    assert run.exit_code == 0, run.output
    assert "2 frames from folder:photos" in run.output


def test_a_gallery_from_one_model_is_refused_by_another(tmp_path, vggface_model, dlib_model, photos):
    vgg, dlib = config_for(tmp_path, vggface_model), config_for(tmp_path, dlib_model)
    assert CliRunner().invoke(main, ["--config", str(vgg), "enroll", str(photos)]).exit_code == 0
    refused = CliRunner().invoke(main, ["--config", str(dlib), "run", "--source", str(photos)])
    assert refused.exit_code == 1
    assert "enrolled with model vggface-vgg16" in refused.output and "clockface enroll" in refused.output
    # and the other way round, after re-enrolling with dlib
    assert CliRunner().invoke(main, ["--config", str(dlib), "enroll", str(photos)]).exit_code == 0
    back = CliRunner().invoke(main, ["--config", str(vgg), "run", "--source", str(photos)])
    assert back.exit_code == 1 and "enrolled with model dlib-resnet-v1" in back.output
