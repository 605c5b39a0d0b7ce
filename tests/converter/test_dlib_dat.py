"""The dlib .dat reader and the convert command's error paths: no TensorFlow needed here."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from converter.cli import convert, default_models_dir
from converter.dlib_dat import AddPrev, Affine, Conv, Cursor, DatFormatError, Fc, Pool, Skip, Tag, parse_dat, read_dat
from converter.models import DLIB_THRESHOLD, get_spec
from converter.tflite_export import ExportCheckError, FidelityLimits, compare_outputs, write_model
from device.vision.model_card import ChipGeometry, Normalisation, load_card
from tests.conftest import skip_unless_ci

REPO_ROOT = Path(__file__).resolve().parents[2]
DAT_SIZE = 22_466_066


def pack(value: int) -> bytes:
    """dlib packed integer, written independently of the reader under test."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def pack_str(text: str) -> bytes:
    return pack(len(text)) + text.encode("ascii")


def pack_float(value: float) -> bytes:
    mantissa, exponent = math.frexp(value)  # value = mantissa * 2**exponent, 0.5 <= |mantissa| < 1
    m = int(mantissa * 2**53)
    return pack(m) + pack(exponent - 53)


def pack_tensor(array: np.ndarray) -> bytes:
    shape = [*array.shape, 1, 1, 1, 1][:4]
    return pack(2) + b"".join(pack(d) for d in shape) + np.asarray(array, "<f4").tobytes()


def assert_one_line(message: str) -> None:
    assert message and "\n" not in message.strip(), message


# --------------------------------------------------------------------------- primitives


@pytest.mark.parametrize(
    "raw, value",
    [
        (b"\x01\x00", 0),
        (b"\x01\x01", 1),
        (b"\x02\x80\x12", 4736),
        (b"\x81\x05", -5),
        (b"\x01\x96", 150),
        (b"\x08\xff\xff\xff\xff\xff\xff\xff\x7f", 2**63 - 1),
        (b"\x00", 0),  # a zero-length magnitude is zero too
    ],
)
def test_packed_int_decoding(raw: bytes, value: int) -> None:
    cur = Cursor(raw)
    assert cur.int("test") == value
    assert cur.remaining == 0


@pytest.mark.parametrize("value", [0, 1, 2, 127, 128, 4736, -1, -4736, 2**40 + 3])
def test_packed_int_roundtrip_with_independent_encoder(value: int) -> None:
    assert Cursor(pack(value)).int("test") == value


def test_packed_int_rejects_foreign_control_byte() -> None:
    with pytest.raises(DatFormatError, match=r"at byte offset 0, found control byte 0x89") as err:
        Cursor(b"\x89PNG").int("version")
    assert err.value.offset == 0


def test_packed_int_truncated() -> None:
    with pytest.raises(DatFormatError, match=r"truncated.*byte offset 1"):
        Cursor(b"\x04\x01\x02").int("n")


def test_float_decoding_from_file_bytes() -> None:
    # loss_metric_2's margin and threshold, as the real file stores them (float32 0.04 and 0.6).
    cur = Cursor(bytes.fromhex("030ad7a3811c") + bytes.fromhex("039a99998118"))
    assert cur.float("margin") == pytest.approx(0.04, abs=1e-8)
    assert cur.float("threshold") == float(np.float32(0.6))


@pytest.mark.parametrize("value", [0.0, 1.0, -2.5, 122.782, 1e-30, 3.4e38])
def test_float_roundtrip(value: float) -> None:
    assert Cursor(pack_float(value)).float("x") == value


def test_float_special_exponents() -> None:
    assert Cursor(pack(0) + pack(32000)).float("x") == math.inf
    assert Cursor(pack(0) + pack(32001)).float("x") == -math.inf
    assert math.isnan(Cursor(pack(0) + pack(32002)).float("x"))


def test_string_and_bool_decoding() -> None:
    cur = Cursor(pack_str("relu_") + b"10")
    assert cur.string("tag") == "relu_"
    assert cur.bool("a") is True and cur.bool("b") is False
    with pytest.raises(DatFormatError, match=r"'0' or '1'.*offset 0"):
        Cursor(b"\x01").bool("flag")


def test_string_too_long_is_rejected_not_allocated() -> None:
    with pytest.raises(DatFormatError, match=r"short string.*byte offset 0"):
        Cursor(pack(10**9) + b"abc").string("layer tag", max_len=64)


def test_tensor_decoding_is_a_view_in_order() -> None:
    data = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)
    cur = Cursor(pack_tensor(data) + pack(1) + pack(2) + pack(3) + pack(4) + pack(5))
    out = cur.tensor("t")
    assert out.shape == (1, 2, 3, 1) and out.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(out, data)
    assert cur.alias_tensor("a") == (2, 3, 4, 5)


def test_tensor_truncated_data() -> None:
    raw = pack_tensor(np.ones((1, 4, 1, 1), np.float32))[:-3]
    with pytest.raises(DatFormatError, match=r"truncated file: expected 16 bytes of t tensor data \(1, 4, 1, 1\)"):
        Cursor(raw).tensor("t")


def test_tensor_wrong_version() -> None:
    with pytest.raises(DatFormatError, match="t tensor version 2 at byte offset 0, found 3"):
        Cursor(pack(3)).tensor("t")


# --------------------------------------------------------------------------- the real file


def test_real_file_structure(dat_path: Path) -> None:
    net = read_dat(dat_path)
    assert net.size_bytes == DAT_SIZE
    assert net.count(Conv) == 29 and net.count(Affine) == 29
    assert net.num_params == 5_614_592
    assert net.embedding_size == 128
    assert (net.input.rows, net.input.cols) == (150, 150)
    assert np.allclose(net.input.mean, (122.782, 117.001, 104.298), atol=1e-4)
    assert net.loss.distance_threshold == pytest.approx(0.6)
    first, last = net.layers[0], net.layers[-1]
    assert (
        isinstance(first, Conv)
        and first.filters.shape == (32, 3, 7, 7)
        and first.stride == (2, 2)
        and first.pad == (0, 0)
    )
    assert isinstance(last, Fc) and last.weights.shape == (256, 128) and last.bias is None
    pools = [layer for layer in net.layers if isinstance(layer, Pool)]
    assert [p.kind for p in pools] == ["max", "avg", "avg", "avg", "avg", "avg"] and pools[-1].is_global
    # 4 downsampling blocks (tag2 + skip1 + avg pool + add_prev2), 10 plain residual blocks
    assert sum(isinstance(layer, Skip) for layer in net.layers) == 4
    assert sum(isinstance(layer, AddPrev) and layer.tag == 2 for layer in net.layers) == 4
    assert sum(isinstance(layer, AddPrev) and layer.tag == 1 for layer in net.layers) == 10
    assert sum(isinstance(layer, Tag) for layer in net.layers) == 18
    strided = [c for c in net.layers if isinstance(c, Conv) and c.stride == (2, 2)]
    assert len(strided) == 5 and all(c.pad == (0, 0) for c in strided)
    assert all(c.pad == (1, 1) for c in net.layers if isinstance(c, Conv) and c.stride == (1, 1))


@pytest.mark.parametrize("keep", [0, 1, 5, 40, 300, 19_751, DAT_SIZE // 2, DAT_SIZE - 1])
def test_truncated_file(dat_path: Path, tmp_path: Path, keep: int) -> None:
    cut = tmp_path / "cut.dat"
    with open(dat_path, "rb") as fh:
        cut.write_bytes(fh.read(keep))
    with pytest.raises(DatFormatError) as err:
        read_dat(cut)
    message = str(err.value)
    assert_one_line(message)
    assert message.startswith("cut.dat: ") and "byte offset" in message
    assert "truncated" in message


def test_trailing_bytes(dat_path: Path) -> None:
    with pytest.raises(DatFormatError, match=f"end of file at byte offset {DAT_SIZE}, found 2 more bytes"):
        parse_dat(dat_path.read_bytes() + b"\x01\x00")


def test_foreign_dlib_file_shape_predictor(dat_path: Path) -> None:
    foreign = dat_path.with_name("shape_predictor_5_face_landmarks.dat")
    if not foreign.is_file():
        skip_unless_ci(f"{foreign} not installed (it comes with face_recognition_models)")
    with pytest.raises(DatFormatError) as err:
        read_dat(foreign)
    assert_one_line(str(err.value))
    assert "byte offset" in str(err.value)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x89PNG\r\n\x1a\n" + bytes(100),
        b"hello, this is not a dlib network\n",
        pack(1) + pack_str("loss_multiclass_log_"),
    ],
)
def test_foreign_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "foreign.dat"
    path.write_bytes(content)
    with pytest.raises(DatFormatError) as err:
        read_dat(path)
    assert_one_line(str(err.value))
    assert "expected" in str(err.value) and "byte offset" in str(err.value)


def test_wrong_loss_tag_names_it(tmp_path: Path, dat_path: Path) -> None:
    data = dat_path.read_bytes().replace(b"loss_metric_2", b"loss_metric_9", 1)
    with pytest.raises(
        DatFormatError, match=r"expected loss layer 'loss_metric_2' at byte offset 2, found 'loss_metric_9'"
    ):
        parse_dat(data)


def test_unknown_layer_tag_names_it_and_its_offset(dat_path: Path) -> None:
    data = dat_path.read_bytes()
    at = data.index(b"relu_")
    with pytest.raises(DatFormatError, match=rf"expected a layer tag .* at byte offset {at - 2}, found 'reluX'"):
        parse_dat(data.replace(b"relu_", b"reluX", 1))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatFormatError, match="cannot read"):
        read_dat(tmp_path / "absent.dat")


# --------------------------------------------------------------------------- CLI error paths (no TensorFlow)


def _run_cli(args: list[str]):
    return CliRunner().invoke(convert, args)


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("clockface: error: "), result.output
    return lines[0]


@pytest.mark.parametrize("keep", [3, 1000, DAT_SIZE // 3])
def test_cli_truncated_source_writes_nothing(dat_path: Path, tmp_path: Path, keep: int) -> None:
    cut = tmp_path / "cut.dat"
    with open(dat_path, "rb") as fh:
        cut.write_bytes(fh.read(keep))
    out = tmp_path / "out"
    result = _run_cli(["dlib-resnet-v1", "--source", str(cut), "--output", str(out)])
    assert result.exit_code != 0
    line = _error_line(result)
    assert "truncated" in line and "cut.dat" in line
    assert not out.exists() or not any(out.iterdir())


def test_cli_foreign_source_writes_nothing(tmp_path: Path) -> None:
    foreign = tmp_path / "weights.h5"
    foreign.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    out = tmp_path / "out"
    out.mkdir()
    result = _run_cli(["dlib-resnet-v1", "--source", str(foreign), "--output", str(out)])
    assert result.exit_code != 0
    assert "byte offset 0" in _error_line(result)
    assert list(out.iterdir()) == []


def test_cli_missing_source(tmp_path: Path) -> None:
    result = _run_cli(["dlib-resnet-v1", "--source", str(tmp_path / "nope.dat"), "--output", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "not found" in _error_line(result)
    assert not (tmp_path / "out").exists()


def test_cli_unknown_model(tmp_path: Path) -> None:
    result = _run_cli(["no-such-model", "--output", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "dlib-resnet-v1" in _error_line(result)


def test_cli_list() -> None:
    result = _run_cli(["--list"])
    assert result.exit_code == 0, result.output
    assert "dlib-resnet-v1" in result.output


def test_cli_needs_a_model() -> None:
    result = _run_cli([])
    assert result.exit_code == 2 and "--list" in result.output


def test_help_lists_the_known_models() -> None:
    from converter.models import known_models

    result = CliRunner().invoke(convert, ["--help"])
    assert result.exit_code == 0, result.output
    models = result.output.split("Models:", 1)[1]
    for name, spec in known_models().items():
        assert name in models and spec.description.split()[0] in models


def test_root_cli_finds_convert_through_entry_point() -> None:
    from device.cli.main import main

    result = CliRunner().invoke(main, ["convert", "--list"])
    assert result.exit_code == 0, result.output
    assert "dlib-resnet-v1" in result.output


def test_cli_module_and_list_do_not_import_tensorflow() -> None:
    code = (
        "import sys; from click.testing import CliRunner; import converter.cli as c; "
        "assert 'numpy' not in sys.modules, 'numpy at import'; "
        "r = CliRunner().invoke(c.convert, ['--list']); assert r.exit_code == 0, r.output; "
        "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=120)


def test_default_models_dir_respects_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_models_dir() == tmp_path / "clockface" / "models"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_models_dir() == Path.home() / ".local" / "share" / "clockface" / "models"


def test_registry_spec_for_dlib() -> None:
    spec = get_spec("dlib-resnet-v1")
    assert spec.chip.size == (150, 150) and spec.colour_order == "RGB" and spec.metric == "euclidean"
    assert spec.threshold == DLIB_THRESHOLD and spec.threshold_calibrated is True and spec.embedding_size == 128
    assert 0.3 < DLIB_THRESHOLD < 0.6  # derived by tests/benchmarks/derive_threshold.py, FAR first
    assert spec.normalisation is None  # read from the file, not hard-coded


def test_packaged_file_does_not_import_the_package() -> None:
    code = (
        "import sys; from converter.models import packaged_file; "
        "p = packaged_file('face_recognition_models', 'models/dlib_face_recognition_resnet_model_v1.dat'); "
        "assert p.is_file(); assert 'face_recognition_models' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=60)


# --------------------------------------------------------------------------- fidelity maths and the write guard


def test_compare_outputs() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(6, 16)).astype(np.float32) + 5.0  # large common component, as with random weights
    ok = compare_outputs(ref, ref + 1e-7, FidelityLimits())
    assert ok.passed and ok.max_abs_error < 2e-7 and ok.centred_cosine_min > 0.9999
    bad = compare_outputs(
        ref, ref + rng.normal(scale=0.3, size=ref.shape), FidelityLimits(max_abs=None, relative_l2=1.0)
    )
    assert not bad.passed and "centred_cosine_min" in bad.failures[0]
    assert bad.centred_cosine_min < 0.99
    nan = compare_outputs(ref, np.full_like(ref, np.nan), FidelityLimits())
    assert not nan.passed and "non-finite" in nan.failures[0]


def _card_fields() -> dict:
    return dict(
        source="test",
        source_sha256="0" * 64,
        embedding_size=16,
        colour_order="RGB",
        normalisation=Normalisation((1.0, 2.0, 3.0), 0.5),
        chip=ChipGeometry(size=(8, 8), landmarks=((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8))),
        metric="euclidean",
        threshold=0.6,
        threshold_calibrated=False,
    )


def test_write_model_refuses_failed_check(tmp_path: Path) -> None:
    ref = np.ones((3, 16), np.float32) + np.arange(3)[:, None]
    report = compare_outputs(ref, ref + 1e-2, FidelityLimits())
    with pytest.raises(ExportCheckError, match=r"max_abs 1\.000e-02 > 1\.0e-04.*nothing written") as err:
        write_model(tmp_path / "out", "m", b"bytes", report=report, **_card_fields())
    assert_one_line(str(err.value))
    assert not (tmp_path / "out").exists()


def test_write_model_writes_model_then_sidecar(tmp_path: Path) -> None:
    ref = np.ones((3, 16), np.float32) + np.arange(3)[:, None]
    report = compare_outputs(ref, ref, FidelityLimits())
    written = write_model(tmp_path, "m", b"fake tflite bytes", report=report, **_card_fields())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.tflite"]  # no temp files left
    card = load_card(written.tflite_path)
    assert card.check["passed"] is True and card.embedding_size == 16
    assert written.tflite_path.stat().st_mode & 0o777 == 0o644


def test_cli_without_tensorflow_says_so_in_one_line(tmp_path: Path, dat_path: Path) -> None:
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; "
        "from click.testing import CliRunner; from converter.cli import convert; "
        f"r = CliRunner().invoke(convert, ['dlib-resnet-v1', '--output', {str(tmp_path / 'out')!r}]); "
        "print(r.exit_code); print(r.output.strip())"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    exit_code, *lines = proc.stdout.strip().splitlines()
    assert exit_code == "1" and len(lines) == 1, proc.stdout + proc.stderr
    assert "TensorFlow is not installed" in lines[0] and "pip install '.[converter]'" in lines[0]
    assert not (tmp_path / "out").exists()
