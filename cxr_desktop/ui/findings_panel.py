"""The 14 probabilities as bars with each finding's threshold marked, plus the model and device in use."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from cxr_desktop.core.labels import FINDINGS


class FindingBars(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.probabilities: dict[str, float] = {}
        self.thresholds: dict[str, float] = {}
        self.urgent = "Cardiomegaly"
        self.setMinimumHeight(18 * len(FINDINGS) + 8)

    def set_values(self, probabilities: dict[str, float], thresholds: dict[str, float]) -> None:
        self.probabilities, self.thresholds = probabilities, thresholds
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        label_w, row_h = 130, 18
        bar_w = max(40, self.width() - label_w - 50)
        for i, name in enumerate(FINDINGS):
            y = 4 + i * row_h
            p = self.probabilities.get(name)
            t = self.thresholds.get(name, 0.5)
            over = p is not None and p >= t
            painter.setPen(QColor(20, 20, 20))
            font = painter.font()
            font.setBold(name == self.urgent)
            painter.setFont(font)
            painter.drawText(
                0,
                y,
                label_w - 6,
                row_h,
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                name.replace("_", " "),
            )
            painter.fillRect(label_w, y + 3, bar_w, row_h - 6, QColor(235, 235, 235))
            if p is not None:
                colour = QColor(200, 40, 40) if over else QColor(90, 130, 190)
                painter.fillRect(label_w, y + 3, int(bar_w * p), row_h - 6, colour)
                painter.drawText(label_w + bar_w + 6, y, 44, row_h, Qt.AlignmentFlag.AlignVCenter, f"{p:.2f}")
            painter.setPen(QPen(QColor(0, 0, 0), 2))
            x = label_w + int(bar_w * t)
            painter.drawLine(x, y + 1, x, y + row_h - 1)
        painter.end()


class FindingsPanel(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.title = QLabel("No study selected")
        self.title.setWordWrap(True)
        self.bars = FindingBars()
        self.model_label = QLabel("Model: not loaded")
        self.model_label.setWordWrap(True)
        note = QLabel("Bars: probability; black tick: the finding's threshold. Red: at or above threshold.")
        note.setWordWrap(True)
        note.setStyleSheet("color: #555; font-size: 11px")
        for widget in (self.title, self.bars, note, self.model_label):
            layout.addWidget(widget)
        layout.addStretch(1)
