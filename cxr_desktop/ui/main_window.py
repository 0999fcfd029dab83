"""The triage window: the worklist on the left, the viewer and findings on the right, background workers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QItemSelectionModel, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cxr_desktop.inference.triage import TriagePolicy
from cxr_desktop.studies.windowing import PRESETS
from cxr_desktop.ui.banner import Banner
from cxr_desktop.ui.controls import Controls
from cxr_desktop.ui.file_actions import FileActions
from cxr_desktop.ui.findings_panel import FindingsPanel
from cxr_desktop.ui.folder_watch import FolderWatch
from cxr_desktop.ui.heatmap_cache import HeatmapCache
from cxr_desktop.ui.image_view import ImageView
from cxr_desktop.ui.worker import HeatmapWorker, ImageLoader, TriageWorker
from cxr_desktop.ui.worklist_model import WorklistModel, worklist_table
from cxr_desktop.worklist.export import export_csv
from cxr_desktop.worklist.reviews import ReviewStore, ReviewStoreError
from cxr_desktop.worklist.rows import DONE, STORE_COLLISION_NOTE, Row, Worklist

if TYPE_CHECKING:  # the engine (and PyTorch) load in the worker thread, after the window is shown
    from cxr_desktop.inference.engine import Engine, StudyResult

log = logging.getLogger(__name__)

PRECOMPUTED_MAPS = 16  # urgent studies whose Grad-CAM is computed ahead, from the top of the list
WINDOW_SIZE = (1500, 900)
SPLIT_SIZES = [690, 490, 300]  # worklist, viewer, findings: the worklist's default columns fit in 650 px
WAITING_TICK_MS = 30_000  # waiting times and Max-wait promotions are brought up to date this often
DEMO_TITLE = " — DEMO: public NIH ChestX-ray14 images (see NOTICE)"


class MainWindow(Controls, FileActions, QMainWindow):
    request_model = Signal(str, str)
    request_open = Signal(list)
    request_rescan = Signal(list)  # watched folders or files that changed
    request_image = Signal(str)  # path to show in the viewer
    request_heatmap = Signal(str, bool)  # path, at the front of the Grad-CAM queue

    def __init__(
        self,
        model_dir: Path,
        store: ReviewStore,
        device: str = "auto",
        synthetic: bool = False,
        max_wait_minutes: float = 30.0,
        demo: bool = False,
    ) -> None:
        super().__init__()
        self.store, self.device, self.synthetic = store, device, synthetic
        self.engine: Engine | None = None
        self.worklist = Worklist(max_wait_s=max_wait_minutes * 60)
        self.model = WorklistModel(self.worklist, self)
        self.heatmaps = HeatmapCache(limit=PRECOMPUTED_MAPS * 2)
        self.current: Row | None = None
        title = " — SYNTHETIC DEMO (not patient data)" if synthetic else DEMO_TITLE if demo else ""
        self.setWindowTitle("CXR Triage" + title)
        self.resize(*WINDOW_SIZE)
        self.setAcceptDrops(True)
        self._build_ui()
        self.banner.say(store.notice)
        if store.read_only:
            self.banner.set_permanent("Read-only review store: decisions and comments cannot be saved.")
        self._start_workers()
        self._dirty = False
        self._timer = QTimer(self, interval=200, timeout=self._refresh_if_dirty)
        self._timer.start()
        self._waiting_timer = QTimer(self, interval=WAITING_TICK_MS, timeout=self._mark_dirty)
        self._waiting_timer.start()
        self.request_model.emit(str(model_dir), device)

    # -- layout --------------------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self._build_toolbar()
        self._build_help_menu()
        self.table = worklist_table(self.model)
        self.table.selectionModel().currentRowChanged.connect(self._row_selected)

        self.view = ImageView()
        self.heatmap_box = QCheckBox("Heatmap (H)")
        self.heatmap_box.setChecked(True)
        self.heatmap_box.toggled.connect(lambda on: self.view.set_overlay(on))
        self.opacity = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=40)
        self.opacity.valueChanged.connect(lambda v: self.view.set_overlay(self.heatmap_box.isChecked(), v / 100))
        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS))
        self.preset.currentTextChanged.connect(lambda name: self.view.set_window(*PRESETS[name]))
        self.comment = QLineEdit(placeholderText="Comment on the selected study (Enter saves)")
        self.comment.returnPressed.connect(self._save_comment)
        controls = QHBoxLayout()
        for widget in (self.heatmap_box, QLabel("Opacity"), self.opacity, QLabel("Window"), self.preset):
            controls.addWidget(widget)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addLayout(controls)
        right_layout.addWidget(self.view, 1)
        right_layout.addWidget(self.comment)
        self.findings = FindingsPanel()
        split = QSplitter()
        split.addWidget(self._with_banner(self.table))
        split.addWidget(right)
        split.addWidget(self.findings)
        split.setSizes(SPLIT_SIZES)
        self.setCentralWidget(split)

        self.progress = QProgressBar(maximumWidth=260)
        self.status_label = QLabel("")  # the model in use, or why it could not be loaded
        self.counts_label = QLabel("")  # how many studies, urgent, scored, queued, refused
        for widget in (self.status_label, self.counts_label, self.progress):
            self.statusBar().addPermanentWidget(widget)
        self._add_shortcuts()
        self.folder_watch = FolderWatch(self.request_rescan.emit, self)

    def _with_banner(self, table: QWidget) -> QWidget:
        """The worklist under the banner that shows review-store faults and failed saves."""
        self.banner = Banner()
        left = QWidget()
        layout = QVBoxLayout(left)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.banner)
        layout.addWidget(table, 1)
        return left

    def _add_shortcuts(self) -> None:
        keys = {
            "H": self.heatmap_box.toggle,
            "C": lambda: self.review("confirmed"),
            "D": lambda: self.review("dismissed"),
            "R": self.view.reset_window,
            "+": lambda: self.view.zoom(1.2),
            "=": lambda: self.view.zoom(1.2),
            "-": lambda: self.view.zoom(1 / 1.2),
        }
        for key, slot in keys.items():
            QShortcut(QKeySequence(key), self, activated=slot)

    def _start_workers(self) -> None:
        self.worker_thread, self.heat_thread, self.image_thread = QThread(self), QThread(self), QThread(self)
        self.worker, self.images = TriageWorker(), ImageLoader()
        self.heat = HeatmapWorker(scoring=self.worker)
        self.worker.moveToThread(self.worker_thread)
        self.heat.moveToThread(self.heat_thread)
        self.images.moveToThread(self.image_thread)
        self.request_model.connect(self.worker.load_model)
        self.request_open.connect(self.worker.open_paths)
        self.request_rescan.connect(self.worker.rescan)
        self.request_image.connect(self.images.load)
        self.request_heatmap.connect(self.heat.compute)
        self.worker.model_loaded.connect(self.heat.set_engine)
        self.worker.model_loaded.connect(self._model_loaded)
        self.worker.model_failed.connect(self._model_failed)
        self.worker.scanned.connect(self._scanned)
        self.worker.result.connect(self._result)
        self.worker.progress.connect(self._progress)
        self.heat.ready.connect(self._heatmap_ready)
        self.worker.idle.connect(self._precompute_heatmaps)
        self.images.image_ready.connect(self._image_ready)
        self.images.failed.connect(self._study_failed)
        self.heat.failed.connect(self._study_failed)
        for thread in (self.worker_thread, self.heat_thread, self.image_thread):
            thread.start()

    # -- actions -------------------------------------------------------------------------------------

    def open_paths(self, paths: list[str]) -> None:
        folders = [p for p in paths if Path(p).is_dir()]
        self.folder_watch.set(self.hot_folder.isChecked(), folders)
        self.request_open.emit([str(p) for p in paths])

    def export(self, path: Path) -> None:
        try:
            export_csv(self.worklist.ordered(), path)
        except OSError as exc:
            log.error("export failed: %s", exc)
            self.banner.say(f"Export to {path} failed: {exc.strerror or exc}")
            return
        self.statusBar().showMessage(f"Exported {len(self.worklist.rows)} studies to {path}", 8000)

    def review(self, decision: str) -> None:
        row = self.current
        if row is None or row.info is None:
            return
        if row.review.decision == decision:
            decision = ""  # pressing again undoes
        if self._save(row, decision, row.review.comment):  # durable before the screen says so
            row.review.decision = decision
            self._dirty = True

    def _save_comment(self) -> None:
        row = self.current
        if row is None or row.info is None:
            return
        if self._save(row, row.review.decision, self.comment.text()):
            row.review.comment = self.comment.text()
            self._dirty = True
            self.statusBar().showMessage("Comment saved", 3000)

    def _save(self, row: Row, decision: str, comment: str) -> bool:
        """Store one decision; a failure (read-only, locked, damaged store) is shown and nothing changes."""
        try:
            self.store.set(row.review_id, decision, comment)
        except ReviewStoreError as exc:
            message = f"{row.path.name}: {exc}"
            self.banner.say(message)
            self.statusBar().showMessage(message, 15000)
            return False
        return True

    # -- worker results ------------------------------------------------------------------------------

    def _model_loaded(self, engine: Engine, description: str) -> None:
        self.engine = engine
        card = engine.card
        chosen = self.point_box.currentData()  # a point picked before a reload (e.g. another device) is kept
        if chosen and chosen != engine.policy.operating_point and chosen in card.operating_points:
            engine.policy = TriagePolicy.from_card(card, chosen)
        self.worklist.set_policy(engine.policy)
        self.point_box.set_card(card, engine.policy.operating_point)
        self.findings.set_card(card, engine.policy.operating_point)
        self._describe_model()
        self.model.set_scope(card.urgent_finding, card.shown_findings)
        self._dirty = True
        if self.current is not None:
            self._show_findings(self.current)
        self.status_label.setText(f"Model {description}")
        self.heatmaps.clear()

    def _model_failed(self, message: str) -> None:
        if self.engine is not None:  # the worker kept the model it had
            self.status_label.setText(f"{message} — still using {self.engine.card.model_id}")
        else:
            self.status_label.setText(message + " — studies stay queued; open a model bundle (Open model…).")

    def _scanned(self, items: list) -> None:
        added = [
            self.worklist.add(path, info, error, synthetic=self.synthetic) or self.worklist.requeue(path, info, error)
            for path, info, error in items
        ]
        self.folder_watch.watch_failed(row.path for row in added if row.error)
        added = [row for row in added if row.info is not None]
        try:
            reviews, collisions = self.store.load([row.review_id for row in added])
        except ReviewStoreError as exc:
            reviews, collisions = {}, set()
            self.banner.say(f"Earlier reviews could not be read: {exc}")
        for row in added:
            row.review = reviews.get(row.key, row.review)
            if row.key in collisions and not row.collision:
                row.collision = STORE_COLLISION_NOTE
        self._dirty = True

    def _result(self, result: StudyResult) -> None:
        row = self.worklist.apply(result)
        if row is not None and row.error:
            self.folder_watch.watch_failed([row.path])
        if row is self.current:
            self._show_findings(row)
        self._dirty = True

    def _progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done}/{total} triaged")

    def _precompute_heatmaps(self) -> None:
        """Grad-CAM of the urgent studies at the top of the list, ready before the radiologist opens them."""
        self._refresh_if_dirty()  # the order as the user sees it, with the last results in
        top = [row.path for row in self.model.visible if row.urgent][:PRECOMPUTED_MAPS]
        for path in top:  # queued behind any selected study; asked for once scoring is idle
            if path not in self.heatmaps:
                self.request_heatmap.emit(str(path), False)

    def _heatmap_ready(self, path: str, image, heatmap) -> None:
        self.heatmaps.put(Path(path), heatmap)
        if self.current is not None and self.current.path == Path(path):
            self.view.set_heatmap(heatmap)

    # -- selection and refresh -----------------------------------------------------------------------

    def _refresh_if_dirty(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        keep = self.current
        self.model.refresh()
        if keep is not None and (i := self.model.index_of(keep)) >= 0:
            self.table.selectionModel().setCurrentIndex(
                self.model.index(i, 0),
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
            )
        counts = self.worklist.counts()
        self.counts_label.setText(
            f"  {len(self.worklist.rows)} studies · {counts['urgent']} urgent · {counts['done']} scored · "
            f"{counts['queued']} queued · {counts['error']} refused  "
        )

    def _row_selected(self, current, _previous) -> None:
        row = self.model.row_at(current.row())
        if row is None or row is self.current:
            return
        self.current = row
        self.comment.setText(row.review.comment)
        self._show_findings(row)
        self.view.set_image(None)
        if row.info is not None:  # decoded by the image loader; shown by _image_ready
            self.request_image.emit(str(row.path))
            if row.status == DONE and row.path not in self.heatmaps:
                self.request_heatmap.emit(str(row.path), True)

    def _image_ready(self, path: str, image) -> None:
        if self.current is None or self.current.path != Path(path):
            return  # the user has moved on
        self.view.set_image(image)
        if self.current.path in self.heatmaps:
            self.view.set_heatmap(self.heatmaps.get(self.current.path))

    def _study_failed(self, path: str, reason: str) -> None:
        if self.current is not None and self.current.path == Path(path):
            self.findings.title.setText(f"{Path(path).name}: {reason}")
        self.statusBar().showMessage(reason, 8000)

    def _show_findings(self, row: Row) -> None:
        header = f"<b>{row.path.name}</b>"
        for warning in row.warnings:
            header += f"<br><span style='color:#a00'>⚠ {warning}</span>"
        if row.error:
            header += f"<br><span style='color:#a00'>Error: {row.error}</span>"
        self.findings.title.setText(header)
        self.findings.show_probabilities(row.probabilities)

    def _mark_dirty(self) -> None:
        self._dirty = True

    def closeEvent(self, event) -> None:  # noqa: N802
        for thread in (self.worker_thread, self.heat_thread, self.image_thread):
            thread.requestInterruption()
            thread.quit()
            thread.wait(5000)
        super().closeEvent(event)
