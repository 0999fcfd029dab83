"""The worklist's cues and tools without a window (issue 23, items 5, 6, 8, 9): the flag named by what it is,
cue colours of at least 3:1 against the white list, the flagged share beside the operating point's, sorting by
a column and back to the reading order, search by patient, "not scored" when AI triage is off, and the same
patient's other films."""

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from cxr_desktop.inference.triage import PointRate, TriagePolicy
from cxr_desktop.studies.study import StudyInfo
from cxr_desktop.ui.status_text import ai_off_text, flag_share_text
from cxr_desktop.ui.worklist_model import (
    CHECK_CUE,
    COLUMNS,
    CUE_TEXT,
    OVERDUE_CUE,
    URGENT_CUE,
    WorklistModel,
)
from cxr_desktop.worklist.priors import prior_of, priors_text
from cxr_desktop.worklist.rows import DONE, QUEUED, Row
from cxr_desktop.worklist.session import Snapshot


def luminance(colour: QColor) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(colour.red()) + 0.7152 * channel(colour.green()) + 0.0722 * channel(colour.blue())


def contrast(a: QColor, b: QColor) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("cue", [URGENT_CUE, CHECK_CUE, OVERDUE_CUE])
def test_the_cue_colours_stand_out_from_the_white_list_and_carry_readable_text(cue):
    assert contrast(cue, QColor(255, 255, 255)) >= 3.0  # WCAG 2.1 non-text contrast
    assert contrast(cue, CUE_TEXT) >= 4.5  # the word on it, as text


def study(name: str, score: float | None, patient: str = "", urgent: bool = False, arrival: int = 0) -> Row:
    info = StudyInfo(Path(name), "raster", f"sha1:{name}", patient_id=patient, patient_name=f"Name {patient}")
    status = DONE if score is not None else QUEUED
    probabilities = {"Cardiomegaly": score} if score is not None else {}
    return Row(Path(name), arrival, float(arrival), info, status, probabilities=probabilities, urgent=urgent)


def snapshot(rows: list[Row]) -> Snapshot:
    counts = {"queued": 0, "done": len(rows), "error": 0, "urgent": sum(r.urgent for r in rows), "check": 0}
    return Snapshot(rows, frozenset(), counts, len(rows), len(rows), 100.0)


ROWS = [
    study("00000013_005.png", 0.9, "13", urgent=True, arrival=2),
    study("00000013_001.png", 0.4, "13", urgent=True, arrival=0),
    study("00000099_000.png", 0.1, "99", arrival=1),
]


def model_of(rows: list[Row]) -> WorklistModel:
    model = WorklistModel()
    model.set_scope("Cardiomegaly", ["Cardiomegaly"])
    model.refresh(snapshot(rows))
    return model


def test_the_flag_is_named_and_the_one_finding_model_has_a_note_column(qapp):
    model = model_of(ROWS)
    assert model.text(ROWS[0], 0) == "Suspected cardiomegaly" and model.text(ROWS[2], 0) == ""
    assert model.headerData(0, Qt.Orientation.Horizontal) == "Flag"
    assert model.headerData(COLUMNS.index("Other findings"), Qt.Orientation.Horizontal) == "Note"
    assert model.column_empty("Other findings") and not model.column_empty("Patient")


def test_sort_by_a_column_and_back_to_the_reading_order_and_search_by_patient(qapp):
    model = model_of(ROWS)
    reading = [r.path.name for r in model.visible]
    model.sort(COLUMNS.index("Score"), Qt.SortOrder.AscendingOrder)
    assert [r.probabilities["Cardiomegaly"] for r in model.visible] == [0.1, 0.4, 0.9]
    model.sort(COLUMNS.index("Patient"), Qt.SortOrder.DescendingOrder)
    assert model.visible[0].info.patient_id == "99"
    model.sort(0, Qt.SortOrder.AscendingOrder)
    assert [r.path.name for r in model.visible] == reading
    model.search = "name 99"
    model.refresh(snapshot(ROWS))
    assert [r.path.name for r in model.visible] == ["00000099_000.png"]
    dated = study("dated.dcm", 0.5, "7")
    dated.info.study_date = "20250303"
    model.search = "2025-03"  # a month of study dates
    model.refresh(snapshot([*ROWS, dated]))
    assert [r.path.name for r in model.visible] == ["dated.dcm"]


def test_the_study_s_own_age_is_told_apart_from_its_wait():
    from cxr_desktop.ui.worklist_model import study_age

    now = 1_700_000_000.0  # 2023-11-14
    assert study_age("20231114", now) == "today" and study_age("20231104", now) == "10 days"
    assert study_age("20230301", now) == "8 months" and study_age("20200101", now) == "3 years"
    assert study_age("", now) == "" and study_age("2023-11", now) == ""


def test_ai_off_says_not_scored_and_why(qapp):
    model = model_of([study("a.png", None)])
    model.ai_off = True
    assert model.text(model.visible[0], COLUMNS.index("Score")) == "not scored"
    text = ai_off_text("Cannot load model /m: /m is not a model bundle: card.json is missing")
    assert text.startswith("AI triage is off: /m is not a model bundle: card.json is missing.")


def test_the_flagged_share_is_shown_beside_the_operating_point_s_with_points_that_flag_fewer():
    policy = TriagePolicy("Cardiomegaly", 0.3, "sensitivity_0.95")
    rates = [
        PointRate("sensitivity_0.95", 0.3, 0.28, 0.95, 0.72, "external NIH report half, 556 images"),
        PointRate("youden", 0.39, 0.18, 0.9, 0.84, "external NIH report half, 556 images"),
    ]
    text = flag_share_text(snapshot(ROWS), policy, rates)
    assert text.startswith("Suspected cardiomegaly: 2 of 3 scored: 67% at or above the threshold;")
    assert "expected 28% at sensitivity 0.95" in text and "Fewer flags (Ctrl+P): Youden 18%" in text
    with_check = snapshot(ROWS)
    with_check.counts["check"] = 1  # a doubtful film above the threshold: not called suspected, but counted
    assert flag_share_text(with_check, policy, rates).startswith(
        "Suspected cardiomegaly: 2 of 3 scored, and 1 check film: 100% at or above the threshold;"
    )


def test_the_same_patient_s_films_are_linked_oldest_first():
    newer, older, other = ROWS
    assert prior_of(ROWS, newer) is older and prior_of(ROWS, older) is newer and prior_of(ROWS, other) is None
    assert priors_text(ROWS, newer, "Cardiomegaly").endswith("00000013_001.png (follow-up 1, score 0.40)")
    many = [study(f"00000013_{i:03d}.png", 0.1, "13", arrival=i) for i in range(10)]
    text = priors_text(many, many[9], "Cardiomegaly", most=3)
    assert "00000013_006.png" in text and "00000013_005.png" not in text and text.endswith("; 6 more")


def test_the_app_refuses_a_file_that_is_not_the_nih_table_before_any_window(tmp_path, capsys):
    from cxr_desktop.ui.app import main

    bad = tmp_path / "labels.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["--nih-labels", str(bad)]) == 2
    assert "cannot read the NIH label file" in capsys.readouterr().err
    assert main(["--nih-labels", str(tmp_path / "missing.csv.gz")]) == 2
