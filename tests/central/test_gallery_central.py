"""The gallery from the centre, against a real PostgreSQL with real photos and the real dlib model.

`clockface central enroll` publishes; a terminal's role (SELECT on the two
views only) pulls with gallery.central.pull_gallery; `clockface central
remove` erases a person from every version and, after one pull, from every
byte of the terminal's gallery files (the same byte-level check as a local
`clockface gallery remove`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner

from device.cli.central import central as central_cli
from device.terminal.service import gallery_stamp
from device.vision.model_card import load_card
from gallery.central import publish_version, pull_gallery
from gallery.store import GalleryStore, ModelBinding, PersonRecord, Template, write_gallery
from logs.central.connect import connect
from tests.conftest import make_config
from tests.gallery.conftest import make_stick
from tests.gallery.traces import pieces_left, raw_bytes

OBAMA, JOLIE, MUSK = "barack_obama/1.jpg", "angelina_jolie/1.jpg", "elon_musk/1.jpg"


def admin_env(server) -> dict[str, str]:
    """The admin DSN the way an administrator passes one holding a password: not in argv."""
    return {"CLOCKFACE_CENTRAL_DSN": server.admin_dsn}


@pytest.fixture
def workstation(tmp_path: Path, dlib_model: Path):
    """The config of the machine that enrols (its model computes the templates)."""
    return make_config(tmp_path / "workstation", dlib_model)


@pytest.fixture
def model(dlib_model: Path) -> ModelBinding:
    card = load_card(dlib_model)
    return ModelBinding(card.name, card.model_sha256, card.embedding_size)


def cli(config, server, *args: str | Path):
    return CliRunner().invoke(
        central_cli, [str(a) for a in args], obj=config, env=admin_env(server), catch_exceptions=False
    )


def enrol(config, server, tmp_path: Path, files: dict[str, str], *flags: str) -> dict:
    stick = make_stick(tmp_path / f"stick-{len(list(tmp_path.glob('stick-*')))}", files)
    result = cli(config, server, "enroll", stick / "images", "--json", *flags)
    report = json.loads(result.stdout)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return report


def test_a_published_version_is_pulled_by_a_terminal_and_the_recogniser_would_reload(
    central, terminal, workstation, model, tmp_path
):
    report = enrol(workstation, central, tmp_path, {"barack_obama.jpg": OBAMA, "angelina_jolie.jpg": JOLIE})
    assert report["written"] and any("published central gallery version" in n for n in report["notes"])
    assert report["gallery"].startswith("central ")
    assert not (workstation.paths.gallery).exists()  # the workstation's own gallery is not touched

    gallery = tmp_path / "gate" / "gallery.db"
    gallery.parent.mkdir()
    old_vector = np.random.default_rng(1).standard_normal(model.embedding_size).astype(np.float32)
    write_gallery(gallery, model, [Template("Local Only", "local.jpg", old_vector)])  # enrolled by a stick earlier
    before = gallery_stamp(gallery)
    with connect(terminal("gate"), autocommit=True) as conn:
        first = pull_gallery(conn, gallery, model)
        assert first.applied and first.refused is None and first.people == 2
        assert first.removed == ("Local Only",)
        stamp = gallery_stamp(gallery)
        # What the running recogniser watches: (st_ino, st_mtime_ns). The erasure and the swap each put a new
        # file in place, so the file system may hand the first file's inode number back: the pair still moves.
        assert stamp is not None and before is not None and stamp != before
        assert [p.name for p in GalleryStore(gallery).people()] == ["Angelina Jolie", "Barack Obama"]
        assert len(GalleryStore(gallery).templates(model)) == 2
        assert pieces_left(old_vector.astype("<f4").tobytes(), raw_bytes(gallery)) == 0

        data = gallery.read_bytes()
        again = pull_gallery(conn, gallery, model)
    assert (again.applied, again.version, again.people) == (False, first.version, 2)
    assert gallery_stamp(gallery) == stamp and gallery.read_bytes() == data  # unchanged version: no rewrite


def test_add_mode_keeps_the_central_people_and_says_so(central, terminal, workstation, model, tmp_path):
    enrol(workstation, central, tmp_path, {"barack_obama.jpg": OBAMA})
    report = enrol(workstation, central, tmp_path, {"elon_musk.jpg": MUSK}, "--add")
    assert {r["name"]: r["status"] for r in report["roster"]} == {"Barack Obama": "kept", "Elon Musk": "enrolled"}
    assert any("1 template carried over from version 1" in n for n in report["notes"])
    gallery = tmp_path / "gate.db"
    with connect(terminal("gate"), autocommit=True) as conn:
        assert pull_gallery(conn, gallery, model).people == 2


def test_a_terminal_on_another_model_refuses_and_keeps_its_gallery_byte_identical(
    central, terminal, workstation, model, tmp_path
):
    enrol(workstation, central, tmp_path, {"barack_obama.jpg": OBAMA})
    other = ModelBinding("other-model", "f" * 64, model.embedding_size)
    gallery = tmp_path / "back-gate.db"
    write_gallery(gallery, other, [Template("Anna", "a.jpg", np.ones(other.embedding_size, np.float32))])
    before, stamp = gallery.read_bytes(), gallery_stamp(gallery)
    with connect(terminal("back-gate"), autocommit=True) as conn:
        outcome = pull_gallery(conn, gallery, other)
    assert not outcome.applied and outcome.refused is not None
    assert "\n" not in outcome.refused
    assert model.sha256[:12] in outcome.refused and "f" * 12 in outcome.refused
    assert "keeps its current gallery" in outcome.refused
    assert gallery.read_bytes() == before and gallery_stamp(gallery) == stamp


def test_central_remove_erases_the_person_from_every_version_and_every_terminal_byte(
    central, terminal, workstation, model, tmp_path
):
    enrol(workstation, central, tmp_path, {"barack_obama.jpg": OBAMA, "angelina_jolie.jpg": JOLIE})
    enrol(workstation, central, tmp_path, {"elon_musk.jpg": MUSK}, "--add")  # Obama is in versions 1 and 2
    gallery = tmp_path / "gate" / "gallery.db"
    gallery.parent.mkdir()
    gate = terminal("gate")
    with connect(gate, autocommit=True) as conn:
        assert pull_gallery(conn, gallery, model).people == 3
        conn.execute(
            "INSERT INTO clockface.events (id, person, event_type, timestamp_utc, utc_offset_minutes, distance, source) "
            "VALUES (gen_random_uuid(), 'Barack Obama', 'check-in', now(), 60, 0.3, 'camera'), "
            "(gen_random_uuid(), 'Elon Musk', 'check-in', now(), 60, 0.3, 'camera')"
        )
    obama = [
        t.embedding.astype("<f4").tobytes()
        for t in GalleryStore(gallery).templates(model)
        if t.person == "Barack Obama"
    ]
    others = [
        t.embedding.astype("<f4").tobytes()
        for t in GalleryStore(gallery).templates(model)
        if t.person != "Barack Obama"
    ]
    assert len(obama) == 1 and pieces_left(obama[0], raw_bytes(gallery)) > 0

    result = cli(workstation, central, "remove", "barack obama", "--yes", "--with-logs")
    assert result.exit_code == 0, result.output
    assert "removed Barack Obama from the central gallery (2 face templates erased from 2 versions)" in result.stdout
    assert "erased 1 central attendance event of Barack Obama" in result.stdout

    with connect(gate, autocommit=True) as conn:
        outcome = pull_gallery(conn, gallery, model)
    assert outcome.applied and outcome.removed == ("Barack Obama",)
    raw = raw_bytes(gallery)
    assert pieces_left(obama[0], raw) == 0, "a piece of the removed template survived on the terminal"
    assert b"Barack Obama" not in raw
    assert all(blob in raw for blob in others)

    with psycopg.connect(central.admin_dsn) as conn:
        stored = [bytes(b) for (b,) in conn.execute("SELECT embedding FROM clockface.gallery_templates")]
        assert stored and not any(pieces_left(obama[0], b) for b in stored)
        assert conn.execute("SELECT count(*) FROM clockface.people WHERE name = 'Barack Obama'").fetchone() == (0,)
        assert conn.execute("SELECT person FROM clockface.events").fetchall() == [("Elon Musk",)]
        (detail,) = conn.execute("SELECT detail FROM clockface.audit_log WHERE action = 'gallery.erase'").fetchone()
        assert detail["person"] == "Barack Obama" and detail["templates"] == 2 and detail["events"] == 1
        assert set(detail) == {"person", "in_gallery", "templates", "versions", "new_version", "events"}
        # Not only invisible to SELECT: gone from the table's own files (VACUUM FULL after the erasure).
        conn.execute("CHECKPOINT")
        (relpath,) = conn.execute("SELECT pg_relation_filepath('clockface.gallery_templates')").fetchone()
    table_files = sorted((central.data_dir / relpath).parent.glob(Path(relpath).name + "*"))
    table = b"".join(f.read_bytes() for f in table_files)
    assert table_files and all(blob in table for blob in others)
    assert pieces_left(obama[0], table) == 0, "the removed template is still in the table's pages"


def test_removing_a_name_nobody_has_is_one_line_listing_who_is_enrolled(central, workstation, tmp_path):
    enrol(workstation, central, tmp_path, {"barack_obama.jpg": OBAMA})
    result = CliRunner().invoke(central_cli, ["remove", "Zed", "--yes"], obj=workstation, env=admin_env(central))
    assert result.exit_code == 1
    assert result.stderr == "clockface: error: no one called 'Zed' in the central gallery (enrolled: Barack Obama)\n"


def test_a_terminal_role_reads_only_the_current_version(central, terminal, workstation, model, tmp_path):
    enrol(workstation, central, tmp_path, {"barack_obama.jpg": OBAMA})
    enrol(workstation, central, tmp_path, {"angelina_jolie.jpg": JOLIE})  # replace: Obama only in version 1
    with connect(terminal("gate"), autocommit=True) as conn:
        for table in ("gallery_templates", "gallery_versions", "people", "audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM clockface.{table}")
        rows = conn.execute("SELECT version_id, person FROM clockface.current_gallery_templates").fetchall()
    assert rows == [(2, "Angelina Jolie")]
    assert os.environ.get("PGPASSWORD") is None  # the role got in by its passfile alone


def test_a_publish_carries_the_same_models_people_and_another_model_starts_a_new_line(central):
    rng = np.random.default_rng(5)
    a, b = ModelBinding("model-a", "a" * 64, 4), ModelBinding("model-b", "b" * 64, 4)

    def t(name: str) -> Template:
        return Template(name, f"{name}.jpg", rng.standard_normal(4).astype(np.float32))

    with connect(central.admin_dsn, autocommit=True) as conn:
        first = publish_version(conn, a, [t("Anna"), t("Bob")], {"Anna": PersonRecord(None, "E-1")})
        second = publish_version(conn, a, [t("cy"), t("anna")], replace_people={"BOB"}, note="add Cy, drop Bob")
        third = publish_version(conn, b, [t("Dee")])
        by_version = dict(
            conn.execute(
                "SELECT v.id, string_agg(p.name, ',' ORDER BY p.name) FROM clockface.gallery_versions v "
                "JOIN clockface.gallery_templates t ON t.version_id = v.id JOIN clockface.people p ON p.id = t.person_id "
                "GROUP BY v.id"
            ).fetchall()
        )
        ids = dict(conn.execute("SELECT name, employee_id FROM clockface.people").fetchall())
        audit = [
            d["version"]
            for (d,) in conn.execute(
                "SELECT detail FROM clockface.audit_log WHERE action = 'gallery.publish' ORDER BY id"
            )
        ]
    assert (first.previous, first.new_line, first.people) == (None, False, 2)
    assert (second.previous, second.new_line, second.carried, second.people) == (1, False, 0, 2)
    assert (third.new_line, third.carried, third.people) == (True, 0, 1) and "a new model line" in third.line()
    # New photos of Anna replace her old template (the newest spelling wins); Bob is dropped.
    assert by_version == {1: "Bob,anna", 2: "anna,cy", 3: "Dee"}  # version 1 still holds Anna (renamed) and Bob
    assert ids["anna"] == "E-1"  # a person without a new record keeps their employee ID
    assert audit == [1, 2, 3]


def test_the_sync_agents_puller_applies_a_version_on_its_own_transaction_connection(
    central, terminal, model, dlib_model, tmp_path
):
    """The agent's hook (device/sync/gallery_pull.py) on a non-autocommit connection, as the agent holds it."""
    from device.sync.gallery_pull import gallery_puller

    rng = np.random.default_rng(9)
    with connect(central.admin_dsn, autocommit=True) as admin:
        version = publish_version(
            admin, model, [Template("Anna", "anna.jpg", rng.standard_normal(model.embedding_size).astype(np.float32))]
        ).version
    gallery = tmp_path / "gate.db"
    pull = gallery_puller(gallery, dlib_model)
    assert pull is not None
    with connect(terminal("gate")) as conn:
        news = pull(conn)
        conn.commit()
        assert news is not None and (news.version, news.refused) == (version, None)
        assert [p.name for p in GalleryStore(gallery).people()] == ["Anna"]
        data = gallery.read_bytes()
        assert pull(conn) == news and gallery.read_bytes() == data
