"""Untrained and unvalidated findings are never presented as results: the card's finding scope (trained,
externally validated), the engine's per-study probabilities, the `cxr-triage` CSV and its stderr note, unique
heatmap names, and the app's findings panel."""

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import make_tiny_bundle, table_shows_session
from PySide6.QtGui import QColor

from cxr_desktop.cli import COLUMNS, heatmap_name
from cxr_desktop.cli import main as triage_main
from cxr_desktop.core import bundle as B
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.inference.engine import Engine
from cxr_desktop.inference.triage import TriagePolicy
from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom
from cxr_desktop.ui.findings_panel import OVER, FindingsPanel
from cxr_desktop.worklist.export import study_fields
from cxr_desktop.worklist.rows import Row

BINARY = ["Cardiomegaly"]
SCOPED_TRAINED = ["Cardiomegaly", "Effusion", "Edema"]


@pytest.fixture(scope="module")
def binary_bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("binary") / "b", trained_findings=BINARY)


@pytest.fixture(scope="module")
def scoped_bundle(tmp_path_factory) -> Path:
    """Three trained findings, two of them externally validated, Effusion research only."""
    folder = tmp_path_factory.mktemp("scoped") / "b"
    return make_tiny_bundle(folder, 1e-6, trained_findings=SCOPED_TRAINED, validated_findings=["Cardiomegaly", "Edema"])


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("studies")
    for i in range(3):
        write_dicom(folder / f"s{i}.dcm", synthetic_chest(128, heart_ratio=0.4 + 0.1 * i, seed=i))
    return folder


def edited(source: Path, tmp_path: Path, **changes) -> Path:
    """A copy of a bundle whose card has ``changes`` (the weights and their checksum are untouched), resealed
    with its integrity record: these tests are about what the card says, not about tampering."""
    folder = tmp_path / "edited"
    shutil.copytree(source, folder)
    data = json.loads((folder / B.CARD_NAME).read_text())
    data.update(changes)
    B.write_card(folder, data)
    return folder


# -- the card ----------------------------------------------------------------------------------------------


def test_older_cards_keep_working_with_all_findings_trained(tiny_bundle, tmp_path):
    data = json.loads((tiny_bundle / B.CARD_NAME).read_text())
    del data["trained_findings"], data["validated_findings"]
    folder = edited(tiny_bundle, tmp_path)
    B.write_card(folder, data)
    card = B.read_card(folder)
    assert card.trained_findings == list(FINDINGS) and card.validated_findings is None
    assert card.untrained_findings == [] and card.research_findings == [] and card.shown_findings == list(FINDINGS)


@pytest.mark.parametrize(
    ("with_labels", "trained"),
    [
        (["cardiomegaly"], ["Cardiomegaly"]),
        (["Effusion", "Cardiomegaly"], ["Cardiomegaly", "Effusion"]),
        (["Effusion"], list(FINDINGS)),
        ("Cardiomegaly", list(FINDINGS)),
    ],
)
def test_an_older_card_takes_its_trained_findings_from_provenance(tiny_bundle, tmp_path, with_labels, trained):
    """``cxr-train export`` has long recorded provenance.findings_with_labels; a card without
    trained_findings uses it when it names the urgent finding (else all 14, as before)."""
    folder = edited(tiny_bundle, tmp_path, provenance={"findings_with_labels": with_labels})
    data = json.loads((folder / B.CARD_NAME).read_text())
    del data["trained_findings"], data["validated_findings"]  # an older card has neither
    B.write_card(folder, data)
    assert B.read_card(folder).trained_findings == trained


def test_names_are_normalised_to_the_canonical_spelling_and_order(binary_bundle, tmp_path):
    folder = edited(
        binary_bundle,
        tmp_path,
        urgent_finding="cardiomegaly",
        trained_findings=["pleural thickening", "cardiomegaly", "EFFUSION"],
        validated_findings=["effusion", "Cardiomegaly"],
    )
    card = B.read_card(folder)
    assert card.urgent_finding == "Cardiomegaly"
    assert card.trained_findings == ["Cardiomegaly", "Effusion", "Pleural_Thickening"]
    assert card.validated_findings == ["Cardiomegaly", "Effusion"]
    assert card.research_findings == ["Pleural_Thickening"]
    assert card.shown_findings == ["Cardiomegaly", "Effusion"]
    assert len(card.untrained_findings) == 11 and "Atelectasis" in card.untrained_findings


def test_a_lowercase_urgent_finding_triages_without_a_key_error(scoped_bundle, studies, tmp_path):
    folder = edited(scoped_bundle, tmp_path, urgent_finding="cardiomegaly")  # Cardiomegaly threshold 1e-6
    engine = Engine.from_path(folder, device="cpu")
    assert engine.card.urgent_finding == engine.policy.finding == "Cardiomegaly" and engine.policy.threshold == 1e-6
    results = list(engine.triage(sorted(studies.glob("*.dcm"))))
    assert len(results) == 3 and all(r.ok and r.urgent for r in results)  # not silently never urgent


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trained_findings": ["Cardiomegaly", "Heart failure"]}, "unknown finding 'Heart failure'"),
        ({"trained_findings": ["Cardiomegaly", "cardiomegaly"]}, "names a finding twice"),
        ({"trained_findings": "Cardiomegaly"}, "must be a list"),
        ({"trained_findings": []}, "is empty"),
        ({"trained_findings": ["Effusion"]}, "urgent finding 'Cardiomegaly' is not among the trained"),
        ({"validated_findings": ["Cardiomegaly", "Effusion"]}, r"\['Effusion'\] are not among the trained"),
        ({"validated_findings": ["Nodule"]}, r"\['Nodule'\] are not among the trained"),
        ({"trained_findings": ["Cardiomegaly", "Edema"], "validated_findings": ["Edema"]}, "did not pass external"),
        ({"urgent_finding": "heart too big"}, "urgent_finding: unknown finding"),
    ],
)
def test_inconsistent_finding_scopes_are_refused(binary_bundle, tmp_path, changes, message):
    with pytest.raises(B.BundleLabelsError, match=message):
        B.load_bundle(edited(binary_bundle, tmp_path, **changes))


def test_saving_validates_the_scope_too(binary_bundle, tmp_path):
    loaded = B.load_bundle(binary_bundle)
    loaded.card.validated_findings = ["Cardiomegaly", "Mass"]
    with pytest.raises(B.BundleLabelsError, match="not among the trained"):
        B.save_bundle(tmp_path / "out", loaded.model, loaded.card)


def test_only_thresholds_the_card_chose_are_reported(scoped_bundle, tmp_path):
    folder = edited(scoped_bundle, tmp_path, operating_points={"p": {"cardiomegaly": 0.3, "Mass": 0.2}})
    card = B.read_card(folder)
    assert card.operating_points == {"p": {"Cardiomegaly": 0.3, "Mass": 0.2}}
    assert card.chosen_thresholds("p") == {"Cardiomegaly": 0.3}  # Mass is untrained; Effusion has none
    assert TriagePolicy.from_card(card, "p").threshold == 0.3


# -- engine, worklist, export ------------------------------------------------------------------------------


def test_engine_reports_only_trained_findings(binary_bundle, studies):
    engine = Engine.from_path(binary_bundle, device="cpu")
    results = list(engine.triage(sorted(studies.glob("*.dcm"))))
    assert results and all(r.ok and list(r.probabilities) == ["Cardiomegaly"] for r in results)
    row = Row(results[0].path, 0, 0.0, probabilities=results[0].probabilities)
    assert row.top_findings("Cardiomegaly") == []


def test_missing_or_nan_scores_do_not_crash_downstream(tmp_path):
    assert TriagePolicy("Cardiomegaly", 0.5, "p").is_urgent({}) is False
    assert TriagePolicy("Cardiomegaly", 0.5, "p").is_urgent({"Cardiomegaly": math.nan}) is False
    fields = study_fields(tmp_path / "x.png", "ok", "", None, False, {"Cardiomegaly": 0.7, "Mass": math.nan})
    assert fields["Cardiomegaly"] == "0.700000" and fields["Mass"] == "" and fields["Hernia"] == ""
    row = Row(tmp_path / "x.png", 0, 0.0, probabilities={"Cardiomegaly": 0.9, "Mass": math.nan, "Edema": 0.2})
    assert row.top_findings("Cardiomegaly") == [("Edema", 0.2)]
    assert row.top_findings("Cardiomegaly", among=["Cardiomegaly"]) == []


# -- cxr-triage --------------------------------------------------------------------------------------------


def test_csv_keeps_14_columns_and_leaves_untrained_cells_empty(scoped_bundle, studies, tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert triage_main([str(studies), "--model", str(scoped_bundle), "--out", str(out), "--quiet"]) == 0
    with open(out, newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS and reader.fieldnames[-16:-2] == list(FINDINGS)
        assert reader.fieldnames[-2:] == ["quality", "priority"]
        rows = list(reader)
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    for r in rows:
        for name in FINDINGS:
            if name in SCOPED_TRAINED:
                assert 0.0 <= float(r[name]) <= 1.0
            else:
                assert r[name] == "", name
    err = capsys.readouterr().err
    untrained = [line for line in err.splitlines() if "not trained on" in line]
    assert len(untrained) == 1 and "tiny-test-model" in untrained[0]
    assert "Atelectasis" in untrained[0] and "Cardiomegaly" not in untrained[0] and "Effusion" not in untrained[0]
    research = [line for line in err.splitlines() if "research only" in line]
    assert len(research) == 1 and "tiny-test-model" in research[0] and "Effusion" in research[0]
    assert "Edema" not in research[0] and "Cardiomegaly" not in research[0]


def test_a_fully_trained_unvalidated_model_says_so_and_fills_every_cell(tiny_bundle, studies, tmp_path, capsys):
    out = tmp_path / "t.csv"
    unvalidated = edited(tiny_bundle, tmp_path, validated_findings=None)
    assert triage_main([str(studies), "--model", str(unvalidated), "--out", str(out), "--quiet"]) == 0
    with open(out, newline="") as handle:
        assert all(r[name] for r in csv.DictReader(handle) for name in FINDINGS)
    err = capsys.readouterr().err
    assert "not trained on" not in err and "research only" not in err
    assert "tiny-test-model: Research mode: this model has no external validation record" in err


def test_heatmap_names_are_unique_for_studies_sharing_a_uid(tmp_path):
    source = write_dicom(tmp_path / "one.dcm", synthetic_chest(128, seed=1))
    for sub in ("a", "b"):  # the same file (same SOP Instance UID, same stem) in two folders
        (tmp_path / "in" / sub).mkdir(parents=True)
        shutil.copy(source, tmp_path / "in" / sub / "study.dcm")
    bundle = make_tiny_bundle(tmp_path / "always", cardiomegaly_threshold=1e-6)  # every study urgent
    heat = tmp_path / "heat"
    args = [str(tmp_path / "in"), "--model", str(bundle), "--out", str(tmp_path / "o.csv"), "--heatmaps", str(heat)]
    assert triage_main([*args, "--quiet"]) == 0
    names = sorted(p.name for p in heat.glob("*.png"))
    assert len(names) == 2 and all(n.startswith("study-") for n in names)
    odd = heatmap_name(Path("/x/a b:c/1.2.840\udcff.dcm"))
    assert odd.endswith(".png") and ":" not in odd and " " not in odd and "/" not in odd


# -- the findings panel ------------------------------------------------------------------------------------


def scoped_card(**changes) -> B.ModelCard:
    card = B.ModelCard(
        model_id="panel-test",
        architecture="resnet18",
        trained_findings=SCOPED_TRAINED,
        validated_findings=["Cardiomegaly", "Edema"],
        operating_points={"p": {"Cardiomegaly": 0.3, "Effusion": 0.1}},
        default_operating_point="p",
    )
    for key, value in changes.items():
        setattr(card, key, value)
    return card


PROBS = {name: 0.99 for name in FINDINGS} | {"Cardiomegaly": 0.2, "Edema": 0.25, "Effusion": 0.95}


@pytest.fixture
def panel(qtbot):
    widget = FindingsPanel()
    qtbot.addWidget(widget)
    widget.resize(320, 500)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_card(scoped_card())
    widget.show_probabilities(PROBS)  # untrained scores given on purpose: they must still not be drawn
    return widget


def pixels(widget) -> list[QColor]:
    image = widget.grab().toImage()
    return [image.pixelColor(x, y) for x in range(image.width()) for y in range(image.height())]


def test_panel_shows_validated_findings_and_hides_research_until_toggled(panel):
    bars = panel.bars
    assert [r.name for r in bars.rows()] == ["Cardiomegaly", "Edema"]
    assert not panel.research_box.isHidden() and not panel.research_box.isChecked()
    assert "Not trained on 11 of the 14" in panel.scope_note.text()
    panel.research_box.setChecked(True)
    rows = bars.rows()
    assert [r.name for r in rows] == ["Cardiomegaly", "Edema", "Effusion"]
    effusion = rows[-1]
    assert effusion.research and effusion.threshold is None and not effusion.over  # 0.95 over its 0.1: not red
    assert not any(name in {r.name for r in rows} for name in ("Atelectasis", "Mass", "Hernia"))
    assert QColor(OVER) not in pixels(bars)  # nothing drawn red: Cardiomegaly 0.2 < 0.3, research never red
    panel.research_box.setChecked(False)
    assert [r.name for r in bars.rows()] == ["Cardiomegaly", "Edema"]


def test_panel_draws_a_threshold_tick_only_where_the_card_sets_one(panel):
    bars = panel.bars
    by_name = {r.name: r for r in bars.rows()}
    assert by_name["Cardiomegaly"].threshold == 0.3 and by_name["Edema"].threshold is None
    image = bars.grab().toImage()
    bar_w = max(40, bars.width() - bars.LABEL_W - 50)

    def black_in_column(row_index: int, fraction: float) -> bool:
        x, top = bars.LABEL_W + int(bar_w * fraction), 4 + row_index * bars.ROW_H
        return any(image.pixelColor(x, y) == QColor(0, 0, 0) for y in range(top + 1, top + bars.ROW_H - 1))

    assert black_in_column(0, 0.3)  # Cardiomegaly's tick at its threshold
    assert not black_in_column(1, 0.5) and not black_in_column(1, 0.3)  # Edema: no made-up 0.5 tick


def test_panel_takes_the_urgent_finding_from_the_card_and_hides_the_toggle_without_research(qtbot):
    widget = FindingsPanel()
    qtbot.addWidget(widget)
    widget.set_card(scoped_card(urgent_finding="Edema", validated_findings=None))
    assert widget.bars.urgent == "Edema"
    assert widget.research_box.isHidden()
    assert [r.name for r in widget.bars.rows()] == SCOPED_TRAINED  # no validation record: all trained shown
    assert "no external validation record" in widget.scope_note.text()


def test_the_window_takes_scope_and_urgent_finding_from_the_card(qtbot, scoped_bundle, studies, tmp_path):
    from PySide6.QtCore import Qt

    from cxr_desktop.ui.main_window import MainWindow
    from cxr_desktop.ui.worklist_model import COLUMNS
    from cxr_desktop.worklist.reviews import ReviewStore

    bundle = edited(scoped_bundle, tmp_path, urgent_finding="edema")
    window = MainWindow(bundle, ReviewStore(tmp_path / "r.sqlite3"), device="cpu")
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.engine is not None, timeout=60_000)
    window.open_paths([str(studies)])
    qtbot.waitUntil(lambda: window.session.counts()["done"] == 3, timeout=60_000)
    qtbot.waitUntil(lambda: table_shows_session(window), timeout=10_000)  # the table's next redraw
    assert window.model.headerData(1, Qt.Orientation.Horizontal) == "Edema"
    assert "Edema score ≥" in window.findings.model_label.text() and window.findings.bars.urgent == "Edema"
    row = window.model.visible[0]
    window.table.selectRow(0)
    qtbot.waitUntil(lambda: window.current is not None and window.current.path == row.path, timeout=5_000)
    assert set(row.probabilities) == set(SCOPED_TRAINED)
    assert [r.name for r in window.findings.bars.rows()] == ["Cardiomegaly", "Edema"]
    assert window.model.text(row, 1) == f"{row.probabilities['Edema']:.2f}"
    other = window.model.text(row, COLUMNS.index("Other findings"))
    assert other.startswith("Cardiomegaly") and "Effusion" not in other  # research findings stay out of the list
