"""Hardening round 3 (issue 22, items 7 to 10): cxr-triage's outputs are checked before any study is scored,
never half-written (a full disk is simulated by a write that raises ENOSPC), every heatmap that could not be
written is counted and named, and a wrong --nih-labels file is a clear error."""

import csv
import errno
import gzip
import os

import pytest
from conftest import make_tiny_bundle

from cxr_desktop import cli
from cxr_desktop.inference.engine import Engine
from cxr_desktop.studies.nih import NihTableError, read_nih_table
from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom

FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def always(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("outs") / "always", cardiomegaly_threshold=1e-6)


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    folder = tmp_path_factory.mktemp("studies")
    for i in range(3):
        write_dicom(folder / f"s{i}.dcm", synthetic_chest(128, seed=i))
    return folder


@pytest.fixture()
def never_scored(monkeypatch):
    """Fails the test if any study reaches the model: the problem must be found before scoring."""

    def forbidden(*_args, **_kwargs):
        raise AssertionError("a study was scored although the outputs were wrong")

    monkeypatch.setattr(Engine, "score_batches", forbidden)


def _run(*args):
    return cli.main([*map(str, args), "--quiet"])


@pytest.mark.parametrize(
    "where, expected",
    [
        (lambda t, s: ["--out", t], "is a folder"),
        (lambda t, s: ["--out", t / "missing" / "x.csv"], "does not exist"),
        (lambda t, s: ["--heatmaps", t / "file.txt"], "is a file"),
        (lambda t, s: ["--heatmaps", t / "file.txt" / "below"], "cannot make the folder"),
        (lambda t, s: ["--out", s / "s0.dcm"], "names a study file"),  # would overwrite a study
        (lambda t, s: ["--out", t / "results.png"], "names a study file"),
        (lambda t, s: ["--heatmaps", s / "maps"], "inside"),  # read back as studies next time
        (lambda t, s: ["--dicom-out", s / "sr"], "inside"),
    ],
    ids=[
        "out-is-a-folder",
        "out-in-a-missing-folder",
        "heatmaps-is-a-file",
        "heatmaps-under-a-file",
        "out-is-an-input-study",
        "out-is-an-image-name",
        "heatmaps-inside-the-input",
        "dicom-out-inside-the-input",
    ],
)
def test_wrong_outputs_are_said_before_scoring(tmp_path, always, studies, never_scored, capsys, where, expected):
    (tmp_path / "file.txt").write_text("x")
    before = {p.name: p.read_bytes() for p in studies.iterdir()}
    assert _run(studies, "--model", always, *where(tmp_path, studies)) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in studies.iterdir()} == before, "the studies are left as they were"


def _full_after(rows, monkeypatch):
    """csv.DictWriter.writerow raises ENOSPC after ``rows`` rows: the disk fills in the middle of the CSV."""
    real, written = csv.DictWriter.writerow, []

    def writerow(self, row):
        if len(written) >= rows:
            raise FULL
        written.append(row)
        return real(self, row)

    monkeypatch.setattr(csv.DictWriter, "writerow", writerow)


def test_a_full_disk_leaves_the_previous_csv_and_a_non_zero_exit(tmp_path, always, studies, monkeypatch, capsys):
    out = tmp_path / "triage.csv"
    out.write_text("the previous run\n")
    _full_after(1, monkeypatch)
    assert _run(studies, "--model", always, "--out", out) == 1
    assert out.read_text() == "the previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["triage.csv"]  # no temporary file left behind
    err = capsys.readouterr().err
    assert f"could not write {out}" in err and "No space left on device" in err and "previous file is kept" in err


def test_a_full_disk_on_a_new_csv_leaves_nothing(tmp_path, always, studies, monkeypatch, capsys):
    out = tmp_path / "new.csv"
    _full_after(2, monkeypatch)
    assert _run(studies, "--model", always, "--out", out) == 1
    assert list(tmp_path.iterdir()) == [] and "nothing was written" in capsys.readouterr().err


def test_a_complete_csv_replaces_the_old_one_with_its_mode(tmp_path, always, studies):
    out = tmp_path / "triage.csv"
    out.write_text("old\n")
    out.chmod(0o640)
    assert _run(studies, "--model", always, "--out", out) == 0
    assert len(list(csv.DictReader(out.open()))) == 3 and (out.stat().st_mode & 0o777) == 0o640


def test_heatmaps_that_could_not_be_written_are_counted_and_named(tmp_path, always, studies, monkeypatch, capsys):
    heat = tmp_path / "heat"
    monkeypatch.setattr(os, "fsync", lambda _fd: (_ for _ in ()).throw(FULL))  # the disk fills at each flush
    assert _run(studies, "--model", always, "--out", tmp_path / "t.csv", "--heatmaps", heat) == 1
    err = capsys.readouterr().err
    assert "3 of 3 heatmaps NOT written" in err and all(f"s{i}.dcm: No space left" in err for i in range(3))
    assert list(heat.iterdir()) == []  # no half-written PNG
    assert not (tmp_path / "t.csv").exists()  # the CSV met the same full disk


@pytest.mark.parametrize(
    "content, expected",
    [
        ("# README\n\nNot a table.\n", "not an NIH Data_Entry label file"),
        ("path,label\na.png,1\n", "no 'Image Index'"),
        (b"\x1f\x8b\x08\x00garbage", "cannot read the NIH label file"),
        ("Image Index,Finding Labels,Patient ID,View Position,Follow-up #\na.png,x,1,PA,zero\n", "malformed"),
    ],
    ids=["readme", "other-csv", "broken-gzip", "bad-follow-up"],
)
def test_a_wrong_nih_labels_file_is_a_clear_error(tmp_path, always, studies, never_scored, capsys, content, expected):
    path = tmp_path / ("labels.csv.gz" if isinstance(content, bytes) else "labels.csv")
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(NihTableError, match=expected):
        read_nih_table(path)
    assert _run(studies, "--model", always, "--nih-labels", path) == 2
    err = capsys.readouterr().err
    assert expected in err and "KeyError" not in err and "Traceback" not in err


def test_a_gzipped_nih_table_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "Data_Entry.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8-sig") as handle:
        handle.write("Image Index,Finding Labels,Patient ID,View Position\nx.png,No Finding,7,pa\n")
    assert read_nih_table(path)["x.png"].view_position == "PA"


# -- the app's export (item 16) ------------------------------------------------------------------------


def test_the_app_export_explains_each_row_and_is_written_whole(tmp_path, monkeypatch):
    from pathlib import Path

    from cxr_desktop.studies.study import StudyInfo
    from cxr_desktop.worklist.export import COLUMNS, export_csv
    from cxr_desktop.worklist.rows import CHECK, DONE, ERROR, Row

    info = StudyInfo(Path("a.png"), "raster", "sha1:a", patient_id="P1")
    doubted = Row(Path("a.png"), 0, 0.0, info, DONE, probabilities={"Cardiomegaly": 0.9}, check=True)
    doubted.quality = "probably inverted"
    plain = Row(Path("b.png"), 1, 0.0, info, DONE, probabilities={"Cardiomegaly": 0.1})
    failed = Row(Path("c.png"), 2, 0.0, None, ERROR, error="file is empty")
    out = tmp_path / "export.csv"
    export_csv([doubted, plain, failed], out, threshold=0.305)
    records = list(csv.DictReader(out.open()))
    assert {"quality", "cardiomegaly_threshold", "priority"} <= set(COLUMNS)
    assert [r["quality"] for r in records] == ["probably inverted", "unchecked", ""]
    assert [r["priority"] for r in records] == [CHECK, "routine", ""]
    assert {r["cardiomegaly_threshold"] for r in records} == {"0.305000"}
    _full_after(1, monkeypatch)
    with pytest.raises(OSError):
        export_csv([doubted, plain, failed], out, threshold=0.305)
    assert len(list(csv.DictReader(out.open()))) == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["export.csv"]


def test_the_benchmark_study_folder_says_what_it_needs_without_the_shared_data(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from study_folder import build_folder

    with pytest.raises(SystemExit, match="needs the shared real data at .*images-1024"):
        build_folder(tmp_path, 10, tmp_path / "nothing")
