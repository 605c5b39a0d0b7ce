"""Enrolling real photos laid out as a USB stick: modes, atomic swap, quality
rules across photos, the report on the stick, and erasing a person.

Every test enrols only a handful of ../shared/faces photos (~0.25 s each).
Which photos and why:
- barack_obama/1.jpg + 2.jpg: two photos of one person, 0.43 apart (dlib; threshold 0.55).
- joe_biden/1.jpg: a different person, 0.8 from Obama.
- katy_perry/1.jpg: someone to add or replace with.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
from datetime import UTC, datetime

import numpy as np
import pytest

from device.cli.gallery import enroll, enroll_stick, gallery
from device.terminal.assembly import load_matcher, load_model
from gallery.store import GalleryModelMismatch, GalleryStore, ModelBinding, Template, write_gallery
from tests.conftest import shared_path
from tests.gallery.conftest import invoke, invoke_json, make_stick, photos_by_file, roster

pytestmark = [pytest.mark.shared]

TEAM = {
    "barack_obama.jpg": "barack_obama/1.jpg",
    "barack_obama_2.jpg": "barack_obama/2.jpg",
    "joe_biden.jpg": "joe_biden/1.jpg",
}


def gallery_people(config) -> dict[str, int]:
    return {p.name: p.photos for p in GalleryStore(config.paths.gallery).people()}


def test_stick_replaces_the_gallery_and_reports_onto_the_stick(tmp_path, config):
    first = make_stick(tmp_path / "stick1", TEAM)
    code, report = invoke_json(enroll_stick, ["--mount-point", first], config)
    assert code == 0, report
    assert report["written"] and report["mode"] == "replace"
    assert gallery_people(config) == {"Barack Obama": 2, "Joe Biden": 1}
    assert report["report_files"] == [str(first / "clockface-report.txt"), str(first / "clockface-report.csv")]
    inode = os.stat(config.paths.gallery).st_ino

    # The next stick is the new staff list: Biden is not on it, so he is removed.
    second = make_stick(
        tmp_path / "stick2",
        {"barack_obama/a.jpg": "barack_obama/1.jpg", "katy_perry.jpg": "katy_perry/1.jpg"},
        folder="clockface/images",
    )
    code, report = invoke_json(enroll_stick, ["--mount-point", second], config)
    assert code == 0, report
    assert gallery_people(config) == {"Barack Obama": 1, "Katy Perry": 1}
    people = roster(report)
    assert (people["Barack Obama"]["status"], people["Katy Perry"]["status"], people["Joe Biden"]["status"]) == (
        "updated",
        "enrolled",
        "removed",
    )
    assert os.stat(config.paths.gallery).st_ino != inode  # the running recogniser reloads on this
    text = (second / "clockface" / "clockface-report.txt").read_text(encoding="utf-8")
    assert "result:  gallery updated: 2 people (2 photos enrolled, 0 not used, 1 removed)" in text
    assert "Joe Biden" in text and "removed" in text
    assert "THRESHOLD\n  closest pair of different people: Barack Obama and Katy Perry" in text
    rows = (second / "clockface" / "clockface-report.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rows[0].startswith("kind,name,file,outcome")
    assert "photo,Katy Perry,katy_perry.jpg,enrolled" in "\n".join(rows)


def test_add_mode_keeps_everyone_else(tmp_path, config):
    assert invoke(enroll, [make_stick(tmp_path / "a", TEAM) / "images"], config).exit_code == 0
    before = {p.name: p for p in GalleryStore(config.paths.gallery).people()}
    code, report = invoke_json(
        enroll, [make_stick(tmp_path / "b", {"katy_perry.jpg": "katy_perry/1.jpg"}) / "images", "--add"], config
    )
    assert code == 0, report
    assert gallery_people(config) == {"Barack Obama": 2, "Joe Biden": 1, "Katy Perry": 1}
    after = {p.name: p for p in GalleryStore(config.paths.gallery).people()}
    assert after["Barack Obama"].enrolled_at == before["Barack Obama"].enrolled_at
    assert roster(report)["Joe Biden"]["status"] == "kept"
    # The closest pair now spans old and new people.
    assert report["closest"]["a"] in {"Barack Obama", "Joe Biden", "Katy Perry"}


def test_failure_while_writing_leaves_the_old_gallery(tmp_path, config, monkeypatch):
    assert invoke(enroll, [make_stick(tmp_path / "a", TEAM) / "images"], config).exit_code == 0
    old = config.paths.gallery.read_bytes()
    import gallery.store as store_mod

    real_insert_count = {"n": 0}
    real_create = store_mod._create_schema

    def create_then_fail(db, model, *meta):
        real_create(db, model, *meta)
        real_insert_count["n"] += 1
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store_mod, "_create_schema", create_then_fail)
    stick = make_stick(tmp_path / "b", {"katy_perry.jpg": "katy_perry/1.jpg"})
    code, report = invoke_json(enroll_stick, ["--mount-point", stick], config)
    assert code == 1
    assert real_insert_count["n"] == 1  # the failure happened inside the write
    assert not report["written"]
    assert report["error"].startswith(
        "the gallery could not be written, the previous one stays in force: cannot write gallery"
    )
    assert config.paths.gallery.read_bytes() == old
    assert sorted(p.name for p in config.paths.gallery.parent.iterdir() if not p.name.endswith(".lock")) == [
        "gallery.db"
    ]
    assert "GALLERY NOT CHANGED" in (stick / "clockface-report.txt").read_text(encoding="utf-8")


def test_crash_while_examining_photos_leaves_the_old_gallery_and_says_so_on_the_stick(tmp_path, config, monkeypatch):
    assert invoke(enroll, [make_stick(tmp_path / "a", TEAM) / "images"], config).exit_code == 0
    old = config.paths.gallery.read_bytes()
    import device.enrolment.photo_rules as enrol_mod

    calls = []
    real = enrol_mod.examine_photo

    def second_photo_crashes(photo, pipeline, rules):
        calls.append(photo)
        if len(calls) == 2:
            raise MemoryError("out of memory")
        return real(photo, pipeline, rules)

    monkeypatch.setattr(enrol_mod, "examine_photo", second_photo_crashes)
    stick = make_stick(tmp_path / "b", {"katy_perry.jpg": "katy_perry/1.jpg", "matt_damon.jpg": "matt_damon/1.jpg"})
    result = invoke(enroll_stick, ["--mount-point", stick], config)
    assert result.exit_code == 1
    assert config.paths.gallery.read_bytes() == old
    text = (stick / "clockface-report.txt").read_text(encoding="utf-8")
    assert "GALLERY NOT CHANGED: enrolment failed, the previous gallery stays in force: out of memory" in text


def test_enrol_folder_returns_the_report_the_cli_prints(tmp_path, config):
    """One model of an enrolment: enrol_folder's own answer is the report, the same
    value (but the time) as `clockface enroll --json` prints, with typed statuses."""
    from device.enrolment.folder import enrol_folder
    from gallery.report import EnrolmentReport, Status, render_csv, render_text

    invoke(enroll, [make_stick(tmp_path / "a", {"joe_biden.jpg": "joe_biden/1.jpg"}) / "images"], config)
    images = make_stick(tmp_path / "b", {**TEAM, "nobody.png": "_noface/1.png"}) / "images"
    report = enrol_folder(images, load_model(config), config.enrol, config.paths.gallery, write=False)

    assert isinstance(report, EnrolmentReport)
    assert {p.name: p.status for p in report.roster} == {
        "Barack Obama": Status.ENROLLED,
        "Joe Biden": Status.UPDATED,
        "Nobody": Status.NOT_ENROLLED,
    }
    assert not report.written and report.notes == ["check only: the gallery was not changed"]
    code, printed = invoke_json(enroll, [images, "--check"], config)
    assert code == 0
    mine = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    assert {k: v for k, v in mine.items() if k != "when"} == {k: v for k, v in printed.items() if k != "when"}
    assert "Nobody: NOT ENROLLED, no usable photo (nobody.png: no face)" in render_text(report)
    assert "person,Joe Biden,,updated," in render_csv(report)


def test_same_person_under_two_names_is_flagged(tmp_path, config):
    stick = make_stick(
        tmp_path / "s",
        {
            "barack_obama.jpg": "barack_obama/1.jpg",
            "john_doe.jpg": "barack_obama/2.jpg",
            "joe_biden.jpg": "joe_biden/1.jpg",
        },
    )
    code, report = invoke_json(enroll_stick, ["--mount-point", stick], config)
    assert code == 0
    photos = photos_by_file(report)
    assert photos["john_doe.jpg"]["enrolled"] and photos["barack_obama.jpg"]["enrolled"]
    assert any(
        w.startswith("looks like Barack Obama (barack_obama.jpg, distance 0.")
        for w in photos["john_doe.jpg"]["warnings"]
    )
    assert any("the same person under two names?" in w for w in photos["barack_obama.jpg"]["warnings"])
    assert any(p.startswith("Barack Obama and John Doe look like the same person") for p in report["problems"])
    assert photos["joe_biden.jpg"]["warnings"] == []
    # Threshold advice: the closest pair is the look-alike, and the threshold would confuse them.
    assert report["closest"]["confused"] and {report["closest"]["a"], report["closest"]["b"]} == {
        "Barack Obama",
        "John Doe",
    }
    assert (
        f"WARNING: at the threshold {report['threshold']:g} the terminal can take one for the other" in report["advice"]
    )


def test_a_wrong_file_among_a_persons_photos_is_not_enrolled(tmp_path, config):
    stick = make_stick(tmp_path / "s", {**TEAM, "barack_obama_3.jpg": "joe_biden/2.jpg"})
    code, report = invoke_json(enroll_stick, ["--mount-point", stick], config)
    assert code == 0
    odd = photos_by_file(report)["barack_obama_3.jpg"]
    assert odd["outcome"] == "not like the others" and "someone else?" in odd["detail"]
    assert "It looks like Joe Biden (joe_biden.jpg, distance 0." in odd["detail"]
    assert gallery_people(config)["Barack Obama"] == 2


def test_unreadable_and_faceless_files_are_reported_and_the_rest_enrolled(tmp_path, config):
    good = (shared_path("faces") / "joe_biden" / "1.jpg").read_bytes()
    stick = make_stick(
        tmp_path / "s",
        {
            "joe_biden.jpg": "joe_biden/1.jpg",
            "truncated_tom.jpg": good[:2000],
            "empty_emma.jpg": b"",
            "text_tina.png": b"this is not a picture\n",
            "rocket.jpg": "_noface/2.jpg",
            "readme.txt": b"photos for the terminal\n",
        },
    )
    code, report = invoke_json(enroll_stick, ["--mount-point", stick], config)
    assert code == 0
    photos = photos_by_file(report)
    assert photos["truncated_tom.jpg"]["outcome"] == "unreadable file"
    assert photos["empty_emma.jpg"]["outcome"] == "unreadable file" and "empty" in photos["empty_emma.jpg"]["detail"]
    assert photos["text_tina.png"]["outcome"] == "unreadable file"
    assert photos["rocket.jpg"]["outcome"] == "no face"
    assert photos["readme.txt"]["outcome"] == "not an image"
    assert gallery_people(config) == {"Joe Biden": 1}
    assert "Truncated Tom: NOT ENROLLED, no usable photo (truncated_tom.jpg: unreadable file)" in report["problems"]


def test_duplicate_photos_are_enrolled_once(tmp_path, config):
    import cv2

    copy = cv2.imencode(
        ".jpg",
        cv2.resize(cv2.imread(str(shared_path("faces") / "barack_obama" / "1.jpg")), None, fx=0.7, fy=0.7),
        [cv2.IMWRITE_JPEG_QUALITY, 85],
    )[1].tobytes()
    stick = make_stick(
        tmp_path / "s",
        {
            "barack_obama.jpg": "barack_obama/1.jpg",
            "barack_obama_2.jpg": "barack_obama/1.jpg",
            "barack_obama_3.jpg": copy,
            "barack_obama_4.jpg": "barack_obama/2.jpg",
        },
    )
    code, report = invoke_json(enroll_stick, ["--mount-point", stick], config)
    assert code == 0
    photos = photos_by_file(report)
    assert (photos["barack_obama_2.jpg"]["outcome"], photos["barack_obama_2.jpg"]["detail"]) == (
        "duplicate photo",
        "same file as barack_obama.jpg",
    )
    assert photos["barack_obama_3.jpg"]["outcome"] == "duplicate photo"
    assert photos["barack_obama_3.jpg"]["detail"].startswith("nearly identical to barack_obama.jpg (distance 0.")
    assert gallery_people(config) == {"Barack Obama": 2}


def test_unicode_names_are_kept_as_written(tmp_path, config):
    stick = make_stick(
        tmp_path / "s",
        {
            "José_Núñez.jpg": "barack_obama/1.jpg",
            "Łucja Żak/1.jpg": "katy_perry/1.jpg",
            "李小龙.jpg": "joe_biden/1.jpg",
        },
    )
    (stick / "people.csv").write_text("name,employee_id\nJosé Núñez,E-7\n李小龙,E-8\n", encoding="utf-8")
    code, report = invoke_json(enroll_stick, ["--mount-point", stick], config)
    assert code == 0, report
    assert gallery_people(config) == {"José Núñez": 1, "Łucja Żak": 1, "李小龙": 1}
    listed = {p["name"]: p for p in json.loads(invoke(gallery, ["list", "--json"], config).stdout)}
    assert (
        listed["José Núñez"]["employee_id"],
        listed["李小龙"]["employee_id"],
        listed["Łucja Żak"]["employee_id"],
    ) == ("E-7", "E-8", None)
    text = (stick / "clockface-report.txt").read_text(encoding="utf-8")
    assert "Łucja Żak" in text and "李小龙" in text
    export = invoke(gallery, ["export"], config).stdout
    assert export.splitlines()[0] == "name,employee_id,photos,enrolled_at,model"
    assert "José Núñez,E-7,1," in export


def test_read_only_stick_still_enrols(tmp_path, config, monkeypatch):
    """The stick's file system refuses writes (EROFS from the report writer's open)."""
    import builtins

    stick = make_stick(tmp_path / "s", {"joe_biden.jpg": "joe_biden/1.jpg"})
    real_open = builtins.open

    def read_only_stick(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax+") and str(stick) in str(file):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only_stick)
    result = invoke(enroll_stick, ["--mount-point", stick], config)
    assert result.exit_code == 0
    assert gallery_people(config) == {"Joe Biden": 1}
    assert "report:  could not write the report onto the stick (Read-only file system)" in result.stdout
    assert sorted(p.name for p in stick.iterdir()) == ["images"]


def test_read_only_mounted_stick_still_enrols(tmp_path, config):
    """The same with a real read-only file system (a tmpfs remounted ro; needs root)."""
    where = tmp_path / "mnt"
    where.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        make_stick(where, {"joe_biden.jpg": "joe_biden/1.jpg"})
        assert subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True).returncode == 0
        code, report = invoke_json(enroll_stick, ["--mount-point", where], config)
        assert code == 0 and report["written"]
        assert (
            report["report_error"]
            == "could not write the report onto the stick (Read-only file system); the enrolment itself is not affected"
        )
        assert gallery_people(config) == {"Joe Biden": 1}
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_gallery_from_another_model_is_one_line_error_naming_how_to_re_enrol(tmp_path, config):
    other = ModelBinding("vggface-resnet50", "f" * 64, 128)
    write_gallery(config.paths.gallery, other, [Template("Old Timer", "old.jpg", np.ones(128, np.float32))])
    model = load_model(config)
    with pytest.raises(GalleryModelMismatch) as exc:
        load_matcher(config, model)  # what `clockface run` does
    assert "re-enrol with `clockface enroll DIR`" in str(exc.value) and "\n" not in str(exc.value)

    folder = make_stick(tmp_path / "s", {"joe_biden.jpg": "joe_biden/1.jpg"}) / "images"
    result = invoke(enroll, [folder, "--add"], config)
    assert result.exit_code == 1
    error = result.stderr.strip()
    assert (
        error.startswith("clockface: error: the gallery was enrolled with another model (vggface-resnet50")
        and "\n" not in error
    )
    assert "re-enrol everyone with `clockface enroll DIR` (without --add)" in error
    assert GalleryStore(config.paths.gallery).binding() == other  # untouched

    listing = invoke(gallery, ["list"], config).stdout
    assert "NOT the configured model" in listing

    # Replace mode IS the re-enrolment.
    code, report = invoke_json(enroll, [folder], config)
    assert code == 0 and gallery_people(config) == {"Joe Biden": 1}
    assert any("made by another model" in n for n in report["notes"])
    assert len(load_matcher(config, model)) == 1


def test_a_person_without_a_usable_photo_keeps_their_enrolment(tmp_path, config):
    assert invoke(enroll, [make_stick(tmp_path / "a", TEAM) / "images"], config).exit_code == 0
    stick = make_stick(tmp_path / "b", {"barack_obama.jpg": "_noface/1.png", "katy_perry.jpg": "katy_perry/1.jpg"})
    code, report = invoke_json(enroll_stick, ["--mount-point", stick], config)
    assert code == 0
    assert roster(report)["Barack Obama"]["status"] == "kept"
    assert gallery_people(config) == {"Barack Obama": 2, "Katy Perry": 1}


def test_a_stick_with_nothing_usable_changes_nothing(tmp_path, config):
    assert invoke(enroll, [make_stick(tmp_path / "a", TEAM) / "images"], config).exit_code == 0
    old = config.paths.gallery.read_bytes()
    stick = make_stick(tmp_path / "b", {"someone.jpg": "_noface/1.png"})
    code, report = invoke_json(enroll_stick, ["--mount-point", stick], config)
    assert code == 1 and report["error"] == "no usable photo in this folder, so the gallery was left unchanged"
    assert config.paths.gallery.read_bytes() == old


def test_gallery_remove_leaves_no_trace_of_the_person(tmp_path, config):
    from logs.store import AttendanceEvent, AttendanceStore

    assert invoke(enroll, [make_stick(tmp_path / "a", TEAM) / "images"], config).exit_code == 0
    model = load_model(config)
    templates = GalleryStore(config.paths.gallery).templates(model.binding)
    with AttendanceStore(config.paths.attendance) as store:
        for person in ("Barack Obama", "Joe Biden"):
            store.record(AttendanceEvent(person, "check-in", datetime.now(UTC), 60, 0.4, "camera:0", "t1"))

    result = invoke(gallery, ["remove", "barack obama", "--with-logs", "--yes"], config)
    assert result.exit_code == 0, result.output
    assert "removed Barack Obama from the gallery (2 face templates erased)" in result.stdout
    assert "erased 1 attendance event of Barack Obama" in result.stdout

    folder = config.paths.gallery.parent
    files = [p for p in folder.iterdir() if p.name.startswith("gallery.db") and not p.name.endswith(".lock")]
    raw = b"".join(p.read_bytes() for p in files)
    for t in templates:
        blob = t.embedding.astype("<f4").tobytes()
        pieces = [blob[i : i + 16] for i in range(0, len(blob), 16)]
        if t.person == "Barack Obama":
            assert not any(piece in raw for piece in pieces), (
                f"part of {t.photo}'s template is still in {', '.join(p.name for p in files)}"
            )
        else:
            assert blob in raw
    assert b"Barack Obama" not in raw and b"barack_obama" not in raw
    assert gallery_people(config) == {"Joe Biden": 1}
    with AttendanceStore(config.paths.attendance) as store:
        assert [
            e.person for e in store.events_between(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
        ] == ["Joe Biden"]

    again = invoke(gallery, ["remove", "Barack Obama", "--yes"], config)
    assert again.exit_code == 1 and "no one called 'Barack Obama' in the gallery (enrolled: Joe Biden)" in again.stderr


def test_exif_orientation_and_heic(tmp_path, config):
    """A phone photo stored sideways with an EXIF 'rotate 90' tag is read upright
    (Haar finds only upright faces), as JPEG and, with pillow-heif, as HEIC."""
    from PIL import Image

    source = Image.open(shared_path("faces") / "joe_biden" / "1.jpg").reduce(2)  # 485x1102: quicker, face still 160 px
    sideways = source.transpose(Image.Transpose.ROTATE_90)  # turned left; EXIF orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    images = tmp_path / "s" / "images"
    images.mkdir(parents=True)
    sideways.save(images / "joe_biden.jpg", exif=exif.tobytes(), quality=92)
    sideways.save(images / "no_tag.jpg", quality=92)  # the control: without the tag Haar sees no upright face
    expected = {"Joe Biden": 1}
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        sideways.save(images / "katy_biden.heic", exif=exif.tobytes(), quality=90)
        expected["Katy Biden"] = 1
    except ImportError:
        pass
    code, report = invoke_json(enroll_stick, ["--mount-point", tmp_path / "s"], config)
    assert code == 0, report
    photos = photos_by_file(report)
    assert photos["joe_biden.jpg"]["outcome"] == "enrolled"
    assert photos["no_tag.jpg"]["outcome"] == "no face"
    if "Katy Biden" in expected:
        assert photos["katy_biden.heic"]["outcome"] == "enrolled", photos["katy_biden.heic"]
        # Same picture under two names: flagged, which also proves the HEIC decoded to the same face.
        assert any("looks like Joe Biden" in w for w in photos["katy_biden.heic"]["warnings"])
    assert gallery_people(config) == expected


def test_heic_without_pillow_heif_says_what_to_install(tmp_path, config, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_heif(name, *args, **kwargs):
        if name == "pillow_heif":
            raise ImportError("No module named 'pillow_heif'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_heif)
    stick = make_stick(
        tmp_path / "s", {"joe_biden.jpg": "joe_biden/1.jpg", "anna_smith.heic": b"\x00\x00\x00\x18ftypheic"}
    )
    code, report = invoke_json(enroll_stick, ["--mount-point", stick], config)
    assert code == 0
    heic = photos_by_file(report)["anna_smith.heic"]
    assert heic["outcome"] == "unreadable file"
    assert "pip install pillow-heif" in heic["detail"] and "save it as JPEG" in heic["detail"]


def test_enroll_through_the_clockface_command(tmp_path, dlib_model):
    """The root command reads the TOML config and hands it to `enroll` (ctx.obj)."""
    from click.testing import CliRunner

    from device.cli.main import main

    data = tmp_path / "data"
    data.mkdir()
    toml = tmp_path / "clockface.toml"
    toml.write_text(f'[paths]\ndata_dir = "{data}"\nmodel = "{dlib_model}"\n', encoding="utf-8")
    folder = make_stick(tmp_path / "s", {"joe_biden.jpg": "joe_biden/1.jpg"}) / "images"
    checked = CliRunner().invoke(main, ["--config", str(toml), "enroll", str(folder), "--check"])
    assert checked.exit_code == 0, checked.output
    assert "note:    check only: the gallery was not changed" in checked.stdout
    assert not (data / "gallery.db").exists()
    done = CliRunner().invoke(
        main, ["--config", str(toml), "enroll", str(folder), "--report-dir", str(tmp_path / "reports")]
    )
    assert done.exit_code == 0, done.output
    assert "enrolled             joe_biden.jpg  Joe Biden\n" in done.stdout
    assert (tmp_path / "reports" / "clockface-report.csv").is_file()
    listed = CliRunner().invoke(main, ["--config", str(toml), "gallery", "list"])
    assert (
        listed.stdout.splitlines()[1].split()[:2] == ["Joe", "Biden"]
        and listed.stdout.splitlines()[1].split()[2] == "1"
    )


def test_missing_gallery_folder_fails_before_examining_photos(tmp_path, dlib_model):
    from device.config import parse_config

    config = parse_config({"paths": {"data_dir": str(tmp_path / "gone"), "model": str(dlib_model)}}, env={})
    folder = make_stick(tmp_path / "s", {"joe_biden.jpg": "joe_biden/1.jpg"}) / "images"
    code, report = invoke_json(enroll, [folder], config)
    assert code == 1 and report["photos"] == []
    assert report["error"] == f"gallery folder does not exist: {tmp_path / 'gone'}; the gallery was not changed"
