"""A USB enrolment stick: where its photos are and where it is mounted.

The udev rule and systemd unit (systemd/) mount the stick with systemd-mount
and run `clockface enroll-stick --mount-point DIR` (or `--device /dev/sdX1`,
whose mount point is then looked up here). This module only finds things; the
one call that changes the system, `systemd-umount`, is `unmount()`, kept small
so that tests replace it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gallery.layout import examine_entry

# Where the photos may be on a stick, most specific first. Matched without
# regard to case: FAT sticks written on Windows often say IMAGES or Images.
IMAGE_FOLDERS = (("clockface", "images"), ("images",))
MOUNTS = Path("/proc/self/mounts")


class StickError(RuntimeError):
    """A stick that cannot be used, as one line."""


@dataclass(frozen=True)
class Mount:
    device: str
    mount_point: Path
    fstype: str
    options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def _child(folder: Path, name: str, file_system: int) -> Path | None:
    """`folder/name` ignoring case, or None. A folder that is really a symbolic
    link off the stick's file system (or a link loop) raises StickError: the
    stick's photos must be on the stick, and the person who made it is told."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return None
    exact = [e for e in entries if e.name == name]
    for entry in exact + [e for e in entries if e.name != name and e.name.lower() == name.lower()]:
        found = examine_entry(entry, file_system)
        if found.kind == "dir":
            return entry
        if found.reason.startswith(("symbolic link leaves", "symbolic link loop")):
            raise StickError(f"{entry}: {found.reason}; put the photos themselves on the stick")
    return None


def find_images_dir(mount_point: Path) -> Path | None:
    """The stick's photo folder: `clockface/images/`, else `images/`; None when it has neither
    (a stick that is not meant for clockface: leave it alone). Raises StickError
    when the folder is a symbolic link that leaves the stick."""
    file_system = os.stat(mount_point).st_dev
    for parts in IMAGE_FOLDERS:
        folder: Path | None = Path(mount_point)
        for part in parts:
            folder = _child(folder, part, file_system) if folder is not None else None
        if folder is not None:
            return folder
    return None


def report_dir(images_dir: Path) -> Path:
    """Reports go beside the photo folder (the stick's root, or its clockface/ folder),
    where the person who made the stick will see them, and never among the photos."""
    return Path(images_dir).parent


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as \\040 etc."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mounts(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        mounts.append(Mount(_unescape(fields[0]), Path(_unescape(fields[1])), fields[2], tuple(fields[3].split(","))))
    return mounts


def _same_device(a: str, b: str) -> bool:
    if a == b:
        return True
    try:  # /dev/disk/by-uuid/... symlinks, /dev/sdb1 given as sdb1
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


def mount_of_device(device: str, mounts: list[Mount]) -> Mount | None:
    """Where `device` (/dev/sdb1, sdb1, or a /dev/disk/by-* link) is mounted; the last
    mount wins, as in the kernel's table."""
    wanted = device if device.startswith("/") else f"/dev/{device}"
    found = [m for m in mounts if _same_device(m.device, wanted)]
    return found[-1] if found else None


def read_mounts(path: Path | None = None) -> list[Mount]:
    """The kernel's mount table (/proc/self/mounts), empty when unreadable."""
    try:
        return parse_mounts(Path(path or MOUNTS).read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError:
        return []


def resolve_mount_point(
    device: str | None = None,
    mount_point: Path | None = None,
    wait_seconds: float = 0.0,
    mounts: Callable[[], list[Mount]] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Path:
    """The folder to enrol from: `mount_point` as given (it must be a folder), or the
    mount point of `device`, waiting up to `wait_seconds` for it to be mounted
    (systemd-mount may still be busy when the service starts)."""
    if (device is None) == (mount_point is None):
        raise StickError("give either --device or --mount-point")
    if mount_point is not None:
        mount_point = Path(mount_point)
        if not mount_point.is_dir():
            raise StickError(f"mount point {mount_point} is not a folder (is the stick mounted?)")
        return mount_point
    assert device is not None
    table = mounts or read_mounts
    deadline = clock() + wait_seconds
    while True:
        found = mount_of_device(device, table())
        if found is not None:
            return found.mount_point
        if clock() >= deadline:
            raise StickError(
                f"{device} is not mounted (waited {wait_seconds:g} s); the clockface-stick unit mounts it with systemd-mount"
            )
        sleep(0.5)


def unmount(mount_point: Path) -> tuple[bool, str]:
    """Ask systemd to unmount the stick (it flushes first). Returns (ok, message)."""
    try:
        done = subprocess.run(["systemd-umount", str(mount_point)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"could not unmount {mount_point}: {exc}"
    if done.returncode != 0:
        return (
            False,
            f"could not unmount {mount_point}: {(done.stderr or done.stdout).strip() or f'exit status {done.returncode}'}",
        )
    return True, f"unmounted {mount_point}: the stick can be removed"
