"""The triage window: the worklist on the left, the viewer and findings on the right. It renders what the triage
session announces and forwards the user's input to it; the session's slow work runs in the thread adapters of
``ui.worker``."""

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
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cxr_desktop.studies.windowing import PRESETS
from cxr_desktop.ui.banner import Banner, ModeBanner
from cxr_desktop.ui.controls import Controls
from cxr_desktop.ui.file_actions import FileActions
from cxr_desktop.ui.findings_panel import FindingsPanel
from cxr_desktop.ui.folder_watch import FolderWatch
from cxr_desktop.ui.heatmap_cache import HeatmapCache
from cxr_desktop.ui.image_view import ImageView
from cxr_desktop.ui.progress import TriageProgress
from cxr_desktop.ui.session_bridge import SessionBridge
from cxr_desktop.ui.worker import (
    MODEL_FAILED_PREFIX,
    HeatmapWorker,
    ImageLoader,
    TriageWorker,
    lower_thread_priority,
)
from cxr_desktop.ui.worklist_model import WorklistModel, worklist_table
from cxr_desktop.worklist.export import export_csv
from cxr_desktop.worklist.reviews import ReviewStore, ReviewStoreError
from cxr_desktop.worklist.rows import DONE, Row
from cxr_desktop.worklist.session import TriageSession

if TYPE_CHECKING:  # the engine (and PyTorch) load in the worker thread, after the window is shown
    from cxr_desktop.inference.engine import Engine

log = logging.getLogger(__name__)

PRECOMPUTED_MAPS = 16  # flagged (urgent, CHECK) studies whose Grad-CAM is computed ahead, from the top of the list
WINDOW_SIZE = (1500, 900)
SPLIT_SIZES = [690, 490, 300]  # worklist, viewer, findings: the worklist's default columns fit in 650 px
WAITING_TICK_MS = 30_000  # waiting times and Max-wait promotions are brought up to date this often
REFRESH_MS = 100  # while studies are being scored, the worklist is redrawn at most this often
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
        allow_unvalidated: bool = False,
    ) -> None:
        super().__init__()
        self.store, self.device = store, device
        self.engine: Engine | None = None  # the session's, once loaded: its card and device are shown
        self.session = TriageSession(
            max_wait_s=max_wait_minutes * 60, reviews=store, synthetic=synthetic, allow_unvalidated=allow_unvalidated
        )
        self.bridge = SessionBridge(self.session, self)
        self.model = WorklistModel(self)
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
        # the worklist and the progress bar are redrawn at once on a change, then at most every REFRESH_MS while
        # changes keep coming: each redraw costs the GUI thread the GIL, which the scoring threads also want
        self._refresh_due = QTimer(self, singleShot=True, interval=REFRESH_MS, timeout=self._refresh_if_stale)
        self._stale = False
        self.bridge.rows_changed.connect(self._session_changed)  # progress comes with it, in the snapshot
        self.bridge.idle.connect(self._precompute_heatmaps)
        self.bridge.notice.connect(self.banner.say)
        self.bridge.policy_changed.connect(self._policy_changed)
        self.bridge.replaced.connect(self._replaced)
        # a clock, not a poll: waiting times and Max-wait promotions change with time alone
        self._waiting_timer = QTimer(self, interval=WAITING_TICK_MS, timeout=self._refresh)
        self._waiting_timer.start()
        self.request_model.emit(str(model_dir), device)

    # -- layout --------------------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self._build_toolbar()
        self._build_settings_menu()
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

        self.progress = TriageProgress()
        self.status_label = QLabel("")  # the model in use, or why it could not be loaded
        self.counts_label = QLabel("")  # how many studies, urgent, scored, queued, refused
        for widget in (self.status_label, self.counts_label, self.progress):
            self.statusBar().addPermanentWidget(widget)
        self._add_shortcuts()
        self.folder_watch = FolderWatch(self.request_rescan.emit, self)

    def _with_banner(self, table: QWidget) -> QWidget:
        """The worklist under the banners: the flagging mode of an unvalidated model, review-store faults and
        failed saves."""
        self.mode_banner, self.banner = ModeBanner(), Banner()
        left = QWidget()
        layout = QVBoxLayout(left)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.mode_banner)
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
        self.worker, self.images = TriageWorker(self.session), ImageLoader(self.session)
        self.heat = HeatmapWorker(self.session)
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
        self.heat.ready.connect(self._heatmap_ready)
        self.images.image_ready.connect(self._image_ready)
        self.images.failed.connect(self._study_failed)
        self.heat.failed.connect(self._study_failed)
        # run in the scoring thread as it starts, before it loads the model (whose threads inherit the priority)
        self.worker_thread.started.connect(lower_thread_priority, Qt.ConnectionType.DirectConnection)
        for thread in (self.worker_thread, self.heat_thread, self.image_thread):
            thread.start()

    # -- actions -------------------------------------------------------------------------------------

    def open_paths(self, paths: list[str]) -> None:
        folders = [p for p in paths if Path(p).is_dir()]
        self.folder_watch.set(self.hot_folder.isChecked(), folders)
        self.request_open.emit([str(p) for p in paths])

    def export(self, path: Path) -> None:
        try:
            rows = self.session.snapshot().rows
            policy = self.session.policy
            export_csv(rows, path, threshold=policy.threshold if policy is not None else None)
        except OSError as exc:
            log.error("export failed: %s", exc)
            self.banner.say(f"Export to {path} failed: {exc.strerror or exc}")
            return
        self.statusBar().showMessage(f"Exported {len(rows)} studies to {path}", 8000)

    def review(self, decision: str) -> None:
        row = self.current
        if row is None or row.info is None:
            return
        if row.review.decision == decision:
            decision = ""  # pressing again undoes
        self._save(row, decision, row.review.comment)

    def _save_comment(self) -> None:
        row = self.current
        if row is not None and row.info is not None and self._save(row, row.review.decision, self.comment.text()):
            self.statusBar().showMessage("Comment saved", 3000)

    def _save(self, row: Row, decision: str, comment: str) -> bool:
        """Store one decision (durable before the screen shows it); a failure (read-only, locked, damaged
        store) is shown and nothing changes."""
        try:
            self.session.review(row.path, decision, comment)
        except ReviewStoreError as exc:
            message = f"{row.path.name}: {exc}"
            self.banner.say(message)
            self.statusBar().showMessage(message, 15000)
            return False
        # the session announced the decision in this thread: drawn at once, unless a redraw was recent
        self._refresh_if_stale()  # the user's own decision is not left for the next batch's redraw
        return True

    # -- what the workers and the session announce ----------------------------------------------------

    def _model_loaded(self, engine: Engine, description: str) -> None:
        self.engine = engine
        card, point = engine.card, self.session.policy.operating_point
        self.point_box.set_card(card, point)
        self.findings.set_card(card, point)
        self._describe_model()
        self.model.set_scope(card.urgent_finding, card.shown_findings)
        if self.current is not None:
            self._show_findings(self.current)
        self.status_label.setText(f"Model {description}")
        self.heatmaps.clear()
        self._model_answered(loaded=True)
        if self.banner.text().startswith(MODEL_FAILED_PREFIX):  # an earlier model's failure is over
            self.banner.say("")

    def _model_failed(self, message: str) -> None:
        """Why the model asked for could not be loaded, in the banner (wrapped, never cut off), and what the
        app does now: keep the model in use, or wait for one with the studies queued."""
        self._model_answered(loaded=False)
        if self.engine is not None:  # the worker kept the model it had
            kept = f"{self.engine.card.model_id} ({self.engine.fingerprint_text}) on {self.engine.device_name}"
            self.banner.say(f"{message}\nThe model in use is kept: {kept}.")
            self.status_label.setText(f"Model {self.engine.description}")
        else:
            self.banner.say(f"{message}\nNo model is loaded: studies stay queued; open a model bundle (Open model…).")
            self.status_label.setText("No model loaded")

    def _session_changed(self, *_) -> None:
        if self._refresh_due.isActive():
            self._stale = True  # shown when the interval ends
            return
        self._refresh()
        self._refresh_due.start()

    def _refresh_if_stale(self) -> None:
        """Draw a change that arrived while a redraw was recent (nothing when every change is on screen)."""
        if self._stale:
            self._refresh()
            self._refresh_due.start()

    def _precompute_heatmaps(self) -> None:
        """Grad-CAM of the flagged studies at the top of the list, ready before the radiologist opens them."""
        self._refresh_if_stale()  # the last batches' flagged rows may not be on the table yet
        top = [row.path for row in self.model.visible if row.urgent or row.check][:PRECOMPUTED_MAPS]
        for path in top:  # queued behind any selected study
            if path not in self.heatmaps:
                self.request_heatmap.emit(str(path), False)

    def _replaced(self, paths: list) -> None:
        """Rows whose file now holds another study: their heatmaps are void, the one shown is read anew."""
        for path in paths:
            self.heatmaps.discard(path)
        if self.current is not None and self.current.path in paths:
            self.view.set_image(None)
            self.request_image.emit(str(self.current.path))

    def _heatmap_ready(self, path: str, heatmap) -> None:
        self.heatmaps.put(Path(path), heatmap)
        if self.current is not None and self.current.path == Path(path):
            self.view.set_heatmap(heatmap)

    # -- rendering and selection ---------------------------------------------------------------------

    def _refresh(self, _paths: list | None = None) -> None:
        """Show the session's rows as they are now, keeping the selected study selected."""
        self._stale = False  # every change announced so far is in this snapshot
        snapshot = self.session.snapshot()
        self.model.refresh(snapshot)
        failed = [row.path for row in snapshot.rows if row.error]
        self.folder_watch.watch_failed(failed)
        keep = self.current
        if keep is not None and (i := self.model.index_of(keep)) >= 0:
            self.table.selectionModel().setCurrentIndex(
                self.model.index(i, 0),
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
            )
            now = self.model.row_at(i)
            self.current = now
            if (now.status, now.error, now.probabilities) != (keep.status, keep.error, keep.probabilities):
                self._show_findings(now)
                self._ask_heatmap(now)
        self.progress.set_progress(snapshot.done, snapshot.total)
        counts = snapshot.counts
        self.counts_label.setText(
            f"  {len(snapshot.rows)} studies · {counts['urgent']} urgent · {counts['check']} check · "
            f"{counts['done']} scored · "
            f"{counts['queued']} queued · {counts['error']} refused  "
        )

    def _row_selected(self, current, _previous) -> None:
        row = self.model.row_at(current.row())
        if row is None or (self.current is not None and row.path == self.current.path):
            return
        self.current = row
        self.comment.setText(row.review.comment)
        self._show_findings(row)
        self.view.set_image(None)
        if row.info is not None:  # decoded by the image loader (from the session's cache); shown by _image_ready
            self.request_image.emit(str(row.path))
            self._ask_heatmap(row)

    def _ask_heatmap(self, row: Row) -> None:
        if row.status == DONE and row.path not in self.heatmaps:
            self.request_heatmap.emit(str(row.path), True)

    def _image_ready(self, path: str, image) -> None:
        if self.current is None or self.current.path != Path(path):
            return  # the user has moved on
        self.view.set_image(image, self.heatmaps.get(self.current.path))  # with its heatmap when cached: one render

    def _study_failed(self, path: str, reason: str) -> None:
        if self.current is not None and self.current.path == Path(path):
            self.findings.title.setText(f"{Path(path).name}: {reason}")
        self.statusBar().showMessage(reason, 8000)

    def _show_findings(self, row: Row) -> None:
        header = f"<b>{row.path.name}</b>"
        policy = self.session.policy
        if policy is not None and row.status == DONE and (score := policy.score_text(row.probabilities)):
            header += f"<br>{score}"
        for warning in row.warnings:
            header += f"<br><span style='color:#a00'>⚠ {warning}</span>"
        if row.error:
            header += f"<br><span style='color:#a00'>Error: {row.error}</span>"
        self.findings.title.setText(header)
        self.findings.show_probabilities(row.probabilities)

    def closeEvent(self, event) -> None:  # noqa: N802
        for thread in (self.worker_thread, self.heat_thread, self.image_thread):
            thread.requestInterruption()
            thread.quit()
            thread.wait(5000)
        super().closeEvent(event)
