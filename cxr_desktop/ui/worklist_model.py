"""QAbstractTableModel over the plain-Python worklist, with the urgent-only / unreviewed-only filters."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from cxr_desktop.core.labels import URGENT_FINDING
from cxr_desktop.worklist.rows import DONE, ERROR, Row, Worklist

COLUMNS = ["", "Cardiomegaly", "Status", "Review", "View", "Patient", "Study date", "Other findings"]
URGENT_BG = QColor(255, 214, 214)
ERROR_FG = QColor(160, 0, 0)


class WorklistModel(QAbstractTableModel):
    def __init__(self, worklist: Worklist, parent=None) -> None:
        super().__init__(parent)
        self.worklist = worklist
        self.visible: list[Row] = []
        self.urgent_only = False
        self.unreviewed_only = False
        self.threshold: float | None = None
        self.urgent_finding = URGENT_FINDING  # the loaded model's, from its card
        self.shown_findings: list[str] | None = None  # "Other findings" lists only these (None: all scored)

    def set_scope(self, urgent_finding: str, shown_findings: list[str]) -> None:
        self.urgent_finding, self.shown_findings = urgent_finding, list(shown_findings)
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 1, 1)

    def refresh(self) -> None:
        rows = self.worklist.ordered()
        if self.urgent_only:
            rows = [r for r in rows if r.urgent]
        if self.unreviewed_only:
            rows = [r for r in rows if not r.review.decision]
        self.beginResetModel()
        self.visible = rows
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else len(self.visible)

    def columnCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.urgent_finding.replace("_", " ") if section == 1 else COLUMNS[section]
        return None

    def row_at(self, index: int) -> Row | None:
        return self.visible[index] if 0 <= index < len(self.visible) else None

    def index_of(self, row: Row) -> int:
        return next((i for i, r in enumerate(self.visible) if r is row), -1)

    def text(self, row: Row, column: int) -> str:
        column = (0, 1, 6, 7, 5, 3, 4, 2)[column]  # display order -> field
        info = row.info
        if column == 0:
            return "URGENT" if row.urgent else ""
        if column == 1:
            score = row.probabilities.get(self.urgent_finding)
            return f"{score:.2f}" if row.status == DONE and score is not None else ""
        if column == 2:
            top = row.top_findings(self.urgent_finding, among=self.shown_findings)
            return ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in top)
        if column == 3:
            name = info.patient_name or info.patient_id if info else ""
            return f"[synthetic demo] {name}" if row.synthetic else (name or row.path.name)
        if column == 4:
            return info.study_date if info else ""
        if column == 5:
            view = info.view_position if info else ""
            return f"{view} ⚠" if row.view_note else view  # the full note is in the tooltip and the panel
        if column == 6:
            return f"error: {row.error}" if row.status == ERROR else row.status
        if column == 7:
            clash = "⚠ ID clash " if row.collision else ""
            return clash + row.review.decision + (" 💬" if row.review.comment else "")
        return ""

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        row = self.row_at(index.row())
        if row is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(row, index.column())
        if role == Qt.ItemDataRole.BackgroundRole and row.urgent:
            return QBrush(URGENT_BG)
        if role == Qt.ItemDataRole.ForegroundRole and row.status == ERROR:
            return QBrush(ERROR_FG)
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(row.path) + "".join(f"\n{text}" for text in (*row.warnings, row.error) if text)
        return None
