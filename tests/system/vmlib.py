"""Helpers for the QEMU boot test (tests/system/test_boot_vm.py).

Everything here runs on the host as root: debootstrap a Debian bookworm root
filesystem with a kernel (cached, keyed by a hash of the inputs), copy it per
run, install the project into it with its own ``./setup.sh --device`` (in a
chroot that reaches PyPI through the host's network), add the model, a video
camera source and the in-guest check unit, then boot it under QEMU with
software emulation and read the results from the serial console.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SUITE = "bookworm"
CACHE = Path(os.environ.get("CLOCKFACE_VM_CACHE", "/var/cache/clockface-vmtest"))
# debootstrap --include (minbase adds no init, no udev, no kernel).
BASE_INCLUDE = ["systemd", "systemd-sysv", "dbus", "udev", "python3", "python3-venv", "ca-certificates", "kmod"]
KERNEL_PACKAGES = ["linux-image-amd64", "initramfs-tools"]
# Bump when the build recipe below changes in a way the lists do not show.
RECIPE = "3"
HOST_TOOLS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "debootstrap": "debootstrap",
    "mcopy": "mtools",
    "mkfs.vfat": "dosfstools",
    "mke2fs": "e2fsprogs",
}


class Log:
    """Timestamped progress on stdout (pytest -s shows it; captured output shows it on failure)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        print(f"[vm {time.monotonic() - self.t0:7.1f}s] {msg}", flush=True)


def missing_tools() -> list[str]:
    return [pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()]


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (the only one this machine reaches)."""
    candidates: list[str] = []
    for f in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        text = f.read_text(errors="replace")
        for stanza in text.split("\n\n"):
            if re.search(r"^Suites:.*\b%s\b" % SUITE, stanza, re.M) and "security" not in stanza:
                m = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if m:
                    candidates.append(m.group(1))
    lst = Path("/etc/apt/sources.list")
    if lst.exists():
        for line in lst.read_text(errors="replace").splitlines():
            m = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+%s\s" % SUITE, line)
            if m and "security" not in m.group(1):
                candidates.append(m.group(1))
    return candidates[0] if candidates else "http://deb.debian.org/debian"


def run(cmd: list[str] | str, log: Log | None = None, **kw) -> subprocess.CompletedProcess:
    """Run a command; on failure raise with the tail of its output."""
    shell = isinstance(cmd, str)
    p = subprocess.run(cmd, shell=shell, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    if p.returncode != 0:
        tail = "\n".join(p.stdout.splitlines()[-40:])
        raise RuntimeError(f"command failed ({p.returncode}): {cmd}\n{tail}")
    return p


def base_key(mirror: str) -> str:
    text = "\n".join([RECIPE, SUITE, mirror, " ".join(BASE_INCLUDE), " ".join(KERNEL_PACKAGES)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def chroot_mounts(root: Path, pip_cache: Path | None = None) -> Iterator[None]:
    """/proc, /sys, /dev and the host's resolv.conf inside *root* for the duration."""
    mounted: list[Path] = []
    try:
        for src, dst, opts in (
            ("proc", "proc", ["-t", "proc"]),
            ("sysfs", "sys", ["-t", "sysfs"]),
            ("/dev", "dev", ["--bind"]),
            ("devpts", "dev/pts", ["-t", "devpts"]),
        ):
            target = root / dst
            target.mkdir(parents=True, exist_ok=True)
            run(["mount", *opts, src, str(target)])
            mounted.append(target)
        if pip_cache is not None:
            pip_cache.mkdir(parents=True, exist_ok=True)
            target = root / "var/cache/clockface-pip"
            target.mkdir(parents=True, exist_ok=True)
            run(["mount", "--bind", str(pip_cache), str(target)])
            mounted.append(target)
        resolv = root / "etc/resolv.conf"
        if resolv.is_symlink():
            resolv.unlink()
        shutil.copy("/etc/resolv.conf", resolv)
        yield
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)


def build_base(log: Log) -> Path:
    """A cached Debian bookworm root with systemd, udev, python3 and a kernel.

    Returns a folder holding ``rootfs/``, ``vmlinuz`` and ``initrd.img``. Built
    once per input hash (~2-3 minutes), then reused.
    """
    mirror = debian_mirror()
    out = CACHE / f"base-{base_key(mirror)}"
    if (out / "done").exists():
        log(f"base image cached: {out}")
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f"building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    rootfs = tmp / "rootfs"
    rootfs.mkdir(parents=True)
    log(f"debootstrap {SUITE} minbase from {mirror} (first run only, ~1-2 min)")
    run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_INCLUDE)}", SUITE, str(rootfs), mirror])
    # Security updates too, like a real install (same mirror host layout as the host's apt).
    (rootfs / "etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main\n")
    # No questions from a kernel postinst, a small initrd that still has virtio and ext4.
    conf = rootfs / "etc/initramfs-tools/conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "clockface-vm.conf").write_text("MODULES=dep\n" if False else "MODULES=most\nCOMPRESS=gzip\n")
    log("installing the kernel into the base (~1 min)")
    with chroot_mounts(rootfs):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
        run(["chroot", str(rootfs), "apt-get", "install", "-y", "--no-install-recommends", *KERNEL_PACKAGES], env=env)
        run(["chroot", str(rootfs), "apt-get", "clean"], env=env)
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError(f"no kernel/initrd in {rootfs / 'boot'}")
    shutil.copy(kernels[-1], tmp / "vmlinuz")
    shutil.copy(initrds[-1], tmp / "initrd.img")
    # A console login is never needed; the root account stays locked.
    (rootfs / "etc/hostname").write_text("clockface-vm\n")
    (rootfs / "etc/fstab").write_text("/dev/vda / ext4 rw,errors=remount-ro 0 1\n")
    (tmp / "done").write_text(base_key(mirror) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log(f"base image built: {out}")
    return out
