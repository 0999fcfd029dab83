"""The watched folder (issue 12, item 10): a file still being copied is read once it has settled, and a file
that failed is read again when it changes. Issue 22: sub-folders are watched too (items 3), a scored file
replaced by another study is read again as that study (item 2)."""

import os
import time

import cv2
import numpy as np
from hostile_inputs import CHEST
from PySide6.QtCore import QObject, Qt, Signal

import cxr_desktop.ui.folder_watch as folder_watch
from cxr_desktop.studies.synthetic import write_dicom
from cxr_desktop.ui.main_window import MainWindow
from cxr_desktop.ui.worker import TriageWorker
from cxr_desktop.worklist.reviews import ReviewStore
from cxr_desktop.worklist.rows import DONE, ERROR
from cxr_desktop.worklist.session import TriageSession

PNG = cv2.imencode(".png", CHEST)[1].tobytes()


class _Barrier(QObject):
    ping = Signal(list)


def caught_up(window) -> None:
    """Return once the scoring thread has handled everything asked of it before (its queue is in order): a
    blocking call to one of its slots. Waiting for an ``idle`` instead was the race of issue 22's flaky test:
    the idle of the model's first pass, when it came late, was taken for the opened folder's, and the test
    wrote its file before the folder was scanned: the scan then read it unsettled."""
    barrier = _Barrier()
    barrier.ping.connect(window.worker.open_paths, Qt.ConnectionType.BlockingQueuedConnection)
    barrier.ping.emit([])


def watching_window(qtbot, bundle, tmp_path):
    folder = tmp_path / "incoming"
    folder.mkdir()
    window = MainWindow(bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    window.hot_folder.setChecked(True)
    window.open_paths([str(folder)])
    caught_up(window)  # the opened folder has been scanned: what a test writes now arrives in the watched folder
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


def test_an_empty_file_is_waited_for_until_it_fills(qtbot, tiny_bundle, tmp_path, monkeypatch):
    """A copy that creates the file and writes only later (longer than the settle time): no error row. The
    scoring thread is made slow, as in a loaded full run: the model's first pass ends late (its idle comes after
    the folder was opened) and the opening is scanned late. The fixture waited for any idle and took the first
    pass's for the opening's: the test wrote its file before the scan, which read it unsettled (empty: an error
    row). With the fixture's old wait this test failed every time; it failed once in a while before."""
    first_pass, listing = TriageWorker._score, TriageSession.add_paths

    def late_first_pass(self):
        if not getattr(self, "_late", False):
            self._late = True
            time.sleep(1.0)
        first_pass(self)

    def late_opening(self, paths, settled=None):
        if paths and settled is None:  # the opening's scan, in the scoring thread (not the watch's rescans)
            time.sleep(1.0)
        return listing(self, paths, settled)

    monkeypatch.setattr(TriageWorker, "_score", late_first_pass)
    monkeypatch.setattr(TriageSession, "add_paths", late_opening)
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
        watch.watch_failed([present, gone, tmp_path.parent / "elsewhere" / "x.png"])
    assert asked == [[str(present), str(gone)]]
    assert watch.watcher.files() == [str(present)]


def dicom_of(path, patient, pixels=CHEST):
    return write_dicom(path, pixels, patient_id=patient, patient_name=f"{patient}^Name")


def test_studies_written_into_new_sub_folders_are_seen_by_their_events(qtbot, tiny_bundle, tmp_path, monkeypatch):
    """A PACS export: PAT123/STUDY1/IM0001.dcm, the folders made first and the file a moment later, then a
    second study in a folder made inside the first. No sweep runs (it is set to an hour): the events alone."""
    monkeypatch.setattr(folder_watch, "SWEEP_MS", 3_600_000)
    window, folder = watching_window(qtbot, tiny_bundle, tmp_path)
    study = folder / "PAT123" / "STUDY1"
    study.mkdir(parents=True)
    qtbot.wait(300)  # the folders' events come first, the file's later
    first = dicom_of(study / "IM0001.dcm", "PAT123")
    top = dicom_of(folder / "IM0000.dcm", "PAT000")  # a top-level file at the same time: the same delay
    qtbot.waitUntil(lambda: status_of(window, first) == DONE and status_of(window, top) == DONE, timeout=20_000)
    deeper = study / "SERIES2" / "a" / "b"
    deeper.mkdir(parents=True)
    second = dicom_of(deeper / "IM0002.dcm", "PAT123")
    qtbot.waitUntil(lambda: status_of(window, second) == DONE, timeout=20_000)
    assert str(deeper) in window.folder_watch.watcher.directories()


def test_a_scored_file_replaced_by_another_study_is_read_again_as_that_study(qtbot, tiny_bundle, tmp_path):
    """Patient A's IM0001.dcm is scored and confirmed; the export renames patient B's study over it. The row
    becomes B's, scored on B's pixels, with no decision (A's stays in the store under A)."""
    window, folder = watching_window(qtbot, tiny_bundle, tmp_path)
    path = dicom_of(folder / "IM0001.dcm", "PAT-A")
    qtbot.waitUntil(lambda: status_of(window, path) == DONE, timeout=20_000)
    window.session.review(path, "confirmed", "")
    a_row = window.session.row(path)
    a_key, a_score, a_identity = a_row.key, a_row.probabilities, a_row.identity
    window.heatmaps.put(a_identity, np.full(CHEST.shape, 0.5, np.float32))  # A's map, as the viewer keeps it
    other = np.ascontiguousarray(np.flipud(np.fliplr(CHEST)) // 2 + 60)
    dicom_of(tmp_path / "b.tmp", "PAT-B", other)
    os.replace(tmp_path / "b.tmp", path)

    def b_scored():
        row = window.session.row(path)
        return row.info.patient_id == "PAT-B" and row.status == DONE

    qtbot.waitUntil(b_scored, timeout=20_000)
    row = window.session.row(path)
    assert row.review.decision == "" and row.probabilities != a_score
    assert row.identity != a_identity and window.heatmaps.get(a_identity) is None  # A's map went with A
    kept = window.heatmaps.get(row.identity)
    assert kept is None or not np.allclose(kept, 0.5)  # never A's map over B's film
    assert window.store.get(a_key).decision == "confirmed"
    assert len(window.session.rows_in_arrival()) == 1


def test_a_file_rewritten_in_place_is_found_by_the_sweep(qtbot, tiny_bundle, tmp_path, monkeypatch):
    """Rewritten in place with its old size and mtime (``rsync --inplace -a``): no folder event says so; the
    sweep finds the stamp changed (inode or ctime) and the row becomes the new study's."""
    monkeypatch.setattr(folder_watch, "SWEEP_MS", 500)
    window, folder = watching_window(qtbot, tiny_bundle, tmp_path)
    path = dicom_of(folder / "IM0001.dcm", "PAT-A")
    qtbot.waitUntil(lambda: status_of(window, path) == DONE, timeout=20_000)
    before = path.stat()
    # B: A's bytes with another patient (the same length), so size and mtime stay; a freshly written file
    # would differ in size now and then (its generated UIDs vary in length)
    data = path.read_bytes().replace(b"PAT-A", b"PAT-B")
    assert len(data) == before.st_size and b"PAT-A" not in data
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    qtbot.waitUntil(lambda: window.session.row(path).info.patient_id == "PAT-B", timeout=20_000)
    qtbot.waitUntil(lambda: status_of(window, path) == DONE, timeout=20_000)
