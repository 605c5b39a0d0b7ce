"""Benchmark the device runtime against the per-frame design it replaces.

    .venv/bin/python tests/benchmarks/bench_runtime.py [--model PATH] [--faces DIR] [--frames N] [--against REV]
        [--idle-minutes M] [--idle-fps F]

Each configuration runs in its own subprocess (so peak RSS and start-up time
are its own) on the same inputs in the same run, and the table reports ratios
of numbers measured side by side: this machine is noisy, absolute numbers are
not comparable across runs.

- clockface: the terminal's loop (device.terminal.service.run_terminal): detect every
  frame, embed a track only until k of n matches agree, log once.
- per-frame: the seed's design: the same detection recipe (grey, equalised,
  Haar scaleFactor 1.1, minNeighbors 5, minSize 30) on the full-resolution frame,
  embed every detected face in every frame, and match with a Python loop of
  scipy.spatial.distance per gallery entry. It aligns faces with clockface's
  aligner, so both designs see the same chips and can log the same people.
- face_recognition: the face_recognition library's per-frame example, if installed.
- clockface@REV (with --against REV): the terminal loop of another commit, run by that
  commit's own copy of this script from a temporary git worktree: old against new, one run.

Inputs: the clip in ../shared/faces/_video (gallery: every photo of ../shared/faces),
and a synthetic 640x480 stream (the demo's entrance clip, looped).

Idle (its own table, --idle-minutes, default 5; 0 skips it): the terminal's loop on a
live camera at the edge of the library, paced in real time (--idle-fps, default 10):
an empty entrance with sensor noise for M minutes, then a person from ../shared/faces
walking in and standing at the door. Run with the motion gate off and on, each in its
own process: process CPU seconds per minute over the idle part (time.process_time,
all threads), and the delay from the person's first frame to the logged event. The
same process then runs the shared clip, to show the gate changes no result.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.results import default_results, provenance, write_results  # noqa: E402


def peak_rss_mb() -> float:
    """VmHWM: this process image's own peak (ru_maxrss survives exec and would
    report the parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- workers (run in a subprocess each) -----------------------------------------
def worker_clockface(args: argparse.Namespace, t_spawn: float) -> dict:
    from device.config import parse_config
    from device.terminal.notify import Notifier
    from device.terminal.service import run_terminal

    # A fresh attendance log per run: a repeat must not be silenced by the cooldown.
    attendance = str(Path(args.data) / f"attendance-{os.getpid()}.db")
    cfg = parse_config({"paths": {"data_dir": args.data, "model": args.model, "attendance_db": attendance}}, env={})
    started = time.time()
    outcome = run_terminal(
        cfg, args.source, Notifier(None), threading.Event(), threading.Event(), max_frames=args.frames
    )
    stats = outcome.stats
    people = sorted({e.person for e in outcome.logged})
    return {
        "frames": outcome.frames,
        "seconds": outcome.seconds - outcome.startup_seconds,
        "startup": (started - t_spawn) + (outcome.first_frame_seconds or outcome.startup_seconds),
        "stages_ms": {k: 1000 * v / max(outcome.frames, 1) for k, v in stats.seconds.items()},
        "embeddings": stats.embeddings,
        "logged": people,
        "rss_mb": peak_rss_mb(),
    }


def worker_per_frame(args: argparse.Namespace, t_spawn: float) -> dict:
    import cv2
    from scipy.spatial import distance

    from device.config import parse_config
    from device.terminal.assembly import load_model
    from device.vision.detect import FACE_CASCADE, FaceBox, cascade_path, to_grey
    from gallery.store import GalleryStore

    cfg = parse_config({"paths": {"data_dir": args.data, "model": args.model}}, env={})
    model = load_model(cfg)
    gallery = [(t.person, t.embedding) for t in GalleryStore(cfg.paths.gallery).templates(model.binding)]
    metric = getattr(distance, model.card.metric)
    cascade = cv2.CascadeClassifier(cascade_path(FACE_CASCADE))
    cap = cv2.VideoCapture(args.source)
    startup = None
    logged: set[str] = set()
    frames = embeddings = 0
    stages = {"detect": 0.0, "align": 0.0, "embed": 0.0, "match": 0.0}
    t0 = time.perf_counter()
    while args.frames is None or frames < args.frames:
        ok, image = cap.read()
        if not ok:
            break
        a = time.perf_counter()
        grey = to_grey(image)
        found = cascade.detectMultiScale(cv2.equalizeHist(grey), 1.1, 5, minSize=(30, 30))
        boxes = [FaceBox(float(x), float(y), float(w), float(h)) for x, y, w, h in found]
        b = time.perf_counter()
        stages["detect"] += b - a
        for box in boxes:
            c = time.perf_counter()
            chip = model.pipeline.aligner.chip(image, model.pipeline.landmarks(image, box))
            d = time.perf_counter()
            emb = model.embedder.embed(chip)
            e = time.perf_counter()
            best = min(((metric(emb, g), name) for name, g in gallery), default=(float("inf"), None))
            f = time.perf_counter()
            stages["align"] += d - c
            stages["embed"] += e - d
            stages["match"] += f - e
            embeddings += 1
            if best[0] <= model.threshold:
                logged.add(best[1])
        frames += 1
        if startup is None:
            startup = time.time() - t_spawn
    seconds = time.perf_counter() - t0
    return {
        "frames": frames,
        "seconds": seconds,
        "startup": startup,
        "stages_ms": {k: 1000 * v / max(frames, 1) for k, v in stages.items()},
        "embeddings": embeddings,
        "logged": sorted(logged),
        "rss_mb": peak_rss_mb(),
    }


def worker_face_recognition(args: argparse.Namespace, t_spawn: float) -> dict:
    import cv2
    import face_recognition  # type: ignore

    from device.camera.images import read_image

    known = []
    for person in sorted(Path(args.faces).iterdir()):
        if person.is_dir() and not person.name.startswith("_"):
            for photo in sorted(person.iterdir()):
                enc = face_recognition.face_encodings(read_image(photo)[..., ::-1])
                if enc:
                    known.append((person.name, enc[0]))
    names, encs = [k[0] for k in known], [k[1] for k in known]
    cap = cv2.VideoCapture(args.source)
    startup = time.time() - t_spawn
    frames = embeddings = 0
    logged: set[str] = set()
    t0 = time.perf_counter()
    while args.frames is None or frames < args.frames:
        ok, image = cap.read()
        if not ok:
            break
        rgb = image[..., ::-1]
        for enc in face_recognition.face_encodings(rgb, face_recognition.face_locations(rgb)):
            embeddings += 1
            d = face_recognition.face_distance(encs, enc)
            if len(d) and d.min() <= 0.6:
                logged.add(names[int(d.argmin())])
        frames += 1
    return {
        "frames": frames,
        "seconds": time.perf_counter() - t0,
        "startup": startup,
        "stages_ms": {},
        "embeddings": embeddings,
        "logged": sorted(logged),
        "rss_mb": peak_rss_mb(),
    }


# --- idle: an empty entrance, then a person walks in ------------------------------
IDLE_PERSON = ("angelina_jolie", "1.jpg")  # enrolled with every photo of ../shared/faces
WALK_FRAMES, STAND_FRAMES = 30, 40  # 3 s walking in from the left edge, 4 s at the door (at 10 fps)
GAP_FRAMES = 40  # empty again between walk-ins: long enough for the track to end and the gate to close
WALK_INS = 3  # each one wakes the gate from still; the table gives the median delay


def entrance_hall(h: int = 480, w: int = 640):
    """The demo's empty hall: a gradient wall with some texture (float, 0-255)."""
    import numpy as np

    yy, xx = np.mgrid[0:h, 0:w]
    return (60 + 40 * (yy / h) + 10 * np.sin(xx / 37.0))[..., None].repeat(3, axis=2)


class PacedEntrance:
    """A camera at the entrance, at the library edge of the service (as the service tests'
    fake cameras are): frames delivered in real time at `fps`, all made before the first
    one is delivered so that making them costs nothing while measured. Sensor noise is
    Gaussian luma noise of sigma 6 grey levels, new in every frame (32 noise fields, cycled).
    Raw frames, as picamera2 delivers them: no decoding cost, so the idle number is the loop's own."""

    live = True
    name = "camera:entrance"

    def __init__(self, face_photo: Path, idle_seconds: float, fps: float, stop: threading.Event) -> None:
        import cv2
        import numpy as np

        from device.terminal.demo import head_and_shoulders

        self.fps, self.stop = fps, stop
        rng = np.random.default_rng(0)
        hall = entrance_hall()
        noise = [rng.normal(0, 6, hall.shape[:2])[..., None] for _ in range(32)]
        self.idle = [np.clip(hall + n, 0, 255).astype(np.uint8) for n in noise]
        self.idle_frames = int(idle_seconds * fps)
        face = head_and_shoulders(cv2.imread(str(face_photo)))
        self.person = []
        for i in range(WALK_FRAMES + STAND_FRAMES):
            t = min(i / (WALK_FRAMES - 1), 1.0)
            size = int(180 + 100 * t)
            x = int(-size + 10 + (size + 170) * t)  # from a 10-px sliver at the left edge to the middle
            scene = hall.copy()
            chip = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
            y = 100
            scene[y : y + size, max(x, 0) : x + size] = chip[:, max(-x, 0) :]
            self.person.append(np.clip(scene + noise[i % len(noise)], 0, 255).astype(np.uint8))
        self.cpu: dict[str, float] = {}

        self.first_person: list[float] = []  # monotonic time of each walk-in's first frame

    def frames(self):
        from device.camera.frames import Frame

        warm = int(2 * self.fps)  # leave out the first 2 s: the first frames are always detected
        cycle = len(self.person) + GAP_FRAMES
        start = time.monotonic()
        for i in range(self.idle_frames + WALK_INS * cycle):
            delay = start + i / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if i == warm:
                self.cpu.update(cpu0=time.process_time(), wall0=time.monotonic())
            if i == self.idle_frames:
                self.cpu.update(cpu1=time.process_time(), wall1=time.monotonic())
            k = (i - self.idle_frames) % cycle if i >= self.idle_frames else -1
            image = self.person[k] if 0 <= k < len(self.person) else self.idle[i % len(self.idle)]
            now = time.monotonic()
            if k == 0:
                self.first_person.append(now)
            yield Frame(image, i, now)
        self.stop.set()

    def close(self) -> None:
        pass


def worker_idle(args: argparse.Namespace, t_spawn: float) -> dict:
    import device.terminal.service as service
    from device.config import parse_config
    from device.terminal.notify import Notifier

    attendance = str(Path(args.data) / f"attendance-idle-{os.getpid()}.db")
    doc = {
        "paths": {"data_dir": args.data, "model": args.model, "attendance_db": attendance},
        "motion": {"enabled": args.motion == "on"},
        "recognition": {"cooldown_minutes": 0},  # every walk-in is logged
    }
    cfg = parse_config(doc, env={})
    stop = threading.Event()
    camera = PacedEntrance(args.faces.joinpath(*IDLE_PERSON), 60 * args.idle_minutes, args.idle_fps, stop)
    logged_at: list[tuple[float, str]] = []
    real_open = service.open_source
    service.open_source = lambda *a, **k: camera  # the camera edge, as in tests/device/test_service.py
    try:
        outcome = service.run_terminal(
            cfg,
            camera.name,
            Notifier(None),
            stop,
            threading.Event(),
            on_event=lambda e: logged_at.append((time.monotonic(), getattr(e, "person", "?"))),
        )
    finally:
        service.open_source = real_open
    c = camera.cpu
    idle_wall = c["wall1"] - c["wall0"]
    starts = [*camera.first_person, float("inf")]
    delays = []
    for begin, end in itertools.pairwise(starts):
        hits = [t for t, _ in logged_at if begin <= t < end]
        delays.append(hits[0] - begin if hits else None)
    stats = outcome.stats
    clip_cfg = parse_config(
        {**doc, "paths": {**doc["paths"], "attendance_db": attendance + ".clip"}},
        env={},
    )
    clip = service.run_terminal(clip_cfg, str(args.clip), Notifier(None), threading.Event(), threading.Event())
    return {
        "motion": args.motion,
        "idle_seconds": idle_wall,
        "idle_cpu_per_min": 60 * (c["cpu1"] - c["cpu0"]) / idle_wall,
        "frames": outcome.frames,
        "still": stats.still if stats else 0,
        "gate_ms": 1000 * stats.seconds.get("gate", 0.0) / max(outcome.frames, 1) if stats else 0.0,
        "detect_ms": 1000 * stats.seconds.get("detect", 0.0) / max(outcome.frames - stats.still, 1) if stats else 0.0,
        "delays": delays,
        "walk_in_logged": sorted({p for _, p in logged_at}),
        "clip_logged": sorted({e.person for e in clip.logged}),
        "clip_decisions": [(d.person, d.embeddings) for d, _ in clip.decisions],
        "clip_embeddings": clip.stats.embeddings if clip.stats else 0,
    }


def idle_table(rows: list[dict], caption: str, fps: float) -> str:
    """The idle table from the gate-off and gate-on runs (pure)."""
    base = next((r for r in rows if r.get("motion") == "off" and "error" not in r), None)
    lines = [
        f"_{caption}_",
        "",
        "| motion gate | idle min | idle CPU s/min | vs gate off | frames | frames gated | gate ms/frame | "
        "detect ms/detected frame | walk-in delays s | median delay frames | walk-in logged | clip logged | "
        "clip embeddings |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r.get('motion', '?')} | error: {r['error']} |||||||||||")
            continue
        ratio = r["idle_cpu_per_min"] / base["idle_cpu_per_min"] if base and base["idle_cpu_per_min"] else 0.0
        delays = ", ".join("not logged" if d is None else f"{d:.2f}" for d in r["delays"])
        found = sorted(d for d in r["delays"] if d is not None)
        frames = f"{found[len(found) // 2] * fps:.1f}" if len(found) == len(r["delays"]) and found else "-"
        lines.append(
            f"| {r['motion']} | {r['idle_seconds'] / 60:.1f} | {r['idle_cpu_per_min']:.2f} | {ratio:.2f}x | "
            f"{r['frames']} | {r['still']} | {r['gate_ms']:.2f} | {r['detect_ms']:.2f} | {delays} | {frames} | "
            f"{', '.join(r['walk_in_logged']) or '-'} | {', '.join(r['clip_logged']) or '-'} | {r['clip_embeddings']} |"
        )
    same = len({json.dumps(r.get("clip_decisions")) for r in rows if "error" not in r}) == 1
    lines += ["", f"Clip decisions identical with the gate off and on: {'yes' if same else 'no'}."]
    return "\n".join(lines)


WORKERS = {
    "clockface": worker_clockface,
    "per-frame": worker_per_frame,
    "face_recognition": worker_face_recognition,
    "idle": worker_idle,
}


# --- parent -------------------------------------------------------------------
def enrol_gallery(faces: Path, model: str, data: Path) -> int:
    from device.camera.images import IMAGE_SUFFIXES
    from device.config import parse_config
    from device.enrolment.photo_rules import examine_photos
    from device.terminal.assembly import load_model
    from gallery.layout import collect_photos
    from gallery.store import Template, write_gallery

    cfg = parse_config({"paths": {"data_dir": str(data), "model": model}}, env={})
    loaded = load_model(cfg)
    from device.terminal.demo import DEMO_PERSON, astronaut_photo
    from gallery.layout import Photo

    photos, _ = collect_photos(faces, IMAGE_SUFFIXES)
    photos.append(Photo(DEMO_PERSON, astronaut_photo()))  # the person in the synthetic stream
    results = [r for r in examine_photos(photos, loaded.pipeline, cfg.enrol) if r.ok]
    write_gallery(cfg.paths.gallery, loaded.binding, [Template(r.person, r.path.name, r.embedding) for r in results])
    return len({r.person for r in results})


def synthetic_stream(path: Path, loops: int) -> Path:
    """The demo's 640x480 entrance clip, looped: one enrolled face walking past, repeatedly."""
    import cv2

    from device.terminal.demo import astronaut_photo, write_clip

    single = path.with_name("single.avi")
    write_clip(cv2.imread(str(astronaut_photo())), single)
    cap = cv2.VideoCapture(str(single))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for _ in range(loops):
        for f in frames:
            out.write(f)
    out.release()
    return path


def run_worker(mode: str, args: argparse.Namespace, source: Path, data: Path) -> dict | None:
    """One design in its own process. `clockface@REV` runs REV's own script (from the
    worktree made by `against_tree`) so that its imports are REV's code, not ours."""
    script, worker, model = __file__, mode, args.model
    if "@" in mode:
        worker, _ = mode.split("@", 1)
        script = str(args.against_tree / "tests" / "benchmarks" / "bench_runtime.py")
        model, data = args.against_model, args.against_data
    cmd = [
        sys.executable,
        script,
        "--worker",
        worker,
        "--model",
        model,
        "--faces",
        str(args.faces),
        "--source",
        str(source),
        "--data",
        str(data),
    ]
    if args.frames:
        cmd += ["--frames", str(args.frames)]
    if worker == "idle":
        cmd += ["--motion", args.motion, "--idle-minutes", str(args.idle_minutes), "--idle-fps", str(args.idle_fps)]
        cmd += ["--clip", str(args.clip)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([*cmd, "--spawned-at", repr(time.time())], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": tail}
    return json.loads(done.stdout.strip().splitlines()[-1])


STAGES = ("capture", "gate", "detect", "align", "embed", "match", "log")


def runtime_tables(rows: list[tuple[str, str, dict]], caption: str) -> str:
    """The two markdown tables (throughput, per-stage time) from (input, design, result) rows (pure)."""
    lines = [
        f"_{caption}_",
        "",
        "| input | design | frames | fps | ratio vs per-frame | start to 1st frame s | embeddings | embeddings per logged person | peak RSS MB | logged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for input_name, mode, r in rows:
        if "error" in r:
            lines.append(f"| {input_name} | {mode} | error: {r['error']} |||||||")
            continue
        base = next((x for i, m, x in rows if i == input_name and m == "per-frame"), {})
        fps = r["frames"] / r["seconds"] if r["seconds"] else 0.0
        base_fps = base["frames"] / base["seconds"] if base.get("seconds") else 0.0
        per_person = r["embeddings"] / max(len(r["logged"]), 1)
        lines.append(
            f"| {input_name} | {mode} | {r['frames']} | {fps:.1f} | {fps / base_fps if base_fps else 0:.2f}x | {r['startup']:.2f} | "
            f"{r['embeddings']} | {per_person:.1f} | {r['rss_mb']:.0f} | {', '.join(r['logged']) or '-'} |"
        )
    lines += ["", "Per-stage time, ms per frame:", "", "| input | design | " + " | ".join(STAGES) + " |"]
    lines.append("|---|---|" + "---|" * len(STAGES))
    for input_name, mode, r in rows:
        if "error" in r or not r["stages_ms"]:
            continue
        lines.append(
            f"| {input_name} | {mode} | " + " | ".join(f"{r['stages_ms'].get(s, 0.0):.2f}" for s in STAGES) + " |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a .tflite with its sidecar (default: the configured model)")
    p.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "faces")
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--repeat", type=int, default=2, help="runs per design; the fastest is reported")
    p.add_argument(
        "--results",
        type=Path,
        default=default_results(__file__),
        help="markdown file for the tables, included by docs/accuracy-and-speed.md (default: %(default)s)",
    )
    p.add_argument(
        "--against",
        metavar="REV",
        help="also run REV's terminal loop (a temporary git worktree of that commit), alternating with this "
        "tree's, so old and new are measured side by side in one run",
    )
    p.add_argument(
        "--idle-minutes",
        type=float,
        default=5.0,
        help="minutes of empty entrance before the person walks in, per gate setting; 0 skips the idle table "
        "(default: %(default)s)",
    )
    p.add_argument("--idle-fps", type=float, default=10.0, help="the idle camera's frame rate (default: %(default)s)")
    p.add_argument("--worker", choices=sorted(WORKERS))
    p.add_argument("--motion", choices=("off", "on"), default="on")
    p.add_argument("--clip", type=Path)
    p.add_argument("--source")
    p.add_argument("--data")
    p.add_argument("--spawned-at", type=float)
    return p.parse_args(argv)


@contextlib.contextmanager
def against_tree(rev: str | None, tmp: Path) -> Iterator[Path | None]:
    """A detached git worktree of `rev` for the duration of the run (removed afterwards)."""
    if rev is None:
        yield None
        return
    tree = tmp / "against"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev], check=True, capture_output=True
    )
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)


def prepare_against(tree: Path, faces: Path) -> tuple[str, Path]:
    """REV's own model and gallery, made by REV's own CLI: a model sidecar or a
    gallery format may have changed since, and each loop must run on files its
    own code wrote (the .tflite bytes are the same; the sidecar may not be)."""
    data = tree / "bench-data"
    models = data / "models"
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
    cli = [sys.executable, "-m", "device.cli"]
    subprocess.run(
        [*cli, "convert", "dlib-resnet-v1", "--output", str(models)], check=True, capture_output=True, env=env, cwd=tree
    )
    model = models / "dlib-resnet-v1.tflite"
    config = data / "clockface.toml"
    config.write_text(f'[paths]\ndata_dir = "{data}"\nmodel = "{model}"\n', encoding="utf-8")
    subprocess.run(
        [*cli, "--config", str(config), "enroll", str(faces)], check=True, capture_output=True, env=env, cwd=tree
    )
    return str(model), data


def main() -> None:
    args = parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args, args.spawned_at)))
        return
    if args.model is None:
        from device.config import load_config

        args.model = str(load_config(None).paths.model_path)
    clip = args.faces / "_video" / "1.mp4"
    if not clip.is_file():
        sys.exit(f"benchmark needs {clip} (../shared beside the repository)")
    try:
        import face_recognition  # noqa: F401

        modes = ["clockface", "per-frame", "face_recognition"]
    except ImportError:
        modes = ["clockface", "per-frame"]
    with tempfile.TemporaryDirectory() as tmp, against_tree(args.against, Path(tmp)) as tree:
        data = Path(tmp)
        if tree is not None:
            args.against_tree = tree
            args.against_model, args.against_data = prepare_against(tree, args.faces)
            modes.insert(1, f"clockface@{args.against}")
        people = enrol_gallery(args.faces, args.model, data)
        synthetic = synthetic_stream(data / "synthetic.avi", loops=8)
        rows = []
        for input_name, source in (("shared clip 640x360", clip), ("synthetic 640x480", synthetic)):
            # Alternate the designs and keep each one's faster run: load from
            # other processes then hits both alike.
            results: dict[str, dict] = {}
            for _ in range(args.repeat):
                for mode in modes:
                    r = run_worker(mode, args, source, data)
                    best = results.get(mode)
                    if best is None or "error" in best or ("error" not in r and r["seconds"] < best["seconds"]):
                        results[mode] = r
            for mode, r in results.items():
                rows.append((input_name, mode, r))
        caption = (
            f"device runtime benchmark ({Path(args.model).name}, gallery of {people} people, "
            f"{os.cpu_count()} cores, best of {args.repeat})"
        )
        markdown = runtime_tables(rows, caption)
        if args.idle_minutes > 0:
            args.clip = clip
            idle_rows = []
            for setting in ("off", "on"):
                args.motion = setting
                r = run_worker("idle", args, clip, data)
                idle_rows.append({"motion": setting, **(r or {"error": "no result"})})
            markdown += "\n\n" + idle_table(
                idle_rows,
                f"idle entrance: {args.idle_minutes:g} min of an empty, noisy 640x480 scene at {args.idle_fps:g} fps "
                f"in real time, then {IDLE_PERSON[0]} walks in {WALK_INS} times (the delay is from their first frame "
                "in view to the logged event); motion gate off vs on, each in its own process, one run each",
                args.idle_fps,
            )
    print(markdown)
    written = write_results(args.results, markdown, provenance(__file__))
    print(f"\nwrote {written}", file=sys.stderr)


if __name__ == "__main__":
    main()
