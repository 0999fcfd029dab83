"""QAbstractTableModel over a snapshot of the triage session's worklist, with the urgent-only (URGENT and CHECK)
/ unreviewed-only filters.

Scoring progress is shown once, in the status bar; a row shows its score, or "queued" / the reason it was not
scored."""

from __future__ import annotations

import time

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QTableView

from cxr_desktop.worklist.rows import DONE, ERROR, QUEUED, Row
from cxr_desktop.worklist.session import Snapshot

COLUMNS = ["Priority", "Score", "Waiting", "Patient", "View", "Study date", "Review", "Other findings"]
# default widths of all but the last column (which takes the rest): they fit the window's default worklist pane
COLUMN_WIDTHS = {"Priority": 66, "Score": 100, "Waiting": 64, "Patient": 90, "View": 46, "Study date": 84, "Review": 76}
URGENT_BG = QColor(255, 214, 214)
CHECK_BG = QColor(226, 212, 255)  # lilac: a tier of its own, neither urgent red nor the overdue amber
OVERDUE_BG = QColor(255, 236, 200)
ERROR_FG = QColor(160, 0, 0)
HEADER_TIPS = {
    "Priority": "URGENT: score at or above the operating point's threshold. CHECK: at or above it, but the input "
    "check doubts the film (read right after the urgent ones). WAITED: on the list longer than Max wait. "
    "⚠ input: below the threshold, and the input check doubts the film",
    "Score": "The model's score for the urgent finding named by the model card: a ranking score, not a probability",
    "Waiting": "Time since the study was listed",
    "Other findings": "The next highest findings the model reports; for a refused file, the reason",
}


def waiting_text(seconds: float) -> str:
    """``"<1 min"``, ``"12 min"``, ``"2 h 05"``: how long a study has been on the list."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 1:
        return "<1 min"
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d}"


def priority_text(row: Row, overdue: bool) -> str:
    """The Priority cell: the tier (URGENT, CHECK), else WAITED for an overdue study, else "⚠ input" for a film
    the input check doubts below the threshold."""
    if row.urgent:
        return "URGENT"
    if row.check:
        return "CHECK"
    return "WAITED" if overdue else "⚠ input" if row.quality_note else ""


def date_text(value: str) -> str:
    """A DICOM date (YYYYMMDD) as YYYY-MM-DD; anything else as it is."""
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if len(value) == 8 and value.isdigit() else value


class WorklistModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.visible: list[Row] = []
        self.overdue: frozenset = frozenset()
        self.urgent_only = False
        self.unreviewed_only = False
        self.threshold: float | None = None
        self.urgent_finding = ""  # the loaded model's, from its card ("Score" until one is loaded)
        self.shown_findings: list[str] | None = None  # "Other findings" lists only these (None: all scored)
        self.now = time.time()  # when the list was last ordered: the waiting times shown are as of then

    def set_scope(self, urgent_finding: str, shown_findings: list[str]) -> None:
        self.urgent_finding, self.shown_findings = urgent_finding, list(shown_findings)
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, 1, 1)

    def refresh(self, snapshot: Snapshot) -> None:
        """Show ``snapshot`` (the session's rows in reading order, copied) through the filters."""
        self.now, self.overdue = snapshot.now, snapshot.overdue
        rows = snapshot.rows
        if self.urgent_only:  # a CHECK study is flagged too: never hidden by this filter
            rows = [r for r in rows if r.urgent or r.check]
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
            if COLUMNS[section] == "Score" and self.urgent_finding:
                return self.urgent_finding.replace("_", " ")
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(COLUMNS[section], "")
        return None

    def row_at(self, index: int) -> Row | None:
        return self.visible[index] if 0 <= index < len(self.visible) else None

    def index_of(self, row: Row) -> int:
        """Where the study of ``row`` is shown (-1: filtered out or not listed)."""
        return next((i for i, r in enumerate(self.visible) if r.path == row.path), -1)

    def text(self, row: Row, column: int) -> str:
        name = COLUMNS[column]
        info = row.info
        if name == "Priority":
            return priority_text(row, row.path in self.overdue)
        if name == "Score":
            score = row.probabilities.get(self.urgent_finding)
            if row.status == DONE:
                return f"{score:.2f}" if score is not None else ""
            return "queued" if row.status == QUEUED else "refused"
        if name == "Waiting":
            return waiting_text(self.now - row.arrived_at)
        if name == "Patient":
            patient = info.patient_name or info.patient_id if info else ""
            return f"[synthetic demo] {patient}" if row.synthetic else (patient or row.path.name)
        if name == "View":
            view = info.view_position if info else ""
            return f"{view} ⚠" if row.view_note else view  # the full note is in the tooltip and the panel
        if name == "Study date":
            return date_text(info.study_date) if info else ""
        if name == "Review":
            clash = "⚠ ID clash " if row.collision else ""
            return clash + row.review.decision + (" 💬" if row.review.comment else "")
        if row.status == ERROR:
            return row.error  # the whole reason is in the tooltip and the findings panel too
        if row.check:  # the tier's reason, in the row itself (the whole sentence is in the tooltip and the panel)
            return f"⚠ {row.quality}"
        top = row.top_findings(self.urgent_finding, among=self.shown_findings)
        return ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in top)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        row = self.row_at(index.row())
        if row is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.text(row, index.column())
        if role == Qt.ItemDataRole.BackgroundRole and row.urgent:
            return QBrush(URGENT_BG)
        if role == Qt.ItemDataRole.BackgroundRole and row.check:
            return QBrush(CHECK_BG)
        if role == Qt.ItemDataRole.BackgroundRole and row.path in self.overdue:
            return QBrush(OVERDUE_BG)
        if role == Qt.ItemDataRole.ForegroundRole and row.status == ERROR:
            return QBrush(ERROR_FG)
        if role == Qt.ItemDataRole.ToolTipRole:
            return str(row.path) + "".join(f"\n{text}" for text in (*row.warnings, row.error) if text)
        return None


def worklist_table(model: WorklistModel) -> QTableView:
    """The worklist view: whole-row single selection, default column widths, the last column stretched."""
    table = QTableView()
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setVisible(False)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideRight)
    header = table.horizontalHeader()
    header.setStretchLastSection(True)
    header.setMinimumSectionSize(40)
    for column, name in enumerate(COLUMNS):
        if name in COLUMN_WIDTHS:
            table.setColumnWidth(column, COLUMN_WIDTHS[name])
    return table
