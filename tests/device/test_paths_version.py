"""Default paths (device/paths.py) and the version string: one source each."""

import subprocess
import sys
import tomllib
from pathlib import Path

from click.testing import CliRunner

from device import paths
from device.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def test_relative_xdg_values_are_ignored_like_the_spec_says():
    env = {"HOME": "/h", "XDG_DATA_HOME": "rel", "XDG_CACHE_HOME": "", "XDG_CONFIG_HOME": "also/rel"}
    assert paths.data_dir(env) == Path("/h/.local/share/clockface")
    assert paths.weights_cache_dir(env) == Path("/h/.cache/clockface/weights")
    assert paths.user_config_file(env) == Path("/h/.config/clockface/clockface.toml")
    assert paths.data_dir({"HOME": "/h", "XDG_DATA_HOME": "/x"}) == Path("/x/clockface")


def test_config_file_search_order(tmp_path):
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    user = tmp_path / "cfg" / "clockface" / "clockface.toml"
    found = paths.find_config_file(env)
    assert found is None or found == paths.SYSTEM_CONFIG  # nothing of the user's yet
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert paths.find_config_file(env) == user
    named = tmp_path / "missing.toml"  # an explicit $CLOCKFACE_CONFIG wins even when absent: a typo is an error
    assert paths.find_config_file({**env, "CLOCKFACE_CONFIG": str(named)}) == named


def test_databases_and_password_file_share_the_data_dir():
    data = paths.data_dir({"HOME": "/h"})
    assert paths.attendance_db(data) == Path("/h/.local/share/clockface/attendance.db")
    assert paths.web_password_file(paths.attendance_db(data)) == data / "web-password"
    assert paths.models_dir(data) == data / "models"


def test_version_of_an_uninstalled_source_tree_is_read_from_its_pyproject(tmp_path):
    """No hard-coded version: a tree without installed metadata reports its pyproject's version."""
    (tmp_path / "device").mkdir()
    (tmp_path / "device" / "__init__.py").write_text((REPO / "device" / "__init__.py").read_text())
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "clockface"\nversion = "9.8.7"\n')
    # -S: no site-packages, so the clockface installed in the venv cannot answer instead.
    code = "import device; print(device.__version__)"
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "9.8.7"
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert CliRunner().invoke(main, ["--version"]).output.strip() == f"clockface, version {declared}"
