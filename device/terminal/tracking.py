"""Per-person work: follow faces across frames and decide once per track.

Embedding is the expensive step (tens to hundreds of ms on a Pi), so a face
is embedded only until its track is decided: a person when k of its last n
matches agree; unknown for now after n matches without (the door asks the
person to look at the camera), and the track is still embedded until
`unknown_after` matches, so a face that walks up is recognised from its
later, sharper frames. Detection still runs on every
frame; it is cheap and keeps the tracks attached to the right faces.
Pure logic over boxes and match results, so it is tested on scripted input.

Why k-of-n and not the mean of a track's embeddings (measured by
tests/benchmarks/track_rule.py, dlib, 2026-12-01, k=2, n=4, results in
docs/results/track_rule.md): at the shipped threshold 0.51 k-of-n makes no
false accept on visits made of photos (0 of 19 and 0 of 26 impostor visits on
../shared/faces and faces-extra) where the mean makes one on faces-extra, so
it keeps the per-photo false match rate the threshold was derived for: a
stranger must match k times. The mean has the better TAR at that threshold
(1.000 and 0.900 against 0.846 and 0.650) and logs Lin-Manuel Miranda in the
shared clip down to 0.48 (his track's mean is 0.469; k-of-n hangs on one frame
at 0.509), because averaging cancels frame noise; but it lowers impostor
distances too, so it would need its own, stricter threshold (about 0.48 for
zero false accepts on those visits) fitted the same way. Both log Lin-Manuel
Miranda once and nobody else at 0.51.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from device.vision.detect import FaceBox
from device.vision.matcher import Match


@dataclass(frozen=True)
class TrackerSettings:
    confirm_k: int = 2
    confirm_n: int = 4
    iou: float = 0.3
    max_missing: int = 15
    unknown_after: int = 12


@dataclass(frozen=True)
class Decision:
    track_id: int
    person: str | None  # None: the track was decided unknown
    distance: float  # median distance of the agreeing matches (or of all, if unknown)
    embeddings: int  # how many embeddings the decision took


@dataclass
class Track:
    id: int
    box: FaceBox
    last_frame: int
    matches: list[Match] = field(default_factory=list)
    decision: Decision | None = None

    unknown_after: int = 12

    @property
    def needs_embedding(self) -> bool:
        """Undecided, or decided unknown but still within `unknown_after` embeddings:
        a face told "please look at the camera" gets its later, better frames looked at."""
        if self.decision is None:
            return True
        return self.decision.person is None and len(self.matches) < self.unknown_after


def decide(matches: list[Match], k: int, n: int, track_id: int, unknown_after: int | None = None) -> Decision | None:
    """k of the last n matches naming one person -> that person; `unknown_after`
    matches (default n) without that -> unknown.

    The last n, not the first n: a face walking up to the door starts small and
    blurred and its first frames often match nobody, its later ones clearly
    (the shared clip: Lin-Manuel Miranda's first three frames are beyond the
    threshold, his next ten within it). A stranger still has to match one person
    k times within n consecutive embeddings, so a single close frame decides
    nothing; `unknown_after` bounds how long a track is embedded at all.
    """
    window = matches[-n:]
    votes = Counter(m.person for m in window if m.person is not None)
    if votes:
        person, count = votes.most_common(1)[0]
        if count >= k:
            dists = sorted(m.distance for m in window if m.person == person)
            return Decision(track_id, person, dists[len(dists) // 2], len(matches))
    if len(matches) >= (unknown_after if unknown_after is not None else n):
        dists = sorted(m.distance for m in matches)
        return Decision(track_id, None, dists[len(dists) // 2], len(matches))
    return None


def unknown_so_far(matches: list[Match], n: int, track_id: int) -> Decision | None:
    """After n matches without agreement the face is unknown *for now*: the door asks
    the person to look at the camera while the track is still looked at."""
    if len(matches) != n:
        return None
    dists = sorted(m.distance for m in matches)
    return Decision(track_id, None, dists[len(dists) // 2], len(matches))


class Tracker:
    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self.tracks: dict[int, Track] = {}
        self._next_id = 1

    def update(self, boxes: list[FaceBox], frame_index: int) -> list[tuple[Track, FaceBox]]:
        """Attach this frame's boxes to tracks (greedy by overlap), start new
        tracks for the rest, drop tracks unseen for too long. Returns the tracks
        seen in this frame with their current box."""
        pairs = sorted(
            ((box.iou(track.box), bi, tid) for bi, box in enumerate(boxes) for tid, track in self.tracks.items()),
            reverse=True,
        )
        used_boxes: set[int] = set()
        used_tracks: set[int] = set()
        seen: list[tuple[Track, FaceBox]] = []
        for overlap, bi, tid in pairs:
            if overlap < self.settings.iou:
                break
            if bi in used_boxes or tid in used_tracks:
                continue
            used_boxes.add(bi)
            used_tracks.add(tid)
            track = self.tracks[tid]
            track.box, track.last_frame = boxes[bi], frame_index
            seen.append((track, boxes[bi]))
        for bi, box in enumerate(boxes):
            if bi not in used_boxes:
                track = Track(self._next_id, box, frame_index, unknown_after=self.settings.unknown_after)
                self.tracks[track.id] = track
                self._next_id += 1
                seen.append((track, box))
        for tid in [t for t, tr in self.tracks.items() if frame_index - tr.last_frame > self.settings.max_missing]:
            del self.tracks[tid]
        return seen

    def add_match(self, track: Track, match: Match) -> Decision | None:
        """Record one embedding's match; returns the decision when this one made it."""
        if not track.needs_embedding:
            return None
        track.matches.append(match)
        s = self.settings
        decision = decide(track.matches, s.confirm_k, s.confirm_n, track.id, s.unknown_after)
        if decision is not None and decision.person is not None:
            track.decision = decision  # a person: final
            return decision
        if track.decision is not None:
            return None  # already told "unknown"; keep looking until unknown_after
        track.decision = unknown_so_far(track.matches, s.confirm_n, track.id) or decision
        return track.decision
