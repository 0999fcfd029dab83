"""Issue 22, items 11-13: reviews in a reading room. Two windows (two stores on one file) never overwrite each
other's decisions, a store deleted or replaced while the app runs is noticed and gets this session's decisions
again (said loudly), and a study's arrival time is kept in the store, so its wait survives a restart."""

from __future__ import annotations

import sqlite3
import time

import pytest
from conftest import table_shows_session
from hostile_inputs import CHEST
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from cxr_desktop.core.bundle import load_bundle
from cxr_desktop.inference.engine import Engine
from cxr_desktop.studies.synthetic import write_dicom
from cxr_desktop.worklist.reviews import ReviewStore
from cxr_desktop.worklist.session import TriageSession


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine(load_bundle(tiny_bundle), device="cpu", batch_size=4)


@pytest.fixture
def folder(tmp_path):
    studies = tmp_path / "studies"
    studies.mkdir()
    write_dicom(studies / "IM0001.dcm", CHEST, patient_id="PAT-1")
    return studies


def session_on(store_path, folder, engine=None, **kwargs):
    session = TriageSession(engine, reviews=ReviewStore(store_path), **kwargs)
    session.add_paths([folder])
    return session


def test_two_sessions_on_one_store_update_field_by_field(tmp_path, folder):
    path = folder / "IM0001.dcm"
    a, b = session_on(tmp_path / "r.sqlite3", folder), session_on(tmp_path / "r.sqlite3", folder)
    a.review(path, "confirmed", "")  # window A confirms
    b.review(path, "", "see prior film")  # window B, which still shows no decision, saves a comment
    stored = ReviewStore(tmp_path / "r.sqlite3").get(a.row(path).key)
    assert (stored.decision, stored.comment) == ("confirmed", "see prior film")
    assert (b.row(path).review.decision, b.row(path).review.comment) == ("confirmed", "see prior film")
    a.snapshot()  # A's next redraw shows B's comment
    assert a.row(path).review.comment == "see prior film"
    b.review(path, "dismissed", "see prior film")  # a decision changed on purpose is changed
    assert ReviewStore(tmp_path / "r.sqlite3").get(a.row(path).key).decision == "dismissed"


def open_window(qtbot, bundle, store_path, folder):
    from cxr_desktop.ui.main_window import MainWindow

    window = MainWindow(bundle, ReviewStore(store_path), device="cpu")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    window.open_paths([str(folder)])
    qtbot.waitUntil(lambda: window.session.counts()["done"] == 1, timeout=60_000)
    qtbot.waitUntil(lambda: table_shows_session(window), timeout=10_000)
    window.table.selectRow(0)
    qtbot.waitUntil(lambda: window.current is not None, timeout=5_000)
    return window


def test_two_app_windows_never_overwrite_each_others_decisions(qtbot, tiny_bundle, tmp_path, folder):
    first = open_window(qtbot, tiny_bundle, tmp_path / "r.sqlite3", folder)
    second = open_window(qtbot, tiny_bundle, tmp_path / "r.sqlite3", folder)
    first.review("confirmed")
    assert first.current.review.decision == "confirmed"
    second.comment.setFocus()
    second.comment.setText("compare with 2019")
    QTest.keyClick(second.comment, Qt.Key.Key_Return)  # the comment is saved as the reader saves it
    key = first.current.key
    stored = ReviewStore(tmp_path / "r.sqlite3").get(key)
    assert (stored.decision, stored.comment) == ("confirmed", "compare with 2019")
    qtbot.waitUntil(lambda: first.session.snapshot().rows[0].review.comment == "compare with 2019", timeout=5_000)
    assert second.session.row(folder / "IM0001.dcm").review.decision == "confirmed"


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_store_deleted_or_replaced_while_the_app_runs_gets_this_sessions_decisions(tmp_path, folder, how):
    path, store_path = folder / "IM0001.dcm", tmp_path / "r.sqlite3"
    session = session_on(store_path, folder)
    notices = []
    session.events.notice.connect(notices.append)
    session.review(path, "confirmed", "acknowledged before")
    key = session.row(path).key
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"r.sqlite3{suffix}").unlink(missing_ok=True)
    if how == "replaced":  # e.g. a backup restored over it
        other = sqlite3.connect(store_path)
        other.execute("CREATE TABLE unrelated (x)")
        other.commit()
        other.close()
    session.snapshot()  # the next redraw notices
    assert notices and how in notices[-1] and "1 saved decisions" in notices[-1]
    session.review(path, "confirmed", "acknowledged after")
    reopened = ReviewStore(store_path)
    assert (reopened.get(key).decision, reopened.get(key).comment) == ("confirmed", "acknowledged after")


def test_a_store_deleted_is_noticed_at_the_next_save_too(tmp_path, folder):
    path, store_path = folder / "IM0001.dcm", tmp_path / "r.sqlite3"
    session = session_on(store_path, folder)
    session.review(path, "dismissed", "")
    store_path.unlink()
    session.review(path, "dismissed", "second thought")  # no redraw in between
    stored = ReviewStore(store_path).get(session.row(path).key)
    assert (stored.decision, stored.comment) == ("dismissed", "second thought")
    assert "deleted" in session.reviews.notice


def test_the_waiting_time_survives_a_restart(tmp_path, folder):
    """A study that arrived 3 h ago is overdue after a restart (Max wait 30 min), not back at 0 min."""
    path, store_path = folder / "IM0001.dcm", tmp_path / "r.sqlite3"
    first = session_on(store_path, folder, max_wait_s=1800)
    arrived = first.row(path).arrived_at
    first.reviews.close()
    db = sqlite3.connect(store_path)
    assert db.execute("SELECT arrived FROM arrivals").fetchall() == [(arrived,)]
    db.execute("UPDATE arrivals SET arrived = ?", (time.time() - 3 * 3600,))  # as if it had come 3 h ago
    db.commit()
    db.close()
    later = session_on(store_path, folder, max_wait_s=1800)
    snapshot = later.snapshot()
    assert path in snapshot.overdue
    assert snapshot.now - later.row(path).arrived_at == pytest.approx(3 * 3600, abs=60)
