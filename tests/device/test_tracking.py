"""Tracking and k-of-n decisions on scripted boxes and matches."""

from device.terminal.tracking import Tracker, TrackerSettings, decide
from device.vision.detect import FaceBox
from device.vision.matcher import Match


def hit(person, d=0.3):
    return Match(person, d, person)


def miss(d=0.8, nearest="x"):
    return Match(None, d, nearest)


def test_k_agreeing_matches_decide_the_person():
    assert decide([hit("ann", 0.4)], 2, 4, 1) is None
    d = decide([hit("ann", 0.4), miss(), hit("ann", 0.2)], 2, 4, 1)
    assert d.person == "ann" and d.embeddings == 3 and d.distance in (0.2, 0.4)


def test_n_without_agreement_is_unknown():
    d = decide([hit("ann"), hit("bob"), miss(), miss()], 2, 4, 7)
    assert d.person is None and d.track_id == 7 and d.embeddings == 4


def test_disagreeing_names_do_not_add_up():
    assert decide([hit("ann"), hit("bob"), hit("cid")], 2, 4, 1) is None


def test_boxes_follow_a_moving_face_and_new_faces_get_new_tracks():
    t = Tracker(TrackerSettings(iou=0.3, max_missing=2))
    first = t.update([FaceBox(100, 100, 80, 80)], 0)
    assert len(first) == 1
    track_id = first[0][0].id
    moved = t.update([FaceBox(110, 105, 80, 80), FaceBox(400, 100, 80, 80)], 1)
    ids = sorted(tr.id for tr, _ in moved)
    assert track_id in ids and len(ids) == 2


def test_tracks_expire_after_missing_frames():
    t = Tracker(TrackerSettings(max_missing=2))
    t.update([FaceBox(0, 0, 50, 50)], 0)
    t.update([], 1)
    t.update([], 2)
    assert len(t.tracks) == 1
    t.update([], 3)
    assert t.tracks == {}


def test_a_decided_track_takes_no_more_embeddings():
    t = Tracker(TrackerSettings(confirm_k=2, confirm_n=4))
    ((track, _),) = t.update([FaceBox(0, 0, 50, 50)], 0)
    assert t.add_match(track, hit("ann")) is None
    decision = t.add_match(track, hit("ann"))
    assert decision.person == "ann"
    assert not track.needs_embedding
    assert t.add_match(track, hit("bob")) is None and track.decision.person == "ann"


def test_one_person_walking_past_makes_one_decision():
    """A scripted walk: the face drifts right over 30 frames; it is embedded
    only until decided (2 embeddings), not 30 times."""
    t = Tracker(TrackerSettings(confirm_k=2, confirm_n=4))
    embedded = decisions = 0
    for i in range(30):
        for track, _box in t.update([FaceBox(50 + 5 * i, 80, 90, 90)], i):
            if track.needs_embedding:
                embedded += 1
                decisions += t.add_match(track, hit("ann")) is not None
    assert embedded == 2 and decisions == 1


def test_a_face_that_walks_up_is_recognised_from_its_later_frames():
    """Its first frames are too small to match anyone; k of the LAST n decide, and only
    `unknown_after` embeddings without agreement make the track unknown."""
    from device.terminal.tracking import decide
    from device.vision.matcher import Match

    far = [Match(None, 0.60, "Lin Manuel Miranda")] * 3
    near = [Match("Lin Manuel Miranda", 0.45, "Lin Manuel Miranda")] * 2
    decision = decide(far + near, k=2, n=4, track_id=7, unknown_after=12)
    assert decision is not None and decision.person == "Lin Manuel Miranda" and decision.embeddings == 5
    assert (
        decide([*far, Match(None, 0.6, "Anna")], k=2, n=4, track_id=7, unknown_after=12) is None
    )  # 4 misses: keep looking
    unknown = decide([Match(None, 0.6, "Anna")] * 12, k=2, n=4, track_id=7, unknown_after=12)
    assert unknown is not None and unknown.person is None
    # One close frame in every window of four is never two: a stranger is not decided a person.
    scattered = [
        Match("Anna", 0.5, "Anna"),
        Match(None, 0.6, "Anna"),
        Match(None, 0.6, "Anna"),
        Match(None, 0.6, "Anna"),
    ] * 3
    for end in range(1, len(scattered) + 1):
        d = decide(scattered[:end], k=2, n=4, track_id=1, unknown_after=12)
        assert d is None or d.person is None
