"""A stick's photos stay on the stick: links off its file system, loops, FIFOs and
devices are reported by name and never opened."""

from __future__ import annotations

import os

import pytest

from device.camera.images import IMAGE_SUFFIXES
from gallery.layout import collect_photos
from gallery.stick import StickError, find_images_dir
from tests.conftest import _tmpfs_fixture

stick_fs = _tmpfs_fixture("stick", "size=1m", "A file system of its own, as a USB stick is.")


def test_links_loops_and_fifos_are_reported(tmp_path, stick_fs):
    outside = tmp_path / "elsewhere"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.jpg").write_bytes(b"x")
    images = stick_fs / "images"
    (images / "anna").mkdir(parents=True)
    (images / "anna" / "1.jpg").write_bytes(b"x")
    (images / "anna" / "again").symlink_to("..")
    (stick_fs / "kept.jpg").write_bytes(b"x")
    (images / "bob.jpg").symlink_to("../kept.jpg")  # on the stick: followed
    (images / "carl.jpg").symlink_to(outside / "secret.jpg")
    (images / "dora").symlink_to(outside / "folder")
    (images / "loop.jpg").symlink_to("loop.jpg")
    (images / "gone.jpg").symlink_to("nowhere.jpg")
    os.mkfifo(images / "pipe.jpg")
    photos, skipped = collect_photos(images, IMAGE_SUFFIXES)
    assert [(p.person, p.path.name) for p in photos] == [("Anna", "1.jpg"), ("Bob", "bob.jpg")]
    reasons = {s.path.name: s.reason for s in skipped}
    assert "leaves this file system" in reasons["carl.jpg"] and "leaves this file system" in reasons["dora"]
    assert "symbolic link loop" in reasons["loop.jpg"] and "symbolic link loop" in reasons["again"]
    assert "broken symbolic link" in reasons["gone.jpg"]
    assert "a FIFO" in reasons["pipe.jpg"]


def test_images_folder_linked_off_the_stick_is_refused(tmp_path, stick_fs):
    (tmp_path / "photos").mkdir()
    (stick_fs / "images").symlink_to(tmp_path / "photos")
    with pytest.raises(StickError, match="leaves this file system"):
        find_images_dir(stick_fs)
    (stick_fs / "images").unlink()
    (stick_fs / "real").mkdir()
    (stick_fs / "images").symlink_to("real")  # a link within the stick is fine
    assert find_images_dir(stick_fs) == stick_fs / "images"
