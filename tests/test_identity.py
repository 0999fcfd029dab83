"""Issue 22, items 1, 2 and 4: a row's identity and its pixels come from the same bytes (a file replaced after it
was listed never gives patient A's row patient B's score or pixels), a changed file is read again as the study
it now holds (its own review, never A's), and a folder or file that cannot be listed or read gets a row with
the reason (CLI, worklist, summary)."""

from __future__ import annotations

import csv
import os
import re

import numpy as np
import pytest
from hostile_inputs import CHEST

from cxr_desktop.cli import main as triage_main
from cxr_desktop.cli import summary
from cxr_desktop.core.bundle import load_bundle
from cxr_desktop.inference.engine import Engine
from cxr_desktop.studies.reader import StudyReplaced
from cxr_desktop.studies.scan import iter_scan
from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom
from cxr_desktop.worklist.export import export_csv
from cxr_desktop.worklist.image_cache import ImageCache
from cxr_desktop.worklist.reviews import ReviewStore
from cxr_desktop.worklist.rows import DONE, ERROR, QUEUED
from cxr_desktop.worklist.session import TriageSession

OTHER = np.ascontiguousarray(np.flipud(np.fliplr(CHEST)) // 2 + 60)  # patient B's film: another score


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine(load_bundle(tiny_bundle), device="cpu", batch_size=4)


def study_a(path):
    return write_dicom(path, CHEST, patient_id="PAT-A", patient_name="A^Alice")


def study_b(path):
    return write_dicom(path, OTHER, patient_id="PAT-B", patient_name="B^Bob")


def replace_with_b(path, tmp_path):
    """A PACS export rewriting ``path``: B written beside it, then renamed over it."""
    study_b(tmp_path / "incoming.tmp")
    os.replace(tmp_path / "incoming.tmp", path)


@pytest.fixture(scope="module")
def scores(engine, tmp_path_factory):
    """Each patient's score alone (the rows must carry these, never the other's)."""
    folder = tmp_path_factory.mktemp("alone")
    (a,), (b,) = engine.triage([study_a(folder / "a.dcm")]), engine.triage([study_b(folder / "b.dcm")])
    assert abs(a.probabilities["Cardiomegaly"] - b.probabilities["Cardiomegaly"]) > 1e-3
    return {"PAT-A": a.probabilities["Cardiomegaly"], "PAT-B": b.probabilities["Cardiomegaly"]}


def test_a_file_replaced_between_scan_and_scoring_is_scored_as_the_study_it_holds(engine, tmp_path, scores):
    folder = tmp_path / "studies"
    folder.mkdir()
    path = study_a(folder / "IM0001.dcm")
    session = TriageSession(engine)
    session.add_paths([folder])
    assert session.row(path).info.patient_id == "PAT-A"
    replace_with_b(path, tmp_path)  # between the scan (header) and the scoring (pixels)
    session.score_pending()
    row = session.row(path)
    assert row.status == DONE and (row.info.patient_id, row.info.patient_name) == ("PAT-B", "B^Bob")
    assert row.probabilities["Cardiomegaly"] == pytest.approx(scores["PAT-B"], abs=1e-5)


def test_cxr_triage_never_writes_one_patients_score_on_anothers_row(tiny_bundle, tmp_path, monkeypatch, scores):
    folder = tmp_path / "studies"
    folder.mkdir()
    path = study_a(folder / "IM0001.dcm")
    scoring = TriageSession.score_pending

    def swapped_then_scored(self, *args, **kwargs):
        replace_with_b(path, tmp_path)
        return scoring(self, *args, **kwargs)

    monkeypatch.setattr(TriageSession, "score_pending", swapped_then_scored)
    out = tmp_path / "out.csv"
    assert triage_main([str(folder), "--model", str(tiny_bundle), "--out", str(out), "--quiet"]) == 0
    (row,) = csv.DictReader(out.open(encoding="utf-8"))
    assert row["patient_id"] == "PAT-B"
    assert float(row["Cardiomegaly"]) == pytest.approx(scores["PAT-B"], abs=1e-5)


def test_the_viewer_never_shows_another_studys_pixels_under_a_row(engine, tmp_path, scores):
    """Once the bounded cache has let A's image go, the file (now B) is not shown under A's row: the decode
    says the file holds another study, asks for it to be read again, and the next scan makes it B's row,
    with A's review detached (kept in the store under A)."""
    folder = tmp_path / "studies"
    folder.mkdir()
    path = study_a(folder / "IM0001.dcm")
    write_dicom(folder / "IM0002.dcm", CHEST, patient_id="PAT-C")
    store = ReviewStore(tmp_path / "r.sqlite3")
    session = TriageSession(engine, reviews=store, cache=ImageCache(max_items=1))
    session.run([folder])
    session.review(path, "confirmed", "seen by A's reader")
    a_key = session.row(path).key
    session.image(folder / "IM0002.dcm")  # the one-image cache now holds C's, whatever order they were scored in
    assert path not in {key[0] for key in session.cache._images}  # A's image left the cache
    replace_with_b(path, tmp_path)
    asked = []
    session.events.files_changed.connect(asked.append)
    with pytest.raises(StudyReplaced):
        session.image(path)
    assert asked == [[path]] and session.row(path).info.patient_id == "PAT-A"  # A's row keeps A's score
    assert session.add_paths([folder]) == 1  # read again: only the changed file
    row = session.row(path)
    assert row.status == QUEUED and row.info.patient_id == "PAT-B" and row.review.decision == ""
    session.score_pending()
    row = session.row(path)
    assert row.probabilities["Cardiomegaly"] == pytest.approx(scores["PAT-B"], abs=1e-5)
    assert row.review.decision == "" and store.get(a_key).decision == "confirmed"
    assert session.image(path).shape == OTHER.shape
    assert len(session.rows_in_arrival()) == 2


def test_a_file_that_changes_while_it_is_read_is_not_scored_half_old(engine, tmp_path, monkeypatch):
    import cxr_desktop.studies.reader as reader

    folder = tmp_path / "studies"
    folder.mkdir()
    path = study_a(folder / "IM0001.dcm")
    session = TriageSession(engine)
    session.add_paths([folder])
    real = reader.read_study

    def read_then_rewritten(p, *args):
        study = real(p, *args)
        replace_with_b(path, tmp_path)  # the file changes during the read
        return study

    monkeypatch.setattr(reader, "read_study", read_then_rewritten)
    session.score_pending()
    row = session.row(path)
    assert row.status == ERROR and "changed while it was read" in row.error


def unlistable(monkeypatch, folder):
    """``folder`` cannot be listed, as for a user without the permission (root lists anything, so the
    refusal is simulated where ``os.walk`` lists a folder)."""
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == os.fspath(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_folder_that_cannot_be_listed_gets_a_row_with_the_reason(engine, tmp_path, monkeypatch):
    top = tmp_path / "export"
    locked = top / "PAT123" / "STUDY1"
    locked.mkdir(parents=True)
    study_a(locked / "IM0001.dcm")
    study_b(top / "IM0002.dcm")
    unlistable(monkeypatch, locked)
    session = TriageSession(engine)
    rows = {row.path: row for row in session.run([top])}
    assert rows[locked].status == ERROR and "cannot list folder (Permission denied)" in rows[locked].error
    assert rows[top / "IM0002.dcm"].status == DONE
    assert summary(list(rows.values()))[0].endswith("1 errors") and "1 folder could not be listed" in "".join(
        summary(list(rows.values()))
    )
    export_csv(session.snapshot().rows, tmp_path / "export.csv")  # the app's export has it too
    exported = {row["path"]: row for row in csv.DictReader((tmp_path / "export.csv").open(encoding="utf-8"))}
    assert exported[str(locked)]["status"] == "error" and "cannot list folder" in exported[str(locked)]["error"]
    monkeypatch.undo()  # the folder can be listed now: its row goes, its study comes
    session.add_paths([top])
    session.score_pending()
    rows = {row.path: row for row in session.rows_in_arrival()}
    assert locked not in rows and rows[locked / "IM0001.dcm"].status == DONE


def test_cxr_triage_lists_and_counts_an_unlistable_folder(tiny_bundle, tmp_path, monkeypatch, capsys):
    top = tmp_path / "export"
    locked = top / "PAT9"
    locked.mkdir(parents=True)
    study_a(locked / "IM0001.dcm")
    study_b(top / "IM0002.dcm")
    unlistable(monkeypatch, locked)
    out = tmp_path / "out.csv"
    triage_main([str(top), "--model", str(tiny_bundle), "--out", str(out), "--quiet"])
    rows = {row["path"]: row for row in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows[str(locked)]["status"] == "error" and "cannot list folder" in rows[str(locked)]["error"]
    err = capsys.readouterr().err
    assert re.search(r"1 scored, \d+ urgent, \d+ check, 1 errors", err) and "1 folder could not be listed" in err


def test_a_file_that_cannot_be_opened_is_listed_with_its_reason_even_without_a_suffix(engine, tmp_path, monkeypatch):
    """``IM0001`` (no suffix: a study only by its DICOM preamble) that cannot be opened was dropped unseen."""
    import cxr_desktop.studies.reader as reader

    locked = study_a(tmp_path / "IM0001")
    real = os.open

    def refuse(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    assert reader.study_kind(locked) == "dicom"
    (row,) = TriageSession(engine).run([tmp_path])
    assert row.status == ERROR and row.error == "permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 folder: the simulated test above covers it")
def test_a_chmod_000_folder_gets_a_row(engine, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    study_a(locked / "IM0001.dcm")
    locked.chmod(0)
    try:
        (row,) = TriageSession(engine).run([tmp_path])
    finally:
        locked.chmod(0o755)
    assert row.path == locked and "cannot list folder" in row.error


def test_studies_in_a_linked_folder_are_listed_and_a_link_loop_is_listed_once(tmp_path):
    """A link to a folder (a mounted share, a day folder) is followed: its studies get rows; a link back to a
    folder already listed is not followed again (no endless walk, no study listed twice)."""
    real = tmp_path / "real"
    real.mkdir()
    write_dicom(real / "IM0001.dcm", synthetic_chest(64, seed=4), patient_id="LINKED")
    top = tmp_path / "top"
    top.mkdir()
    write_dicom(top / "plain.dcm", synthetic_chest(64, seed=5), patient_id="PLAIN")
    (top / "linked_folder").symlink_to(real, target_is_directory=True)
    (real / "back_to_top").symlink_to(top, target_is_directory=True)  # a loop through the link
    found = list(iter_scan([top]))
    assert sorted(e.info.patient_id for e in found if e.info) == ["LINKED", "PLAIN"]
    assert not [e for e in found if e.error]
