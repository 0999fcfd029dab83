"""Review store faults (issue 12, item 14) and review identity (item 8): a damaged store is kept and replaced
with a message, a store that cannot be written runs read-only with a banner, a lock never freezes the GUI,
every failed save is shown, and another patient's file reusing an instance UID never inherits a review."""

import os
import sqlite3
import time

import pytest
from conftest import table_shows_session
from hostile_inputs import CHEST

from cxr_desktop.studies.reader import read_header
from cxr_desktop.studies.synthetic import write_dicom
from cxr_desktop.ui.main_window import MainWindow
from cxr_desktop.ui.worklist_model import COLUMNS
from cxr_desktop.worklist.reviews import ReviewStore, ReviewStoreError
from cxr_desktop.worklist.rows import COLLISION_NOTE, ReviewId, Worklist


def fill(path, count):
    ReviewStore(path).close()  # the store's own schema, then the rows in one transaction (fast)
    db = sqlite3.connect(path)
    rows = [(f"v2:{i}", "confirmed", f"comment {i} " + "x" * 200, 0.0, f"sop:{i}", "p") for i in range(count)]
    db.executemany("INSERT INTO reviews VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()  # the last connection checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()


def test_a_store_that_is_not_a_database_is_kept_and_replaced(tmp_path):
    path = tmp_path / "reviews.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = ReviewStore(path)
    assert "damaged" in store.notice and not store.read_only
    (kept,) = tmp_path.glob("reviews.sqlite3.damaged-*[0-9]")
    assert kept.read_bytes() == b"this is not a database" * 100
    store.set("sop:1", "confirmed")
    assert store.get("sop:1").decision == "confirmed"


def test_corruption_in_the_middle_is_detected_and_what_can_be_read_is_recovered(tmp_path):
    path = tmp_path / "reviews.sqlite3"
    fill(path, 3000)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))
    store = ReviewStore(path)
    assert "damaged" in store.notice and "recovered" in store.notice
    assert len(list(tmp_path.glob("reviews.sqlite3.damaged-*[0-9]"))) == 1
    recovered = store.all()
    assert 0 < len(recovered) < 3000 and f"{len(recovered)} decisions were recovered" in store.notice
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.fixture
def read_only_store(tmp_path, monkeypatch):
    """A store that cannot be written: a read-only file for a user; as root (who writes anything) SQLite is
    made to open it read-only, which fails the same way."""
    path = tmp_path / "ro" / "reviews.sqlite3"
    path.parent.mkdir()
    store = ReviewStore(path)
    store.set("sop:old", "dismissed", "kept")
    store.close()
    if os.geteuid() != 0:
        path.chmod(0o444)
        path.parent.chmod(0o555)
    else:
        original = ReviewStore._connect
        monkeypatch.setattr(ReviewStore, "_connect", lambda self, read_only=False: original(self, read_only=True))
    yield path
    path.parent.chmod(0o755)


def test_a_read_only_store_reads_and_refuses_visibly(read_only_store):
    store = ReviewStore(read_only_store)
    assert store.read_only and "cannot be written" in store.notice
    assert store.get("sop:old").comment == "kept"
    with pytest.raises(ReviewStoreError, match="read-only"):
        store.set("sop:new", "confirmed")


def test_a_lock_costs_a_fraction_of_a_second_and_says_so(tmp_path):
    path = tmp_path / "reviews.sqlite3"
    store = ReviewStore(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    with pytest.raises(ReviewStoreError, match="locked by another program"):
        store.set("sop:1", "confirmed")
    assert time.monotonic() - started < 1.0
    other.execute("ROLLBACK")
    store.set("sop:1", "confirmed")
    assert store.get("sop:1").decision == "confirmed"


def _two_patients(tmp_path):
    a = write_dicom(tmp_path / "a.dcm", CHEST, patient_id="PAT-A")
    b = tmp_path / "b.dcm"
    import pydicom

    ds = pydicom.dcmread(a)
    ds.PatientID = "PAT-B"
    ds.save_as(b)
    return read_header(a), read_header(b)


def test_another_patients_file_with_the_same_instance_uid_does_not_inherit_the_review(tmp_path):
    info_a, info_b = _two_patients(tmp_path)
    assert info_a.study_key == info_b.study_key  # the same SOP Instance UID
    store = ReviewStore(tmp_path / "r.sqlite3")
    store.set(ReviewId.of(info_a), "dismissed", "old film")
    reviews, collisions = store.load([ReviewId.of(info_b)])
    assert reviews == {} and collisions == {ReviewId.of(info_b).key}
    reviews, collisions = store.load([ReviewId.of(info_a)])
    assert reviews[ReviewId.of(info_a).key].decision == "dismissed" and not collisions
    worklist = Worklist()
    rows = [worklist.add(info.path, info) for info in (info_a, info_b)]
    assert all(row.collision == COLLISION_NOTE for row in rows)


def test_a_review_of_an_older_store_is_taken_over_by_its_study(tmp_path):
    info_a, info_b = _two_patients(tmp_path)
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:  # the schema before reviews carried the patient
        old.execute("CREATE TABLE reviews (study_key TEXT PRIMARY KEY, decision TEXT, comment TEXT, updated REAL)")
        old.execute("INSERT INTO reviews VALUES (?, 'confirmed', 'legacy', 0)", (info_a.study_key,))
    store = ReviewStore(path)
    reviews, _ = store.load([ReviewId.of(info_a)])
    assert reviews[ReviewId.of(info_a).key].comment == "legacy"
    reviews, collisions = store.load([ReviewId.of(info_b)])
    assert reviews == {} and collisions == {ReviewId.of(info_b).key}


def open_window(qtbot, bundle, store, folder):
    window = MainWindow(bundle, store, device="cpu")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    window.open_paths([str(folder)])
    qtbot.waitUntil(
        lambda: bool(window.session.rows_in_arrival()) and window.session.counts()["queued"] == 0, timeout=60_000
    )
    # the table shows the worklist's rows at its next redraw: select only once they are there
    qtbot.waitUntil(lambda: table_shows_session(window), timeout=10_000)
    window.table.selectRow(0)
    qtbot.waitUntil(lambda: window.current is not None, timeout=5_000)
    return window


def test_the_app_runs_read_only_with_a_banner(qtbot, tiny_bundle, tmp_path, read_only_store):
    folder = tmp_path / "studies"
    folder.mkdir()
    write_dicom(folder / "a.dcm", CHEST)
    window = open_window(qtbot, tiny_bundle, ReviewStore(read_only_store), folder)
    assert window.banner.isVisible() and "Read-only" in window.banner.text()
    window.review("confirmed")
    assert window.current.review.decision == "" and "not saved" in window.banner.text()


def test_the_app_shows_a_lock_and_a_collision_without_freezing(qtbot, tiny_bundle, tmp_path):
    _two_patients(tmp_path)
    path = tmp_path / "r.sqlite3"
    window = open_window(qtbot, tiny_bundle, ReviewStore(path), tmp_path)
    assert all(row.collision for row in window.session.rows_in_arrival() if row.info)
    assert "ID clash" in window.model.text(window.current, COLUMNS.index("Review"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    window.review("confirmed")
    assert time.monotonic() - started < 1.0
    assert window.current.review.decision == "" and "locked" in window.banner.text()
    other.execute("ROLLBACK")
    decided = window.current
    window.review("confirmed")  # saved; the selection moves on to the next study
    assert window.session.row(decided.path).review.decision == "confirmed"
