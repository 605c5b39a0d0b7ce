"""The one clockface configuration: a TOML file parsed once, at the CLI edge,
into a frozen typed object that is passed down. No other module reads the
file or the environment.

Every key is optional; `clockface config show` prints the effective values and
device/clockface.example.toml documents them (a test keeps the two in step).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from device.enrolment.photo_rules import EnrolRules
from device.terminal.preview import PreviewSettings
from device.terminal.recorder import CHECKOUT_MODES
from device.vision.detect import DetectionSettings
from logs.settings import LogsSettings, SettingsError

CONFIG_ENV = "CLOCKFACE_CONFIG"
SYSTEM_CONFIG = Path("/etc/clockface/clockface.toml")
DEFAULT_MODEL = "dlib-resnet-v1"


class ConfigError(ValueError):
    """A config file that cannot be used, as one line naming the key."""


@dataclass(frozen=True)
class PathSettings:
    data_dir: Path
    model: str = DEFAULT_MODEL  # a name under <data_dir>/models, or a path to a .tflite
    gallery_db: Path | None = None  # default <data_dir>/gallery.db
    attendance_db: Path | None = None  # default <data_dir>/attendance.db

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def model_path(self) -> Path:
        candidate = Path(self.model).expanduser()
        if candidate.suffix == ".tflite" or len(candidate.parts) > 1:
            return candidate
        return self.models_dir / f"{self.model}.tflite"

    @property
    def gallery(self) -> Path:
        return self.gallery_db or self.data_dir / "gallery.db"

    @property
    def attendance(self) -> Path:
        return self.attendance_db or self.data_dir / "attendance.db"


@dataclass(frozen=True)
class CameraSettings:
    source: str = "camera:0"  # camera:N, /dev/videoN, picamera2, a video file/URL, or an image folder
    width: int = 640
    height: int = 480


@dataclass(frozen=True)
class RecognitionSettings:
    threshold: float | None = None  # None: the model's calibrated default (see its sidecar)
    threads: int = 2  # TFLite interpreter threads
    confirm_k: int = 2  # a track is a person when k ...
    confirm_n: int = 4  # ... of its first n embeddings agree; n without agreement = unknown
    min_face_px: int = 40  # smaller faces are tracked but not embedded: too few pixels to tell people apart
    cooldown_minutes: float = 60.0  # a person is logged again only after this long
    checkout: str = "none"  # "none" | "last-sighting" | "exit" (see device/terminal/recorder.py)
    log_unknown: bool = False  # record that an unknown face was seen (time and place only, never an image)

    def __post_init__(self) -> None:
        if self.checkout not in CHECKOUT_MODES:
            raise ValueError(f"recognition.checkout must be one of {', '.join(CHECKOUT_MODES)}, got {self.checkout!r}")
        if not 1 <= self.confirm_k <= self.confirm_n:
            raise ValueError("recognition.confirm_k must be between 1 and confirm_n")
        if self.threads < 1:
            raise ValueError("recognition.threads must be at least 1")

    track_iou: float = 0.3  # a box continues a track when it overlaps the last box this much
    track_max_missing: int = 15  # frames a track survives without a detection


@dataclass(frozen=True)
class Config:
    paths: PathSettings
    camera: CameraSettings = field(default_factory=CameraSettings)
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    recognition: RecognitionSettings = field(default_factory=RecognitionSettings)
    enrol: EnrolRules = field(default_factory=EnrolRules)
    preview: PreviewSettings = field(default_factory=PreviewSettings)
    logs: LogsSettings = field(default_factory=LogsSettings)
    source_file: Path | None = None  # where this config came from (None: defaults only)

    def to_toml_dict(self) -> dict[str, Any]:
        """The effective configuration, as TOML tables (for `config show`)."""
        out: dict[str, Any] = {}
        for name, value in (
            ("paths", self.paths),
            ("camera", self.camera),
            ("detection", self.detection),
            ("recognition", self.recognition),
            ("enrol", self.enrol),
            ("preview", self.preview),
        ):
            out[name] = {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
        out["paths"].update(gallery_db=str(self.paths.gallery), attendance_db=str(self.paths.attendance))
        logs = dataclasses.asdict(self.logs)
        web = logs.pop("web")
        out["logs"] = {k: _plain(v) for k, v in logs.items()}
        out["web"] = {k: _plain(v) for k, v in web.items()}
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return Path(base) / "clockface"


def find_config_file(env: Mapping[str, str]) -> Path | None:
    """$CLOCKFACE_CONFIG, else ~/.config/clockface/clockface.toml, else /etc/clockface/clockface.toml."""
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    user = (
        Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME", "~")).expanduser() / ".config")
        / "clockface"
        / "clockface.toml"
    )
    for candidate in (user, SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    return None


def _section(cls: type, table: Any, name: str, **fixed: Any) -> Any:
    """Build dataclass `cls` from a TOML table, rejecting unknown keys and wrong types."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{name}] must be a table")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown key {name}.{unknown[0]} (known: {', '.join(sorted(known))})")
    kwargs = dict(fixed)
    for key, value in table.items():
        kwargs[key] = _coerce(f"{name}.{key}", value, hints[key])
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc) if str(exc).startswith(f"{name}.") else f"[{name}]: {exc}") from None


def _coerce(key: str, value: Any, hint: Any) -> Any:
    text = str(hint)
    if value == "" and "None" in text:
        return None
    if "Path" in text:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a path string")
        return Path(value).expanduser()
    if "float" in text:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}")
    for kind in (bool, int, str):
        if kind.__name__ in text:
            if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
                return value
            raise ConfigError(f"{key} must be {kind.__name__}, got {value!r}")
    return value


def parse_config(doc: Mapping[str, Any], env: Mapping[str, str], source_file: Path | None = None) -> Config:
    known = {"paths", "camera", "detection", "recognition", "enrol", "preview", "logs", "web"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}] (known: {', '.join(sorted(known))})")
    paths_table = dict(doc.get("paths", {}))
    data_dir = Path(paths_table.pop("data_dir", "") or default_data_dir(env)).expanduser()
    try:
        logs = LogsSettings.from_toml_dict({"logs": doc.get("logs", {}), "web": doc.get("web", {})})
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    paths = _section(PathSettings, paths_table, "paths", data_dir=data_dir)
    # Resolve the defaults once, so every reader sees the same concrete paths.
    paths = dataclasses.replace(paths, gallery_db=paths.gallery, attendance_db=paths.attendance)
    return Config(
        paths=paths,
        camera=_section(CameraSettings, doc.get("camera", {}), "camera"),
        detection=_section(DetectionSettings, doc.get("detection", {}), "detection"),
        recognition=_section(RecognitionSettings, doc.get("recognition", {}), "recognition"),
        enrol=_section(EnrolRules, doc.get("enrol", {}), "enrol"),
        preview=_section(PreviewSettings, doc.get("preview", {}), "preview"),
        logs=logs,
        source_file=source_file,
    )


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    path = path or find_config_file(env)
    if path is None:
        return parse_config({}, env)
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(doc, env, Path(path))
