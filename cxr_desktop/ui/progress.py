"""The status bar's scoring progress: drawn like a progress bar, but a change is painted with the next frame.

``QProgressBar.setValue`` repaints synchronously, in the caller, with the GIL held: while studies were scored
that cost the GUI thread 10-40 ms per update (``benchmarks/gui_responsiveness.py``). This widget stores the
figures, asks for an update, and draws the native progress bar when Qt paints."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QProgressBar, QStyle, QStyleOptionProgressBar, QStylePainter, QWidget


class TriageProgress(QWidget):
    def __init__(self, parent: QWidget | None = None, width: int = 260) -> None:
        super().__init__(parent)
        self.done, self.total = 0, 0
        self._height = QProgressBar().sizeHint().height()
        self.setFixedWidth(width)
        self.setAccessibleName(self.text)
        self.grab()  # one offscreen paint: PySide6 builds the enums it needs now, not on a busy GUI thread later

    @property
    def text(self) -> str:
        return f"{self.done}/{self.total} triaged"

    def set_progress(self, done: int, total: int) -> None:
        if (done, total) != (self.done, self.total):
            self.done, self.total = done, total
            self.setAccessibleName(self.text)  # what a screen reader says (a QProgressBar's value, otherwise)
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return QSize(self.width(), self._height)

    def paintEvent(self, _event) -> None:  # noqa: N802
        option = QStyleOptionProgressBar()
        option.initFrom(self)
        option.minimum, option.maximum, option.progress = 0, max(self.total, 1), self.done
        option.text, option.textVisible = self.text, True
        option.state |= QStyle.StateFlag.State_Horizontal
        QStylePainter(self).drawControl(QStyle.ControlElement.CE_ProgressBar, option)
