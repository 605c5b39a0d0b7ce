"""The one TOML config: defaults, documentation, and one-line errors."""

import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from device.cli.main import main
from device.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "device" / "clockface.example.toml"
ENV = {"HOME": "/home/someone"}


def test_example_file_states_exactly_the_defaults():
    documented = parse_config(tomllib.loads(EXAMPLE.read_text()), ENV)
    assert documented == parse_config({}, ENV)


def test_example_file_documents_every_key():
    text = EXAMPLE.read_text()
    cfg = parse_config({}, ENV)
    for section, values in cfg.to_toml_dict().items():
        assert f"[{section}]" in text
        for key in values:
            assert re.search(rf"^#? ?{key} = ", text, re.M), f"{section}.{key} is not documented in {EXAMPLE.name}"


def test_default_paths_follow_xdg():
    cfg = parse_config({}, {"HOME": "/home/a", "XDG_DATA_HOME": "/xdg"})
    assert cfg.paths.data_dir == Path("/xdg/clockface")
    assert cfg.paths.model_path == Path("/xdg/clockface/models/dlib-resnet-v1.tflite")
    assert cfg.paths.gallery == Path("/xdg/clockface/gallery.db")
    assert cfg.paths.attendance == Path("/xdg/clockface/attendance.db")


def test_model_may_be_a_path():
    cfg = parse_config({"paths": {"model": "/opt/m/x.tflite"}}, ENV)
    assert cfg.paths.model_path == Path("/opt/m/x.tflite")


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"recognition": {"treshold": 0.5}}, "unknown key recognition.treshold"),
        ({"recognition": {"confirm_k": "two"}}, "recognition.confirm_k must be int"),
        ({"cameras": {}}, "unknown section [cameras]"),
        ({"logs": {"timezone": "Mars/Olympus"}}, "not an IANA time zone"),
        ({"detection": {"verify": 1}}, "detection.verify must be bool"),
    ],
)
def test_bad_values_are_one_line_errors(doc, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(doc, ENV)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_invalid_toml_file_names_the_file(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("[recognition\nthreshold = 1\n")
    with pytest.raises(ConfigError, match=r"c\.toml is not valid TOML"):
        load_config(bad, ENV)


def test_config_show_prints_effective_values(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n[recognition]\nthreshold = 0.5\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "config", "show"])
    assert result.exit_code == 0, result.output
    assert "threshold = 0.5" in result.output and f'data_dir = "{tmp_path}"' in result.output
    key = CliRunner().invoke(main, ["--config", str(cfg), "config", "show", "--key", "paths.gallery_db"])
    assert key.output.strip() == str(tmp_path / "gallery.db")


def test_cli_reports_config_errors_in_one_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[recognition]\nthreshold = 'low'\n")
    result = CliRunner().invoke(main, ["--config", str(cfg), "config", "show"])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "recognition.threshold" in result.output
