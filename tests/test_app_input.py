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
    with qtbot.waitSignal(window.model_failed, timeout=30_000):
        window.request_model.emit(str(changed), "cpu")
    assert "sha256" in window.banner.text() and "The model in use is kept: tiny-test-model" in window.banner.text()
    assert not window.banner.isHidden()
    assert window.engine is kept and window.session.engine is kept
    window.open_paths([str(gui_folder)])
    scored = len(list(iter_study_files([gui_folder]))) - 1  # all but the CT slice
    qtbot.waitUntil(lambda: window.session.counts()["done"] == scored, timeout=60_000)


def test_switching_to_a_resealed_bundle_that_disagrees_says_why_and_keeps_the_model(qtbot, tmp_path, tiny_bundle):
    """Issue 22 items 6 and 16: a card edited to another input size and sealed again is refused in the window
    with its reason, and the banner says the model in use is kept (no thread traceback, no silent keep)."""
    import json

    from conftest import make_tiny_bundle

    from cxr_desktop.core import bundle as B

    window = MainWindow(tiny_bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    kept = window.engine
    folder = make_tiny_bundle(tmp_path / "resealed", onnx=True)
    data = json.loads((folder / B.CARD_NAME).read_text())
    data["preprocessing"]["input_size"] = 128
    B.write_card(folder, data)
    with qtbot.waitSignal(window.model_failed, timeout=60_000):
        window.request_model.emit(str(folder), "cpu")
    text = window.banner.text()
    assert "takes 3 x 64 x 64" in text and "The model in use is kept: tiny-test-model" in text
    assert not window.banner.isHidden() and window.engine is kept and window.device_box.currentText() == "cpu"
    assert B.NOT_DEFAULT_NOTE in window.findings.model_label.text()


def test_a_failed_device_switch_puts_the_device_box_back(qtbot, tmp_path, tiny_bundle, monkeypatch):
    """The Device box never shows a device the model is not on: a switch that fails goes back."""
    window = MainWindow(tiny_bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    monkeypatch.setattr("cxr_desktop.inference.engine.check_device_name", _no_cuda)
    with qtbot.waitSignal(window.model_failed, timeout=60_000):
        window.device_box.setCurrentText("cuda")
    assert window.device_box.currentText() == "cpu" and "no CUDA device here" in window.banner.text()
    assert window.banner.wordWrap() and "The model in use is kept" in window.banner.text()


def _no_cuda(device: str) -> None:
    if device == "cuda":
        raise RuntimeError("cuda was requested but there is no CUDA device here (the message is long enough to wrap)")


def test_a_model_failure_reaches_plain_listeners_in_the_gui_thread(qtbot, tmp_path, tiny_bundle, monkeypatch):
    """window.model_failed is emitted in the GUI thread: a plain function or a pytest-qt waitSignal connected to
    it runs there. On the worker's own signal it ran in the worker thread, where waitSignal stopped (refused) and
    then, when that thread dropped the blocker last, freed its GUI-thread QTimer: the timer stayed registered and
    its firing crashed the next event loop (a segfault under load). The blocker here is always freed last by the
    emitting thread, and the wait lasts past its timer."""
    import threading
    import time

    import pytestqt.wait_signal as wait_signal

    quit_by_signal = wait_signal.SignalBlocker._quit_loop_by_signal

    def quit_then_linger(blocker, *args):
        quit_by_signal(blocker, *args)
        time.sleep(0.3)  # the emitting thread keeps the blocker while the test leaves the with block

    monkeypatch.setattr(wait_signal.SignalBlocker, "_quit_loop_by_signal", quit_then_linger)
    window = MainWindow(tiny_bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    threads: list[threading.Thread] = []
    window.model_failed.connect(lambda _message: threads.append(threading.current_thread()))
    with qtbot.waitSignal(window.model_failed, timeout=1_000):
        window.request_model.emit(str(tmp_path / "no-such-bundle"), "cpu")
    qtbot.wait(1_500)  # the blocker's timer would have fired here
    assert threads == [threading.main_thread()]
