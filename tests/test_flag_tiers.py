"""The app never hides or invents a flag (issue 21): a score at or above the threshold on a film the input check
doubts is a CHECK tier of its own, right below URGENT; a model without an external validation record flags
nothing (research mode) unless flags are allowed; the CLI and the session give the same tiers."""

import csv
import json
import math
import shutil
from pathlib import Path

import cv2
import pytest
from conftest import table_shows_session
from PySide6.QtCore import Qt

from cxr_desktop.cli import main as triage_main
from cxr_desktop.core import bundle as B
from cxr_desktop.core.guard import LATERAL, OK
from cxr_desktop.core.preprocess import to_uint8
from cxr_desktop.core.resources import default_model_dir, demo_dir
from cxr_desktop.inference.engine import Engine, StudyResult
from cxr_desktop.inference.triage import TriagePolicy
from cxr_desktop.studies.reader import read_study
from cxr_desktop.studies.study import StudyInfo
from cxr_desktop.ui.app import build_parser
from cxr_desktop.ui.banner import UNVALIDATED_STYLE
from cxr_desktop.ui.main_window import MainWindow
from cxr_desktop.ui.worklist_model import CHECK_BG, CHECK_CUE, COLUMNS
from cxr_desktop.worklist.export import export_csv
from cxr_desktop.worklist.order import QueueEntry, priority_order
from cxr_desktop.worklist.reviews import ReviewStore
from cxr_desktop.worklist.rows import CHECK, LATERAL_NOTE, ROUTINE, URGENT, Worklist
from cxr_desktop.worklist.session import TriageSession

ROTATED, INVERTED = "probably rotated", "probably inverted polarity"
CARDIOMEGALY_DEMOS = ["demo_02.dcm", "demo_07.dcm", "demo_09.dcm"]  # NIH-labelled cardiomegaly, scored high
NORMAL_DEMOS = ["demo_01.dcm", "demo_04.dcm"]


# -- reading order and tiers, pure Python ----------------------------------------------------------------------


def test_check_studies_come_right_below_urgent_ones_by_score():
    entries = [
        QueueEntry(0, 100.0, urgent=False),  # routine, first to arrive
        QueueEntry(1, 101.0, urgent=False, score=0.5, check=True),
        QueueEntry(2, 102.0, urgent=True, score=0.4),
        QueueEntry(3, 103.0, urgent=False, score=0.9, check=True),
        QueueEntry(4, 104.0, urgent=True, score=0.8),
        QueueEntry(5, 0.0, urgent=False),  # has waited past the cap
        QueueEntry(6, 106.0, urgent=False, score=math.nan, check=True),  # no score: last of its tier
    ]
    assert priority_order(entries, now=110.0, max_wait_s=60.0) == [5, 4, 2, 3, 1, 6, 0]
    assert priority_order(entries, now=110.0, max_wait_s=None) == [4, 2, 3, 1, 6, 0, 5]


def result(path: Path, score: float, quality: str = OK) -> StudyResult:
    return StudyResult(path, None, {"Cardiomegaly": score}, quality=quality)


def tiered(tmp_path: Path, policy: TriagePolicy) -> Worklist:
    worklist = Worklist(policy=policy)
    studies = [
        ("urgent.dcm", 0.8, OK),
        ("rotated-high.dcm", 0.9, ROTATED),
        ("inverted-high.dcm", 0.6, INVERTED),
        ("rotated-low.dcm", 0.1, ROTATED),
        ("lateral-high.dcm", 0.95, LATERAL),
        ("routine.dcm", 0.2, OK),
    ]
    for name, score, quality in studies:
        view = "LL" if quality == LATERAL else "PA"
        worklist.add(tmp_path / name, StudyInfo(tmp_path / name, "dicom", name, view_position=view))
        worklist.apply(result(tmp_path / name, score, quality))
    worklist.add(tmp_path / "broken.dcm", error="truncated file")
    return worklist


def test_a_doubtful_film_with_a_high_score_is_a_check_row_and_stays_visible(tmp_path):
    worklist = tiered(tmp_path, TriagePolicy("Cardiomegaly", 0.5, "p"))
    rows = {row.path.name: row for row in worklist.rows}
    tiers = {name: row.priority for name, row in rows.items()}
    assert tiers == {
        "urgent.dcm": URGENT,
        "rotated-high.dcm": CHECK,
        "inverted-high.dcm": CHECK,
        "rotated-low.dcm": ROUTINE,
        "lateral-high.dcm": CHECK,  # outside the model's scope, or a wrong view tag: never buried
        "routine.dcm": ROUTINE,
        "broken.dcm": "",  # not scored: status=error says why
    }
    assert rows["rotated-high.dcm"].warnings[0] == f"CHECK — score above threshold, input doubtful: {ROTATED}"
    assert not rows["rotated-high.dcm"].urgent and not rows["rotated-high.dcm"].quality_note
    assert "can neither flag nor rule out" in rows["rotated-low.dcm"].quality_note  # a low score does not reassure
    assert not rows["rotated-low.dcm"].check_note
    assert rows["lateral-high.dcm"].warnings == [
        f"CHECK — score above threshold, input doubtful: {LATERAL}",
        LATERAL_NOTE,
    ]
    assert rows["lateral-high.dcm"].check and not rows["lateral-high.dcm"].urgent
    order = [row.path.name for row in worklist.ordered(now=rows["urgent.dcm"].arrived_at)]
    assert order[0] == "urgent.dcm"
    assert set(order[1:4]) == {"lateral-high.dcm", "rotated-high.dcm", "inverted-high.dcm"}
    assert worklist.counts()[URGENT] == 1 and worklist.counts()[CHECK] == 3


def test_changing_the_operating_point_re_tiers_at_once(tmp_path):
    worklist = tiered(tmp_path, TriagePolicy("Cardiomegaly", 0.5, "p"))
    assert worklist.set_policy(TriagePolicy("Cardiomegaly", 0.85, "strict")) == 0
    tiers = {row.path.name: row.priority for row in worklist.rows}
    assert (
        tiers["urgent.dcm"] == ROUTINE and tiers["rotated-high.dcm"] == CHECK and tiers["inverted-high.dcm"] == ROUTINE
    )
    assert {row.path.name for row in worklist.ordered()[:2]} == {"rotated-high.dcm", "lateral-high.dcm"}
    worklist.set_policy(TriagePolicy("Cardiomegaly", 0.05, "lenient"))
    assert sum(row.check for row in worklist.rows) == 4  # the rotated film below 0.5 is now CHECK too


# -- research mode, pure Python --------------------------------------------------------------------------------


def card(validated: list[str] | None) -> B.ModelCard:
    return B.ModelCard(
        model_id="m",
        architecture="resnet18",
        operating_points={"p": {"Cardiomegaly": 0.5}},
        default_operating_point="p",
        validated_findings=validated,
    )


@pytest.mark.parametrize("validated", [None, [], ["Effusion"]])
def test_a_model_without_validation_of_its_urgent_finding_flags_nothing(tmp_path, validated):
    policy = TriagePolicy.from_card(card(validated))
    assert policy.research_mode and not policy.is_urgent({"Cardiomegaly": 0.99})
    assert policy.mode_note.startswith("Research mode: this model has no external validation record")
    worklist = tiered(tmp_path, policy)
    assert {row.priority for row in worklist.rows} == {ROUTINE, ""}
    assert worklist.counts()[URGENT] == worklist.counts()[CHECK] == 0
    assert all(row.probabilities for row in worklist.rows if row.status == "done"), "scores are still shown"
    allowed = TriagePolicy.from_card(card(validated), allow_unvalidated=True)
    assert allowed.flags and "UNVALIDATED" in allowed.mode_note
    assert worklist.set_policy(allowed) == 1 and worklist.counts()[CHECK] == 3


def _record(low: float = 0.8, copies: int = 0, excluded: int = 0) -> dict:
    result = {"n": 500, "positives": 20, "auroc": 0.9, "auroc_ci95": [low, 0.95]}
    overlap = {"training_copies": copies, "excluded": excluded}
    return {"validation_check": "ext", "checks": {"ext": {"findings": {"Cardiomegaly": result}, "overlap": overlap}}}


@pytest.mark.parametrize(
    ("metrics", "why"),
    [
        ({}, "lists Cardiomegaly as validated but carries no validation record"),  # a claim re-sealed by hand
        ({"validation_check": "gone", "checks": {}}, "carries no validation record"),
        (_record(low=0.62), "does not show Cardiomegaly passing"),
        (_record(copies=5), "kept copies of its training images"),
        ({"validation_check": "ext", "checks": {"ext": {"findings": {"Cardiomegaly": {}}}}}, "cannot be read"),
    ],
    ids=["no-record", "record-missing", "lower-bound-below-floor", "copies-kept", "damaged-record"],
)
def test_a_claim_of_validation_without_its_record_is_research_mode(metrics, why):
    claimed = card(["Cardiomegaly"])
    claimed.metrics = metrics
    policy = TriagePolicy.from_card(claimed)
    assert policy.research_mode and not policy.is_urgent({"Cardiomegaly": 0.99})
    assert why in policy.mode_note and policy.mode_note.startswith("Research mode: ")
    allowed = TriagePolicy.from_card(claimed, allow_unvalidated=True)
    assert allowed.is_urgent({"Cardiomegaly": 0.99}) and why in allowed.mode_note


def test_a_claim_with_its_passing_record_flags():
    for metrics in (_record(), _record(copies=5, excluded=5)):  # copies found and left out: fine
        claimed = card(["Cardiomegaly"])
        claimed.metrics = metrics
        policy = TriagePolicy.from_card(claimed)
        assert policy.validated and policy.is_urgent({"Cardiomegaly": 0.99}) and policy.mode_note == ""


def test_the_shipped_model_is_validated_and_flags():
    policy = TriagePolicy.from_card(B.read_card(default_model_dir()))
    assert policy.validated and policy.flags and policy.mode_note == ""


def test_the_score_is_called_a_score():
    policy = TriagePolicy("Cardiomegaly", 0.23, "p")
    assert policy.score_text({"Cardiomegaly": 0.4321}) == "Cardiomegaly score 0.43 (flag at ≥ 0.23)"
    assert policy.score_text({}) == ""
    research = TriagePolicy("Cardiomegaly", 0.23, "p", validated=False)
    assert research.score_text({"Cardiomegaly": 0.4}).endswith("research mode: no flag)")


def test_the_app_export_has_the_priority_column(tmp_path):
    worklist = tiered(tmp_path, TriagePolicy("Cardiomegaly", 0.5, "p"))
    export_csv(worklist.ordered(), tmp_path / "w.csv")
    with open(tmp_path / "w.csv", newline="") as handle:
        exported = {Path(r["path"]).name: r["priority"] for r in csv.DictReader(handle)}
    assert exported["rotated-high.dcm"] == "check" and exported["urgent.dcm"] == "urgent"
    assert exported["broken.dcm"] == "" and exported["routine.dcm"] == "routine"


# -- the shipped model, validated or not: cxr-triage and the session -------------------------------------------


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    """Five demo radiographs and demo_02 (cardiomegaly) with inverted polarity: the guard doubts it, its score
    stays above the threshold."""
    folder = tmp_path_factory.mktemp("tier-studies")
    for name in CARDIOMEGALY_DEMOS + NORMAL_DEMOS:
        (folder / name).symlink_to(demo_dir() / name)
    gray = to_uint8(read_study(demo_dir() / "demo_02.dcm").image)
    cv2.imwrite(str(folder / "demo_02-inverted.png"), 255 - gray)
    return folder


@pytest.fixture(scope="module")
def unvalidated(tmp_path_factory) -> Path:
    """The shipped bundle's files with a card that has no external validation record (resealed: as a bundle
    just exported by ``cxr-train export`` would be)."""
    folder = tmp_path_factory.mktemp("unvalidated") / "bundle"
    shutil.copytree(default_model_dir(), folder)
    data = json.loads((folder / B.CARD_NAME).read_text())
    data["validated_findings"] = None
    B.write_card(folder, data)
    return folder


def triage(tmp_path: Path, studies: Path, *extra: str) -> dict[str, dict[str, str]]:
    out = tmp_path / f"t{len(list(tmp_path.glob('*.csv')))}.csv"
    assert triage_main([str(studies), "--out", str(out), "--quiet", "--device", "cpu", *extra]) == 0
    with open(out, newline="") as handle:
        return {Path(r["path"]).name: r for r in csv.DictReader(handle)}


def test_cxr_triage_writes_priority_and_counts_check_studies(tmp_path, studies, capsys):
    rows = triage(tmp_path, studies)
    assert rows["demo_02-inverted.png"]["priority"] == "check" and rows["demo_02-inverted.png"]["urgent"] == "0"
    assert rows["demo_02-inverted.png"]["quality"] == INVERTED
    assert all(rows[name]["priority"] == "urgent" for name in CARDIOMEGALY_DEMOS)
    assert all(rows[name]["priority"] == "routine" for name in NORMAL_DEMOS)
    err = capsys.readouterr().err
    assert "6 scored, 3 urgent, 1 check, 0 errors" in err and "1 CHECK studies" in err
    assert "Research mode" not in err and "UNVALIDATED" not in err


def test_an_unvalidated_bundle_runs_cxr_triage_in_research_mode(tmp_path, studies, unvalidated, capsys):
    rows = triage(tmp_path, studies, "--model", str(unvalidated))
    assert all(r["urgent"] == "0" and r["priority"] == "routine" for r in rows.values())
    assert all(float(r["Cardiomegaly"]) >= 0 for r in rows.values()), "scores are still written"
    err = capsys.readouterr().err
    assert "Research mode: this model has no external validation record for Cardiomegaly" in err
    assert "0 urgent, 0 check" in err and "--allow-unvalidated flags anyway" in err

    allowed = triage(tmp_path, studies, "--model", str(unvalidated), "--allow-unvalidated")
    assert {name: r["priority"] for name, r in allowed.items()} == {
        **{name: "urgent" for name in CARDIOMEGALY_DEMOS},
        **{name: "routine" for name in NORMAL_DEMOS},
        "demo_02-inverted.png": "check",
    }
    err = capsys.readouterr().err
    assert "Flagging with an UNVALIDATED model" in err and "flags allowed by --allow-unvalidated" in err


def test_the_session_decides_research_mode_and_re_flags_when_allowed(studies, unvalidated):
    session = TriageSession(Engine.from_path(unvalidated, device="cpu"))
    changed = []
    session.events.policy_changed.connect(changed.append)
    session.run([studies])
    assert session.policy.research_mode and session.counts()[URGENT] == session.counts()[CHECK] == 0
    assert session.set_allow_unvalidated(True) == len(CARDIOMEGALY_DEMOS)
    assert session.counts()[CHECK] == 1 and changed[-1].flags
    assert [row.priority for row in session.snapshot().rows][:4] == [URGENT] * 3 + [CHECK]
    session.set_operating_point(session.policy.operating_point)  # a new operating point keeps the choice
    assert session.counts()[URGENT] == len(CARDIOMEGALY_DEMOS)
    assert session.set_allow_unvalidated(False) == 0 and session.counts()[CHECK] == 0


# -- the app -----------------------------------------------------------------------------------------------------


def open_window(qtbot, bundle: Path, tmp_path: Path, folder: Path) -> MainWindow:
    window = MainWindow(bundle, ReviewStore(tmp_path / "reviews.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    window.open_paths([str(folder)])
    count = len(list(folder.iterdir()))
    session = window.session
    qtbot.waitUntil(lambda: len(session.rows_in_arrival()) == count and session.counts()["queued"] == 0, timeout=60_000)
    qtbot.waitUntil(lambda: table_shows_session(window), timeout=10_000)
    return window


def test_the_app_says_research_mode_and_shows_a_check_row_once_flags_are_allowed(qtbot, tmp_path, studies, unvalidated):
    assert build_parser().parse_args(["--allow-unvalidated"]).allow_unvalidated
    window = open_window(qtbot, unvalidated, tmp_path, studies)
    model, priority = window.model, COLUMNS.index("Priority")
    qtbot.waitUntil(window.mode_banner.isVisible, timeout=5_000)
    assert window.mode_banner.text().startswith("Research mode: this model has no external validation record")
    assert not window.allow_unvalidated_action.isChecked()
    assert {model.text(row, priority) for row in model.visible} <= {"", "⚠ input"}
    assert "Research mode" in window.findings.model_label.text()

    window.allow_unvalidated_action.trigger()  # Settings ▸ Flag with an unvalidated model: re-tiered at once
    assert "UNVALIDATED" in window.mode_banner.text() and UNVALIDATED_STYLE == window.mode_banner.styleSheet()
    flags = [model.text(row, priority) for row in model.visible][:5]
    assert flags == ["Suspected cardiomegaly"] * 3 + ["Check film", ""]
    check = model.visible[3]
    assert check.path.name == "demo_02-inverted.png"
    reason = f"input doubtful: {INVERTED}"
    assert model.text(check, COLUMNS.index("Other findings")) == f"⚠ {INVERTED}"
    assert f"CHECK — score above threshold, {reason}" in model.data(model.index(3, 0), Qt.ItemDataRole.ToolTipRole)
    assert model.data(model.index(3, 1), Qt.ItemDataRole.BackgroundRole).color() == CHECK_BG
    assert model.data(model.index(3, 0), Qt.ItemDataRole.BackgroundRole).color() == CHECK_CUE  # the Flag cell
    assert "1 check" in window.counts_label.text()

    window.table.selectRow(3)
    qtbot.waitUntil(lambda: window.current is not None and window.current.path == check.path, timeout=5_000)
    title = window.findings.title.text()
    flag_at = f"(flag at ≥ {window.session.policy.threshold:.2f})"
    assert "Cardiomegaly score 0." in title and flag_at in title and "CHECK — score above" in title
    window.urgent_only.setChecked(True)  # a flag is never hidden: the CHECK row stays under "Urgent only"
    assert [row.path.name for row in model.visible][3:] == ["demo_02-inverted.png"]

    window.allow_unvalidated_action.trigger()  # back to research mode
    assert window.mode_banner.text().startswith("Research mode") and model.visible == []
