"""Background work: one thread scans and scores studies with the engine, another computes Grad-CAM maps,
so the GUI thread only ever receives finished results."""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from cxr_desktop.studies.reader import read_header, read_study
from cxr_desktop.studies.scan import iter_study_files
from cxr_desktop.studies.study import StudyError

if TYPE_CHECKING:
    from cxr_desktop.inference.engine import Engine

log = logging.getLogger(__name__)


class TriageWorker(QObject):
    """Lives in its own QThread. Owns the engine; the GUI talks to it only through signals."""

    model_loaded = Signal(object, str)  # engine, description
    model_failed = Signal(str)
    scanned = Signal(list)  # [(path, StudyInfo | None, error)]
    result = Signal(object)  # StudyResult
    progress = Signal(int, int)  # done, total
    idle = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.engine: Engine | None = None
        self._pending: list[Path] = []
        self._seen: set[Path] = set()
        self._stamps: dict[Path, tuple[int, int] | None] = {}  # (size, mtime) when the file was read
        self._failed: set[Path] = set()  # read or scored with an error: read again once it has changed
        self._sightings: dict[Path, tuple[int, int] | None] = {}  # watched files waiting to settle
        self._recheck_due = False
        self._done = 0
        self._total = 0
        self.busy = False  # read by the Grad-CAM worker to keep its warm-up out of the way

    def _run_busy(self, work) -> None:
        self.busy = True
        try:
            work()
        finally:
            self.busy = False

    @Slot(str, str)
    def load_model(self, path: str, device: str) -> None:
        # PyTorch is imported here, in the worker thread, so that the window paints before it loads
        from cxr_desktop.core.bundle import BundleError
        from cxr_desktop.inference.engine import Engine

        try:
            engine = Engine.from_path(Path(path), device=device)
        except (BundleError, RuntimeError, ValueError, KeyError) as exc:
            self.model_failed.emit(f"cannot load model {path}: {exc}")
            return
        self.engine = engine
        self.model_loaded.emit(engine, engine.description)
        if self._pending:
            self._run_busy(self._score)

    @Slot(list)
    def open_paths(self, paths: list[str]) -> None:
        self._run_busy(lambda: self._open(paths))

    @Slot(list)
    def rescan(self, paths: list[str]) -> None:
        """From the folder watcher: new files once they have settled, and failed files that changed since."""
        self._run_busy(lambda: self._open(paths, watched=True))

    def _wanted(self, path: Path, watched: bool) -> bool:
        """Read ``path`` now? A watched file is read only when its size and mtime are the same as at the
        previous look, at least ``SETTLE_MS`` ago (a file still being copied is not read half-written)."""
        stamp = _stamp(path)
        if path in self._seen and not (watched and path in self._failed and stamp != self._stamps.get(path)):
            return False
        if watched and self._sightings.get(path, ()) != stamp:
            self._sightings[path] = stamp
            if not self._recheck_due:
                self._recheck_due = True
                QTimer.singleShot(SETTLE_MS, self._recheck)
            return False
        self._sightings.pop(path, None)
        self._seen.add(path)
        self._stamps[path] = stamp
        self._failed.discard(path)
        return True

    def _recheck(self) -> None:
        self._recheck_due = False
        if self._sightings:
            self.rescan([str(path) for path in self._sightings])

    def _open(self, paths: list[str], watched: bool = False) -> None:
        """Headers first (queued rows appear at once), then scoring in batches."""
        new: list[tuple[Path, object, str]] = []
        for path in iter_study_files(Path(p) for p in paths):
            if not self._wanted(path, watched):
                continue
            try:
                new.append((path, read_header(path), ""))
                self._pending.append(path)
            except StudyError as exc:
                new.append((path, None, exc.reason))
                self._failed.add(path)
            if len(new) >= 64:
                self.scanned.emit(new)
                new = []
        if new:
            self.scanned.emit(new)
        self._total = self._done + len(self._pending)
        self.progress.emit(self._done, self._total)
        if self.engine is not None:
            self._score()

    def _score(self) -> None:
        todo, self._pending = self._pending, []
        for result in self.engine.triage(todo):
            if QThread.currentThread().isInterruptionRequested():
                return  # the window is closing
            self._done += 1
            if not result.ok:
                self._failed.add(result.path)
            self.result.emit(result)
            self.progress.emit(self._done, self._total)
        self.idle.emit()


WARM_UP_DELAY_MS = 1000
SETTLE_MS = 1000  # a watched file is read once its size and mtime have not changed for this long


def _stamp(path: Path) -> tuple[int, int] | None:
    """(size, mtime in ns), None when the file cannot be looked at (the reader gives the reason)."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


class ImageLoader(QObject):
    """Decodes the study the user selected, in a thread of its own, so the GUI thread never decodes and
    never waits behind a Grad-CAM. Only the latest request is served when the user moves quickly."""

    image_ready = Signal(str, object)  # path, display image
    failed = Signal(str, str)

    def __init__(self) -> None:
        super().__init__()
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
        try:
            image = read_study(Path(path)).image
        except StudyError as exc:
            self.failed.emit(path, exc.reason)
            return
        if self._wanted is None:  # nothing newer was asked for meanwhile
            self.image_ready.emit(path, image)
        else:
            QTimer.singleShot(0, self._serve)


class HeatmapWorker(QObject):
    """Grad-CAM maps, in a thread of its own, one at a time from a queue: the study the user selected
    goes to the front; urgent studies are precomputed behind it once scoring is idle."""

    warmed_up = Signal()  # Grad-CAM is ready for the current model
    ready = Signal(str, object, object)  # path, display image, heatmap in [0, 1] over the image
    failed = Signal(str, str)

    def __init__(self, scoring: TriageWorker | None = None) -> None:
        super().__init__()
        self.engine: Engine | None = None
        self.scoring = scoring
        self._warm = False
        self._queue: deque[str] = deque()

    @Slot(object, str)
    def set_engine(self, engine: Engine, _description: str = "") -> None:
        self.engine, self._warm = engine, False
        self._queue.clear()  # maps of the old model are void; the window asks again
        QTimer.singleShot(WARM_UP_DELAY_MS, self.warm_up)

    @Slot()
    def warm_up(self) -> None:
        """Import pytorch-grad-cam and warm the backward pass (seconds, GIL-heavy imports) while scoring
        is idle, so that it neither slows scoring nor makes the first map a user asks for slow."""
        if self.engine is None or self._warm:
            return
        if self.scoring is not None and self.scoring.busy:
            QTimer.singleShot(WARM_UP_DELAY_MS, self.warm_up)
            return
        try:
            self.engine.warm_up_heatmap()
        except RuntimeError as exc:
            log.error("Grad-CAM warm-up failed: %s", exc)
        self._warm = True
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
        if not self._queue or self.engine is None:
            return
        path = self._queue.popleft()
        try:
            image = read_study(Path(path)).image
            self.ready.emit(path, image, self.engine.heatmap(image))
            self._warm = True
        except StudyError as exc:
            self.failed.emit(path, exc.reason)
        except Exception as exc:  # e.g. out of memory on the device; the viewer says so
            log.error("Grad-CAM failed: %s: %s", type(exc).__name__, exc)
            self.failed.emit(path, f"heatmap failed: {exc}")
        if self._queue:
            QTimer.singleShot(0, self._next)  # lets a new request (e.g. a selection) in first
