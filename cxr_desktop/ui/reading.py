"""Reading by keyboard: which study a key acts on, where the selection goes after a decision, the keys of the
worklist (next unreviewed flagged study, filters, comment box, undo) and the comment kept when the reader
leaves a study.

A key acts only on the study that is shown and selected (``acting_row``): a study that left the visible list
(e.g. decided with "Unreviewed only" on) is never acted on again; the study that took its place is selected
and shown instead. After a decision the next study of the visible list is selected."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt
from PySide6.QtGui import QKeySequence, QShortcut

from cxr_desktop.studies.study import StudyError
from cxr_desktop.ui.compare import CompareDialog
from cxr_desktop.worklist.audit import ReaderLogError
from cxr_desktop.worklist.priors import prior_of
from cxr_desktop.worklist.reviews import ReviewStoreError
from cxr_desktop.worklist.rows import Row

log = logging.getLogger(__name__)

SELECT_ROW = QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows
DECISIONS = ("confirmed", "dismissed")


class Reading:
    """Mixed into the main window, which provides ``table``, ``model``, ``session``, ``view``, ``comment``,
    ``heatmap_box``, the filter boxes, ``banner``, ``statusBar``, ``store`` and ``_refresh_if_stale``."""

    current: Row | None

    def _init_reading(self) -> None:
        self._selecting = False  # a selection made by the program, not by the reader
        self.follow_top = True  # until the reader moves: the top study stays selected as the list is ordered
        self.current_index = -1  # where the shown study is (or was) on the visible list
        self.last_decision: tuple[Row, str] | None = None  # (study, its decision before): what Ctrl+Z restores
        self.compare_dialog: CompareDialog | None = None

    def reading_keys(self) -> dict[str, Callable[[], object]]:
        """Window-wide keys (a text box takes its own letters first)."""
        return {
            "C": lambda: self.review("confirmed"),
            "D": lambda: self.review("dismissed"),
            "N": self.next_flagged,
            "Space": self.next_flagged,
            "Ctrl+Z": self.undo_last,
            "E": self.focus_comment,
            "F": self.urgent_only.toggle,
            "U": self.unreviewed_only.toggle,
            "H": self.heatmap_box.toggle,
            "Ctrl+P": self.choose_operating_point,
            "P": self.show_prior,
            "Shift+P": self.compare_prior,
        }

    def _add_key(self, key: str, slot: Callable[[], object]) -> QShortcut:
        return QShortcut(QKeySequence(key), self, activated=slot)

    # -- which study ---------------------------------------------------------------------------------

    def acting_row(self) -> Row | None:
        """The study a key acts on: the one shown, if it is also selected on the visible list; else None."""
        row = self.current
        if row is None or row.info is None:
            return None
        index = self.model.index_of(row)
        if index < 0 or not self.table.selectionModel().isRowSelected(index, QModelIndex()):
            return None
        return row

    def select_index(self, index: int) -> int:
        """Select (and show) the study at ``index`` of the visible list, clamped to it; returns where (-1: the
        list is empty)."""
        count = self.model.rowCount()
        if count == 0:
            return -1
        index = min(max(index, 0), count - 1)
        self._selecting = True
        try:
            model_index = self.model.index(index, 0)
            self.table.selectionModel().setCurrentIndex(model_index, SELECT_ROW)
            self.table.scrollTo(model_index)
        finally:
            self._selecting = False
        self.current_index = index
        return index

    def reselect(self, keep: Row | None) -> Row | None:
        """After the list was redrawn: the top study while ``follow_top``, else the shown study where it now is,
        else (it left the list) the study that took its place. Returns the redrawn row of ``keep``'s study when
        that is still the one shown (None otherwise)."""
        if self.follow_top and self.model.rowCount():
            index = 0
        elif keep is None:
            return None
        elif (index := self.model.index_of(keep)) < 0:
            if not self.model.rowCount():
                self.show_nothing()
                return None
            index = self.current_index  # the study that took the decided one's place
        index = self.select_index(index)  # the window's selection handler shows another study
        now = self.model.row_at(index)
        same = now is not None and now.same_study(keep)
        return now if same else None  # a file that holds another study now: the selection handler shows it

    def user_moved_on_purpose(self, *_) -> None:
        """The reader acts on the study shown (types a comment on it): the selection stops following the top."""
        self.follow_top = False

    def user_moved(self) -> None:
        """The reader chose a study (click or key): the selection stops following the top of the list."""
        if not self._selecting:
            self.follow_top = False

    # -- decisions -----------------------------------------------------------------------------------

    def review(self, decision: str) -> None:
        """Confirm or dismiss the shown, selected study (the same key again undoes it); after a decision the
        next study of the visible list is selected."""
        row = self.acting_row()
        if row is None:
            return
        before = row.review.decision
        if before == decision:
            decision = ""  # pressing again undoes
        index = self.model.index_of(row)
        self.follow_top = False
        if not self._save(row, decision, self.comment.text()):
            return
        self._sign(row, decision)
        self.last_decision = (row, before)
        if decision:
            self._advance(row, index)

    def _advance(self, row: Row, index: int) -> None:
        """The selection after a decision on ``row`` (at ``index``): the next study; where the decided study
        left the list (Unreviewed only), the redraw already selected the study that took its place."""
        if self.model.index_of(row) >= 0:
            self.select_index(index + 1)
        elif self.model.rowCount():
            self.select_index(index)

    def undo_last(self) -> None:
        """Ctrl+Z: the last decision taken back (its study selected again, when it is on the list)."""
        if self.last_decision is None:
            return
        row, before = self.last_decision
        now = self.session.row(row.path)
        if not row.same_study(now):  # the decision was on the study the file held before
            self.last_decision = None
            self.statusBar().showMessage(f"Nothing undone: {row.path.name} holds another study now", 8000)
            return
        if not self._save(now, before, now.review.comment):
            return
        self._sign(now, before)
        self.last_decision = None
        self.follow_top = False
        if (index := self.model.index_of(now)) >= 0:
            self.select_index(index)
        self.statusBar().showMessage(f"Undone: {now.path.name} is {before or 'unreviewed'} again", 4000)

    def next_flagged(self) -> None:
        """N or Space: the next unreviewed flagged study below the selection (from the top when none is)."""
        rows = self.model.visible
        start = self.current_index + 1 if self.acting_row() is not None else 0
        for index in [*range(start, len(rows)), *range(0, start)]:
            row = rows[index]
            if (row.urgent or row.check) and not row.review.decision and row.info is not None:
                self.follow_top = False
                self.select_index(index)
                return
        self.statusBar().showMessage("No unreviewed flagged study left on the list", 4000)

    def show_prior(self) -> None:
        """P: the same patient's film before the shown one (the next one from the oldest), when it is listed."""
        row = self.acting_row()
        prior = prior_of(self.model.visible, row) if row is not None else None
        if prior is None:
            self.statusBar().showMessage("No other film of this patient on the list", 4000)
            return
        self.follow_top = False
        self.select_index(self.model.index_of(prior))

    def compare_prior(self) -> None:
        """Shift+P: the shown study and the patient's prior film side by side (decoded now: a reader's request)."""
        row = self.acting_row()
        prior = prior_of(self.model.visible, row) if row is not None else None
        if prior is None:
            self.statusBar().showMessage("No other film of this patient on the list", 4000)
            return
        try:
            films = [(r, self.session.image(r.path)) for r in sorted((prior, row), key=lambda r: r.path.name)]
        except StudyError as exc:
            self.statusBar().showMessage(f"Cannot compare: {exc.reason}", 8000)
            return
        if self.compare_dialog is None:
            self.compare_dialog = CompareDialog(self)
        policy = self.session.policy
        self.compare_dialog.show_pair(films, self.view, policy.finding if policy is not None else "")

    def _sign(self, row: Row, decision: str) -> None:
        """The reader and the time of a decision saved (or undone), for the QA record; the reader's name is asked
        once when neither the settings nor the OS account give one."""
        if not self.reader:
            self.ask_reader()
        try:
            self.reader_log.record(row.key, decision, self.reader)
        except ReaderLogError as exc:
            self.banner.say(f"{row.path.name}: the decision is saved, but {exc}")

    def _save(self, row: Row, decision: str, comment: str) -> bool:
        """Store one decision (durable before the screen shows it); a failure (read-only, locked, damaged
        store) is shown and nothing changes."""
        try:
            self.session.review(row.path, decision, comment, key=row.key)  # that study's, or not saved
        except ReviewStoreError as exc:
            message = f"{row.path.name}: {exc}"
            self.banner.say(message)
            self.statusBar().showMessage(message, 15000)
            return False
        # the session announced the decision in this thread: drawn at once, unless a redraw was recent
        self._refresh_if_stale()  # the user's own decision is not left for the next batch's redraw
        return True

    # -- the comment ---------------------------------------------------------------------------------

    def focus_comment(self) -> None:
        """E: type a comment on the shown study (Enter or Esc returns to the list; the comment is kept)."""
        if self.acting_row() is not None:
            self.comment.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def comment_done(self) -> None:
        """Enter or Esc in the comment box: the comment saved, the list focused again."""
        self.save_comment()
        self.table.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def save_comment(self) -> None:
        """Save the typed comment on the shown study, if it changed (also when the box loses focus)."""
        self._store_comment(self.current, 3000)

    def keep_comment(self, left: Row | None) -> None:
        """The reader left ``left`` with a comment typed and not saved: it is saved on that study, not lost."""
        self._store_comment(left, 4000)

    def _store_comment(self, row: Row | None, shown_ms: int) -> None:
        """The comment box's text saved on ``row``'s study when it differs from its comment. When the file holds
        another study now, the text is saved on the study it was typed on (by its identity, in the review
        store), never on the new one, and the status bar says so."""
        text = self.comment.text()
        if row is None or row.info is None:
            return
        latest = self.session.row(row.path)
        if row.same_study(latest):
            if text != latest.review.comment and self._save(latest, latest.review.decision, text):
                self.statusBar().showMessage(f"Comment on {row.path.name} saved", shown_ms)
            return
        if text == row.review.comment:
            return
        try:
            self.store.update(row.review_id, comment=text)  # the decision on it is left as stored
        except ReviewStoreError as exc:
            self.banner.say(f"{row.path.name} holds another study now; the comment typed on the one before: {exc}")
            return
        self.statusBar().showMessage(
            f"{row.path.name} holds another study now: the comment typed on the one before is saved on that one", 8000
        )
