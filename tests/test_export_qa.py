"""The exported worklist is a QA record (issue 23, item 7): each decision's reader and time, the model id and
fingerprint and the operating point; an undone decision has no reader."""

import csv
from pathlib import Path

from cxr_desktop.studies.study import StudyInfo
from cxr_desktop.worklist.audit import ReaderLog
from cxr_desktop.worklist.export import COLUMNS, QA_COLUMNS, QaRecord, export_csv
from cxr_desktop.worklist.rows import DONE, Review, Row


def row(name: str, decision: str = "") -> Row:
    info = StudyInfo(Path(name), "raster", f"sha1:{name}", patient_id="P1")
    return Row(Path(name), 0, 0.0, info, DONE, probabilities={"Cardiomegaly": 0.5}, review=Review(decision, ""))


def test_the_latest_decision_of_a_study_names_its_reader_and_an_undone_one_none(tmp_path):
    log = ReaderLog(tmp_path / "reviews.sqlite3")
    log.record("a", "confirmed", "dr. one", at=100.0)
    log.record("a", "dismissed", "dr. two", at=200.0)
    log.record("b", "confirmed", "dr. one", at=150.0)
    log.record("b", "", "dr. one", at=160.0)  # undone
    latest = log.latest(["a", "b", "c"])
    assert set(latest) == {"a"} and latest["a"].reader == "dr. two" and latest["a"].at == 200.0
    assert latest["a"].iso == "1970-01-01T00:03:20+00:00"
    log.close()


def test_the_app_export_carries_the_qa_columns(tmp_path):
    decided, open_ = row("a.png", "confirmed"), row("b.png")
    log = ReaderLog(tmp_path / "reviews.sqlite3")
    log.record(decided.key, "confirmed", "dr. one", at=1_700_000_000.0)
    qa = QaRecord(log.latest([decided.key]), "cxr-model", "fb9d6c2105aa", "youden")
    export_csv([decided, open_], tmp_path / "out.csv", qa)
    with open(tmp_path / "out.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        records = list(reader)
    assert reader.fieldnames == COLUMNS + QA_COLUMNS
    assert records[0]["reader"] == "dr. one" and records[0]["decided_at"] == "2023-11-14T22:13:20+00:00"
    assert records[1]["reader"] == "" and records[1]["decided_at"] == ""
    assert {r["model_fingerprint"] for r in records} == {"fb9d6c2105aa"}
    assert {r["model_id"] for r in records} == {"cxr-model"} and {r["operating_point"] for r in records} == {"youden"}
