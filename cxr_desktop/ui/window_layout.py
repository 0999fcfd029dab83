"""The main window's layout: the worklist (under its banners, the flagged share and the patient search), the
film with its controls, the findings, in a splitter the reader's own split of which is kept between runs; the
status bar; the window-wide keys."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QLineEdit, QSplitter, QVBoxLayout, QWidget

from cxr_desktop.ui.banner import Banner, ModeBanner
from cxr_desktop.ui.findings_panel import FindingsPanel
from cxr_desktop.ui.folder_watch import FolderWatch
from cxr_desktop.ui.preferences import SPLITTER
from cxr_desktop.ui.progress import TriageProgress
from cxr_desktop.ui.viewer_panel import ViewerPanel
from cxr_desktop.ui.worklist_model import worklist_table

AI_OFF_STYLE = "QLabel { background: #37474f; color: white; font-weight: bold; padding: 6px; }"
SPLIT_SIZES = [650, 600, 250]  # worklist, film, findings; the film takes any width the window gains


def split_sizes(width: int) -> list[int]:
    """The first split of a window ``width`` px wide (before the reader sets one): the list's columns up to
    Patient and the findings at their narrowest on a small screen, the film the rest (1280 px: 486 / 564 / 230;
    1500 and more: 650 / rest / 250)."""
    findings = 250 if width >= 1500 else 230
    worklist = 650 if width >= 1500 else max(440, int(width * 0.38))
    return [worklist, max(width - worklist - findings, 360), findings]


class WindowLayout:
    """Mixed into the main window, which provides ``model``, ``settings``, the toolbar and menus' builders,
    ``reading_keys``, ``_row_selected``, ``_refresh`` and the comment handlers."""

    def _build_ui(self) -> None:
        self._build_toolbar()
        self._build_settings_menu()
        self._build_help_menu()
        self.table = worklist_table(self.model)
        self.search_box = QLineEdit(placeholderText="Search patient ID, name or study date (Ctrl+F)")
        self.search_box.setToolTip("e.g. a patient ID, or 2025-03 for a month's studies; Enter returns to the list")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.textChanged.connect(self._search_changed)
        self.search_box.returnPressed.connect(lambda: self.table.setFocus(Qt.FocusReason.ShortcutFocusReason))
        self.table.selectionModel().currentRowChanged.connect(self._row_selected)

        self.viewer = ViewerPanel()
        self.view, self.heatmap_box, self.preset = self.viewer.view, self.viewer.heatmap_box, self.viewer.preset
        self.opacity, self.invert_box, self.comment = self.viewer.opacity, self.viewer.invert_box, self.viewer.comment
        self.comment.editingFinished.connect(self.save_comment)  # Enter, or the box left: the comment is kept
        self.comment.returnPressed.connect(self.comment_done)
        self.comment.textEdited.connect(self.user_moved_on_purpose)  # the study being commented on stays shown
        esc = QShortcut(QKeySequence("Esc"), self.comment, activated=self.comment_done)
        esc.setContext(Qt.ShortcutContext.WidgetShortcut)
        self.findings = FindingsPanel()
        self.split = split = QSplitter()
        split.addWidget(self._with_banner(self.table))
        split.addWidget(self.viewer)
        split.addWidget(self.findings)
        split.setSizes(SPLIT_SIZES)
        for index, stretch in enumerate((0, 1, 0)):
            split.setStretchFactor(index, stretch)
        self._split_restored = False
        state = self.settings.value(SPLITTER)
        if state is not None:  # the reader's own split, from the last run
            self._split_restored = bool(split.restoreState(state))
        split.splitterMoved.connect(lambda *_: self.settings.setValue(SPLITTER, split.saveState()))
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
        self.mode_banner, self.banner, self.ai_banner = ModeBanner(), Banner(), Banner()
        self.ai_banner.setStyleSheet(AI_OFF_STYLE)
        self.flag_label = QLabel("")  # the flagged share beside the operating point's
        self.flag_label.setWordWrap(True)
        left = QWidget()
        layout = QVBoxLayout(left)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.ai_banner, self.mode_banner, self.banner, self.flag_label, self.search_box):
            layout.addWidget(widget)
        layout.addWidget(table, 1)
        return left

    def _add_shortcuts(self) -> None:
        keys = {
            **self.reading_keys(),
            "R": self.view.reset_window,
            "I": self.invert_box.toggle,
            "+": lambda: self.view.zoom(1.2),
            "=": lambda: self.view.zoom(1.2),
            "-": lambda: self.view.zoom(1 / 1.2),
            "Ctrl+F": lambda: self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason),
        }
        for key, slot in keys.items():
            self._add_key(key, slot)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        """At the first show, without a split of the reader's own: the split that fits this window's width."""
        super().showEvent(event)
        if not self._split_restored:
            self._split_restored = True
            self.split.setSizes(split_sizes(self.width()))

    def _search_changed(self, text: str) -> None:
        self.model.search = text.strip()
        self._refresh()
