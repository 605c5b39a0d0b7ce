"""The boot test's choice of QEMU accelerator (tests/system/vmlib.py), without the 15-minute boot.

KVM only when /dev/kvm speaks KVM's API *and* a probe boot of the image's kernel under KVM
prints the kernel banner; everything else is TCG, with the reason in the CI summary.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.system import vmlib


def no_probe(kernel: Path) -> tuple[bool, str]:
    raise AssertionError("the probe boot must not run when the KVM device is unusable")


def test_no_kvm_device_means_tcg(tmp_path: Path) -> None:
    accel = vmlib.choose_accel(tmp_path / "vmlinuz", device=tmp_path / "kvm", probe=no_probe)
    assert accel.name == "tcg" and "No such file" in accel.reason
    assert accel.qemu_args() == ["-accel", "tcg"]


def test_a_device_that_is_not_kvm_means_tcg(tmp_path: Path) -> None:
    """/dev/null opens read-write but refuses KVM_GET_API_VERSION."""
    usable, why = vmlib.kvm_device_usable(Path("/dev/null"))
    assert not usable and "KVM_GET_API_VERSION" in why
    assert vmlib.choose_accel(tmp_path / "vmlinuz", device=Path("/dev/null"), probe=no_probe).name == "tcg"


@pytest.mark.skipif(not vmlib.kvm_device_usable()[0], reason="no usable /dev/kvm here")
def test_usable_kvm_still_needs_the_probe_boot(tmp_path: Path) -> None:
    """A usable /dev/kvm (this machine's: nested, QEMU aborts on -cpu max) is not enough on its own."""
    seen: list[Path] = []

    def probe(kernel: Path) -> tuple[bool, str]:
        seen.append(kernel)
        return False, "the guest hung"

    accel = vmlib.choose_accel(tmp_path / "vmlinuz", probe=probe)
    assert seen == [tmp_path / "vmlinuz"]
    assert accel.name == "tcg" and accel.reason.endswith("the guest hung")
    ok = vmlib.choose_accel(tmp_path / "vmlinuz", probe=lambda k: (True, "banner in 0.4s"))
    assert ok.name == "kvm" and ok.qemu_args() == ["-accel", "kvm", "-accel", "tcg"]


def test_info_kvm_says_which_ran() -> None:
    assert vmlib.accel_in_use("info kvm\r\nkvm support: enabled\r\n(qemu) ") == "kvm"
    assert vmlib.accel_in_use("info kvm\nkvm support: disabled\n(qemu) ") == "tcg"
    assert vmlib.accel_in_use("(qemu) ") is None


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 is not installed")
def test_a_file_that_is_no_kernel_fails_the_probe(tmp_path: Path) -> None:
    bogus = tmp_path / "vmlinuz"
    bogus.write_bytes(b"not a kernel")
    started, why = vmlib.kernel_starts(bogus, accel="tcg", timeout=20)
    assert not started and "exited" in why, why


def _cached_kernel() -> Path | None:
    kernels = sorted(vmlib.CACHE.glob("base-*/vmlinuz"))
    return kernels[-1] if kernels else None


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="qemu-system-x86_64 is not installed")
def test_the_probe_sees_a_real_kernel_start() -> None:
    """The banner is recognised on a real kernel (the boot test's cached one), under TCG: a few seconds."""
    kernel = _cached_kernel()
    if kernel is None:
        pytest.skip(f"no cached VM kernel in {vmlib.CACHE} (the boot test builds it)")
    started, why = vmlib.kernel_starts(kernel, accel="tcg", timeout=60)
    assert started, why
