"""`clockface convert MODEL`: source weights -> verified TFLite + sidecar.

Loaded by the root CLI through the `clockface.commands` entry point, so at module
level this imports only click and the standard library: `clockface --help` on a Pi
must not pull in NumPy-heavy converter code, let alone TensorFlow. Conversion runs
on a workstation (`pip install '.[converter]'`); the device only loads the result,
except with `--backend numpy` (dlib-resnet-v1 and mtcnn), which writes the same models from
NumPy without TensorFlow, so a Pi can make its own default models.

Why one module over 300 lines: it is the whole `clockface convert` command (its options, stages and int8 calibration data), found through one entry point; its pieces are not used elsewhere.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from device import paths
from device.errors import ClockfaceCommand, CommandError

if TYPE_CHECKING:
    from converter.tflite_export import Quantize

STAGES = (
    "locate source",
    "read source",
    "import tensorflow",
    "build keras model",
    "export tflite",
    "verify on LiteRT",
    "write files",
)
# --backend numpy: no TensorFlow, the TFLite file is written from NumPy (converter/tflite_builder.py).
NUMPY_STAGES = (
    "locate source",
    "read source",
    "write tflite from numpy",
    "verify on LiteRT",
    "write files",
)


def default_models_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the device looks for models by default (device/paths.py decides; the environment is read per call)."""
    return paths.models_dir(paths.data_dir(os.environ if env is None else env))


@dataclass(frozen=True)
class ConvertSummary:
    model: str
    tflite: str
    sidecar: str
    size_bytes: int
    model_sha256: str
    source: str
    source_sha256: str
    max_abs_error: float
    relative_l2_error: float
    centred_cosine_min: float
    ops: list[str]
    seconds: float
    quantization: str = "none"

    def line(self) -> str:
        return (
            f"{self.model}: wrote {self.tflite} ({self.size_bytes / 1e6:.1f} MB, sha256 {self.model_sha256[:16]}...) "
            f"from {Path(self.source).name}; max_abs {self.max_abs_error:.1e}, rel_l2 {self.relative_l2_error:.1e}, "
            f"centred_cos_min {self.centred_cosine_min:.6f}; {self.seconds:.1f} s"
        )


class _Stages:
    """Advances a tqdm bar by one stage and names the stage that runs next."""

    def __init__(self, bar, stages: tuple[str, ...] = STAGES) -> None:
        self.bar = bar
        self.stages = stages
        bar.set_postfix_str(stages[0])

    def step(self) -> None:
        self.bar.update(1)
        if self.bar.n < len(self.stages):
            self.bar.set_postfix_str(self.stages[self.bar.n])


class CalibrationError(ValueError):
    """The calibration folder gave no faces to calibrate int8 ranges on."""


class ConvertCommand(ClockfaceCommand):
    """`clockface convert`, whose --help ends with the models it knows.

    The list is read when help is shown, not when the module is imported, so the
    root CLI's import stays light (the registry pulls in NumPy).
    """

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        from converter.models import listed_models

        with formatter.section("Models"):
            formatter.write_dl(list(listed_models().items()))


def _import_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        raise CommandError(
            "TensorFlow is not installed here: conversion runs on a workstation with `pip install '.[converter]'`"
        ) from None


def _check_numpy_backend(model: str, quantize: str) -> None:
    """--backend numpy writes float32 files of the models that have a NumPy writer; say so before any work."""
    from converter.models import numpy_models

    supported = numpy_models()
    if model not in supported:
        raise click.UsageError(
            f"--backend numpy converts {', '.join(supported)}; {model} needs TensorFlow (--backend tensorflow)"
        )
    if quantize != "none":
        raise click.UsageError("--backend numpy writes float32 models: --quantize needs --backend tensorflow")


def _list_models() -> None:
    from converter.models import listed_models

    for name, description in listed_models().items():
        click.echo(f"{name:20s} {description}")


def _source_label(source: Path, default: bool) -> str:
    """What the sidecar records as source: file name, plus the package version when it came from one."""
    if not default:
        return source.name
    from importlib import metadata

    try:
        return f"face_recognition_models {metadata.version('face_recognition_models')}: {source.name}"
    except metadata.PackageNotFoundError:
        return source.name


# --------------------------------------------------------------------------- quantisation, weights download
# (added for keras-vggface, issue 3; generic: any registered model can be quantised)

CALIBRATION_LIMIT = 64  # chips; each is one TensorFlow forward pass during int8 conversion


@dataclass(frozen=True)
class ConvertOptions:
    """What `--quantize/--calibration/--sha256/--weights-url/--cache-dir` ask for."""

    quantize: Quantize = "none"
    calibration: Path | None = None
    sha256: str | None = None
    weights_url: str | None = None
    cache_dir: Path | None = None
    show_progress: bool = True
    backend: Literal["tensorflow", "numpy"] = "tensorflow"


def export_name(model: str, quantize: str) -> str:
    """`vggface-resnet50` for float32, `vggface-resnet50-int8` etc.: variants live side by side."""
    return model if quantize == "none" else f"{model}-{quantize}"


def limits_for(spec, quantize: str):
    """The spec's own limits for this mode if it has them (keras-vggface), else the generic defaults."""
    from converter.tflite_export import default_limits

    own = getattr(spec, "limits_for", None)
    if own is not None:
        return own(quantize)
    return spec.limits if quantize == "none" else default_limits(quantize)


def locate_weights(spec, source: Path | None, options: ConvertOptions) -> tuple[Path, str]:
    """(path, sidecar label) of the source file: --weights/--source, a verified download, or the spec's default.

    A file given on the command line is still checked against --sha256 when one is given.
    """
    from converter.download import DEFAULT_BASE_URL, default_cache_dir, verify_local

    if source is not None:
        if not source.is_file():
            raise FileNotFoundError(f"source file not found: {source}")
        if options.sha256:
            verify_local(source, options.sha256)
        return source, source.name
    fetch = getattr(spec, "fetch", None)
    if fetch is None:
        if options.sha256 or options.weights_url:
            raise click.UsageError(f"{spec.name} has no download: --sha256/--weights-url apply to downloaded weights")
        path = spec.locate_source()
        return path, _source_label(path, True)
    path = fetch(
        sha256=options.sha256,
        cache_dir=options.cache_dir or default_cache_dir(os.environ),
        base_url=options.weights_url or DEFAULT_BASE_URL,
        progress=options.show_progress,
    )
    return path, f"{(options.weights_url or DEFAULT_BASE_URL).rstrip('/')}/{path.name}"


def load_calibration_chips(folder: Path, chip, models_dir: Path, limit: int = CALIBRATION_LIMIT) -> list:
    """Aligned BGR chips of real faces from a folder of photos, through the device's own detect/align.

    One chip (the largest face) per photo, so a crowd photo does not dominate;
    photos are taken in sorted order so the same folder gives the same model.
    The device's MTCNN (`clockface convert mtcnn`) finds the faces: the one in
    `models_dir` (the output folder), else the one in the default models folder,
    where ./setup.sh converts it.
    """
    from device.camera.images import ImageReadError, is_image_file, read_image
    from device.vision.faces import crop_faces
    from device.vision.mtcnn import MtcnnDetector, MtcnnError

    if not folder.is_dir():
        raise FileNotFoundError(f"calibration folder not found: {folder}")
    try:
        mtcnn = MtcnnDetector.from_models_dir(models_dir)
    except MtcnnError as exc:
        fallback = default_models_dir()
        try:
            if fallback == models_dir:
                raise exc
            mtcnn = MtcnnDetector.from_models_dir(fallback)
        except MtcnnError:
            raise CalibrationError(f"int8 calibration finds faces with MTCNN: {exc}") from None
    chips = []
    for path in sorted(p for p in folder.rglob("*") if is_image_file(p)):
        try:
            faces = crop_faces(read_image(path), chip, mtcnn)
        except ImageReadError:
            continue  # a stray unreadable file must not stop calibration
        if faces:
            chips.append(faces[0])
        if len(chips) >= limit:
            break
    if not chips:
        raise CalibrationError(f"no faces found in the photos under {folder}: int8 calibration needs real face photos")
    return chips


def calibration_tensors(chips: list, spec, normalisation):
    """Chips -> normalised float32 inputs with device.vision.embedder.chip_to_tensor (the device's own arithmetic)."""
    import numpy as np

    from device.vision.embedder import chip_to_tensor
    from device.vision.model_card import ModelCard

    card = ModelCard(  # provisional: only colour order and normalisation are read
        name=spec.name,
        embedding_size=spec.embedding_size,
        colour_order=spec.colour_order,
        normalisation=normalisation,
        chip=spec.chip,
        metric=spec.metric,
        threshold=spec.threshold,
        threshold_calibrated=spec.threshold_calibrated,
        source="",
        source_sha256="",
        model_sha256="",
        converter_version="",
    )
    return np.stack([chip_to_tensor(c, card) for c in chips]).astype(np.float32)


def split_calibration(tensors):
    """(calibration set, held-out check set): every 4th chip (at most 8) is kept out of calibration,
    so the fidelity check also sees real faces the quantiser did not tune its ranges on."""
    import numpy as np

    if len(tensors) < 4:
        return tensors, tensors[:0]
    held = np.arange(len(tensors)) % 4 == 3
    held &= np.cumsum(held) <= 8
    return tensors[~held], tensors[held]


def run_conversion(
    model: str, output: Path, source: Path | None, progress: _Stages, options: ConvertOptions = ConvertOptions()
) -> ConvertSummary:
    """All stages in memory; files are written only by the last stage, after the check passed."""
    from converter.models import get_spec
    from converter.tflite_export import export_tflite, synthetic_check_inputs, verify_export, write_model
    from device.vision.model_card import sha256_file

    started = time.perf_counter()
    spec = get_spec(model)
    if options.quantize == "int8" and options.calibration is None:
        raise click.UsageError(
            "--quantize int8 needs --calibration DIR (photos of real faces, e.g. the enrolment folder)"
        )
    chips = load_calibration_chips(options.calibration, spec.chip, output) if options.calibration else []
    source, source_label = locate_weights(spec, source, options)
    if not source.is_file():
        raise FileNotFoundError(f"source file not found: {source}")
    progress.step()

    parsed = spec.read(source)
    source_sha256 = sha256_file(source)
    progress.step()

    import numpy as np

    if options.backend == "numpy":
        # The same graph written from NumPy; checked against a NumPy forward pass of the source network.
        built = spec.build_numpy(parsed)
        normalisation = spec.normalisation or built.normalisation
        tflite_bytes, reference, tools = built.tflite_bytes, built.reference, built.tools
        progress.step()
        held_out = split_calibration(calibration_tensors(chips, spec, normalisation))[1] if chips else None
    else:
        _import_tensorflow()
        progress.step()

        built = spec.build(parsed)
        normalisation = spec.normalisation or built.normalisation
        progress.step()

        calibration, held_out = (
            split_calibration(calibration_tensors(chips, spec, normalisation)) if chips else (None, None)
        )
        representative = (lambda: (x[None] for x in calibration)) if calibration is not None else None
        tflite_bytes = export_tflite(built.model, options.quantize, representative=representative)
        reference, tools = built.model, None
        progress.step()

    check_inputs = synthetic_check_inputs(spec.chip.size, normalisation)
    if held_out is not None and len(held_out):
        check_inputs = np.concatenate([check_inputs, held_out])
    report = verify_export(reference, tflite_bytes, check_inputs, limits_for(spec, options.quantize))
    progress.step()

    written = write_model(
        output,
        export_name(spec.name, options.quantize),
        tflite_bytes,
        report=report,
        quantization=options.quantize,
        source=source_label,
        source_sha256=source_sha256,
        embedding_size=spec.embedding_size,
        colour_order=spec.colour_order,
        normalisation=normalisation,
        chip=spec.chip,
        metric=spec.metric,
        threshold=spec.threshold,
        threshold_calibrated=spec.threshold_calibrated,
        notes=built.notes,
        converter=tools,
    )
    progress.step()
    return ConvertSummary(
        model=export_name(spec.name, options.quantize),
        tflite=str(written.tflite_path),
        sidecar=str(written.card_path),
        size_bytes=written.size_bytes,
        model_sha256=written.card.model_sha256,
        source=str(source),
        source_sha256=source_sha256,
        max_abs_error=report.max_abs_error,
        relative_l2_error=report.relative_l2_error,
        centred_cosine_min=report.centred_cosine_min,
        ops=list(report.ops),
        seconds=round(time.perf_counter() - started, 2),
        quantization=options.quantize,
    )


@click.command("convert", cls=ConvertCommand)
@click.argument("model", required=False)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="$XDG_DATA_HOME/clockface/models, else ~/.local/share/clockface/models",
    help="Directory for <model>.tflite and its <model>.json sidecar.",
)
@click.option(
    "--source",
    "--weights",
    "source",
    type=click.Path(path_type=Path),
    default=None,
    help="Source weights file (dlib-resnet-v1: the .dat, default from face_recognition_models; vggface-*: the "
    "keras-vggface notop .h5, default downloaded from its v2.0 release; mtcnn: a folder with pnet.lz4, "
    "rnet.lz4 and onet.lz4, default the installed mtcnn package's).",
)
@click.option(
    "--quantize",
    type=click.Choice(["none", "float16", "dynamic", "int8"]),
    default="none",
    show_default=True,
    help="none: float32; float16: half-size weights; dynamic: int8 weights; int8: int8 weights and "
    "activations (needs --calibration). Quantised files are named MODEL-QUANTIZE.tflite.",
)
@click.option(
    "--calibration",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of photos of real faces (e.g. the enrolment folder) to calibrate int8 ranges; "
    "faces are cropped by the device's own detect/align. Every 4th face (at most 8) is held out and added "
    "to the fidelity check (with any --quantize). mtcnn: crops of these photos check the export.",
)
@click.option(
    "--sha256",
    default=None,
    metavar="HEX",
    help="SHA-256 the weights file must have (required to download "
    "a file whose hash is not pinned; also checked on --weights FILE).",
)
@click.option(
    "--weights-url",
    default=None,
    metavar="URL",
    help="Base URL of the weights release (default: the keras-vggface v2.0 GitHub release).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    show_default="$XDG_CACHE_HOME/clockface/weights, else ~/.cache/clockface/weights",
    help="Where downloaded weights are kept.",
)
@click.option(
    "--backend",
    type=click.Choice(["tensorflow", "numpy"]),
    default="tensorflow",
    show_default=True,
    help="numpy: write the TFLite file from NumPy without TensorFlow (float32; dlib-resnet-v1, mtcnn), "
    "checked against a NumPy forward pass of the source network; what a Raspberry Pi runs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--list", "list_models", is_flag=True, help="List the models this command knows and exit.")
def convert(
    model: str | None,
    output: Path | None,
    source: Path | None,
    quantize: Quantize,  # click.Choice of exactly these values
    calibration: Path | None,
    sha256: str | None,
    weights_url: str | None,
    cache_dir: Path | None,
    backend: Literal["tensorflow", "numpy"],
    as_json: bool,
    list_models: bool,
) -> None:
    """Convert MODEL to a verified TFLite file (float32 or quantised) plus its sidecar (workstation only)."""
    if list_models:
        _list_models()
        return
    if not model:
        raise click.UsageError("missing MODEL (see `clockface convert --list`)")
    output = output or default_models_dir()

    from tqdm import tqdm

    from converter.models import detector_runner

    options = ConvertOptions(
        quantize, calibration, sha256, weights_url, cache_dir, show_progress=not as_json, backend=backend
    )
    if backend == "numpy":
        _check_numpy_backend(model, quantize)
    detector = detector_runner(model, backend)
    if detector is not None and (quantize != "none" or sha256 or weights_url):
        raise click.UsageError(
            f"{model} is converted as float32 from installed weights: --quantize/--sha256/--weights-url do not apply"
        )
    stages = NUMPY_STAGES if backend == "numpy" else STAGES
    with tqdm(
        total=len(stages), desc=f"convert {model}", unit="stage", file=sys.stderr, disable=None, leave=False
    ) as bar:
        summary: Any
        if detector is not None:  # mtcnn: --source is its weights folder, --calibration its check photos
            summary = detector(output, source, _Stages(bar, stages), calibration)
        else:
            summary = run_conversion(model, output, source, _Stages(bar, stages), options)
    if as_json:
        click.echo(json.dumps(asdict(summary), indent=2))
    else:
        click.echo(summary.line())
