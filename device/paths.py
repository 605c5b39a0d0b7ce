"""Where clockface keeps its files when the config does not say: the one place that decides.

Every function takes the environment as a mapping (the CLI passes os.environ,
tests a plain dict), so nothing here reads global state at import time and two
callers can never compute the same default two different ways.

The XDG base-directory rules apply to every variable alike: an unset, empty
or relative ``$XDG_*_HOME`` is ignored (the spec says relative values are
invalid) and the ``$HOME`` default is used instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

APP = "clockface"
CONFIG_ENV = "CLOCKFACE_CONFIG"
CONFIG_NAME = "clockface.toml"
SYSTEM_CONFIG = Path("/etc/clockface") / CONFIG_NAME
GALLERY_DB_NAME = "gallery.db"
ATTENDANCE_DB_NAME = "attendance.db"
PASSWORD_FILE_NAME = "web-password"


def home(env: Mapping[str, str]) -> Path:
    value = env.get("HOME")
    return Path(value) if value else Path.home()


def _xdg(env: Mapping[str, str], variable: str, fallback: str) -> Path:
    value = env.get(variable) or ""
    return Path(value) if value and Path(value).is_absolute() else home(env) / fallback


def data_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/clockface``, else ``~/.local/share/clockface`` (a terminal sets /var/lib/clockface)."""
    return _xdg(env, "XDG_DATA_HOME", ".local/share") / APP


def models_dir(data: Path) -> Path:
    """Converted .tflite models and their sidecars, under the data dir."""
    return data / "models"


def weights_cache_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/clockface/weights``: downloaded source weights (the converter's cache)."""
    return _xdg(env, "XDG_CACHE_HOME", ".cache") / APP / "weights"


def gallery_db(data: Path) -> Path:
    return data / GALLERY_DB_NAME


def attendance_db(data: Path) -> Path:
    return data / ATTENDANCE_DB_NAME


def web_password_file(attendance: Path) -> Path:
    """The web view's password hash lives next to the attendance database, readable by the service user only."""
    return attendance.parent / PASSWORD_FILE_NAME


def user_config_file(env: Mapping[str, str]) -> Path:
    return _xdg(env, "XDG_CONFIG_HOME", ".config") / APP / CONFIG_NAME


def find_config_file(env: Mapping[str, str]) -> Path | None:
    """``$CLOCKFACE_CONFIG``, else the user's config file, else /etc/clockface/clockface.toml, else None.

    ``$CLOCKFACE_CONFIG`` is returned even when it does not exist, so that a
    typo in it is an error rather than a silent fall back to other settings.
    """
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    for candidate in (user_config_file(env), SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    return None
