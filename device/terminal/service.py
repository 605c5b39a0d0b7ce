"""The terminal's main loop: frames in, attendance out, under systemd or not.

One process. Live sources are read by a capture thread that keeps only the
newest frame, so processing never works through a backlog. The watchdog is
pinged from this loop (never a side thread), so a wedged loop gets the
process restarted. SIGTERM finishes the current frame and closes the
databases; SIGHUP (or a new gallery file) reloads config and gallery.

Why one module over 300 lines: it is the loop and what the loop alone knows
(sessions across reloads, the camera reconnect, the status banners); the
pages it feeds are in preview.py and kiosk.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from device.camera.frames import Frame, FrameSource, SourceError
from device.camera.sources import open_source
from device.config import Config
from device.terminal.assembly import LoadedModel, load_matcher, load_model
from device.terminal.door import DoorEvent, DoorKind, DoorSignals, TerminalStatus
from device.terminal.notify import Notifier
from device.terminal.recognise import Recogniser, Stats
from device.terminal.recorder import Recorder, RecordResult, clock_is_plausible
from device.terminal.tracking import Decision, TrackerSettings
from logs.store import AttendanceStore

RECONNECT_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds between attempts to reopen a lost camera


@dataclass
class Outcome:
    """What a run did, for the CLI summary and tests."""

    source: str
    logged: list = field(default_factory=list)  # AttendanceEvent
    decisions: list[tuple[Decision, RecordResult | None]] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    startup_seconds: float = 0.0  # to READY: model and gallery loaded
    first_frame_seconds: float | None = None  # to the end of the first processed frame
    reloads: int = 0
    errors: list[str] = field(default_factory=list)
    stats: Stats | None = None


class LatestFrame:
    """Capture thread for live sources: keeps only the newest frame."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._taken = -1
        self.finished = False
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"capture {source.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self.source.frames():
                with self._cond:
                    self._frame = frame
                    self._cond.notify_all()
        except Exception as exc:
            self.error = f"{self.source.name}: {exc}"
        with self._cond:
            self.finished = True
            self._cond.notify_all()

    def newest(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken, waiting up to `timeout` seconds."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.finished or (self._frame is not None and self._frame.index != self._taken), timeout
            )
            if self._frame is None or self._frame.index == self._taken:
                return None
            self._taken = self._frame.index
            return self._frame

    def close(self) -> None:
        self.source.close()


def make_recorder(config: Config, store: AttendanceStore, source_name: str) -> Recorder:
    return Recorder(
        store,
        config.logs.zone,
        config.logs.terminal_id,
        source_name,
        timedelta(minutes=config.recognition.cooldown_minutes),
        checkout=config.recognition.checkout,
    )


class Session:
    """Everything loaded from one config: model, gallery, recogniser. The
    recorder outlives reloads: it holds events still waiting for the disk."""

    def __init__(self, config: Config, recorder: Recorder, model: LoadedModel | None = None) -> None:
        self.config = config
        self.model = model or load_model(config)
        rec = config.recognition
        self.recogniser = Recogniser(
            self.model.pipeline,
            load_matcher(config, self.model),
            TrackerSettings(rec.confirm_k, rec.confirm_n, rec.track_iou, rec.track_max_missing, rec.unknown_after),
            rec.min_face_px,
            config.motion,
        )
        self.recorder = recorder
        recorder.zone, recorder.terminal_id = config.logs.zone, config.logs.terminal_id
        recorder.cooldown = timedelta(minutes=rec.cooldown_minutes)
        recorder.checkout = rec.checkout
        self.gallery_stamp = gallery_stamp(config.paths.gallery)

    @property
    def people(self) -> int:
        return len(set(self.recogniser.matcher.names))

    def reloaded(self, config: Config) -> Session:
        """A session for a new config/gallery. With the same model the model is
        not loaded again and tracks carry over: a person already recognised is
        not decided twice, while faces decided unknown get another look, since
        the new gallery may know them."""
        same_model = config.paths.model_path == self.model.path
        new = Session(config, self.recorder, self.model if same_model else None)
        new.recogniser.stats = self.recogniser.stats
        if same_model:
            tracker = self.recogniser.tracker
            tracker.settings = new.recogniser.tracker.settings
            for track in tracker.tracks.values():
                if track.decision is not None and track.decision.person is None:
                    track.decision, track.matches = None, []
            new.recogniser.tracker = tracker
        return new

    def handle(
        self,
        decisions: list[Decision],
        outcome: Outcome,
        on_event: Callable,
        on_message: Callable[[str], None],
        door: DoorSignals | None = None,
    ) -> None:
        """Turn the frame's decisions into attendance (and, if configured, unknown-face) events,
        and tell the person at the door what happened."""
        for decision in decisions:
            result = None
            if decision.person is not None:
                t0 = time.perf_counter()
                result = self.recorder.record(decision.person, decision.distance)
                self.recogniser.stats.add("log", time.perf_counter() - t0)
                if result.reason == "logged":
                    outcome.logged.append(result.event)
                    on_event(result.event)
                elif result.reason != "cooldown":
                    on_message(f"{decision.person} recognised but not logged: {result.reason}")
            elif self.config.recognition.log_unknown:
                self.recorder.record_unknown(decision.distance)
            outcome.decisions.append((decision, result))
            if door is not None:
                door.publish(door_event(decision.person, result, self.recorder.clock()))


def door_event(person: str | None, result: RecordResult | None, now: datetime) -> DoorEvent:
    """What one decision means for the person at the door (pure)."""
    if person is None or result is None:
        return DoorEvent(DoorKind.UNKNOWN, now)
    if result.event is not None:  # written, or kept in memory until the disk takes it
        kind = DoorKind.CHECKED_OUT if result.event.event_type == "check-out" else DoorKind.CHECKED_IN
        return DoorEvent(kind, result.event.timestamp_utc, person, event_type=result.event.event_type)
    if result.reason == "cooldown" and result.previous is not None:
        return DoorEvent(DoorKind.REPEAT, now, person, previous_at=result.previous.timestamp_utc)
    return DoorEvent(DoorKind.NOT_LOGGED, now, person, reason=result.reason)


def terminal_status(session: Session, camera_lost: bool) -> TerminalStatus:
    """What staff must know now, from what the loop knows: the camera reconnect
    loop, the gallery, the recorder's clock check and its events waiting for the disk."""
    return TerminalStatus(
        camera_lost=camera_lost,
        no_gallery=session.people == 0,
        clock_unsynchronised=not clock_is_plausible(session.recorder.clock()),
        disk_full=bool(session.recorder.pending),
    )


def gallery_stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _live_frames(
    spec: str,
    config: Config,
    first: FrameSource,
    stop: threading.Event,
    report: Callable[[str], None],
    camera_ok: Callable[[bool], None] = lambda ok: None,
) -> Iterator[Frame | None]:
    """Newest frames from a camera; reopen it with back-off when it vanishes.
    Yields None while waiting, so the caller's loop keeps its watchdog alive.
    `camera_ok(False)` when it is lost, `camera_ok(True)` when it is back."""
    source: FrameSource | None = first
    attempt = 0
    while not stop.is_set():
        if source is None:
            delay = RECONNECT_BACKOFF[min(attempt, len(RECONNECT_BACKOFF) - 1)]
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not stop.is_set():
                yield None
                stop.wait(min(0.5, delay))
            try:
                source = open_source(spec, config.camera.width, config.camera.height)
                report(f"{source.name}: reconnected")
                camera_ok(True)
                attempt = 0
            except SourceError as exc:
                attempt += 1
                report(f"{exc} (retrying in {RECONNECT_BACKOFF[min(attempt, len(RECONNECT_BACKOFF) - 1)]:.0f} s)")
                continue
        reader = LatestFrame(source)
        while not stop.is_set():
            frame = reader.newest(timeout=0.5)
            if frame is not None:
                yield frame
            elif reader.finished:
                break
            else:
                yield None
        reader.close()
        if stop.is_set():
            return
        report(reader.error or f"{source.name}: camera stopped delivering frames")
        camera_ok(False)
        source = None
        attempt += 1


def run_terminal(
    config: Config,
    source_spec: str,
    notifier: Notifier,
    stop: threading.Event,
    reload: threading.Event,
    reload_config: Callable[[], Config] | None = None,
    on_event: Callable[[object], None] = lambda event: None,
    on_message: Callable[[str], None] = lambda text: None,
    max_frames: int | None = None,
    door: DoorSignals | None = None,
) -> Outcome:
    """Run until the source ends (files), `stop` is set, or `max_frames` frames.

    `door` receives one DoorEvent per decision (the kiosk page, chime and LEDs subscribe to it)
    and the TerminalStatus banners; with the kiosk enabled it is created if not given."""
    started = time.perf_counter()
    source = open_source(source_spec, config.camera.width, config.camera.height)
    outcome = Outcome(source.name)
    store = AttendanceStore(config.paths.attendance)
    screens = None
    camera_lost = False
    try:
        if config.preview.enabled or config.kiosk.enabled:
            from device.terminal.kiosk import open_screens

            if config.kiosk.enabled and door is None:
                door = DoorSignals()
            screens = open_screens(config.preview, config.kiosk, config.logs.zone, door, on_message)
        recorder = make_recorder(config, store, source.name)
        session = Session(config, recorder)

        def publish_status() -> None:
            if door is not None:
                door.set_status(terminal_status(session, camera_lost))

        def camera_ok(ok: bool) -> None:
            nonlocal camera_lost
            camera_lost = not ok
            publish_status()

        publish_status()
        outcome.startup_seconds = time.perf_counter() - started
        notifier.ready(f"recognising {session.people} people from {source.name}")
        if session.people == 0:
            on_message(
                f"no one enrolled yet ({config.paths.gallery}): enrol with `clockface enroll DIR` or a USB stick; the gallery is picked up when it appears"
            )
        frames = (
            _live_frames(source_spec, config, source, stop, on_message, camera_ok) if source.live else source.frames()
        )
        last_ping = last_status = last_check = time.monotonic()
        capture_started = time.perf_counter()
        for frame in frames:
            now = time.monotonic()
            if notifier.watchdog_interval and now - last_ping >= notifier.watchdog_interval / 2:
                notifier.watchdog()
                last_ping = now
            if stop.is_set():
                break
            if now - last_check >= 2.0:
                last_check = now
                if gallery_stamp(config.paths.gallery) != session.gallery_stamp:
                    reload.set()
                if recorder.pending:
                    for event in recorder.flush():
                        outcome.logged.append(event)
                        on_event(event)
                publish_status()
            if reload.is_set():
                reload.clear()
                config = reload_config() if reload_config is not None else config
                session = session.reloaded(config)
                if screens is not None and screens.kiosk is not None:
                    screens.kiosk.zone = config.logs.zone
                outcome.reloads += 1
                on_message(f"reloaded: {session.people} people in the gallery")
                publish_status()
            if frame is None:
                capture_started = time.perf_counter()
                continue
            session.recogniser.stats.add("capture", time.perf_counter() - capture_started)
            decisions = session.recogniser.process(frame.image, frame.index)
            session.handle(decisions, outcome, on_event, on_message, door)
            if decisions:
                publish_status()  # a clock refusal or a full disk shows at once
            outcome.frames += 1
            if outcome.first_frame_seconds is None:
                outcome.first_frame_seconds = time.perf_counter() - started
            if screens is not None:
                screens.feed.publish(frame.image, list(session.recogniser.tracker.tracks.values()), frame.index)
            if now - last_status >= 5.0:
                last_status = now
                elapsed = max(time.perf_counter() - started, 1e-9)
                notifier.status(f"{outcome.frames / elapsed:.1f} fps, {len(outcome.logged)} people logged")
            if max_frames is not None and outcome.frames >= max_frames:
                break
            capture_started = time.perf_counter()
        outcome.stats = session.recogniser.stats
        if recorder.pending:
            recorder.flush()
            if recorder.pending:
                outcome.errors.append(
                    f"{len(recorder.pending)} attendance event(s) could not be saved: {recorder.last_error}"
                )
    finally:
        if screens is not None:
            screens.close()
        notifier.stopping()
        source.close()
        store.close()
        outcome.seconds = time.perf_counter() - started
    return outcome
