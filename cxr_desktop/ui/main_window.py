"""The triage window: the worklist on the left, the viewer and findings on the right. It renders what the triage
session announces and forwards the user's input to it; the session's slow work runs in the thread adapters of
``ui.worker``."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import (
    QMainWindow,
)

from cxr_desktop.inference.triage import PointRate, point_rates
from cxr_desktop.ui.controls import Controls
from cxr_desktop.ui.file_actions import FileActions
from cxr_desktop.ui.heatmap_cache import HeatmapCache
from cxr_desktop.ui.pacs_receiver import ReceiverActions
from cxr_desktop.ui.preferences import READER, settings
from cxr_desktop.ui.reading import Reading
from cxr_desktop.ui.session_bridge import SessionBridge
from cxr_desktop.ui.status_text import ai_off_text, counts_text, flag_share_text
from cxr_desktop.ui.window_layout import WindowLayout
from cxr_desktop.ui.worker import (
    MODEL_FAILED_PREFIX,
    HeatmapWorker,
    ImageLoader,
    TriageWorker,
    lower_thread_priority,
)
from cxr_desktop.ui.worklist_model import COLUMNS, OPTIONAL, WorklistModel
from cxr_desktop.worklist.audit import ReaderLog, ReaderLogError, os_reader
from cxr_desktop.worklist.export import QaRecord, export_csv
from cxr_desktop.worklist.priors import priors_text
from cxr_desktop.worklist.reviews import ReviewStore
from cxr_desktop.worklist.rows import DONE, Row
from cxr_desktop.worklist.session import TriageSession

if TYPE_CHECKING:  # the engine (and PyTorch) load in the worker thread, after the window is shown
    from cxr_desktop.inference.engine import Engine

log = logging.getLogger(__name__)

PRECOMPUTED_MAPS = 16  # flagged (urgent, CHECK) studies whose Grad-CAM is computed ahead, from the top of the list
WINDOW_SIZE = (1500, 900)
WAITING_TICK_MS = 30_000  # waiting times and Max-wait promotions are brought up to date this often
REFRESH_MS = 100  # while studies are being scored, the worklist is redrawn at most this often
DEMO_TITLE = " — DEMO: public NIH ChestX-ray14 images (see NOTICE)"


class MainWindow(WindowLayout, Reading, Controls, FileActions, ReceiverActions, QMainWindow):
    request_model = Signal(str, str)
    request_open = Signal(list)
    request_rescan = Signal(list)  # watched folders or files that changed
    request_image = Signal(str)  # path to show in the viewer
    request_heatmap = Signal(str, bool)  # path, at the front of the Grad-CAM queue
    # the worker's model_failed once the window has shown it, emitted in the GUI thread: listen here, never to
    # a worker's signal with a plain function or lambda, which PySide calls in the worker's thread (a pytest-qt
    # waitSignal there stopped and freed its GUI-thread QTimer from that thread: a segfault when it fired)
    model_failed = Signal(str)

    def __init__(
        self,
        model_dir: Path,
        store: ReviewStore,
        device: str = "auto",
        synthetic: bool = False,
        max_wait_minutes: float = 30.0,
        demo: bool = False,
        allow_unvalidated: bool = False,
        metadata: dict[str, dict[str, str]] | None = None,
    ) -> None:
        """``metadata``: per file name, header fields the files lack (the NIH label file's patient and view)."""
        super().__init__()
        self.store, self.device = store, device
        self.engine: Engine | None = None  # the session's, once loaded: its card and device are shown
        self.session = TriageSession(
            max_wait_s=max_wait_minutes * 60,
            reviews=store,
            synthetic=synthetic,
            allow_unvalidated=allow_unvalidated,
            metadata=metadata,
        )
        self.bridge = SessionBridge(self.session, self)
        self.model = WorklistModel(self)
        self.heatmaps = HeatmapCache(limit=PRECOMPUTED_MAPS * 2)
        self.current: Row | None = None
        self.rates: list[PointRate] = []  # the loaded model's operating points with the share each flagged
        self.settings = settings()
        self.reader_log = ReaderLog(store.path)  # who took each decision, and when (the export's QA record)
        self.reader = str(self.settings.value(READER, "") or os_reader())
        self._init_reading()
        title = " — SYNTHETIC DEMO (not patient data)" if synthetic else DEMO_TITLE if demo else ""
        self.setWindowTitle("CXR Triage" + title)
        self.resize(*WINDOW_SIZE)
        self.setAcceptDrops(True)
        self._build_ui()
        self.banner.say(store.notice)
        if store.read_only:
            self.banner.set_permanent("Read-only review store: decisions and comments cannot be saved.")
        self._start_workers()
        self._init_receiver(self.settings_menu)  # Settings ▸ Receive from PACS…, started if it was left on
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
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)  # read by keyboard from the start
        self.folder_watch.set(self.hot_folder.isChecked(), folders)
        self.request_open.emit([str(p) for p in paths])

    def export(self, path: Path) -> None:
        """The worklist as CSV, a QA record: each decision's reader and time, the model and operating point."""
        rows = self.session.snapshot().rows
        try:
            signed = self.reader_log.latest([row.key for row in rows if row.review.decision])
        except ReaderLogError as exc:
            self.banner.say(f"Export: {exc}; the reader and time columns are left empty")
            signed = {}
        card, policy = self.engine.card if self.engine is not None else None, self.session.policy
        qa = QaRecord(
            signed,
            card.model_id if card is not None else "",
            card.fingerprint if card is not None else "",
            policy.operating_point if policy is not None else "",
        )
        try:
            export_csv(rows, path, qa, policy.threshold if policy is not None else None)
        except OSError as exc:
            log.error("export failed: %s", exc)
            self.banner.say(f"Export to {path} failed: {exc.strerror or exc}")
            return
        self.statusBar().showMessage(f"Exported {len(rows)} studies to {path}", 8000)

    # -- what the workers and the session announce ----------------------------------------------------

    def _model_loaded(self, engine: Engine, description: str) -> None:
        self.engine = engine
        card, point = engine.card, self.session.policy.operating_point
        self.point_box.set_card(card, point)
        self.findings.set_card(card, point)
        self._describe_model()
        self.model.set_scope(card.urgent_finding, card.shown_findings)
        self.rates = point_rates(card)
        self._ai_on()
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
            self._ai_off(message)
        self.model_failed.emit(message)

    def _ai_off(self, reason: str) -> None:
        """No model: a banner says AI triage is off and why; the studies stay readable, marked "not scored"."""
        self.model.ai_off = True
        self.ai_banner.say(ai_off_text(reason))
        self.progress.hide()
        self._refresh()

    def _ai_on(self) -> None:
        if self.model.ai_off:
            self.model.ai_off = False
            self.ai_banner.say("")
            self.progress.show()

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
        top = [row for row in self.model.visible if row.urgent or row.check][:PRECOMPUTED_MAPS]
        for row in top:  # queued behind any selected study
            if row.identity not in self.heatmaps:
                self.request_heatmap.emit(str(row.path), False)

    def _replaced(self, paths: list) -> None:
        """Rows whose file now holds another study: their heatmaps are void; when it is the one shown, the new
        study is shown at once as a newly selected one (``_show_study``: a comment typed on the old one stays
        with the old one)."""
        for path in paths:
            self.heatmaps.discard(path)
        if self.current is not None and self.current.path in paths:
            self._refresh()

    def _shows(self, path: str, study: str) -> bool:
        """Is ``study`` (a ``Row.key``) in ``path`` the study shown? A worker's result for any other is dropped."""
        return self.current is not None and self.current.identity == (Path(path), study)

    def _heatmap_ready(self, path: str, study: str, heatmap) -> None:
        self.heatmaps.put((Path(path), study), heatmap)
        if self._shows(path, study):
            self.viewer.show_heat(heatmap, self.current, self.session.policy)

    # -- rendering and selection ---------------------------------------------------------------------

    def _refresh(self, _paths: list | None = None) -> None:
        """Show the session's rows as they are now, keeping the selected study selected."""
        self._stale = False  # every change announced so far is in this snapshot
        snapshot = self.session.snapshot()
        policy = self.session.policy
        self.model.threshold = policy.threshold if policy is not None else None
        self.model.refresh(snapshot)
        for name in OPTIONAL:  # columns no listed study has anything in are hidden
            self.table.setColumnHidden(COLUMNS.index(name), self.model.column_empty(name))
        failed = [row.path for row in snapshot.rows if row.error]
        self.folder_watch.watch_failed(failed)
        keep = self.current
        if (now := self.reselect(keep)) is not None:
            self.current = now
            if (now.status, now.error, now.probabilities) != (keep.status, keep.error, keep.probabilities):
                self._show_findings(now)
                self._ask_heatmap(now)
        self.progress.set_progress(snapshot.done, snapshot.total)
        self.counts_label.setText(counts_text(snapshot, self.model.ai_off))
        share = flag_share_text(snapshot, policy, self.rates)
        self.flag_label.setText(share)
        self.flag_label.setVisible(bool(share))

    def _row_selected(self, current, _previous) -> None:
        row = self.model.row_at(current.row())
        if row is None:
            return
        self.current_index = current.row()
        self.user_moved()
        if row.same_study(self.current):
            return  # the study shown (a file that now holds another study is a new selection)
        self._show_study(row)

    def _show_study(self, row: Row) -> None:
        """Show ``row``'s study, chosen by the reader or the list; the comment typed on the one left stays its."""
        left, self.current = self.current, row
        self.statusBar().clearMessage()  # a message about the study left (e.g. why it was refused) goes with it
        self.keep_comment(left)  # a comment typed on the study left is saved there, not lost
        self.comment.setText(row.review.comment)
        self.viewer.show_image(None, None, row, None)
        self._show_findings(row)
        if row.info is not None:  # decoded by the image loader (from the session's cache); shown by _image_ready
            self.request_image.emit(str(row.path))
            self._ask_heatmap(row)

    def show_nothing(self) -> None:
        """The visible list is empty: no study is shown (a key acts on none)."""
        self.keep_comment(self.current)
        self.current, self.current_index = None, -1
        self.comment.clear()
        self.view.set_image(None)
        self.findings.title.setText("No study selected")
        self.findings.show_probabilities({})

    def _ask_heatmap(self, row: Row) -> None:
        if row.status == DONE and row.identity not in self.heatmaps:
            self.request_heatmap.emit(str(row.path), True)

    def _image_ready(self, path: str, study: str, image) -> None:
        if not self._shows(path, study):
            return  # the user has moved on, or the file holds another study now
        heatmap = self.heatmaps.get(self.current.identity)  # with its heatmap when cached: one render
        self.viewer.show_image(image, heatmap, self.current, self.session.policy)

    def _study_failed(self, path: str, study: str, reason: str) -> None:
        if self._shows(path, study):  # said only while its study is shown
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
        if priors := priors_text(self.model.visible, row, policy.finding if policy is not None else ""):
            header += f"<br><span style='color:#333'>{html.escape(priors)}</span>"
        self.findings.title.setText(header)
        self.findings.show_probabilities(row.probabilities)
        if self.view.heatmap is not None:  # weighed again (a new score, threshold or model)
            self.viewer.show_heat(self.view.heatmap, row, policy)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.receiver.stop()  # open associations finish; what was received stays in the store for the next start
        for thread in (self.worker_thread, self.heat_thread, self.image_thread):
            thread.requestInterruption()
            thread.quit()  # after the slot it is in: one study scored or one heatmap made (seconds on a busy CPU)
            thread.wait(30_000)
        super().closeEvent(event)
