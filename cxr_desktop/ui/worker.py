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
        self._done = 0
        self._total = 0

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
            self._score()

    @Slot(list)
    def open_paths(self, paths: list[str]) -> None:
        """Headers first (queued rows appear at once), then scoring in batches."""
        new: list[tuple[Path, object, str]] = []
        for path in iter_study_files(Path(p) for p in paths):
            if path in self._seen:
                continue
            self._seen.add(path)
            try:
                new.append((path, read_header(path), ""))
                self._pending.append(path)
            except StudyError as exc:
                new.append((path, None, exc.reason))
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
            self.result.emit(result)
            self.progress.emit(self._done, self._total)
        self.idle.emit()


class HeatmapWorker(QObject):
    """Reads the selected study for the viewer and computes Grad-CAM maps, in a thread of its own, one job
    at a time from a queue: the study the user selected goes to the front; urgent studies are precomputed
    behind it. The GUI thread never decodes an image."""

    warmed_up = Signal()  # Grad-CAM is ready for the new model
    image_ready = Signal(str, object)  # path, display image (for the viewer)
    ready = Signal(str, object, object)  # path, display image, heatmap in [0, 1] over the image
    failed = Signal(str, str)

    def __init__(self) -> None:
        super().__init__()
        self.engine: Engine | None = None
        self._queue: deque[tuple[str, bool, bool]] = deque()  # (path, show the image, compute the map)

    @Slot(object, str)
    def set_engine(self, engine: Engine, _description: str = "") -> None:
        self.engine = engine
        self._queue = deque(job for job in self._queue if job[1])  # maps of the old model are void
        try:  # before any request is served: the first map of a session would otherwise take seconds
            engine.warm_up_heatmap()
        except RuntimeError as exc:
            log.error("Grad-CAM warm-up failed: %s", exc)
        self.warmed_up.emit()

    @Slot(str, bool, bool)
    def request(self, path: str, show: bool, heatmap: bool) -> None:
        """Queue a job for ``path``: shown studies go first; a path already queued is merged, not repeated."""
        for job in list(self._queue):
            if job[0] == path:
                self._queue.remove(job)
                show, heatmap = show or job[1], heatmap or job[2]
        idle = not self._queue
        if show:
            self._queue.appendleft((path, show, heatmap))
        else:
            self._queue.append((path, show, heatmap))
        if idle:
            QTimer.singleShot(0, self._next)

    def _next(self) -> None:
        if not self._queue:
            return
        path, show, heatmap = self._queue.popleft()
        try:
            image = read_study(Path(path)).image
            if show:
                self.image_ready.emit(path, image)
            if heatmap and self.engine is not None:
                self.ready.emit(path, image, self.engine.heatmap(image))
        except StudyError as exc:
            self.failed.emit(path, exc.reason)
        except RuntimeError as exc:  # e.g. out of memory on the device; the viewer says so
            log.error("Grad-CAM failed: %s", exc)
            self.failed.emit(path, f"heatmap failed: {exc}")
        if self._queue:
            QTimer.singleShot(0, self._next)  # lets a new request (e.g. a selection) in first
