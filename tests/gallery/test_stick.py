"""Where a stick's photos are and where it is mounted (the trigger's path logic)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from device.cli.gallery import enroll_stick
from device.config import parse_config
from gallery import stick
from gallery.stick import (
    Mount,
    StickError,
    find_images_dir,
    mount_of_device,
    parse_mounts,
    report_dir,
    resolve_mount_point,
)

MOUNTS = """\
/dev/root / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
/dev/sda1 /boot/firmware vfat rw,relatime 0 0
/dev/sdb1 /run/clockface-stick/sdb1 vfat rw,nosuid,nodev,noexec,uid=998,gid=998,fmask=0077 0 0
/dev/sdc1 /media/Office\\040Stick exfat ro,relatime 0 0
"""


def test_parse_mounts_unescapes_spaces_and_reads_options():
    mounts = parse_mounts(MOUNTS)
    office = mounts[-1]
    assert office.mount_point == Path("/media/Office Stick")
    assert office.fstype == "exfat" and office.read_only
    assert not mounts[3].read_only


@pytest.mark.parametrize("device", ["/dev/sdb1", "sdb1"])
def test_mount_of_device(device):
    found = mount_of_device(device, parse_mounts(MOUNTS))
    assert found is not None and found.mount_point == Path("/run/clockface-stick/sdb1")


def test_mount_of_device_through_a_symlink(tmp_path):
    link = tmp_path / "by-uuid-1234"
    target = tmp_path / "sdz9"
    target.touch()
    link.symlink_to(target)
    mounts = [Mount(str(target), Path("/run/clockface-stick/sdz9"), "vfat", ("rw",))]
    assert mount_of_device(str(link), mounts).mount_point == Path("/run/clockface-stick/sdz9")
    assert mount_of_device("/dev/sdq1", mounts) is None


def test_resolve_waits_for_the_device_to_be_mounted():
    now = [0.0]
    tables = iter([[], [], parse_mounts(MOUNTS)])
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    where = resolve_mount_point(
        device="/dev/sdb1", wait_seconds=5, mounts=lambda: next(tables), sleep=sleep, clock=lambda: now[0]
    )
    assert where == Path("/run/clockface-stick/sdb1")
    assert len(sleeps) == 2


def test_resolve_gives_up_with_one_line():
    now = [0.0]

    def sleep(s):
        now[0] += s

    with pytest.raises(StickError) as exc:
        resolve_mount_point(device="/dev/sdx1", wait_seconds=2, mounts=lambda: [], sleep=sleep, clock=lambda: now[0])
    assert "/dev/sdx1 is not mounted" in str(exc.value) and "\n" not in str(exc.value)


def test_resolve_needs_exactly_one_of_device_or_mount_point(tmp_path):
    with pytest.raises(StickError):
        resolve_mount_point()
    with pytest.raises(StickError):
        resolve_mount_point(device="/dev/sdb1", mount_point=tmp_path)
    with pytest.raises(StickError, match="not a folder"):
        resolve_mount_point(mount_point=tmp_path / "missing")
    assert resolve_mount_point(mount_point=tmp_path) == tmp_path


@pytest.mark.parametrize(
    "folders, expected",
    [
        (["images"], "images"),
        (["clockface/images"], "clockface/images"),
        (["images", "clockface/images"], "clockface/images"),  # the more specific wins
        (["IMAGES"], "IMAGES"),  # FAT sticks written on Windows
        (["Clockface/Images"], "Clockface/Images"),
        (["photos", "clockface/pictures"], None),  # not an enrolment stick
        ([], None),
    ],
)
def test_find_images_dir(tmp_path, folders, expected):
    for folder in folders:
        (tmp_path / folder).mkdir(parents=True)
    found = find_images_dir(tmp_path)
    assert (found.relative_to(tmp_path).as_posix() if found else None) == expected


def test_a_file_called_images_is_not_the_folder(tmp_path):
    (tmp_path / "images").write_text("not a folder")
    assert find_images_dir(tmp_path) is None


def test_reports_go_beside_the_photo_folder(tmp_path):
    assert report_dir(tmp_path / "clockface" / "images") == tmp_path / "clockface"
    assert report_dir(tmp_path / "images") == tmp_path


def test_unmount_runs_systemd_umount(monkeypatch, tmp_path):
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    ok, message = stick.unmount(tmp_path)
    assert ok and calls == [["systemd-umount", str(tmp_path)]]
    assert "can be removed" in message


def test_unmount_failure_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setattr(
        subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(argv, 1, "", "Failed to unmount: busy\n")
    )
    assert stick.unmount(tmp_path) == (False, f"could not unmount {tmp_path}: Failed to unmount: busy")

    def missing(argv, **kw):
        raise FileNotFoundError(2, "No such file or directory", "systemd-umount")

    monkeypatch.setattr(subprocess, "run", missing)
    ok, message = stick.unmount(tmp_path)
    assert not ok and "could not unmount" in message


def test_enroll_stick_leaves_a_foreign_stick_alone(monkeypatch, tmp_path):
    (tmp_path / "stick" / "holiday").mkdir(parents=True)
    unmounted = []
    monkeypatch.setattr(stick, "unmount", lambda where: (unmounted.append(where), (True, "unmounted"))[1])
    config = parse_config({"paths": {"data_dir": str(tmp_path / "data")}}, env={})
    result = CliRunner().invoke(enroll_stick, ["--mount-point", str(tmp_path / "stick"), "--unmount"], obj=config)
    assert result.exit_code == 0, result.output
    assert "not an enrolment stick, nothing done" in result.output
    assert unmounted == [tmp_path / "stick"]
    assert not (tmp_path / "data").exists() and not (tmp_path / "stick" / "clockface-report.txt").exists()


def test_enroll_stick_by_device_uses_the_mount_table(monkeypatch, tmp_path):
    mount_point = tmp_path / "run" / "sdb1"
    mount_point.mkdir(parents=True)
    table = tmp_path / "mounts"
    table.write_text(MOUNTS + f"/dev/sdb9 {str(mount_point).replace(' ', chr(92) + '040')} vfat rw 0 0\n")
    monkeypatch.setattr(stick, "MOUNTS", table)
    config = parse_config({"paths": {"data_dir": str(tmp_path / "data")}}, env={})
    result = CliRunner().invoke(enroll_stick, ["--device", "/dev/sdb9"], obj=config)
    assert result.exit_code == 0, result.output
    assert f"folder on {mount_point}" in result.output


def test_enroll_stick_unmounted_device_is_one_line_error(monkeypatch, tmp_path):
    table = tmp_path / "mounts"
    table.write_text(MOUNTS)
    monkeypatch.setattr(stick, "MOUNTS", table)
    config = parse_config({"paths": {"data_dir": str(tmp_path / "data")}}, env={})
    result = CliRunner().invoke(enroll_stick, ["--device", "/dev/sdx1", "--wait", "0"], obj=config)
    assert result.exit_code == 1
    assert "clockface: error: /dev/sdx1 is not mounted" in result.output
