"""A folder (or a USB stick's images/) -> a new gallery.

Replace or add mode; the new gallery is built completely and swapped in
atomically, so anything that goes wrong leaves the old gallery in force and
is reported, not half-done. The answer is the plain report itself
(gallery/report.py): embeddings stay in here, so what the CLI prints and
writes onto the stick is exactly what enrolment decided, with no second
model to convert or keep in step.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from device.camera.images import IMAGE_SUFFIXES
from device.enrolment.photo_rules import EnrolRules, PhotoResult, examine_photos, skipped_results
from device.enrolment.review import ClosestPair, LookAlike, closest_pair, relative_name, review_photos
from gallery.layout import PeopleList, Photo, collect_photos, find_people_csv, person_key, read_people_csv
from gallery.report import EnrolmentReport, PersonLine, PhotoLine, Status
from gallery.store import GalleryError, GalleryStore, ModelBinding, PersonRecord, Template, check_folder, write_gallery

if TYPE_CHECKING:
    from device.terminal.assembly import LoadedModel


# --- a folder -> a new gallery -------------------------------------------------------
def enrol_folder(
    images_dir: Path,
    model: LoadedModel,
    rules: EnrolRules,
    gallery_path: Path,
    add: bool = False,
    write: bool = True,
    progress: Callable[[Photo], None] | None = None,
    on_photos: Callable[[int], None] | None = None,
) -> EnrolmentReport:
    """Enrol every photo in `images_dir` (the gallery/layout.py rules) into a new gallery.

    Replace mode (default): the folder is the staff list, people not in it are
    removed. Add mode: people in the folder are added or updated, others kept.
    A person in the folder with no usable photo keeps their previous enrolment.
    The gallery is written only at the end, in one atomic swap; when that is
    impossible `error` says why and the old gallery is untouched.
    """
    images_dir = Path(images_dir)
    report = EnrolmentReport(
        when=_now(),
        source=str(images_dir),
        gallery=str(Path(gallery_path)),
        mode="add" if add else "replace",
        model=model.card.name,
        metric=model.card.metric,
        threshold=float(model.threshold),
        written=False,
    )
    _enrol_into(report, images_dir, model, rules, Path(gallery_path), add, write, progress, on_photos)
    report.when = _now()  # stamped when done: on a Pi the photos take minutes
    return report


def _now() -> datetime:
    return datetime.now().astimezone()


def _photo_line(r: PhotoResult, images_dir: Path) -> PhotoLine:
    """One photo's line: what was decided and the measures, rounded for people; never the embedding."""
    return PhotoLine(
        file=relative_name(r.path, images_dir),
        person=r.person,
        outcome=r.outcome.value,
        detail=r.detail,
        warnings=r.warnings,
        enrolled=r.ok,
        face_px=None if r.face_px is None else round(float(r.face_px), 1),
        sharpness=None if r.sharpness is None else round(r.sharpness, 1),
        brightness=None if r.brightness is None else round(r.brightness, 1),
    )


def _closest_into(report: EnrolmentReport, closest: ClosestPair | None, look_alikes: list[LookAlike]) -> None:
    """Threshold advice. A confusable pair is also a problem to check, unless it is
    already listed there as a look-alike pair (one warning, not two)."""
    if closest is None:
        return
    report.closest = dataclasses.asdict(closest) | {"confused": closest.confused}
    report.advice = closest.advice()
    if closest.confused and not any({p.a, p.b} == {closest.a, closest.b} for p in look_alikes):
        report.problems.append(report.advice)


def _enrol_into(
    report: EnrolmentReport,
    images_dir: Path,
    model: LoadedModel,
    rules: EnrolRules,
    gallery_path: Path,
    add: bool,
    write: bool,
    progress: Callable[[Photo], None] | None,
    on_photos: Callable[[int], None] | None,
) -> None:
    """The enrolment itself, filling in `report`; an early return leaves `error` saying why nothing was written."""
    binding: ModelBinding = model.binding
    metric, threshold = model.card.metric, float(model.threshold)

    if write:  # fail before spending minutes on photos
        try:
            check_folder(Path(gallery_path))
        except GalleryError as exc:
            report.error = f"{exc}; the gallery was not changed"
            return

    # The previous gallery: what we may keep from it.
    store = GalleryStore(gallery_path)
    old_templates: list[Template] = []
    old_records: dict[str, PersonRecord] = {}
    if store.exists():
        try:
            bound = store.binding()
            old_records = store.records()
            if bound.sha256 == binding.sha256:
                old_templates = store.templates(binding)
            elif add:
                report.error = (
                    f"the gallery was enrolled with another model ({bound.name}, sha256 {bound.sha256[:12]}; now {binding.name}, "
                    f"sha256 {binding.sha256[:12]}), so --add cannot keep its people: re-enrol everyone with `clockface enroll DIR` "
                    "(without --add) from a folder of all staff photos"
                )
                return
            else:
                report.notes.append(
                    f"the previous gallery was made by another model ({bound.name}); everyone is re-enrolled from these photos"
                )
                old_records = {}
        except (GalleryError, KeyError) as exc:
            if add:
                report.error = f"the existing gallery cannot be read ({exc}); re-enrol everyone with `clockface enroll DIR` (without --add)"
                return
            report.notes.append(f"the previous gallery could not be read ({exc}); it is replaced")
            old_records = {}

    try:
        photos, skipped = collect_photos(images_dir, IMAGE_SUFFIXES)
    except OSError as exc:
        report.error = f"cannot list {images_dir}: {exc.strerror or exc}"
        return
    people_list: PeopleList = read_people_csv(find_people_csv(images_dir))
    report.problems.extend(people_list.problems)

    # One spelling per person (the first file's), so anna_smith.jpg and Anna_Smith_2.jpg are one person.
    spelling: dict[str, str] = {}
    for p in photos:
        spelling.setdefault(p.key, p.person)
    photos = [Photo(spelling[p.key], p.path) for p in photos]
    if on_photos is not None:
        on_photos(len(photos))

    examined = examine_photos(photos, model.pipeline, rules, progress)
    old_by_key: dict[str, list[Template]] = defaultdict(list)
    for t in old_templates:
        old_by_key[person_key(t.person)].append(t)
    staying = [t for t in old_templates if add and person_key(t.person) not in spelling]
    reviewed, look_alikes = review_photos(examined, metric, threshold, rules, others=staying, root=images_dir)
    report.photos = [_photo_line(r, images_dir) for r in reviewed + skipped_results(skipped)]

    # The new gallery.
    new_templates: list[Template] = []
    kept_templates: list[Template] = []
    records: dict[str, PersonRecord] = {}
    roster: list[PersonLine] = []
    old_names = {person_key(name): name for name in old_records}
    for key, name in spelling.items():
        mine = [
            Template(name, relative_name(r.path, images_dir), r.vector)
            for r in reviewed
            if r.ok and person_key(r.person) == key
        ]
        old_name = old_names.get(key)
        old_record = old_records.get(old_name) if old_name else None
        employee_id = (
            people_list.employee_id(name)
            if person_key(name) in people_list.employee_ids
            else (old_record.employee_id if old_record else None)
        )
        if mine:
            new_templates.extend(mine)
            records[name] = PersonRecord(None, employee_id)
            roster.append(PersonLine(name, Status.UPDATED if old_name else Status.ENROLLED, len(mine), employee_id))
        elif old_by_key.get(key):
            kept = [dataclasses.replace(t, person=name) for t in old_by_key[key]]
            kept_templates.extend(kept)
            records[name] = PersonRecord(old_record.enrolled_at if old_record else None, employee_id)
            roster.append(
                PersonLine(
                    name, Status.KEPT, len(kept), employee_id, "no usable photo in this folder: previous enrolment kept"
                )
            )
            why = "; ".join(
                f"{relative_name(r.path, images_dir)}: {r.outcome.value}"
                for r in reviewed
                if person_key(r.person) == key
            )
            report.problems.append(f"{name}: no usable photo ({why}), the previous enrolment is kept")
        else:
            roster.append(PersonLine(name, Status.NOT_ENROLLED, 0, employee_id, "no usable photo"))
            why = "; ".join(
                f"{relative_name(r.path, images_dir)}: {r.outcome.value}"
                for r in reviewed
                if person_key(r.person) == key
            )
            report.problems.append(f"{name}: NOT ENROLLED, no usable photo ({why})")
    for key, templates in old_by_key.items():
        if key in spelling:
            continue
        name = templates[0].person
        old_record = old_records.get(name, PersonRecord())
        employee_id = people_list.employee_id(name) if key in people_list.employee_ids else old_record.employee_id
        if add:
            kept_templates.extend(templates)
            records[name] = PersonRecord(old_record.enrolled_at, employee_id)
            roster.append(PersonLine(name, Status.KEPT, len(templates), employee_id))
        else:
            roster.append(PersonLine(name, Status.REMOVED, 0, old_record.employee_id, "not in this folder"))
    for key, name in people_list.names.items():
        if key not in spelling and key not in old_by_key:
            report.problems.append(f"people.csv lists {name}, but there is no photo of them")
    report.roster = sorted(roster, key=lambda e: (e.status is Status.REMOVED, person_key(e.name)))

    for line in report.photos:
        if line.enrolled and line.warnings:
            report.problems.extend(f"{line.file}: {w}" for w in line.warnings if "looks like" not in w)
    for pair in look_alikes:
        report.problems.append(
            f"{pair.a} and {pair.b} look like the same person ({pair.photo_a} / {pair.photo_b}, distance {pair.distance:.2f}, "
            f"threshold {threshold:g}): check the photos are named right"
        )

    final = kept_templates + new_templates
    _closest_into(report, closest_pair(final, metric, threshold), look_alikes)
    if not new_templates:
        report.error = (
            "no usable photo in this folder, so the gallery was left unchanged"
            if photos
            else f"no photos found in {images_dir}, so the gallery was left unchanged"
        )
        return
    if not write:
        report.notes.append("check only: the gallery was not changed")
        return
    try:
        write_gallery(gallery_path, binding, new_templates, keep=kept_templates, people=records)
    except (GalleryError, OSError) as exc:
        report.error = f"the gallery could not be written, the previous one stays in force: {exc}"
        return
    report.written = True
