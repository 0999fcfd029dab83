"""The watched folder (issue 12, item 10): a file still being copied is read once it has settled, and a file
that failed is read again when it changes."""

import cv2
from hostile_inputs import CHEST

from cxr_desktop.ui.main_window import MainWindow
from cxr_desktop.worklist.reviews import ReviewStore
from cxr_desktop.worklist.rows import DONE, ERROR

PNG = cv2.imencode(".png", CHEST)[1].tobytes()


def watching_window(qtbot, bundle, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    window = MainWindow(bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    window.hot_folder.setChecked(True)
    with qtbot.waitSignal(window.bridge.idle, timeout=30_000):  # the opened folder has been scanned
        window.open_paths([str(folder)])
    return window, folder


def status_of(window, path):
    row = window.session.row(path)
    return None if row is None else row.status


def test_a_file_being_copied_is_read_once_it_has_settled(qtbot, tiny_bundle, tmp_path):
    window, folder = watching_window(qtbot, tiny_bundle, tmp_path)
    path = folder / "copying.png"
    with open(path, "wb") as handle:  # the copy starts: half the file, then the rest a moment later
        handle.write(PNG[: len(PNG) // 2])
        handle.flush()
        qtbot.wait(400)
        handle.write(PNG[len(PNG) // 2 :])
    qtbot.waitUntil(lambda: status_of(window, path) == DONE, timeout=20_000)


def test_a_failed_file_is_read_again_when_it_changes(qtbot, tiny_bundle, tmp_path):
    window, folder = watching_window(qtbot, tiny_bundle, tmp_path)
    path = folder / "broken.png"
    path.write_bytes(PNG[: len(PNG) // 2])
    qtbot.waitUntil(lambda: status_of(window, path) == ERROR, timeout=20_000)
    assert "corrupt or truncated" in window.session.row(path).error  # never "empty": an empty file is waited for
    path.write_bytes(PNG)  # the sender fixes the file
    qtbot.waitUntil(lambda: status_of(window, path) == DONE, timeout=20_000)
    assert window.session.row(path).error == "" and len(window.session.rows_in_arrival()) == 1


def test_an_empty_file_is_waited_for_until_it_fills(qtbot, tiny_bundle, tmp_path):
    """A copy that creates the file and writes only later (longer than the settle time): no error row."""
    window, folder = watching_window(qtbot, tiny_bundle, tmp_path)
    path = folder / "slow-copy.png"
    path.touch()
    seen = []
    for _ in range(25):  # 2.5 s: more than twice the settle time
        qtbot.wait(100)
        seen.append(status_of(window, path))
    assert ERROR not in seen and DONE not in seen
    path.write_bytes(PNG)
    qtbot.waitUntil(lambda: status_of(window, path) == DONE, timeout=20_000)


def test_a_failed_file_is_looked_at_once_when_its_watch_begins_even_if_the_watcher_refuses_it(qtbot, tmp_path):
    """A file fixed between its failure and the start of its watch is not missed; one the watcher cannot watch
    (here: already deleted) is not rescanned at every redraw."""
    from cxr_desktop.ui.folder_watch import FolderWatch

    asked: list[list[str]] = []
    watch = FolderWatch(asked.append)
    watch.set(True, [str(tmp_path)])
    present, gone = tmp_path / "fixed.png", tmp_path / "gone.png"
    present.write_bytes(PNG)
    for _ in range(3):  # three redraws with the same failed rows
        watch.watch_failed([present, gone, tmp_path / "elsewhere" / "x.png"])
    assert asked == [[str(present), str(gone)]]
    assert watch.watcher.files() == [str(present)]
