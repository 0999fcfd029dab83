"""Reading the worklist by keyboard, on the real window: a key acts only on the study shown and selected, the
selection moves on after a decision, the list has focus with the top study selected, N / Space / Home / End /
E / F / U / Ctrl+Z, a typed comment is kept, and the top 10 flagged studies take at most 2 keys each."""

import csv

import pytest
from conftest import make_tiny_bundle, table_shows_session
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QInputDialog

from cxr_desktop.studies.scan import iter_study_files
from cxr_desktop.ui.main_window import MainWindow
from cxr_desktop.worklist.reviews import ReviewStore


@pytest.fixture(scope="module")
def flag_all_bundle(tmp_path_factory):
    """Every scored study is flagged (threshold 1e-6): the list is a queue of flagged studies in score order."""
    return make_tiny_bundle(tmp_path_factory.mktemp("flag-all") / "b", 1e-6)


def scored_window(qtbot, bundle, store, folder) -> MainWindow:
    window = MainWindow(bundle, ReviewStore(store), device="cpu")
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=600_000)  # a busy machine
    window.open_paths([str(folder)])
    count = len(list(iter_study_files([folder])))
    session = window.session
    listed = lambda: len(session.rows_in_arrival()) == count and session.counts()["queued"] == 0  # noqa: E731
    qtbot.waitUntil(listed, timeout=600_000)
    qtbot.waitUntil(lambda: table_shows_session(window), timeout=10_000)
    qtbot.wait(200)
    return window


def key(qtbot, window, name: str, keys: list | None = None) -> None:
    """One key press on whatever has focus, as the reader's keyboard sends it (shortcuts included)."""
    target = QApplication.focusWidget() or window
    sequence = {"Space": Qt.Key.Key_Space, "Down": Qt.Key.Key_Down, "Home": Qt.Key.Key_Home, "End": Qt.Key.Key_End}
    qtbot.keyClick(target, sequence.get(name, name))
    qtbot.wait(30)
    if keys is not None:
        keys.append(name)


def selected_paths(window) -> list:
    rows = window.table.selectionModel().selectedRows()
    return [window.model.row_at(index.row()).path for index in rows]


def test_c_then_d_in_unreviewed_only_never_acts_on_a_removed_study(
    qtbot, tmp_path, flag_all_bundle, gui_folder, monkeypatch
):
    window = scored_window(qtbot, flag_all_bundle, tmp_path / "r.sqlite3", gui_folder)
    # no reader's name from the settings or the OS account: asked once, at the first decision, and kept
    asked = []
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: asked.append(a) or ("Dr. Test", True))
    window.reader = ""
    window.unreviewed_only.setChecked(True)
    qtbot.wait(100)
    first, second, third = window.model.visible[:3]
    window.table.setFocus()
    assert selected_paths(window) == [first.path] and window.current.path == first.path
    key(qtbot, window, "C")
    assert window.session.row(first.path).review.decision == "confirmed"
    assert len(asked) == 1 and window.reader == "Dr. Test" and window.settings.value("reader/name") == "Dr. Test"
    # the confirmed study left the list; the next one is selected and shown, and D acts on it, not on the first
    assert window.model.index_of(first) < 0
    assert selected_paths(window) == [second.path] and window.current.path == second.path
    key(qtbot, window, "D")
    assert window.session.row(first.path).review.decision == "confirmed"
    assert window.session.row(second.path).review.decision == "dismissed"
    assert selected_paths(window) == [third.path] and window.current.path == third.path
    key(qtbot, window, "Down")  # ↓ goes on from the selected study, not from the top
    assert window.current.path == window.model.visible[1].path
    # with nothing selected, a key acts on nothing (the viewer's study is not acted on behind the reader's back)
    window.table.clearSelection()
    before = window.session.row(window.current.path).review.decision
    key(qtbot, window, "C")
    assert window.session.row(window.current.path).review.decision == before
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo: D
    assert window.session.row(second.path).review.decision == ""
    assert window.current.path == second.path and selected_paths(window) == [second.path]


def test_keyboard_reading_of_the_top_10_flagged_studies(qtbot, tmp_path, flag_all_bundle, gui_folder):
    """Focus on the list, the top study selected when scoring starts; C / D decide and move on: the top 10
    flagged studies are read with at most 2 keys each (measured)."""
    window = scored_window(qtbot, flag_all_bundle, tmp_path / "r.sqlite3", gui_folder)
    assert QApplication.focusWidget() is window.table
    flagged = [r for r in window.model.visible if r.urgent or r.check][:10]
    assert len(flagged) == 10, "the test folder gives at least 10 flagged studies"
    assert selected_paths(window) == [flagged[0].path]
    keys: list[str] = []
    for i, row in enumerate(flagged):
        assert window.current.path == row.path, f"study {i} is not the one shown"
        key(qtbot, window, "D" if i % 3 == 0 else "C", keys)
    decided = {r.path: r.review.decision for r in window.session.rows_in_arrival()}
    assert all(decided[r.path] for r in flagged)
    assert len(keys) <= 2 * len(flagged), f"{len(keys)} keys for {len(flagged)} studies"
    print(f"\nkeystrokes for the top {len(flagged)} flagged studies: {len(keys)}")
    window.export(tmp_path / "qa.csv")  # a QA record: who decided, when, with which model and operating point
    with open(tmp_path / "qa.csv", newline="") as handle:
        exported = {r["path"]: r for r in csv.DictReader(handle)}
    card = window.engine.card
    for row in flagged:
        record = exported[str(row.path)]
        assert record["reader"] == window.reader and record["decided_at"].startswith("20")
        assert record["model_id"] == card.model_id and record["model_fingerprint"] == card.fingerprint
        assert record["operating_point"] == window.session.policy.operating_point

    key(qtbot, window, "Home")
    assert window.current.path == window.model.visible[0].path
    key(qtbot, window, "End")
    assert window.current.path == window.model.visible[-1].path
    key(qtbot, window, "N")  # the next unreviewed flagged study, from the top when none is below
    assert window.current.path == window.model.visible[10].path
    key(qtbot, window, "Home")
    key(qtbot, window, "Space")
    assert window.current.path == window.model.visible[10].path

    key(qtbot, window, "U")
    assert window.unreviewed_only.isChecked() and all(not r.review.decision for r in window.model.visible)
    key(qtbot, window, "U")
    key(qtbot, window, "F")
    assert window.urgent_only.isChecked()
    key(qtbot, window, "F")
    # Tab leaves the list (it does not walk its cells)
    key(qtbot, window, "Home")
    qtbot.keyClick(window.table, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is not window.table


def test_a_typed_comment_is_kept_when_the_reader_moves_on(qtbot, tmp_path, flag_all_bundle, gui_folder):
    window = scored_window(qtbot, flag_all_bundle, tmp_path / "r.sqlite3", gui_folder)
    first, second = window.model.visible[:2]
    key(qtbot, window, "E")
    assert QApplication.focusWidget() is window.comment
    qtbot.keyClicks(window.comment, "compare with prior")
    assert not window.follow_top, "a study being commented on is not replaced by a new top study"
    window.table.selectRow(1)  # moved on without Enter, the box still focused (e.g. the list redrawn)
    qtbot.waitUntil(lambda: window.current.path == second.path, timeout=5_000)
    assert window.session.row(first.path).review.comment == "compare with prior"
    assert window.comment.text() == ""
    window.table.setFocus()
    key(qtbot, window, "E")
    qtbot.keyClicks(window.comment, "old film")
    third = window.model.visible[2]
    cell = window.table.visualRect(window.model.index(2, 1)).center()
    qtbot.mouseClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=cell)  # a click on another study
    qtbot.waitUntil(lambda: window.current.path == third.path, timeout=5_000)
    assert window.session.row(second.path).review.comment == "old film"
    window.table.selectRow(1)
    qtbot.waitUntil(lambda: window.current.path == second.path, timeout=5_000)
    assert window.comment.text() == "old film"
    window.comment.clear()
    key(qtbot, window, "E")
    qtbot.keyClicks(window.comment, "cc")  # "c" typed in the box is text, not a decision
    qtbot.keyClick(window.comment, Qt.Key.Key_Return)
    assert window.session.row(second.path).review == type(window.current.review)("", "cc")
    assert QApplication.focusWidget() is window.table
