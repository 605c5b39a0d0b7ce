"""Benchmark `clockface convert` for keras-vggface: every model x quantisation, as a markdown table.

    python tests/benchmarks/bench_convert.py [--models vggface-resnet50 ...] [--quantize none int8 ...]
        [--weights-dir DIR] [--calibration DIR] [--repeats 25]

Per row: .tflite size, wall time of the whole `clockface convert` command
(Python start, TensorFlow import, build, convert, verify, write), its peak RSS,
device latency per face (LiteRT via device.vision.embedder.Embedder, 1 and 2
threads, median of --repeats single-chip calls after 3 warm-up calls), and the
fidelity numbers the converter measured and wrote into the sidecar.

Each conversion runs in its own child process and its peak RSS comes from
os.wait4 for that child alone (RUSAGE_CHILDREN would be a running maximum
over all children). This parent never imports TensorFlow, so it measures
latency the way the device runs: LiteRT only.

Weights: files named like the release (rcmalli_vggface_tf_notop_*.h5) in
--weights-dir are used if present; otherwise seeded random weights are
written there by keras-vggface itself (in a child process). Sizes, times,
memory and latency do not depend on the weight values; fidelity numbers do,
somewhat (int8 most), so the caption says which weights were used.

Not collected by pytest (no test_ prefix); run by hand, sequentially: the
conversions are memory- and CPU-heavy, never run two at once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.results import default_results, provenance, write_results  # noqa: E402

MODELS = ("vggface-resnet50", "vggface-senet50", "vggface-vgg16")
MODES = ("none", "float16", "dynamic", "int8")
DEFAULT_CALIBRATION = REPO.parent / "shared" / "faces"
SEED = 20240601


@dataclass
class Row:
    model: str
    quantize: str
    size_mib: float
    convert_s: float
    peak_rss_mib: float
    latency_1t_ms: float
    latency_2t_ms: float
    rel_l2: float
    max_abs: float
    centred_cos_min: float
    num_inputs: int
    refused: str = ""  # the converter's one-line refusal, when the export failed its limits


def run_child(args: list[str]) -> tuple[int, str, str, float, float]:
    """(returncode, stdout, stderr, wall seconds, peak RSS MiB) of one child process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read().decode(), err.read().decode(), wall, usage.ru_maxrss / 1024


def ensure_weights(model: str, folder: Path) -> tuple[Path, bool]:
    """(weights file, seeded?) for `model`: the release file if present, else seeded random weights."""
    sys.path.insert(0, str(REPO))
    from converter.vggface import SPECS  # TensorFlow-free at import

    spec = SPECS[model]
    release = folder / spec.release_file
    if release.is_file():
        return release, False
    seeded = folder / f"seeded_{spec.architecture}.h5"
    if not seeded.is_file():
        code = (
            f"import sys; sys.path.insert(0, {str(REPO)!r}); from pathlib import Path; from converter.vggface import SPECS; "
            "from tests.converter.seeded import write_seeded_weights; "
            f"write_seeded_weights(SPECS[{model!r}], Path({str(seeded)!r}), seed={SEED})"
        )
        rc, _, err, _, _ = run_child([sys.executable, "-c", code])
        if rc != 0:
            sys.exit(f"writing seeded weights for {model} failed: {err.strip().splitlines()[-1]}")
    return seeded, True


def median_latency_ms(tflite: Path, chip, threads: int, repeats: int) -> float:
    from device.vision.embedder import Embedder

    embedder = Embedder(tflite, threads=threads)
    for _ in range(3):
        embedder.embed(chip)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        embedder.embed(chip)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_chip(calibration: Path | None):
    """One real aligned chip if photos are available (latency does not depend on content anyway)."""
    import numpy as np

    from converter.vggface import VGGFACE_CHIP

    if calibration and calibration.is_dir():
        from converter.cli import default_models_dir
        from device.camera.images import is_image_file, read_image
        from device.vision.faces import crop_faces
        from device.vision.mtcnn import MtcnnDetector, MtcnnError

        try:
            mtcnn = MtcnnDetector.from_models_dir(default_models_dir())  # ./setup.sh converts it
        except MtcnnError:
            return np.random.default_rng(SEED).integers(0, 256, (224, 224, 3), dtype=np.uint8)
        for path in sorted(p for p in calibration.rglob("*") if is_image_file(p)):
            chips = crop_faces(read_image(path), VGGFACE_CHIP, mtcnn)
            if chips:
                return chips[0]
    return np.random.default_rng(SEED).integers(0, 256, (224, 224, 3), dtype=np.uint8)


def convert_one(
    model: str, quantize: str, weights: Path, out: Path, calibration: Path | None
) -> tuple[dict | None, str, float, float]:
    """(summary or None, refusal message, wall s, peak RSS MiB). A refused export is a result, not a crash."""
    args = [
        sys.executable,
        "-c",
        "from converter.cli import convert; convert()",
        model,
        "--weights",
        str(weights),
        "-o",
        str(out),
        "--quantize",
        quantize,
        "--json",
    ]
    if quantize == "int8":
        if calibration is None:
            raise SystemExit("int8 needs --calibration DIR (photos of real faces)")
        args += ["--calibration", str(calibration)]
    rc, stdout, stderr, wall, rss = run_child(args)
    if rc != 0:
        last = (stderr.strip().splitlines() or ["(no output)"])[-1]
        if "beyond limits" not in last:
            raise SystemExit(f"convert {model} --quantize {quantize} failed: {last}")
        return None, last.removeprefix("clockface: error: "), wall, rss
    return json.loads(stdout[stdout.index("{") :]), "", wall, rss


def parse_refusal(message: str) -> tuple[float, float, float, int]:
    """(rel_l2, max_abs, centred_cos_min, inputs) from write_model's refusal line."""
    import re

    m = re.search(r"max_abs (\S+), rel_l2 (\S+), centred_cos_min (\S+) over (\d+) inputs", message)
    if not m:
        return float("nan"), float("nan"), float("nan"), 0
    return float(m.group(2)), float(m.group(1)), float(m.group(3)), int(m.group(4))


def table(rows: list[Row], seeded: bool, repeats: int) -> str:
    weights = (
        "seeded random weights (the keras-vggface release cannot be downloaded on the benchmark machine)"
        if seeded
        else "the keras-vggface v2.0 release weights"
    )
    caption = (
        f"keras-vggface conversion on {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"with {weights}. Convert = wall time of the whole `clockface convert` command; peak RSS of that process. "
        f"Latency = median of {repeats} single-face `Embedder.embed` calls on LiteRT (chip -> embedding, "
        "preprocessing included). Fidelity = LiteRT vs Keras on the converter's check inputs (seeded synthetic "
        "images, plus held-out real face chips for int8), as recorded in the sidecar; with seeded weights the "
        "quantised numbers only show the export is sane, not how real weights quantise."
    )
    lines = [
        f"_{caption}_",
        "",
        "| model | quantize | size MiB | convert s | peak RSS MiB | latency 1 thr ms | latency 2 thr ms "
        "| rel. L2 | max abs | centred cos min | check inputs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.refused:
            lines.append(
                f"| {r.model} | {r.quantize} | refused | {r.convert_s:.0f} | {r.peak_rss_mib:.0f} | | | "
                f"{r.rel_l2:.1e} | {r.max_abs:.1e} | {r.centred_cos_min:.4f} | {r.num_inputs} |"
            )
            continue
        lines.append(
            f"| {r.model} | {r.quantize} | {r.size_mib:.1f} | {r.convert_s:.0f} | {r.peak_rss_mib:.0f} "
            f"| {r.latency_1t_ms:.1f} | {r.latency_2t_ms:.1f} | {r.rel_l2:.1e} | {r.max_abs:.1e} "
            f"| {r.centred_cos_min:.4f} | {r.num_inputs} |"
        )
    for r in rows:
        if r.refused:
            lines.append(f"\nRefused ({r.model}, {r.quantize}): {r.refused}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--quantize", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--weights-dir", type=Path, default=Path(tempfile.gettempdir()) / "clockface-bench-weights")
    parser.add_argument(
        "--calibration", type=Path, default=DEFAULT_CALIBRATION if DEFAULT_CALIBRATION.is_dir() else None
    )
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--keep", type=Path, default=None, help="keep the exported files in this folder")
    parser.add_argument(
        "--results",
        type=Path,
        default=default_results(__file__),
        help="markdown file for the table, included by docs/accuracy-and-speed.md (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()

    args.weights_dir.mkdir(parents=True, exist_ok=True)
    chip = bench_chip(args.calibration)
    rows: list[Row] = []
    any_seeded = False
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        for model in args.models:
            weights, seeded = ensure_weights(model, args.weights_dir)
            any_seeded |= seeded
            for quantize in args.quantize:
                summary, refused, wall, rss = convert_one(model, quantize, weights, out, args.calibration)
                if summary is None:
                    rows.append(Row(model, quantize, 0, wall, rss, 0, 0, *parse_refusal(refused), refused=refused))
                    print(f"refused: {model} {quantize}: {refused}", file=sys.stderr, flush=True)
                    continue
                tflite = Path(summary["tflite"])
                check = json.loads(tflite.with_suffix(".json").read_text())["check"]
                rows.append(
                    Row(
                        model=model,
                        quantize=quantize,
                        size_mib=tflite.stat().st_size / 2**20,
                        convert_s=wall,
                        peak_rss_mib=rss,
                        latency_1t_ms=median_latency_ms(tflite, chip, 1, args.repeats),
                        latency_2t_ms=median_latency_ms(tflite, chip, 2, args.repeats),
                        rel_l2=check["relative_l2_error"],
                        max_abs=check["max_abs_error"],
                        centred_cos_min=check["centred_cosine_min"],
                        num_inputs=check["num_inputs"],
                    )
                )
                print(f"done: {model} {quantize} ({wall:.0f} s, {rss:.0f} MiB)", file=sys.stderr, flush=True)
                if args.keep is None:
                    tflite.unlink()
                    tflite.with_suffix(".json").unlink()
    markdown = table(rows, any_seeded, args.repeats)
    print(markdown)
    written = write_results(args.results, markdown, provenance(__file__))
    print(f"wrote {written}", file=sys.stderr)


if __name__ == "__main__":
    main()
