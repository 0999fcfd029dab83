"""Drag and drop, the maximum-wait setting and a refused model bundle, on the real window."""

import shutil

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from cxr_desktop.studies.scan import iter_study_files
from cxr_desktop.ui.main_window import MainWindow
from cxr_desktop.worklist.reviews import ReviewStore


def test_dropping_a_folder_opens_it(qtbot, tmp_path, tiny_bundle, gui_folder):
    window = MainWindow(tiny_bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(gui_folder))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(event)
    count = len(list(iter_study_files([gui_folder])))
    qtbot.waitUntil(
        lambda: len(window.session.rows_in_arrival()) == count and window.session.counts()["queued"] == 0,
        timeout=60_000,
    )
    window.max_wait.setValue(5)
    assert window.session.max_wait_s == 300


def test_a_changed_model_bundle_is_refused_and_the_previous_model_kept(qtbot, tmp_path, tiny_bundle, gui_folder):
    window = MainWindow(tiny_bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    kept = window.engine
    changed = tmp_path / "changed"
    shutil.copytree(tiny_bundle, changed)
    with open(changed / "weights.safetensors", "r+b") as handle:
        handle.seek(-16, 2)
        handle.write(b"\x00" * 16)
    with qtbot.waitSignal(window.worker.model_failed, timeout=30_000):
        window.request_model.emit(str(changed), "cpu")
    assert "sha256" in window.status_label.text() and "still using tiny-test-model" in window.status_label.text()
    assert window.engine is kept and window.session.engine is kept
    window.open_paths([str(gui_folder)])
    scored = len(list(iter_study_files([gui_folder]))) - 1  # all but the CT slice
    qtbot.waitUntil(lambda: window.session.counts()["done"] == scored, timeout=60_000)
