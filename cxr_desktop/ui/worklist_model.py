"""QAbstractTableModel over a snapshot of the triage session's worklist, with the urgent-only (URGENT and CHECK)
/ unreviewed-only filters.

Scoring progress is shown once, in the status bar; a row shows its score, or "queued" / the reason it was not
scored."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QTableView

from cxr_desktop.ui.score_bar import SCORE_ROLE, ScoreBar
from cxr_desktop.worklist.rows import DONE, ERROR, QUEUED, Row
from cxr_desktop.worklist.session import Snapshot

# the decision right after the score: on a small screen the list shows Flag, Score, Review, Waiting, Patient
COLUMNS = ["Priority", "Score", "Review", "Waiting", "Patient", "View", "Study date", "Other findings"]
HEADERS = {"Priority": "Flag"}  # what a column is called on screen, where not its name
# columns hidden while no listed study has anything in them (e.g. "Other findings" with a one-finding model)
OPTIONAL = ("View", "Study date", "Other findings")
# default widths of all but the last column (which takes the rest): they fit the window's default worklist pane
COLUMN_WIDTHS = {
    "Priority": 146, "Score": 104, "Waiting": 56, "Patient": 92, "View": 40, "Study date": 80, "Review": 80
}  # fmt: skip
# the row's tint groups a tier; the Flag cell carries the cue itself, in a colour of at least 3:1 contrast
# against the white list (WCAG 2.1, 1.4.11) with white text: the word is kept, the colour is not the only cue
URGENT_BG = QColor(255, 226, 226)
CHECK_BG = QColor(234, 224, 255)  # lilac: a tier of its own, neither urgent red nor the overdue amber
OVERDUE_BG = QColor(255, 238, 206)
URGENT_CUE = QColor(183, 28, 28)  # 6.6:1 against white
CHECK_CUE = QColor(94, 53, 177)  # 7.9:1
OVERDUE_CUE = QColor(138, 80, 0)  # 6.2:1
CUE_TEXT = QColor(255, 255, 255)
ERROR_FG = QColor(160, 0, 0)
HEADER_TIPS = {
    "Priority": "Suspected …: score at or above the operating point's threshold (the finding the model flags). "
    "Check film: at or above it, but the input check doubts the film (read right after the suspected ones). "
    "WAITED: on the list longer than Max wait. ⚠ input: below the threshold, and the input check doubts the film",
    "Score": "The model's score for the urgent finding named by the model card: a ranking score, not a probability. "
    "The bar shows it; its black tick is the flag threshold",
    "Waiting": "Time on this worklist since the study was listed (not the age of the study: see Study date)",
    "Other findings": "The next highest findings the model reports; for a refused file, the reason; for a Check "
    "film, what the input check doubts",
    "Review": "Your decision (C confirm, D dismiss) and ✎ when the study has a comment",
}


def waiting_text(seconds: float) -> str:
    """``"<1 min"``, ``"12 min"``, ``"2 h 05"``: how long a study has been on the list."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 1:
        return "<1 min"
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d}"


def flag_name(finding: str) -> str:
    """The flag, named by what it is: "Suspected cardiomegaly"."""
    return f"Suspected {finding.replace('_', ' ').lower()}" if finding else "Suspected finding"


def priority_text(row: Row, overdue: bool, finding: str = "") -> str:
    """The Flag cell: the tier ("Suspected cardiomegaly", "Check film"), else WAITED for an overdue study,
    else "⚠ input" for a film the input check doubts below the threshold."""
    if row.urgent:
        return flag_name(finding)
    if row.check:
        return "Check film"
    return "WAITED" if overdue else "⚠ input" if row.quality_note else ""


def study_age(value: str, now: float) -> str:
    """How old a study of DICOM date ``value`` is at ``now``: "today", "12 days", "9 months", "3 years" ("" when
    the date is not a valid YYYYMMDD)."""
    try:
        taken = datetime.strptime(value, "%Y%m%d").replace(tzinfo=timezone.utc)
    except ValueError:
        return ""
    days = (datetime.fromtimestamp(now, timezone.utc) - taken).days
    if days < 1:
        return "today"
    if days < 60:
        return f"{days} days"
    return f"{days // 30} months" if days < 730 else f"{days // 365} years"


def date_text(value: str) -> str:
    """A DICOM date (YYYYMMDD) as YYYY-MM-DD; anything else as it is."""
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if len(value) == 8 and value.isdigit() else value


def searchable(row: Row) -> str:
    """What the search box matches: patient ID, patient name, study date (YYYY-MM-DD: "2025-03" finds a month)
    and file name, folded for any case."""
    info = row.info
    parts = (info.patient_id, info.patient_name, date_text(info.study_date)) if info is not None else ()
    return " ".join((*parts, row.path.name)).casefold()


class WorklistModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.visible: list[Row] = []
        self._reading: dict = {}  # path -> place in the reading order (for sorting back to it)
        self.overdue: frozenset = frozenset()
        self.urgent_only = False
        self.unreviewed_only = False
        self.threshold: float | None = None
        self.ai_off = False  # no model could be loaded: rows are "not scored", not "queued"
        self.search = ""  # only studies whose patient ID, name or file name contains this (any case)
        self.sort_column, self.sort_order = 0, Qt.SortOrder.AscendingOrder  # Flag ascending: the reading order
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
        if self.search:
            rows = [r for r in rows if self.search.casefold() in searchable(r)]
        self.beginResetModel()
        self.visible = self._sorted(rows)
        self.endResetModel()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """A click on a header: the list sorted by that column (the Flag column gives the reading order)."""
        self.sort_column, self.sort_order = column, order
        self.beginResetModel()
        self.visible = self._sorted(self.visible, reading=self.visible_in_reading_order())
        self.endResetModel()

    def visible_in_reading_order(self) -> list[Row]:
        return sorted(self.visible, key=lambda r: self._reading.get(r.path, 0))

    def _sorted(self, rows: list[Row], reading: list[Row] | None = None) -> list[Row]:
        if reading is None:  # ``rows`` came in reading order
            self._reading = {row.path: i for i, row in enumerate(rows)}
            reading = rows
        descending = self.sort_order == Qt.SortOrder.DescendingOrder
        name = COLUMNS[self.sort_column]
        if name == "Priority":
            return list(reversed(reading)) if descending else list(reading)
        return sorted(reading, key=lambda row: self._sort_key(row, name), reverse=descending)

    def _sort_key(self, row: Row, name: str) -> tuple:
        if name == "Score":  # not scored: below every score
            score = row.probabilities.get(self.urgent_finding)
            return (-1.0 if score is None else score,)
        if name == "Waiting":  # ascending: the shortest wait first
            return (-row.arrived_at,)
        return (self.text(row, COLUMNS.index(name)).casefold(),)

    def rowCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802
        return 0 if parent is not None and parent.isValid() else len(self.visible)

    def columnCount(self, parent: QModelIndex | None = None) -> int:  # noqa: N802
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            name = COLUMNS[section]
            if name == "Score" and self.urgent_finding:
                return self.urgent_finding.replace("_", " ")
            if name == "Other findings" and self.shown_findings is not None and not self._other_findings():
                return "Note"  # a one-finding model: refusal reasons and input doubts only
            return HEADERS.get(name, name)
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return HEADER_TIPS.get(COLUMNS[section], "")
        return None

    def _other_findings(self) -> list[str]:
        return [name for name in self.shown_findings or [] if name != self.urgent_finding]

    def column_empty(self, name: str) -> bool:
        """Does no listed study show anything in column ``name``?"""
        column = COLUMNS.index(name)
        return not any(self.text(row, column) for row in self.visible)

    def row_at(self, index: int) -> Row | None:
        return self.visible[index] if 0 <= index < len(self.visible) else None

    def index_of(self, row: Row) -> int:
        """Where the study of ``row`` is shown (-1: filtered out or not listed, or its file holds another study
        now: the same path with another identity is not that study)."""
        return next((i for i, r in enumerate(self.visible) if r.same_study(row)), -1)

    def _overdue(self, row: Row) -> bool:
        return row.path in self.overdue and not (row.urgent or row.check)

    def text(self, row: Row, column: int) -> str:
        name = COLUMNS[column]
        info = row.info
        if name == "Priority":
            return priority_text(row, row.path in self.overdue, self.urgent_finding)
        if name == "Score":
            score = row.probabilities.get(self.urgent_finding)
            if row.status == DONE:
                return f"{score:.2f}" if score is not None else ""
            if row.status == QUEUED:
                return "not scored" if self.ai_off else "queued"
            return "refused"
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
            return clash + row.review.decision + (" ✎" if row.review.comment else "")  # a text glyph: any font
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
        if role in (Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole) and index.column() == 0:
            cue = URGENT_CUE if row.urgent else CHECK_CUE if row.check else OVERDUE_CUE if self._overdue(row) else None
            if cue is not None:
                return QBrush(cue if role == Qt.ItemDataRole.BackgroundRole else CUE_TEXT)
        if role == Qt.ItemDataRole.BackgroundRole and row.urgent:
            return QBrush(URGENT_BG)
        if role == Qt.ItemDataRole.BackgroundRole and row.check:
            return QBrush(CHECK_BG)
        if role == Qt.ItemDataRole.BackgroundRole and row.path in self.overdue:
            return QBrush(OVERDUE_BG)
        if role == SCORE_ROLE and index.column() == 1 and row.status == DONE:
            return row.probabilities.get(self.urgent_finding), self.threshold, row.urgent or row.check
        if role == Qt.ItemDataRole.ForegroundRole and row.status == ERROR:
            return QBrush(ERROR_FG)
        if role == Qt.ItemDataRole.ToolTipRole:
            age = study_age(row.info.study_date, self.now) if row.info is not None else ""
            # the study's own age, when its date is known: Waiting is the time on this list
            aged = f"Study age: {age} (Waiting is the time on this list)" if age else ""
            return str(row.path) + "".join(f"\n{text}" for text in (aged, *row.warnings, row.error) if text)
        return None


class WorklistTable(QTableView):
    """The worklist view: one study per row. Home / End go to the first / last study (not column), Tab leaves the
    list (it does not walk its cells)."""

    def moveCursor(self, action, modifiers):  # noqa: N802 (Qt naming)
        column = max(self.currentIndex().column(), 0)
        if action == QAbstractItemView.CursorAction.MoveHome:
            return self.model().index(0, column)
        if action == QAbstractItemView.CursorAction.MoveEnd:
            return self.model().index(self.model().rowCount() - 1, column)
        return super().moveCursor(action, modifiers)


def worklist_table(model: WorklistModel) -> WorklistTable:
    """The worklist view: whole-row single selection, default column widths, the last column stretched."""
    table = WorklistTable()
    table.setModel(model)
    table.setTabKeyNavigation(False)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setVisible(False)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideRight)
    table.setItemDelegateForColumn(COLUMNS.index("Score"), ScoreBar(table))
    header = table.horizontalHeader()
    header.setStretchLastSection(True)
    header.setMinimumSectionSize(40)
    header.setSortIndicator(0, Qt.SortOrder.AscendingOrder)  # the reading order until the reader sorts
    table.setSortingEnabled(True)
    # the Flag column fits the flag's name at the list's font ("Suspected cardiomegaly")
    flag_width = table.fontMetrics().horizontalAdvance(flag_name("Cardiomegaly")) + 16
    widths = {**COLUMN_WIDTHS, "Priority": max(COLUMN_WIDTHS["Priority"], flag_width)}
    for column, name in enumerate(COLUMNS):
        if name in widths:
            table.setColumnWidth(column, widths[name])
    return table
