"""A file replaced by another patient's study (same path) while the reader is on it (red-team F2-F4): the reader's
comment, undo, and the film and heatmap shown belong to the exact study shown (its identity), never to the study
that now holds the path. Patient A's IM0001.dcm is scored and shown; then patient B's study is written over it."""

import os

import numpy as np
import pytest
from hostile_inputs import CHEST
from test_watch_folder import caught_up, dicom_of

from cxr_desktop.ui.main_window import MainWindow
from cxr_desktop.worklist.reviews import ReviewStore
from cxr_desktop.worklist.rows import DONE

OTHER = np.ascontiguousarray(np.flipud(np.fliplr(CHEST)) // 2 + 60)  # patient B's film


def shows(window, patient: str, status: str | None = DONE) -> bool:
    row = window.current
    return row is not None and row.info.patient_id == patient and (status is None or row.status == status)


def window_on_a(qtbot, bundle, tmp_path):
    """The window with A's study scored, selected and shown (a folder opened, not watched)."""
    folder = tmp_path / "studies"
    folder.mkdir()
    path = dicom_of(folder / "IM0001.dcm", "PAT-A")
    window = MainWindow(bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=600_000)  # a busy machine
    window.open_paths([str(folder)])
    caught_up(window)  # listed and scored
    qtbot.waitUntil(lambda: shows(window, "PAT-A"), timeout=20_000)
    return window, path


def write_b_over(path, tmp_path) -> None:
    """A PACS export renaming patient B's study over ``path``."""
    dicom_of(tmp_path / "b.tmp", "PAT-B", OTHER)
    os.replace(tmp_path / "b.tmp", path)


def replace_with_b(qtbot, window, path, tmp_path) -> None:
    """B written over A's file and read again (as opening it again does): B scored and shown at A's place."""
    write_b_over(path, tmp_path)
    window.request_open.emit([str(path)])
    caught_up(window)  # read again as B, and scored
    qtbot.waitUntil(lambda: shows(window, "PAT-B"), timeout=20_000)


def test_a_comment_typed_on_a_is_never_saved_on_b(qtbot, tiny_bundle, tmp_path):
    window, path = window_on_a(qtbot, tiny_bundle, tmp_path)
    a_key = window.current.key
    window.focus_comment()
    window.comment.setText("PAT-A: known pacemaker")
    window.comment_done()  # Enter: saved on A
    window.focus_comment()
    window.comment.end(False)  # E selected the comment: go on after it
    qtbot.keyClicks(window.comment, ", compare 2019")  # typed, not saved yet, when the file is replaced
    replace_with_b(qtbot, window, path, tmp_path)
    assert window.comment.text() == "", "A's comment is left in the box of B's study"
    assert window.store.get(a_key).comment == "PAT-A: known pacemaker, compare 2019", "A's typed comment is lost"
    assert "another study" in window.statusBar().currentMessage()
    window.review("dismissed")  # D on the study shown: B
    b = window.session.row(path)
    assert b.info.patient_id == "PAT-B" and (b.review.decision, b.review.comment) == ("dismissed", "")
    assert window.store.get(a_key).decision == ""


def test_ctrl_z_after_the_file_was_replaced_leaves_b_unread(qtbot, tiny_bundle, tmp_path):
    window, path = window_on_a(qtbot, tiny_bundle, tmp_path)
    a_key = window.current.key
    window.review("dismissed")
    window.review("confirmed")  # changed mind: Ctrl+Z would restore "dismissed" on A
    replace_with_b(qtbot, window, path, tmp_path)
    window.undo_last()  # Ctrl+Z
    b = window.session.row(path)
    assert b.info.patient_id == "PAT-B" and b.review.decision == "", "A's earlier decision was written on B"
    assert window.store.get(a_key).decision == "confirmed"
    assert "nothing undone" in window.statusBar().currentMessage().lower()
    assert window.reader_log.latest([b.key]).get(b.key) is None  # nothing signed under B


@pytest.mark.parametrize("result", ["image", "heatmap"])
def test_a_result_of_a_is_never_shown_with_b(qtbot, tiny_bundle, tmp_path, monkeypatch, result):
    """The race of F4, made to happen: the worker has A's film (or map) in hand when the file becomes B's, and
    delivers it after the window learnt of B. It is A's: dropped, never shown over B or with B's findings."""
    window, path = window_on_a(qtbot, tiny_bundle, tmp_path)
    a_image = np.array(window.session.image(path))
    session, worker, armed = window.session, window.heat, [True]
    shown = []  # (image, heatmap, patient of the row shown with them)
    show_image, show_heat, show_findings = window.viewer.show_image, window.viewer.show_heat, window._show_findings

    def record_image(image, heatmap, row, policy):
        shown.append((image, heatmap, row.info.patient_id))
        show_image(image, heatmap, row, policy)

    def record_heat(heatmap, row, policy):
        shown.append((None, heatmap, row.info.patient_id))
        show_heat(heatmap, row, policy)

    def record_findings(row):  # B's findings beside what the viewer holds then
        show_findings(row)
        shown.append((window.view.image, window.view.heatmap, row.info.patient_id))

    def b_arrives():  # in the worker's thread, with A's result in hand: the file is B's, the session says so
        armed.clear()
        write_b_over(path, tmp_path)
        session.add_paths([path])

    if result == "image":
        real_image = session.image  # its own name: the loop below rebinds ``image`` while the worker may still call

        def image_then_b(*args, **kwargs):
            out = real_image(*args, **kwargs)
            if armed:
                b_arrives()
            return out

        monkeypatch.setattr(session, "image", image_then_b)
    else:  # between the worker's check that the row still holds A and its delivery of A's map
        study, heatmap, checks = worker._study, session.heatmap, []

        def heatmap_made(*args, **kwargs):
            out = heatmap(*args, **kwargs)
            checks.extend([True] * bool(armed))  # the next look at the row is the check before delivery
            return out

        def study_then_b(*args):
            out = study(*args)
            if checks:
                checks.clear()
                b_arrives()
            return out

        monkeypatch.setattr(session, "heatmap", heatmap_made)
        monkeypatch.setattr(worker, "_study", study_then_b)
    monkeypatch.setattr(window.viewer, "show_image", record_image)
    monkeypatch.setattr(window.viewer, "show_heat", record_heat)
    monkeypatch.setattr(window, "_show_findings", record_findings)
    qtbot.waitUntil(lambda: not window._refresh_due.isActive(), timeout=5_000)  # B's news is drawn at once
    if result == "image":
        window.request_image.emit(str(path))
    else:
        window.request_heatmap.emit(str(path), True)
    qtbot.waitUntil(lambda: not armed, timeout=20_000)

    def b_film() -> bool:  # B (queued, not scored) is shown with a film that is not A's
        image = window.view.image
        return shows(window, "PAT-B", status=None) and image is not None and not np.array_equal(image, a_image)

    qtbot.waitUntil(b_film, timeout=20_000)
    for film, heat, patient in shown:
        if patient == "PAT-B":
            assert film is None or not np.array_equal(film, a_image), "A's film shown as B's"
            assert heat is None, "A's heatmap shown over B's study (B is not scored: it has no map)"
    assert window.view.heatmap is None
