"""The worklist's Score cell: the score as a number and as a bar, with the flag threshold as a tick, so that
flagged studies ordered by score read at a glance (a 0.92 is not a 0.31 that just crossed the line)."""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QStyle, QStyledItemDelegate

SCORE_ROLE = Qt.ItemDataRole.UserRole + 1  # (score, threshold, flagged) of a scored study
TRACK, FLAGGED, ROUTINE, TICK = QColor(225, 225, 225), QColor(183, 28, 28), QColor(110, 120, 135), QColor(0, 0, 0)
BAR_HEIGHT = 6


class ScoreBar(QStyledItemDelegate):
    def paint(self, painter, option, index) -> None:
        value = index.data(SCORE_ROLE)
        if value is None or value[0] is None:
            super().paint(painter, option, index)
            return
        score, threshold, flagged = value
        self.initStyleOption(option, index)
        style = option.widget.style()
        style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget)
        rect = option.rect.adjusted(4, 0, -4, 0)
        text_w = option.fontMetrics.horizontalAdvance("0.00") + 6
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        painter.setPen(option.palette.highlightedText().color() if selected else option.palette.text().color())
        number = QRect(rect.left(), rect.top(), text_w, rect.height())
        painter.drawText(number, Qt.AlignmentFlag.AlignVCenter, option.text)
        track = QRect(rect.left() + text_w, rect.center().y() - BAR_HEIGHT // 2, rect.width() - text_w, BAR_HEIGHT)
        painter.fillRect(track, TRACK)
        filled = QRect(track.left(), track.top(), int(track.width() * min(max(score, 0.0), 1.0)), track.height())
        painter.fillRect(filled, FLAGGED if flagged else ROUTINE)
        if threshold is not None:
            x = track.left() + int(track.width() * threshold)
            painter.setPen(QPen(TICK, 2))
            painter.drawLine(x, track.top() - 3, x, track.bottom() + 3)
        painter.restore()
