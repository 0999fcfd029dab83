"""Thread adapters for the triage session: each QObject lives in a QThread of its own and runs one kind of the
session's slow work when a queued signal asks for it. The scoring thread loads the model, scans and scores;
the image thread decodes the study the user selected (from the session's cache when it is there); the
Grad-CAM thread computes heatmaps. The GUI thread only renders what the session announces
(:class:`~cxr_desktop.ui.session_bridge.SessionBridge`)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

from cxr_desktop.studies.study import StudyError, file_stamp
from cxr_desktop.worklist.session import TriageSession

if TYPE_CHECKING:
    from cxr_desktop.inference.engine import Engine

log = logging.getLogger(__name__)

MODEL_FAILED_PREFIX = "Cannot load model"  # starts every model_failed message
SETTLE_MS = 1000  # a watched file is read once its size and mtime have not changed for this long
EMPTY_GRACE_S = 30.0  # an empty watched file is given this long to start filling
BACKGROUND_NICENESS = 4  # added to the scoring thread's nice value (Linux): the GUI thread gets a core first, while
# scoring keeps ~30 % of a core against a busy process at normal priority (kernel nice weights; 10 would leave ~10 %)


def lower_thread_priority(increment: int = BACKGROUND_NICENESS) -> None:
    """Lower the calling thread's CPU priority. On Linux the nice value is per thread and inherited by the
    threads it starts: the scoring thread's reader pool and ONNX Runtime's intra-op threads (created when the
    model loads there) all run below the GUI thread, which then waits neither for a core nor for a GIL holder
    that could not get one. Elsewhere, nothing changes."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + increment)
    except OSError as exc:  # e.g. a sandbox without the call: scoring still runs, at normal priority
        log.info("could not lower the scoring thread's priority: %s", exc)


class TriageWorker(QObject):
    """Loads the model into the session, and has the session scan and score, in the scoring thread."""

    model_loaded = Signal(object, str)  # engine, description
    model_failed = Signal(str)
    files_changed = Signal(list)  # listed files the session found changed on disk: read again, in this thread

    def __init__(self, session: TriageSession) -> None:
        super().__init__()
        self.session = session
        # queued even when the scoring thread itself finds the change: never a scan inside a scoring pass
        self.files_changed.connect(self.rescan, Qt.ConnectionType.QueuedConnection)
        session.events.files_changed.connect(self.files_changed.emit)
        self._sightings: dict[Path, tuple[int, int] | None] = {}  # watched files waiting to settle
        self._empty_since: dict[Path, float] = {}  # watched files first seen empty (monotonic time)
        self._recheck_due = False

    @Slot(str, str)
    def load_model(self, path: str, device: str) -> None:
        # PyTorch is imported here, in the worker thread, so that the window paints before it loads
        from cxr_desktop.core.bundle import BundleError
        from cxr_desktop.inference.engine import Engine

        try:
            engine = Engine.from_path(Path(path), device=device)
        except (BundleError, RuntimeError, ValueError, KeyError) as exc:
            self.model_failed.emit(f"{MODEL_FAILED_PREFIX} {path}: {exc}")
            return
        except Exception as exc:  # anything else a broken bundle raises: said in the window, never a thread's traceback
            log.error("loading model %s failed: %s: %s", path, type(exc).__name__, exc)
            self.model_failed.emit(f"{MODEL_FAILED_PREFIX} {path}: {type(exc).__name__}: {exc}")
            return
        self.session.set_engine(engine)
        self.model_loaded.emit(engine, engine.description)
        self._score()

    @Slot(list)
    def open_paths(self, paths: list[str]) -> None:
        self.session.add_paths(paths)
        self._score()

    @Slot(list)
    def rescan(self, paths: list[str]) -> None:
        """From the folder watcher (and the session): new files once they have settled, and listed files that
        changed since their header was read (failed ones, and scored ones that may hold another study now)."""
        self.session.add_paths(paths, settled=self._settled)
        self._score()

    def _score(self) -> None:
        self.session.score_pending(stop=QThread.currentThread().isInterruptionRequested)

    def _settled(self, path: Path) -> bool:
        """Is the size and mtime of ``path`` the same as at the previous look, at least ``SETTLE_MS`` ago? A
        file still being copied is not read half-written; it is looked at again then."""
        stamp = file_stamp(path)
        if self._sightings.get(path, ()) != stamp or self._still_empty(path, stamp):
            self._sightings[path] = stamp
            if not self._recheck_due:
                self._recheck_due = True
                QTimer.singleShot(SETTLE_MS, self._recheck)
            return False
        del self._sightings[path]
        self._empty_since.pop(path, None)
        return True

    def _still_empty(self, path: Path, stamp: tuple[int, int] | None) -> bool:
        """An empty file has usually just been created by a copy that has not written yet: it is waited for
        up to ``EMPTY_GRACE_S`` before it is read (and listed as empty)."""
        if stamp is None or stamp[0] > 0:
            self._empty_since.pop(path, None)
            return False
        first = self._empty_since.setdefault(path, time.monotonic())
        return time.monotonic() - first < EMPTY_GRACE_S

    def _recheck(self) -> None:
        self._recheck_due = False
        if self._sightings:
            self.rescan([str(path) for path in self._sightings])


class ImageLoader(QObject):
    """The study the user selected, from the session (decoded at most once), in a thread of its own, so the
    GUI thread never decodes and never waits behind a Grad-CAM. Only the latest request is served when the
    user moves quickly."""

    image_ready = Signal(str, str, object)  # path, the study's key (the image is that study's), display image
    failed = Signal(str, str, str)  # path, study key, reason

    def __init__(self, session: TriageSession) -> None:
        super().__init__()
        self.session = session
        self._wanted: str | None = None

    @Slot(str)
    def load(self, path: str) -> None:
        busy = self._wanted is not None
        self._wanted = path
        if not busy:
            QTimer.singleShot(0, self._serve)

    def _serve(self) -> None:
        path, self._wanted = self._wanted, None
        if path is None:
            return
        row = self.session.row(Path(path))
        key = "" if row is None else row.key  # the study asked for: the image is read as that study or not at all
        try:
            image = self.session.image(Path(path), None if row is None else row.info)
        except StudyError as exc:  # also a file that holds another study now: its row is read again first
            self.failed.emit(path, key, exc.reason)
            return
        if self._wanted is None:  # nothing newer was asked for meanwhile
            self.image_ready.emit(path, key, image)
        else:
            QTimer.singleShot(0, self._serve)


class HeatmapWorker(QObject):
    """Grad-CAM maps over the session's decoded images, one at a time from a queue: the study the user
    selected goes to the front; the window queues urgent studies behind it once scoring is idle."""

    warmed_up = Signal()  # Grad-CAM is ready for the current model
    ready = Signal(str, str, object)  # path, the study's key, heatmap in [0, 1] over that study's image
    failed = Signal(str, str, str)  # path, study key, reason

    def __init__(self, session: TriageSession) -> None:
        super().__init__()
        self.session = session
        self._queue: deque[str] = deque()

    @Slot(object, str)
    def set_engine(self, engine: Engine, _description: str = "") -> None:
        """A new model: maps of the old one are void (the window asks again). Grad-CAM is warmed up at once
        (imports and a backward pass, seconds), so that a map asked for during the first pass comes fast."""
        self._queue.clear()
        try:
            engine.warm_up_heatmap()
        except RuntimeError as exc:
            log.error("Grad-CAM warm-up failed: %s", exc)
        self.warmed_up.emit()

    @Slot(str, bool)
    def compute(self, path: str, first: bool) -> None:
        """Queue ``path`` (at the front when ``first``); maps are computed between incoming requests."""
        if path in self._queue:
            self._queue.remove(path)
        idle = not self._queue
        if first:
            self._queue.appendleft(path)
        else:
            self._queue.append(path)
        if idle:
            QTimer.singleShot(0, self._next)

    def _next(self) -> None:
        if not self._queue:
            return
        path = self._queue.popleft()
        study = ""
        try:
            study = self._study(path)
            heatmap = self.session.heatmap(Path(path))
            # its key goes with the map: the window takes it only for that study (the file may be replaced
            # between this check and the delivery)
            if self._study(path) == study:  # else its row now holds another study: the window asks again
                self.ready.emit(path, study, heatmap)
        except StudyError as exc:
            self.failed.emit(path, study, exc.reason)
        except Exception as exc:  # e.g. out of memory on the device; the viewer says so
            log.error("Grad-CAM failed: %s: %s", type(exc).__name__, exc)
            self.failed.emit(path, study, f"heatmap failed: {exc}")
        if self._queue:
            QTimer.singleShot(0, self._next)  # lets a new request (e.g. a selection) in first

    def _study(self, path: str) -> str:
        row = self.session.row(Path(path))
        return "" if row is None else row.key
