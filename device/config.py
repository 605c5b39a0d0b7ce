"""The one clockface configuration: a TOML file parsed once, at the CLI edge,
into a frozen typed object that is passed down. No other module reads the
file or the environment, and no other module parses or validates a setting.

Every key is optional; `clockface config show` prints the effective values and
device/clockface.example.toml documents them and their ranges (a test keeps
the two in step).

How a table becomes a settings object: the settings dataclasses live next to
the code they configure and carry their bounds in their type hints
(``Annotated[float, msgspec.Meta(gt=0, le=2)]``); :func:`_section` hands each
TOML table to ``msgspec.convert(..., strict=True)``, which checks types
(no ``"2"`` for 2, no ``1`` for ``true``) and bounds (NaN and infinity fail
every bound). msgspec ignores unknown keys in dataclasses, so they are refused
here first: a misspelt ``treshold`` must not silently keep the default.
Every failure becomes one :class:`ConfigError` line in one wording, built here
from the field's type hint, e.g.
``config /etc/clockface/clockface.toml: recognition.threshold = 1e+300 is out of range (0 < x <= 2)``.

Why one module over 300 lines: it is the one loader the issue asked for; every section's table-to-dataclass conversion and its one error wording live together so that no other module parses TOML.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from device import paths as default_paths
from device.enrolment.photo_rules import EnrolRules
from device.sync.settings import CentralSettings
from device.terminal.kiosk import KioskSettings
from device.terminal.motion import MotionSettings
from device.terminal.preview import PreviewSettings
from device.terminal.recorder import Checkout
from device.vision.detect import DetectionSettings
from logs.settings import LogsSettings, SettingsError, WebSettings, show_value

DEFAULT_MODEL = "dlib-resnet-v1"


class ConfigError(SettingsError):
    """A config file that cannot be used, as one line: ``config <file>: <key> = <value> is ...``."""


@dataclass(frozen=True)
class PathSettings:
    data_dir: Path
    model: str = DEFAULT_MODEL  # a name under <data_dir>/models, or a path to a .tflite
    gallery_db: Path | None = None  # default <data_dir>/gallery.db
    attendance_db: Path | None = None  # default <data_dir>/attendance.db

    @property
    def models_dir(self) -> Path:
        return default_paths.models_dir(self.data_dir)

    @property
    def model_path(self) -> Path:
        candidate = Path(self.model).expanduser()
        if candidate.suffix == ".tflite" or len(candidate.parts) > 1:
            return candidate
        return self.models_dir / f"{self.model}.tflite"

    @property
    def gallery(self) -> Path:
        return self.gallery_db or default_paths.gallery_db(self.data_dir)

    @property
    def attendance(self) -> Path:
        return self.attendance_db or default_paths.attendance_db(self.data_dir)


@dataclass(frozen=True)
class CameraSettings:
    source: str = "camera:0"  # camera:N, /dev/videoN, picamera2, a video file/URL, or an image folder
    width: Annotated[int, Meta(ge=16, le=8192)] = 640
    height: Annotated[int, Meta(ge=16, le=8192)] = 480


@dataclass(frozen=True)
class RecognitionSettings:
    # None: the model's calibrated default (see its sidecar). Distances of
    # unit-length embeddings are at most 2; above that everyone matches.
    threshold: Annotated[float, Meta(gt=0, le=2)] | None = None
    threads: Annotated[int, Meta(ge=1, le=16)] = 2  # TFLite interpreter threads
    confirm_k: Annotated[int, Meta(ge=1, le=32)] = 2  # a track is a person when k ...
    confirm_n: Annotated[int, Meta(ge=1, le=32)] = 4  # ... of its last n embeddings agree
    # A track that has not become a person after this many embeddings is unknown (and no longer embedded).
    # 12 = 3 x confirm_n, chosen not fitted: on the shared clip the walking-up face first agreed at its
    # 5th embedding; 12 bounds an unknown face's cost at about 1 s of embeddings on a Pi 4.
    unknown_after: Annotated[int, Meta(ge=1, le=256)] = 12
    # Smaller faces are tracked but not embedded: too few pixels to tell people apart.
    min_face_px: Annotated[int, Meta(ge=1, le=4096)] = 40
    cooldown_minutes: Annotated[float, Meta(ge=0, le=10080)] = 60.0  # a person is logged again only after this long
    checkout: Checkout = "none"  # see device/terminal/recorder.py
    log_unknown: bool = False  # record that an unknown face was seen (time and place only, never an image)
    track_iou: Annotated[float, Meta(gt=0, le=1)] = (
        0.3  # a box continues a track when it overlaps the last box this much
    )
    track_max_missing: Annotated[int, Meta(ge=0, le=1000)] = 15  # frames a track survives without a detection

    def __post_init__(self) -> None:
        if self.confirm_k > self.confirm_n:
            raise SettingsError.about(
                "recognition.confirm_k",
                self.confirm_k,
                f"is out of range (1 <= x <= recognition.confirm_n = {self.confirm_n})",
            )
        if self.unknown_after < self.confirm_n:
            raise SettingsError.about(
                "recognition.unknown_after",
                self.unknown_after,
                f"is out of range (recognition.confirm_n = {self.confirm_n} <= x <= 256)",
            )


@dataclass(frozen=True)
class DoorSettings:
    """What the person at the door hears and sees besides the screen (device/terminal/chime.py, gpio.py)."""

    chime: bool = True  # off by itself when there is no sound card
    # BCM numbers (GPIO17 is 17) of an LED or buzzer wired to the header; unset: not fitted.
    green_led_pin: Annotated[int, Meta(ge=0, le=27)] | None = None
    red_led_pin: Annotated[int, Meta(ge=0, le=27)] | None = None
    buzzer_pin: Annotated[int, Meta(ge=0, le=27)] | None = None
    light_seconds: Annotated[float, Meta(gt=0, le=30)] = 2.0
    buzzer_seconds: Annotated[float, Meta(gt=0, le=5)] = 0.2

    def __post_init__(self) -> None:
        seen: dict[int, str] = {}
        for key in ("green_led_pin", "red_led_pin", "buzzer_pin"):
            pin = getattr(self, key)
            if pin is not None and pin in seen:
                raise SettingsError.about(f"door.{key}", pin, f"is already door.{seen[pin]}")
            if pin is not None:
                seen[pin] = key


@dataclass(frozen=True)
class Config:
    paths: PathSettings
    camera: CameraSettings = field(default_factory=CameraSettings)
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    recognition: RecognitionSettings = field(default_factory=RecognitionSettings)
    motion: MotionSettings = field(default_factory=MotionSettings)
    enrol: EnrolRules = field(default_factory=EnrolRules)
    preview: PreviewSettings = field(default_factory=PreviewSettings)
    kiosk: KioskSettings = field(default_factory=KioskSettings)
    door: DoorSettings = field(default_factory=DoorSettings)
    logs: LogsSettings = field(default_factory=LogsSettings)
    central: CentralSettings = field(default_factory=CentralSettings)
    source_file: Path | None = None  # where this config came from (None: defaults only)

    def to_toml_dict(self) -> dict[str, Any]:
        """The effective configuration, as TOML tables (for `config show`)."""
        out: dict[str, Any] = {}
        for name, value in (
            ("paths", self.paths),
            ("camera", self.camera),
            ("detection", self.detection),
            ("recognition", self.recognition),
            ("motion", self.motion),
            ("enrol", self.enrol),
            ("preview", self.preview),
            ("kiosk", self.kiosk),
            ("door", self.door),
            ("central", self.central),
        ):
            out[name] = {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
        out["paths"].update(gallery_db=str(self.paths.gallery), attendance_db=str(self.paths.attendance))
        logs = dataclasses.asdict(self.logs)
        web = logs.pop("web")
        out["logs"] = {k: _plain(v) for k, v in logs.items()}
        out["web"] = {k: _plain(v) for k, v in web.items()}
        return out


# Each TOML table and the dataclass it becomes. [web] is LogsSettings.web.
SECTIONS: dict[str, type] = {
    "paths": PathSettings,
    "camera": CameraSettings,
    "detection": DetectionSettings,
    "recognition": RecognitionSettings,
    "motion": MotionSettings,
    "enrol": EnrolRules,
    "preview": PreviewSettings,
    "kiosk": KioskSettings,
    "door": DoorSettings,
    "logs": LogsSettings,
    "web": WebSettings,
    "central": CentralSettings,
}
_NOT_KEYS = {"logs": {"web"}}  # fields filled from another table, not keys of this one


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# --- what a type hint allows, in words ------------------------------------------


@dataclass(frozen=True)
class Allowed:
    """What one field accepts: its base type, its bounds, and whether "" (unset) is allowed."""

    base: Any
    meta: Meta | None = None
    optional: bool = False

    @property
    def kind(self) -> str:
        if typing.get_origin(self.base) is Literal:
            return "one of " + ", ".join(repr(v) for v in typing.get_args(self.base))
        return {
            bool: "true or false",
            int: "an integer",
            float: "a number",
            str: "a string",
            Path: "a path",
            time: "a time like 08:30",
        }.get(self.base, getattr(self.base, "__name__", str(self.base)))

    @property
    def range(self) -> str:
        """``0 < x <= 2`` from the field's bounds, or the description of a pattern; "" when unbounded."""
        m = self.meta
        if m is None:
            return ""
        if m.description:
            return m.description
        lower = f"{m.ge:g} <= " if m.ge is not None else f"{m.gt:g} < " if m.gt is not None else ""
        upper = f" <= {m.le:g}" if m.le is not None else f" < {m.lt:g}" if m.lt is not None else ""
        if m.min_length and not (lower or upper):
            return "not empty"
        return f"{lower}x{upper}" if lower or upper else ""

    def accepts_kind(self, value: Any) -> bool:
        """True when *value* is of the right type, so a failure must be its range."""
        if isinstance(value, bool):
            return self.base is bool
        if self.base is float:
            return isinstance(value, (int, float))
        return self.base in (int, str) and isinstance(value, self.base)

    def problem(self, value: Any) -> str:
        bounds = self.range
        if self.accepts_kind(value):
            return f"is out of range ({bounds})" if self.base in (int, float) else f"is not valid ({bounds})"
        notes = ", ".join(n for n in (bounds, 'or "" to unset' if self.optional else "") if n)
        return f"is not {self.kind}" + (f" ({notes})" if notes else "")


def allowed(hint: Any) -> Allowed:
    """Unwrap ``Annotated[T, Meta] | None`` into an :class:`Allowed`."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        hint = members[0] if len(members) == 1 else hint
    meta = None
    if typing.get_origin(hint) is Annotated:
        hint, *extras = typing.get_args(hint)
        meta = next((e for e in extras if isinstance(e, Meta)), None)
    return Allowed(hint, meta, optional)


def field_hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


# --- TOML tables to settings ----------------------------------------------------


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Path:
        if not isinstance(value, str):
            raise TypeError("not a path")
        return Path(value).expanduser()
    raise NotImplementedError(kind)


def _toml_spellings(table: Mapping[str, Any], hints: Mapping[str, Any]) -> dict[str, Any]:
    """What TOML cannot say directly: "" for "unset" (TOML has no null) and "08:30" for a time."""
    out = {}
    for key, value in table.items():
        spec = allowed(hints[key])
        if value == "" and spec.optional:
            value = None
        elif spec.base is time and isinstance(value, str):
            # Unparsable text is left as is: msgspec refuses it and the error names the key.
            with contextlib.suppress(ValueError):
                value = time.fromisoformat(value.strip())
        out[key] = value
    return out


_AT_KEY = re.compile(r" - at `\$\.(\w+)")


def _section(cls: type, name: str, table: Any, **fixed: Any) -> Any:
    """Build dataclass *cls* from TOML table *name*, or raise a one-line SettingsError."""
    if not isinstance(table, Mapping):
        raise SettingsError(f"[{name}] = {show_value(table)} is not a table")
    hints = field_hints(cls)
    known = sorted(set(hints) - _NOT_KEYS.get(name, set()) - set(fixed))
    for key, value in table.items():
        if key not in known:
            raise SettingsError.about(f"{name}.{key}", value, f"is not a known key (known: {', '.join(known)})")
    values = _toml_spellings(table, hints)
    try:
        return msgspec.convert({**values, **fixed}, cls, strict=True, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        if isinstance(exc.__cause__, SettingsError):  # a cross-field check in __post_init__
            raise SettingsError(str(exc.__cause__)) from None
        match = _AT_KEY.search(str(exc))
        if match is None or match.group(1) not in values:
            raise SettingsError(f"[{name}]: {str(exc).splitlines()[0]}") from None
        key = match.group(1)
        raise SettingsError.about(f"{name}.{key}", table[key], allowed(hints[key]).problem(table[key])) from None


def parse_config(doc: Mapping[str, Any], env: Mapping[str, str], source_file: Path | None = None) -> Config:
    """The TOML document *doc* as a Config; any unusable value raises one ConfigError line."""
    try:
        return _parse(doc, env, source_file)
    except SettingsError as exc:
        raise ConfigError(f"config {source_file}: {exc}" if source_file else f"config: {exc}") from None


def _parse(doc: Mapping[str, Any], env: Mapping[str, str], source_file: Path | None) -> Config:
    for name in doc:
        if name not in SECTIONS:
            raise SettingsError(f"[{name}] is not a known section (known: {', '.join(SECTIONS)})")
    paths_table = doc.get("paths", {})
    if isinstance(paths_table, Mapping) and paths_table.get("data_dir", "") == "":
        paths_table = {**paths_table, "data_dir": str(default_paths.data_dir(env))}
    paths = _section(PathSettings, "paths", paths_table)
    # Resolve the defaults once, so every reader sees the same concrete paths.
    paths = dataclasses.replace(paths, gallery_db=paths.gallery, attendance_db=paths.attendance)
    web = _section(WebSettings, "web", doc.get("web", {}))
    logs = dataclasses.replace(_section(LogsSettings, "logs", doc.get("logs", {})), web=web)
    return Config(
        paths=paths,
        camera=_section(CameraSettings, "camera", doc.get("camera", {})),
        detection=_section(DetectionSettings, "detection", doc.get("detection", {})),
        recognition=_section(RecognitionSettings, "recognition", doc.get("recognition", {})),
        motion=_section(MotionSettings, "motion", doc.get("motion", {})),
        enrol=_section(EnrolRules, "enrol", doc.get("enrol", {})),
        preview=_section(PreviewSettings, "preview", doc.get("preview", {})),
        kiosk=_section(KioskSettings, "kiosk", doc.get("kiosk", {})),
        door=_section(DoorSettings, "door", doc.get("door", {})),
        logs=logs,
        central=_section(CentralSettings, "central", doc.get("central", {})),
        source_file=source_file,
    )


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    path = path or default_paths.find_config_file(env)
    if path is None:
        return parse_config({}, env)
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config {path}: the file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path}: the file cannot be read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: the file is not valid TOML ({exc})") from None
    return parse_config(doc, env, Path(path))
