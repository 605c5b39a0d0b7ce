"""Helpers for the QEMU boot test (tests/system/test_boot_vm.py).

Everything here runs on the host as root: debootstrap a Debian bookworm root
filesystem with a kernel (cached, keyed by a hash of the inputs), copy it per
run, install the project into it with its own ``./setup.sh --device`` (in a
chroot that reaches PyPI through the host's network), add the model, a video
camera source and the in-guest check unit, then boot it under QEMU (KVM where
a probe boot shows it works, else software emulation, TCG) and read the
results from the serial console.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
    "debugfs": "e2fsprogs",
    "journalctl": "systemd",
}


# The boot test's per-check lines, for the terminal summary (tests/system/conftest.py).
REPORT: list[str] = []


class Log:
    """Timestamped progress on stdout (pytest -s shows it; captured output shows it on failure)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        print(f"[vm {time.monotonic() - self.t0:7.1f}s] {msg}", flush=True)


def missing_tools() -> list[str]:
    return [
        pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists()
    ]


def debian_mirror() -> str:
    """The Debian mirror apt is configured with (the only one this machine reaches)."""
    candidates: list[str] = []
    for f in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        text = f.read_text(errors="replace")
        for stanza in text.split("\n\n"):
            if re.search(rf"^Suites:.*\b{SUITE}\b", stanza, re.M) and "security" not in stanza:
                m = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if m:
                    candidates.append(m.group(1))
    lst = Path("/etc/apt/sources.list")
    if lst.exists():
        for line in lst.read_text(errors="replace").splitlines():
            m = re.match(rf"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", line)
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
    (rootfs / "etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main\n")
    # No questions from a kernel postinst, a small initrd that still has virtio and ext4.
    conf = rootfs / "etc/initramfs-tools/conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "clockface-vm.conf").write_text("MODULES=most\nCOMPRESS=gzip\n")
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


# --- the per-run image ---------------------------------------------------------------

MODEL = "dlib-resnet-v1"
VIDEO_IN_GUEST = "/usr/local/share/clockface-vmtest/1.mp4"


def new_work_dir(keep: int = 2) -> Path:
    """A folder for this run's image, stick and console logs, kept for a look afterwards.

    Not pytest's tmp_path: other pytest runs on the machine rotate those away
    while a 15-minute boot is still using them. Only the newest `keep` runs stay.
    """
    runs = CACHE / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    old = sorted(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    for stale in old[: max(0, len(old) - keep + 1)]:
        shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=runs))


def source_files() -> list[str]:
    """The project as a user would have it after `git clone` (tracked plus new, unignored files)."""
    out = run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"]).stdout
    return sorted(f for f in out.split("\0") if f and (REPO / f).is_file() and not f.startswith("tests/system/guest/"))


# Everything the terminal loads from its models folder: the embedding model and MTCNN
# (stills, and landmarks for frames), each with its sidecar.
MODEL_FILES = (
    f"{MODEL}.tflite",
    f"{MODEL}.json",
    "mtcnn-pnet.tflite",
    "mtcnn-rnet.tflite",
    "mtcnn-onet.tflite",
    "mtcnn.json",
)


def _has_models(folder: Path) -> bool:
    return all((folder / name).is_file() for name in MODEL_FILES)


def converter_key() -> str:
    """A short hash of the code that writes the model files and their sidecars: a cached
    conversion from older code (another sidecar format) must not reach the image."""
    h = hashlib.sha256()
    for path in sorted([*(REPO / "converter").glob("*.py"), REPO / "device/vision/model_card.py"]):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def find_model(log: Log) -> Path:
    """A folder with the converted models: a cached conversion by this code, else the dev copies."""
    cached = CACHE / f"model-{converter_key()}"
    if _has_models(cached):
        return cached
    clockface = REPO / ".venv/bin/clockface"
    if clockface.exists():
        log(f"converting {MODEL} and mtcnn once into {cached} (cached for later runs)")
        cached.mkdir(parents=True, exist_ok=True)
        outputs = []
        for name in (MODEL, "mtcnn"):
            p = subprocess.run(
                [str(clockface), "convert", name, "--output", str(cached)],
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=1200,
            )
            outputs += p.stdout.splitlines()[-3:]
        if _has_models(cached):
            return cached
        log("conversion failed, falling back to an existing copy: " + " | ".join(outputs))
    candidates = [REPO / "models-dev"]
    if clockface.exists():
        p = subprocess.run(
            [str(clockface), "config", "show", "--key", "paths.data_dir"], text=True, capture_output=True
        )
        if p.returncode == 0 and p.stdout.strip():
            candidates.append(Path(p.stdout.strip()) / "models")
    for c in candidates:
        if _has_models(c):
            return c
    raise FileNotFoundError(f"no converted {MODEL} model in {cached} or {candidates}")


def _owner(rootfs: Path, user: str) -> tuple[int, int]:
    for line in (rootfs / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3])
    raise KeyError(f"no user {user} in the image")


def set_toml_keys(config: Path, section: str, values: dict[str, str]) -> None:
    """Set `key = value` lines (values already TOML literals) in [section] of the installed
    TOML, replacing a key's line or its commented-out example, keeping the rest of the file."""
    text = config.read_text()
    m = re.search(rf"^\[{re.escape(section)}\][^\n]*\n", text, re.M)
    if m is None:
        text += f"\n[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
        config.write_text(text)
        return
    end = re.search(r"^\[", text[m.end() :], re.M)
    section_end = m.end() + (end.start() if end else len(text) - m.end())
    body = text[m.end() : section_end]
    for key, value in values.items():
        line = f"{key} = {value}"
        pattern = rf"^\s*#?\s*{re.escape(key)}\s*=.*$"
        if re.search(pattern, body, re.M):
            body = re.sub(pattern, lambda _m, line=line: line, body, count=1, flags=re.M)
        else:
            body = line + "\n" + body
    config.write_text(text[: m.end()] + body + text[section_end:])


def set_camera_source(config: Path, source: str) -> None:
    """Set [camera] source in the installed TOML, keeping the rest of the file."""
    set_toml_keys(config, "camera", {"source": f'"{source}"'})


# TEST-NET-1 (RFC 5737): never routed, so the guest's sync agent meets a central server
# that does not answer, as a terminal does when its site's network is down.
UNREACHABLE_CENTRAL = "192.0.2.1"
VM_TERMINAL_ROLE = "clockface_t_vmtest"


def configure_unreachable_central(rootfs: Path, config: Path) -> None:
    """[central] in the image's TOML, a passfile (root, 0600: the unit loads it as a
    credential) and a CA file, all for a server nobody runs (check.py: central-offline)."""
    etc = rootfs / "etc/clockface"
    passfile = etc / "central.pgpass"
    passfile.write_text(f"{UNREACHABLE_CENTRAL}:5432:clockface:{VM_TERMINAL_ROLE}:vm-test-password-unused\n")
    os.chmod(passfile, 0o600)
    ca = etc / "central-ca.pem"
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "ca.key"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=clockface vm test CA",
                "-keyout",
                str(key),
                "-out",
                str(ca),
            ],
            check=True,
            capture_output=True,
        )
    os.chmod(ca, 0o644)
    set_toml_keys(
        config,
        "central",
        {
            "host": f'"{UNREACHABLE_CENTRAL}"',
            "user": f'"{VM_TERMINAL_ROLE}"',
            "sslmode": '"verify-full"',
            "sslrootcert": '"/etc/clockface/central-ca.pem"',
            "interval_s": "10",
        },
    )


def chroot_sh(
    rootfs: Path, script: str, logfile: Path, pip_cache: Path, timeout: float = 1500
) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
        "PIP_CACHE_DIR": "/var/cache/clockface-pip",
        "PIP_DEFAULT_TIMEOUT": "120",
    }
    # This machine reaches PyPI through a TLS proxy whose CA only the host's bundle has:
    # lend that bundle to pip for the install (and take it away again afterwards).
    host_ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    lent = rootfs / "tmp/clockface-vmtest-host-ca.pem"
    if host_ca.is_file():
        shutil.copy(host_ca, lent)
        env["PIP_CERT"] = "/tmp/clockface-vmtest-host-ca.pem"
    try:
        return _chroot_run(rootfs, script, logfile, pip_cache, env, timeout)
    finally:
        lent.unlink(missing_ok=True)


def _chroot_run(
    rootfs: Path, script: str, logfile: Path, pip_cache: Path, env: dict, timeout: float
) -> subprocess.CompletedProcess:
    with chroot_mounts(rootfs, pip_cache), open(logfile, "a") as fh:
        fh.write(f"\n$ {script}\n")
        fh.flush()
        return subprocess.run(
            ["chroot", str(rootfs), "/bin/bash", "-c", script],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )


@dataclass
class Image:
    rootfs_img: Path
    kernel: Path
    initrd: Path
    install_log: Path
    rerun_ok: bool
    uninstall: tuple[bool, str] = (False, "not run")


def prepare_image(base: Path, work: Path, model_dir: Path, video: Path, expected: dict, log: Log) -> Image:
    rootfs = work / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    log("copying the base root filesystem")
    run(["cp", "-a", "--reflink=auto", str(base / "rootfs"), str(rootfs)])
    src = rootfs / "usr/src/clockface"
    files = source_files()
    for f in files:
        dst = src / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dst)
    log(f"copied {len(files)} project files to /usr/src/clockface; running ./setup.sh --device in the chroot")
    install_log = work / "setup-device.log"
    install_log.write_text("")
    t0 = time.monotonic()
    p = chroot_sh(rootfs, "cd /usr/src/clockface && ./setup.sh --device", install_log, CACHE / "pip")
    text = install_log.read_text()
    if p.returncode != 0:
        raise RuntimeError(
            f"./setup.sh --device failed in the image (exit {p.returncode}):\n" + "\n".join(text.splitlines()[-40:])
        )
    log(
        f"setup.sh --device took {time.monotonic() - t0:.0f}s; its output:\n    "
        + "\n    ".join(text.strip().splitlines()[-25:])
    )
    # Idempotence: a second run (an upgrade in place) must succeed and keep the config.
    config = rootfs / "etc/clockface/clockface.toml"
    before = config.read_text()
    t0 = time.monotonic()
    p = chroot_sh(rootfs, "cd /usr/src/clockface && ./setup.sh --device", install_log, CACHE / "pip")
    rerun_ok = p.returncode == 0 and config.read_text() == before
    log(
        f"re-run of setup.sh --device: exit {p.returncode}, config kept: {config.read_text() == before} ({time.monotonic() - t0:.0f}s)"
    )
    if p.returncode != 0:
        raise RuntimeError(
            "second ./setup.sh --device failed:\n" + "\n".join(install_log.read_text().splitlines()[-30:])
        )

    uid, gid = _owner(rootfs, "clockface")
    models = rootfs / "var/lib/clockface/models"
    models.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        dst = models / name
        shutil.copy(model_dir / name, dst)
        os.chown(dst, uid, gid)
        os.chmod(dst, 0o640)
    vdst = rootfs / VIDEO_IN_GUEST.lstrip("/")
    vdst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(video, vdst)
    os.chmod(vdst, 0o644)
    set_camera_source(config, VIDEO_IN_GUEST)
    configure_unreachable_central(rootfs, config)

    lib = rootfs / "usr/local/lib/clockface-vmtest"
    lib.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "guest/check.py", lib / "check.py")
    (lib / "expected.json").write_text(__import__("json").dumps(expected))
    units = rootfs / "etc/systemd/system"
    shutil.copy(HERE / "guest/clockface-vmtest.service", units / "clockface-vmtest.service")
    wants = units / "multi-user.target.wants"
    wants.mkdir(exist_ok=True)
    link = wants / "clockface-vmtest.service"
    if not link.is_symlink():
        link.symlink_to("/etc/systemd/system/clockface-vmtest.service")
    getty = units / "serial-getty@ttyS0.service"
    if not getty.is_symlink():
        getty.symlink_to("/dev/null")  # the checks own the serial console
    (rootfs / "var/log/journal").mkdir(parents=True, exist_ok=True)  # persistent: the host reads the last shutdown
    (rootfs / "var/lib/clockface-vmtest").mkdir(parents=True, exist_ok=True)

    img = work / "rootfs.img"
    log("making the ext4 disk image")
    run(["mke2fs", "-q", "-t", "ext4", "-d", str(rootfs), "-F", str(img), "4G"])
    uninstall = check_uninstall(rootfs, install_log, log)
    shutil.rmtree(rootfs, ignore_errors=True)
    return Image(img, base / "vmlinuz", base / "initrd.img", install_log, rerun_ok, uninstall)


def check_uninstall(rootfs: Path, install_log: Path, log: Log) -> tuple[bool, str]:
    """On the copy that is no longer needed: --uninstall keeps data and config, --purge-data does not."""
    gone = [
        "opt/clockface",
        "etc/systemd/system/clockface.service",
        "etc/systemd/system/clockface-stick@.service",
        "etc/systemd/system/clockface-retention.timer",
        "etc/udev/rules.d/99-clockface-stick.rules",
        "usr/local/bin/clockface",
        "etc/systemd/system/multi-user.target.wants/clockface.service",
    ]
    kept = ["var/lib/clockface/models/dlib-resnet-v1.tflite", "etc/clockface/clockface.toml"]
    p1 = chroot_sh(rootfs, "cd /usr/src/clockface && ./setup.sh --device --uninstall", install_log, CACHE / "pip")
    left = [g for g in gone if (rootfs / g).exists() or (rootfs / g).is_symlink()]
    lost = [k for k in kept if not (rootfs / k).exists()]
    p2 = chroot_sh(
        rootfs, "cd /usr/src/clockface && ./setup.sh --device --uninstall --purge-data", install_log, CACHE / "pip"
    )
    purged_left = [k for k in kept if (rootfs / k).exists()]
    user_left = "clockface:" in (rootfs / "etc/passwd").read_text()
    ok = p1.returncode == 0 and p2.returncode == 0 and not left and not lost and not purged_left and not user_left
    detail = (
        f"--uninstall exit {p1.returncode}, left behind {left}, data/config lost {lost}; "
        f"--purge-data exit {p2.returncode}, still there {purged_left}, user left {user_left}"
    )
    log(f"uninstall check: {detail}")
    return ok, detail


def make_stick(path: Path, photos: dict[str, Path]) -> None:
    """A FAT 'USB stick' (no partition table, like many sticks) with images/<name>.<ext>."""
    path.unlink(missing_ok=True)
    run(["mkfs.vfat", "-n", "CLOCKFACE", "-C", str(path), str(32 * 1024)])
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    run(["mmd", "-i", str(path), "::images"], env=env)
    for name, src in photos.items():
        run(["mcopy", "-i", str(path), str(src), f"::images/{name}"], env=env)


def stick_files(path: Path) -> dict[str, bytes]:
    """Every file on the stick image, read with mtools (after the VM is gone)."""
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    listing = run(["mdir", "-i", str(path), "-/", "-b", "::"], env=env).stdout.split()
    out = {}
    for entry in listing:
        if entry.endswith("/"):
            continue
        p = subprocess.run(["mtype", "-i", str(path), entry], env=env, capture_output=True)
        if p.returncode == 0:
            out[entry.removeprefix("::")] = p.stdout
    return out


# --- QEMU -------------------------------------------------------------------------------

# The guest machine, the same for the KVM probe and the real boots.
MACHINE = ["-machine", "q35", "-cpu", "max", "-smp", "2", "-m", "2048"]
KVM_DEVICE = Path("/dev/kvm")
KVM_GET_API_VERSION = 0xAE00  # _IO(KVMIO, 0x00)
KVM_API_VERSION = 12  # the only stable KVM API there has ever been
# The first line a Linux kernel prints (earlyprintk): it ran past real mode and decompression.
KERNEL_STARTED = re.compile(r"Linux version \d")


@dataclass(frozen=True)
class Accel:
    """Which QEMU accelerator to ask for, and why (printed in the CI summary)."""

    name: str  # "kvm" or "tcg"
    reason: str

    def qemu_args(self) -> list[str]:
        # KVM first, TCG as QEMU's own fallback should KVM fail to initialise after all.
        return ["-accel", "kvm", "-accel", "tcg"] if self.name == "kvm" else ["-accel", "tcg"]


def kvm_device_usable(device: Path = KVM_DEVICE) -> tuple[bool, str]:
    """Can this process open the KVM device read-write and does it speak KVM's API?"""
    try:
        fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return False, f"{device}: {exc.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as exc:
        return False, f"{device}: KVM_GET_API_VERSION failed ({exc.strerror})"
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return False, f"{device}: KVM API version {version}, not {KVM_API_VERSION}"
    return True, f"{device}: KVM API version {version}"


def kernel_starts(kernel: Path, accel: str = "kvm", timeout: float = 20) -> tuple[bool, str]:
    """Start *kernel* under *accel* alone (no fallback) with the boot's machine, and wait for its
    first message. A usable /dev/kvm is not enough: under nested virtualisation QEMU can abort
    on a CPU model's MSR, or the guest hangs after the real-mode setup, and a boot test that
    hangs for its whole timeout costs far more than this probe (about a second under KVM)."""
    with tempfile.TemporaryDirectory(prefix="kvm-probe-") as tmp:
        console = Path(tmp) / "console.log"
        cmd = [
            "qemu-system-x86_64",
            "-accel",
            accel,
            *MACHINE,
            "-display",
            "none",
            "-no-reboot",
            "-nic",
            "none",
            "-monitor",
            "none",
            "-serial",
            f"file:{console}",
            "-kernel",
            str(kernel),
            "-append",
            "console=ttyS0 earlyprintk=ttyS0 panic=-1",
        ]
        t0 = time.monotonic()
        qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            while time.monotonic() - t0 < timeout:
                if console.exists() and KERNEL_STARTED.search(console.read_text(errors="replace")):
                    return True, f"a probe boot under {accel} printed the kernel banner in {time.monotonic() - t0:.1f}s"
                if qemu.poll() is not None:
                    said = (qemu.stdout.read().decode(errors="replace") if qemu.stdout else "").split("\n")
                    said = " | ".join(ln.strip() for ln in said if ln.strip())
                    return False, f"QEMU with {accel} exited ({qemu.returncode}) before the kernel spoke: {said[-240:]}"
                time.sleep(0.2)
        finally:
            if qemu.poll() is None:
                qemu.kill()
            qemu.wait()
        seen = console.read_text(errors="replace").strip().splitlines() if console.exists() else []
        return False, f"no kernel banner under {accel} in {timeout:.0f}s (console: {seen[-1:] or 'nothing'})"


def choose_accel(
    kernel: Path, device: Path = KVM_DEVICE, probe: Callable[[Path], tuple[bool, str]] = kernel_starts
) -> Accel:
    """KVM when the device is usable and a probe boot of *kernel* under it starts; else TCG."""
    usable, why = kvm_device_usable(device)
    if not usable:
        return Accel("tcg", why)
    boots, how = probe(kernel)
    return Accel("kvm" if boots else "tcg", f"{why}; {how}")


@functools.cache
def accel_for(kernel: Path) -> Accel:
    """choose_accel once per kernel and test session (the boots share it)."""
    return choose_accel(kernel)


def accel_in_use(info_kvm: str) -> str | None:
    """The accelerator QEMU runs, from the monitor's `info kvm` ("kvm support: enabled")."""
    m = re.search(r"kvm support: (enabled|disabled)", info_kvm)
    if not m:
        return None
    return "kvm" if m.group(1) == "enabled" else "tcg"


LINE = re.compile(r"VMTEST (\S+) ?(.*)")


@dataclass
class Check:
    name: str
    ok: bool
    guest_t: str
    took: str
    detail: str
    boot: int


class Monitor:
    def __init__(self, path: Path) -> None:
        self.path = path

    def command(self, cmd: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(self.path))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        s.settimeout(timeout)
        buf = b""
        try:
            while b"(qemu)" not in buf:
                buf += s.recv(4096)
            s.sendall(cmd.encode() + b"\n")
            buf = b""
            while buf.count(b"(qemu)") < 1:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except TimeoutError:
            pass
        finally:
            s.close()
        return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", buf.decode(errors="replace"))


@dataclass
class BootResult:
    checks: list[Check]
    rows: list[list]
    done: bool
    exited: bool  # QEMU ended by itself (guest power-off) rather than being killed
    returncode: int | None
    seconds: float
    console: str
    accel: str  # what QEMU ran, from `info kvm`: "kvm", "tcg" or "unknown"


def boot(img: Image, work: Path, boot_no: int, log: Log, timeout: float, stick: Path | None = None) -> BootResult:
    """Boot the image once; act on the guest's requests; return what it reported."""
    console = work / f"console-{boot_no}.log"
    mon = work / f"monitor-{boot_no}.sock"
    console.unlink(missing_ok=True)
    mon.unlink(missing_ok=True)
    accel = accel_for(img.kernel)
    cmd = [
        "qemu-system-x86_64",
        *accel.qemu_args(),
        *MACHINE,
        "-display",
        "none",
        "-no-reboot",
        "-nic",
        "none",
        "-rtc",
        "base=utc",
        "-kernel",
        str(img.kernel),
        "-initrd",
        str(img.initrd),
        "-append",
        "root=/dev/vda rw console=ttyS0 quiet",
        "-drive",
        f"file={img.rootfs_img},format=raw,if=virtio",
        "-device",
        "qemu-xhci,id=xhci",
        "-serial",
        f"file:{console}",
        "-monitor",
        f"unix:{mon},server,nowait",
    ]
    log(f"boot {boot_no}: starting QEMU ({accel.name}: {accel.reason})")
    t0 = time.monotonic()
    qemu = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    monitor = Monitor(mon)
    try:
        used = accel_in_use(monitor.command("info kvm")) or "unknown"
    except OSError as exc:
        used = f"unknown ({exc})"
    log(f"boot {boot_no}: QEMU runs the guest with {used}")
    checks: list[Check] = []
    rows: list[list] = []
    done = False
    seen = 0
    killed = False
    try:
        while True:
            text = console.read_text(errors="replace") if console.exists() else ""
            lines = text.replace("\r", "").split("\n")
            complete = lines[:-1]
            for raw in complete[seen:]:
                m = LINE.search(raw)
                if not m:
                    continue
                kind, rest = m.group(1), m.group(2).strip()
                if kind == "CHECK":
                    cm = re.match(r"(\S+) (PASS|FAIL) t=(\S+) took=(\S+) ?(.*)", rest)
                    if cm:
                        c = Check(cm.group(1), cm.group(2) == "PASS", cm.group(3), cm.group(4), cm.group(5), boot_no)
                        checks.append(c)
                        log(
                            f"boot {boot_no}: {'PASS' if c.ok else 'FAIL'} {c.name:26} guest t={c.guest_t}s took={c.took}s  {c.detail}"
                        )
                elif kind == "ROWS":
                    rows = __import__("json").loads(rest)
                elif kind == "BOOT":
                    log(f"boot {boot_no}: guest checks started ({rest})")
                elif kind == "DONE":
                    done = True
                    log(f"boot {boot_no}: guest done ({rest})")
                elif kind == "REQUEST" and rest == "plug-stick":
                    if stick is None:
                        log(f"boot {boot_no}: guest asked for the stick but there is none")
                    else:
                        log(
                            f"boot {boot_no}: plugging the USB stick in (QEMU monitor: drive_add + device_add usb-storage)"
                        )
                        out1 = monitor.command(f"drive_add 0 if=none,id=stick,file={stick},format=raw")
                        out2 = monitor.command("device_add usb-storage,bus=xhci.0,drive=stick,id=stickdev,removable=on")
                        for out in (out1, out2):
                            err = [ln for ln in out.splitlines() if "rror" in ln]
                            if err:
                                log(f"boot {boot_no}: monitor: {err}")
                elif kind == "REQUEST" and rest == "hard-poweroff":
                    time.sleep(3)  # the service is mid-loop, with its databases open
                    log(f"boot {boot_no}: hard power-off (SIGKILL to QEMU)")
                    os.killpg(qemu.pid, signal.SIGKILL)
                    killed = True
            seen = len(complete)
            if qemu.poll() is not None:
                break
            if time.monotonic() - t0 > timeout:
                log(f"boot {boot_no}: TIMEOUT after {timeout:.0f}s, killing QEMU")
                os.killpg(qemu.pid, signal.SIGKILL)
                killed = True
                qemu.wait()
                break
            time.sleep(0.5)
    finally:
        if qemu.poll() is None:
            os.killpg(qemu.pid, signal.SIGKILL)
            qemu.wait()
    out = qemu.stdout.read().decode(errors="replace") if qemu.stdout else ""
    if out.strip():
        log(f"boot {boot_no}: qemu said: {out.strip()[-500:]}")
    text = console.read_text(errors="replace") if console.exists() else ""
    seconds = time.monotonic() - t0
    log(f"boot {boot_no}: QEMU ended after {seconds:.0f}s ({'killed' if killed else f'exit {qemu.returncode}'})")
    return BootResult(checks, rows, done, not killed, qemu.returncode, seconds, text, used)


def read_guest_journal(img: Path, work: Path) -> str:
    """The guest's persistent journal, extracted with debugfs (no mount), as text of the last boot."""
    dest = work / "journal"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    run(["debugfs", "-R", f"rdump /var/log/journal {dest}", str(img)])
    p = subprocess.run(
        [
            "journalctl",
            "--no-pager",
            "-D",
            str(dest / "journal"),
            "-b",
            "0",
            "-o",
            "short-monotonic",
            "-u",
            "clockface.service",
            "-u",
            "clockface-vmtest.service",
        ],
        text=True,
        capture_output=True,
    )
    return p.stdout + p.stderr
