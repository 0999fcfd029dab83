"""The bad-input catalogue (tests/bad_inputs.py) through `cxr-triage` and through the app's worklist: every
kind gets its specific reason, nothing crashes or stalls, and the good studies beside them are scored."""

import csv
import shutil

import pytest
from bad_inputs import CASES, build_catalogue

from cxr_desktop.cli import main as triage_main
from cxr_desktop.core.bundle import load_bundle
from cxr_desktop.inference.engine import Engine
from cxr_desktop.studies import raster
from cxr_desktop.studies.reader import read_header
from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom
from cxr_desktop.ui.main_window import MainWindow
from cxr_desktop.worklist.reviews import ReviewStore
from cxr_desktop.worklist.rows import DONE, ERROR


def csv_name(path) -> str:
    """The path as cxr-triage writes it (undecodable name bytes escaped)."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory, nih_sample):
    folder = tmp_path_factory.mktemp("catalogue")
    cases = build_catalogue(folder)
    good = [write_dicom(folder / "good.dcm", synthetic_chest(512, seed=3))]
    for source in sorted((nih_sample / "images").glob("*.png"))[:2]:
        good.append(folder / source.name)
        shutil.copy(source, good[-1])
    return folder, cases, good


def check(kind: str, reason: str, status: str, error: str) -> None:
    if reason:
        assert status == "error" and reason.lower() in error.lower(), f"{kind}: {status} {error!r}"
    else:
        assert status == "ok" and not error, f"{kind}: {status} {error!r}"


def test_catalogue_has_at_least_25_refused_kinds():
    assert len({c.kind for c in CASES if c.reason}) >= 25


def test_cxr_triage_gives_every_bad_file_its_reason(catalogue, tiny_bundle, tmp_path):
    folder, cases, good = catalogue
    out = tmp_path / "triage.csv"
    assert triage_main([str(folder), "--model", str(tiny_bundle), "--out", str(out), "--quiet"]) == 0
    rows = {r["path"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    for path, case in cases.items():
        row = rows[csv_name(path)]
        check(case.kind, case.reason, row["status"], row["error"])
    for path in good:
        assert rows[str(path)]["status"] == "ok" and float(rows[str(path)]["Cardiomegaly"]) >= 0
    assert len(rows) == len(cases) + len(good) + 1  # + the second file of the symlink loop


def test_the_worklist_gives_every_bad_file_its_reason(qtbot, catalogue, tiny_bundle, tmp_path):
    folder, cases, good = catalogue
    window = MainWindow(tiny_bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    window.open_paths([str(folder)])
    total = len(cases) + len(good) + 1
    qtbot.waitUntil(
        lambda: len(window.session.rows_in_arrival()) == total and window.session.counts()["queued"] == 0,
        timeout=120_000,
    )
    by_path = {row.path: row for row in window.session.rows_in_arrival()}
    for path, case in cases.items():
        row = by_path[path]
        check(case.kind, case.reason, "error" if row.status == ERROR else "ok" * (row.status == DONE), row.error)
    assert all(by_path[path].status == DONE for path in good)
    qtbot.wait(300)  # a refresh tick renders every row's text, odd file names included
    assert window.model.rowCount() == total
    model = window.model
    texts = [model.data(model.index(r, c)) for r in range(total) for c in range(model.columnCount())]
    assert any("study_" in str(t) for t in texts)
    window.table.selectRow(model.index_of(by_path[next(p for p, c in cases.items() if isinstance(c.name, bytes))]))
    qtbot.wait(200)  # the viewer and findings panel show the oddly named study


def test_a_file_deleted_between_scan_and_read(tmp_path, tiny_bundle):
    path = write_dicom(tmp_path / "soon_gone.dcm", synthetic_chest(256))
    keep = write_dicom(tmp_path / "stays.dcm", synthetic_chest(256, seed=1))
    assert read_header(path).rows == 256  # scanned
    path.unlink()
    results = list(Engine(load_bundle(tiny_bundle), device="cpu").triage([path, keep]))
    assert results[0].error == "file no longer exists"
    assert results[1].ok


def test_permission_denied_is_reported(tmp_path, tiny_bundle, monkeypatch):
    """As root every file is readable, so the refusal of the OS is simulated where the reader opens files."""
    path = tmp_path / "locked.png"
    path.write_bytes(b"\x89PNG placeholder")

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(raster, "open_regular", refuse)
    (result,) = Engine(load_bundle(tiny_bundle), device="cpu").triage([path])
    assert result.error == "permission denied"
