"""Drag and drop, and the maximum-wait setting, on the real window."""

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from cxr_desktop.ui.main_window import MainWindow
from cxr_desktop.worklist.reviews import ReviewStore


def test_dropping_a_folder_opens_it(qtbot, tmp_path, tiny_bundle, dicom_dir):
    window = MainWindow(tiny_bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dicom_dir))])
    event = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(event)
    qtbot.waitUntil(lambda: len(window.worklist.rows) == 5 and window.worklist.counts()["queued"] == 0, timeout=60_000)
    window.max_wait.setValue(5)
    assert window.worklist.max_wait_s == 300
