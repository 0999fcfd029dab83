"""The findings the model reports, as bars with the card's thresholds marked, plus the model and device in use.

The bars are the model's scores: ranking scores, not calibrated probabilities. Untrained findings are never
drawn. Findings trained but not externally validated appear only behind the "Research findings" toggle (off by
default): greyed, without a threshold tick, never red. In research mode (a model without an external
validation record, which flags nothing) every bar is greyed, never red, its threshold tick kept."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QCheckBox, QLabel, QVBoxLayout, QWidget

from cxr_desktop.core.labels import FINDINGS

if TYPE_CHECKING:
    from cxr_desktop.core.bundle import ModelCard

OVER, UNDER, RESEARCH = QColor(200, 40, 40), QColor(90, 130, 190), QColor(175, 175, 175)
TEXT, GREY_TEXT = QColor(20, 20, 20), QColor(130, 130, 130)
RESEARCH_HEADER = "Research only, not externally validated"
NOTE = "Bars: score (for ranking; not a probability); black tick: the model card's threshold. Red: at or above it."


@dataclass(frozen=True)
class BarRow:
    """One drawn bar: ``threshold`` None means no tick; research rows are never red."""

    name: str
    probability: float | None
    threshold: float | None
    research: bool = False

    @property
    def over(self) -> bool:
        if self.research or self.probability is None or self.threshold is None:
            return False
        return self.probability >= self.threshold


class FindingBars(QWidget):
    ROW_H, LABEL_W = 18, 130

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.probabilities: dict[str, float] = {}
        self.thresholds: dict[str, float] = {}
        self.shown: list[str] = []  # reported as results
        self.research: list[str] = []  # trained, not externally validated
        self.urgent, self.show_research = "", False
        self.research_mode = False  # the whole model is unvalidated and flags nothing: no bar is red
        self._resize()
        self._warm_up_painting()

    def set_scope(self, shown: list[str], research: list[str], thresholds: dict[str, float], urgent: str) -> None:
        """What a model reports: shown findings, research-only ones, the thresholds its card chose."""
        self.shown, self.research, self.thresholds, self.urgent = list(shown), list(research), thresholds, urgent
        self._resize()

    def set_values(self, probabilities: dict[str, float]) -> None:
        self.probabilities = probabilities
        self.update()

    def set_research_mode(self, on: bool) -> None:
        self.research_mode = on
        self._resize()

    def set_show_research(self, on: bool) -> None:
        self.show_research = on
        self._resize()

    def rows(self) -> list[BarRow]:
        """The bars to draw, top to bottom (the paint code draws exactly these)."""
        out = [BarRow(n, self._value(n), self.thresholds.get(n), self.research_mode) for n in self.shown]
        if self.show_research:
            out += [BarRow(n, self._value(n), None, research=True) for n in self.research]
        return out

    def _value(self, name: str) -> float | None:
        value = self.probabilities.get(name)
        return None if value is None or math.isnan(value) else value

    def _resize(self) -> None:
        rows = self.rows()
        header = int(any(row.research for row in rows))  # one line above the research rows
        self.setMinimumHeight(self.ROW_H * (len(rows) + header) + 8)
        self.updateGeometry()
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        self._paint(painter, self.rows(), self.width(), self.urgent)
        painter.end()

    def _warm_up_painting(self) -> None:
        """Paint every kind of row once, offscreen. PySide6 builds the Python enums a QPainter call needs on
        its first use: done here, at construction, not in the first real paint, where it stalled a busy GUI
        thread for 100-130 ms (``benchmarks/gui_responsiveness.py --explain-stalls``)."""
        image = QImage(400, 4 * self.ROW_H, QImage.Format.Format_RGB32)
        painter = QPainter(image)
        rows = [BarRow(FINDINGS[0], 0.6, 0.5), BarRow(FINDINGS[1], 0.2, None), BarRow(FINDINGS[2], 0.4, None, True)]
        self._paint(painter, rows, image.width(), FINDINGS[0])
        painter.end()

    def _paint(self, painter: QPainter, rows: list[BarRow], width: int, urgent: str) -> None:
        row_h, label_w = self.ROW_H, self.LABEL_W
        bar_w = max(40, width - label_w - 50)
        y, in_research = 4, False
        for row in rows:
            if row.research and not in_research:  # one header above the research rows
                in_research = True
                painter.setPen(GREY_TEXT)
                painter.drawText(0, y, width, row_h, Qt.AlignmentFlag.AlignVCenter, RESEARCH_HEADER)
                y += row_h
            painter.setPen(GREY_TEXT if row.research else TEXT)
            font = painter.font()
            font.setBold(row.name == urgent)
            font.setItalic(row.research)
            painter.setFont(font)
            right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
            painter.drawText(0, y, label_w - 6, row_h, right, row.name.replace("_", " "))
            painter.fillRect(label_w, y + 3, bar_w, row_h - 6, QColor(235, 235, 235))
            if row.probability is not None:
                colour = RESEARCH if row.research else OVER if row.over else UNDER
                painter.fillRect(label_w, y + 3, int(bar_w * row.probability), row_h - 6, colour)
                text = f"{row.probability:.2f}"
                painter.drawText(label_w + bar_w + 6, y, 44, row_h, Qt.AlignmentFlag.AlignVCenter, text)
            if row.threshold is not None:
                painter.setPen(QPen(QColor(0, 0, 0), 2))
                x = label_w + int(bar_w * row.threshold)
                painter.drawLine(x, y + 1, x, y + row_h - 1)
            y += row_h


class FindingsPanel(QWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.title = QLabel("No study selected")
        self.bars = FindingBars()
        self.research_box = QCheckBox("Research findings")
        self.research_box.setToolTip("Trained but not externally validated: research only, not for clinical use")
        self.research_box.toggled.connect(self.bars.set_show_research)
        self.research_box.setVisible(False)
        self.scope_note = QLabel("")
        self.model_label = QLabel("Model: not loaded")
        self.note = QLabel(NOTE)
        for label in (self.scope_note, self.note):
            label.setStyleSheet("color: #555; font-size: 11px")
        for widget in (self.title, self.bars, self.research_box, self.scope_note, self.note, self.model_label):
            layout.addWidget(widget)
            if isinstance(widget, QLabel):
                widget.setWordWrap(True)
        layout.addStretch(1)

    def set_card(self, card: ModelCard, operating_point: str | None = None) -> None:
        """Take the findings' scope and thresholds from a newly loaded model's card."""
        research = card.research_findings
        self.research_box.setChecked(False)
        self.research_box.setVisible(bool(research))
        self.bars.set_scope(card.shown_findings, research, card.chosen_thresholds(operating_point), card.urgent_finding)
        untrained = len(card.untrained_findings)
        notes = [f"Not trained on {untrained} of the {len(FINDINGS)} findings: not shown."] if untrained else []
        if card.validated_findings is None:
            notes.append("This model carries no external validation record.")
        self.scope_note.setText(" ".join(notes))
        self.scope_note.setVisible(bool(notes))

    def set_research_mode(self, on: bool) -> None:
        """A model that flags nothing (research mode): its bars are greyed, never red."""
        self.bars.set_research_mode(on)

    def show_probabilities(self, probabilities: dict[str, float]) -> None:
        self.bars.set_values(probabilities)
