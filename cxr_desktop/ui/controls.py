"""The window's toolbar, Settings and Help menus and their handlers: filters, maximum wait, device, operating
point, flagging with an unvalidated model."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QCheckBox, QComboBox, QInputDialog, QLabel, QSpinBox, QToolBar

from cxr_desktop.ui.banner import ALLOW_HINT
from cxr_desktop.ui.help import HelpDialog
from cxr_desktop.ui.operating_point import OperatingPointBox
from cxr_desktop.ui.preferences import FONT_PT, READER

if TYPE_CHECKING:
    from cxr_desktop.inference.triage import TriagePolicy


class Controls:
    """Mixed into the main window, which provides the file actions, ``session``, ``model``, ``engine``,
    ``findings``, ``mode_banner``, ``folder_watch``, ``request_model`` and ``_refresh``."""

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main", self)
        self.addToolBar(bar)
        for text, slot in (
            ("Open folder…", self.choose_folder),
            ("Open files…", self.choose_files),
            ("Open model…", self.choose_model),
            ("Export CSV…", self.choose_export),
        ):
            action = QAction(text, self)
            action.triggered.connect(slot)
            bar.addAction(action)
        bar.addSeparator()
        self.urgent_only = QCheckBox("Flagged only (F)")
        self.urgent_only.setToolTip("Only the flagged studies: suspected, and Check film (F)")
        self.unreviewed_only = QCheckBox("Unreviewed only (U)")
        self.unreviewed_only.setToolTip("Only the studies without a decision yet (U); a decided study leaves the list")
        self.hot_folder = QCheckBox("Watch folder")
        self.hot_folder.setToolTip("Add new studies as they arrive in the folders opened")
        for box in (self.urgent_only, self.unreviewed_only, self.hot_folder):
            bar.addWidget(box)
        self.urgent_only.toggled.connect(self._filters_changed)
        self.unreviewed_only.toggled.connect(self._filters_changed)
        self.hot_folder.toggled.connect(lambda on: self.folder_watch.set(on))
        bar.addSeparator()
        bar.addWidget(QLabel(" Operating point: "))
        self.point_box = OperatingPointBox()
        self.point_box.chosen.connect(self.set_operating_point)
        bar.addWidget(self.point_box)
        bar.addWidget(QLabel(" Max wait (min): "))
        self.max_wait = QSpinBox(minimum=1, maximum=24 * 60, value=int(self.session.max_wait_s / 60))
        self.max_wait.setToolTip("A study that has waited this long moves to the top of the list")
        self.max_wait.valueChanged.connect(self._max_wait_changed)
        bar.addWidget(self.max_wait)
        bar.addWidget(QLabel(" Device: "))
        self.device_box = QComboBox()
        self.device_box.addItems(["auto", "cpu", "cuda"])
        self.device_box.setCurrentText(self.device)
        self.device_box.currentTextChanged.connect(self._device_changed)
        bar.addWidget(self.device_box)
        self._requested_model = ""
        self._pending_devices: deque[str] = deque()  # devices asked for, answered in order by the worker
        self._engine_device = self.device  # what the Device box shows: the device of the model in use
        self.request_model.connect(self._remember_requested_model)

    def _build_settings_menu(self) -> None:
        """Settings ▸ Flag with an unvalidated model: off by default (research mode), on with --allow-unvalidated;
        Settings ▸ Larger / Smaller text (kept between runs)."""
        action = QAction(ALLOW_HINT.split(" ▸ ")[1], self, checkable=True)
        action.setChecked(self.session.allow_unvalidated)
        action.setToolTip("Flag studies even when the model has no external validation record (shown in red)")
        action.toggled.connect(self.set_allow_unvalidated)
        menu = self.menuBar().addMenu("&Settings")
        menu.addAction(action)
        self.settings_menu = menu
        self.allow_unvalidated_action = action
        for text, key, step in (("Larger text", "Ctrl++", 1), ("Smaller text", "Ctrl+-", -1)):
            sized = QAction(text, self)
            sized.setShortcuts([QKeySequence(key), *([QKeySequence("Ctrl+=")] if step > 0 else [])])
            sized.triggered.connect(lambda _=False, step=step: self.set_text_size(self.font().pointSize() + step))
            menu.addAction(sized)
        self.set_text_size(int(self.settings.value(FONT_PT, self.font().pointSize())))
        reader = QAction("Reader name…", self)
        reader.setToolTip("The name stored with each of your decisions (the OS account's until you give one)")
        reader.triggered.connect(self.ask_reader)
        menu.addAction(reader)

    def ask_reader(self) -> None:
        """Settings ▸ Reader name…: the name stored with each decision from now on (kept between runs)."""
        name, ok = QInputDialog.getText(self, "Reader", "Your name, stored with each decision:", text=self.reader)
        if ok and name.strip():
            self.set_reader(name.strip())

    def set_reader(self, name: str) -> None:
        self.reader = name
        self.settings.setValue(READER, name)
        self.statusBar().showMessage(f"Decisions are now signed by {name}", 4000)

    def set_text_size(self, points: int) -> None:
        """The window's text size (6 to 24 pt), kept for the next run."""
        points = min(max(points, 6), 24)
        font = self.font()
        font.setPointSize(points)
        self.setFont(font)
        self.settings.setValue(FONT_PT, points)

    def choose_operating_point(self) -> None:
        """Ctrl+P: the operating-point list opened, to pick one that flags fewer (or more) studies."""
        if self.point_box.isEnabled():
            self.point_box.setFocus()
            self.point_box.showPopup()

    def set_allow_unvalidated(self, allow: bool) -> None:
        """Flag (or stop flagging) with a model that has no external validation record, at once."""
        if self.allow_unvalidated_action.isChecked() != allow:
            self.allow_unvalidated_action.setChecked(allow)  # its toggled signal comes back here
            return
        urgent = self.session.set_allow_unvalidated(allow)
        self._policy_shown(f"Flagging with an unvalidated model {'on' if allow else 'off'}: {urgent} urgent")

    def _policy_changed(self, policy: TriagePolicy) -> None:
        """A new model, operating point or flagging mode: the mode banner and the findings bars follow."""
        self.mode_banner.show_policy(policy)
        self.findings.set_research_mode(policy.research_mode)

    def _build_help_menu(self) -> None:
        self.help_dialog = HelpDialog(self)
        action = QAction("Keys and gestures", self)
        action.setShortcut(QKeySequence(QKeySequence.StandardKey.HelpContents))  # F1
        action.triggered.connect(self.show_help)
        self.menuBar().addMenu("&Help").addAction(action)
        self.help_action = action

    def show_help(self) -> None:
        self.help_dialog.show()
        self.help_dialog.raise_()

    def set_operating_point(self, name: str) -> None:
        """Flag the worklist at once at the card's operating point ``name``; studies scored later use it too."""
        if self.engine is None:
            return
        urgent = self.session.set_operating_point(name)
        self.findings.set_card(self.engine.card, name)
        self._policy_shown(f"Operating point {name}: {urgent} flagged")

    def _policy_shown(self, message: str) -> None:
        """After the user's own change of policy: the worklist re-tiered at once (not with the next batch's
        redraw), the model's description and the selected study's score line brought up to date."""
        self._refresh_if_stale()
        if self.engine is not None:
            self._describe_model()
        if self.current is not None:
            self._show_findings(self.current)
        self.statusBar().showMessage(message, 8000)

    def _describe_model(self) -> None:
        engine = self.engine
        policy = self.session.policy
        mode = "\nResearch mode: no study is flagged" if policy.research_mode else ""
        self.findings.model_label.setText(
            f"Model: {engine.card.model_id} · {engine.fingerprint_text}\nDevice: {engine.device_name}\n"
            f"Operating point: {policy.operating_point} "
            f"(flag at {policy.finding.replace('_', ' ')} score ≥ {policy.threshold:.3f}){mode}"
        )

    def _filters_changed(self) -> None:
        self.model.urgent_only = self.urgent_only.isChecked()
        self.model.unreviewed_only = self.unreviewed_only.isChecked()
        self._refresh()

    def _max_wait_changed(self, minutes: int) -> None:
        self.session.set_max_wait(minutes * 60.0)
        self._refresh_if_stale()

    def _remember_requested_model(self, path: str, device: str) -> None:
        self._requested_model = path
        self._pending_devices.append(device)

    def _model_answered(self, loaded: bool) -> None:
        """The worker loaded (or could not load) the model asked for first: the Device box shows the device of
        the model in use, so after a failed switch (e.g. to cuda on a machine without one) it goes back."""
        device = self._pending_devices.popleft() if self._pending_devices else self._engine_device
        if loaded:
            self._engine_device = device
        if self.device_box.currentText() != self._engine_device:
            self.device_box.blockSignals(True)
            self.device_box.setCurrentText(self._engine_device)
            self.device_box.blockSignals(False)

    def _device_changed(self, device: str) -> None:
        """Reload the model on ``device``: the one in use, or the one asked for last when none loaded (e.g. the
        app was started with a device it does not have)."""
        path = str(self.engine.bundle.path) if self.engine is not None else self._requested_model
        if path:
            self.request_model.emit(path, device)
