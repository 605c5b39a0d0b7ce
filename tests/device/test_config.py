"""The one TOML config: defaults, documentation, and one-line errors."""

import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from device.cli.main import main
from device.config import SECTIONS, ConfigError, allowed, field_hints, load_config, parse_config

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


def test_example_file_documents_every_range():
    """Each bounded number's range is stated in the comment just above its key."""
    lines = EXAMPLE.read_text().splitlines()
    for section, cls in SECTIONS.items():
        for key, hint in field_hints(cls).items():
            spec = allowed(hint)
            if spec.base not in (int, float) or not spec.range:
                continue
            start = next(i for i, line in enumerate(lines) if line == f"[{section}]")
            at = next(i for i in range(start, len(lines)) if re.match(rf"^#? ?{key} = ", lines[i]))
            above = []
            while at > 0 and lines[at - 1].startswith("# ") and not re.match(r"^# ?\w+ = ", lines[at - 1]):
                at -= 1
                above.append(lines[at])
            assert any(f"Range: {spec.range}" in line for line in above), f"{section}.{key}: no 'Range: {spec.range}'"


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"recognition": {"treshold": 0.5}}, "recognition.treshold = 0.5 is not a known key (known: checkout,"),
        ({"recognition": {"confirm_k": "two"}}, "recognition.confirm_k = 'two' is not an integer (1 <= x <= 32)"),
        (
            {"recognition": {"confirm_k": 5}},
            "recognition.confirm_k = 5 is out of range (1 <= x <= recognition.confirm_n = 4)",
        ),
        (
            {"recognition": {"checkout": "door"}},
            "recognition.checkout = 'door' is not one of 'none', 'last-sighting', 'exit'",
        ),
        ({"recognition": {"threshold": -1}}, "recognition.threshold = -1 is out of range (0 < x <= 2)"),
        ({"recognition": {"threshold": 1e300}}, "recognition.threshold = 1e+300 is out of range (0 < x <= 2)"),
        ({"recognition": {"threshold": float("nan")}}, "recognition.threshold = nan is out of range (0 < x <= 2)"),
        ({"recognition": {"threshold": float("inf")}}, "recognition.threshold = inf is out of range (0 < x <= 2)"),
        ({"recognition": {"threshold": "low"}}, "recognition.threshold = 'low' is not a number (0 < x <= 2"),
        ({"cameras": {}}, "[cameras] is not a known section"),
        ({"camera": {"width": 0}}, "camera.width = 0 is out of range (16 <= x <= 8192)"),
        ({"paths": {"gallery_db": 3}}, "paths.gallery_db = 3 is not a path"),
        ({"detection": {"verify": 1}}, "detection.verify = 1 is not true or false"),
        ({"detection": {"work_size": 0}}, "detection.work_size = 0 is out of range (64 <= x <= 4096)"),
        ({"detection": {"scale_factor": 1.0}}, "detection.scale_factor = 1.0 is out of range (1 < x <= 2)"),
        ({"detection": {"min_neighbors": -1}}, "detection.min_neighbors = -1 is out of range (0 <= x <= 50)"),
        (
            {"detection": {"min_size": 400}},
            "detection.min_size = 400 is out of range (1 <= x <= detection.work_size = 320)",
        ),
        ({"enrol": {"min_brightness": 300}}, "enrol.min_brightness = 300 is out of range (0 <= x <= 255)"),
        ({"preview": {"fps": 0}}, "preview.fps = 0 is out of range (0 < x <= 30)"),
        ({"preview": {"enabled": True, "host": "0.0.0.0"}}, "preview.host = '0.0.0.0' is not a loopback address"),
        ({"logs": {"timezone": "Mars/Olympus"}}, "logs.timezone = 'Mars/Olympus' is not an IANA time zone"),
        ({"logs": {"retention_days": 0}}, "logs.retention_days = 0 is out of range (1 <= x <= 36500)"),
        ({"web": {"port": 0}}, "web.port = 0 is out of range (1 <= x <= 65535)"),
    ],
)
def test_bad_values_are_one_line_errors(doc, message):
    with pytest.raises(ConfigError) as exc:
        parse_config(doc, ENV)
    assert str(exc.value).startswith(f"config: {message}") and "\n" not in str(exc.value)


def test_invalid_toml_file_names_the_file(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("[recognition\nthreshold = 1\n")
    with pytest.raises(ConfigError, match=r"^config .*c\.toml: the file is not valid TOML \("):
        load_config(bad, ENV)


def test_config_show_prints_effective_values(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n[recognition]\nthreshold = 0.5\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "config", "show"])
    assert result.exit_code == 0, result.output
    assert "threshold = 0.5" in result.output and f'data_dir = "{tmp_path}"' in result.output
    key = CliRunner().invoke(main, ["--config", str(cfg), "config", "show", "--key", "paths.gallery_db"])
    assert key.output.strip() == str(tmp_path / "gallery.db")


@pytest.mark.parametrize(
    "setting, message",
    [
        ("[recognition]\nthreshold = 'low'", "recognition.threshold = 'low' is not a number"),
        ("[recognition]\nthreshold = 1e300", "recognition.threshold = 1e+300 is out of range (0 < x <= 2)"),
        ("[recognition]\nthreshold = -1", "recognition.threshold = -1 is out of range (0 < x <= 2)"),
        ("[recognition]\nthreshold = nan", "recognition.threshold = nan is out of range (0 < x <= 2)"),
        ("[recognition]\nthreshold = inf", "recognition.threshold = inf is out of range (0 < x <= 2)"),
        ("[detection]\nwork_size = 0", "detection.work_size = 0 is out of range (64 <= x <= 4096)"),
        ("[detection]\nscale_factor = 1", "detection.scale_factor = 1 is out of range (1 < x <= 2)"),
        ("[detection]\nmin_neighbors = -3", "detection.min_neighbors = -3 is out of range (0 <= x <= 50)"),
        ("[camera]\nheight = 100000", "camera.height = 100000 is out of range (16 <= x <= 8192)"),
        ("[enrol]\ndominance = 0", "enrol.dominance = 0 is out of range (0 < x <= 1)"),
        ("[preview]\nport = 70000", "preview.port = 70000 is out of range (1 <= x <= 65535)"),
        ("[logs]\nexpected_start = 'noon'", "logs.expected_start = 'noon' is not a time like 08:30"),
        ("[web]\npassword_hash = 'secret'", "web.password_hash = 'secret' is not valid (output of"),
        ("[paths]\nmodel = 7", "paths.model = 7 is not a string"),
    ],
)
def test_cli_reports_config_errors_in_one_line(tmp_path, setting, message):
    cfg = tmp_path / "c.toml"
    cfg.write_text(setting + "\n")
    result = CliRunner().invoke(main, ["--config", str(cfg), "config", "show"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith(f"clockface: error: config {cfg}: {message}"), result.output
