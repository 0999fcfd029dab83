"""Hardening round 2 (issue 12), beyond the catalogue rows: what the refusals and scores mean in detail."""

import csv
import json
import threading

import cv2
import numpy as np
import pytest
import torch
from conftest import make_tiny_bundle
from hostile_inputs import CHEST, columns_changed, fifo, sideways_jpeg

from cxr_desktop.cli import main as triage_main
from cxr_desktop.core.bundle import BundleFormatError, load_bundle, read_card, save_bundle, write_card
from cxr_desktop.inference.engine import NON_FINITE_ERROR, Engine
from cxr_desktop.studies import dicom
from cxr_desktop.studies.reader import read_header, read_study
from cxr_desktop.studies.scan import scan
from cxr_desktop.studies.study import StudyError
from cxr_desktop.studies.synthetic import build_dataset, write_dicom
from cxr_desktop.worklist.export import export_csv, neutralise, safe_row
from cxr_desktop.worklist.rows import LATERAL_NOTE, Worklist


@pytest.fixture(scope="module")
def always_urgent(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("always") / "b", cardiomegaly_threshold=1e-6)


def test_exif_orientation_is_honoured(tmp_path):
    path = tmp_path / "sideways.jpg"
    sideways_jpeg(path)
    study = read_study(path)
    assert study.image.shape == CHEST.shape and (study.info.rows, study.info.columns) == CHEST.shape
    upright = np.corrcoef(study.image.ravel().astype(float), CHEST.ravel().astype(float))[0, 1]
    assert upright > 0.98, "the image must be turned back as EXIF orientation 6 says"


def test_a_lateral_view_is_scored_but_never_urgent(tmp_path, always_urgent, capsys):
    frontal = write_dicom(tmp_path / "pa.dcm", CHEST, view_position="PA")
    lateral = write_dicom(tmp_path / "ll.dcm", CHEST, view_position="LL")
    by_code = tmp_path / "coded.dcm"
    ds = build_dataset(CHEST, view_position="")
    item = build_dataset(CHEST[:2, :2])  # any dataset will do as a sequence item
    item.CodeMeaning = "left lateral"
    ds.ViewCodeSequence = [item]
    ds.save_as(by_code, enforce_file_format=True)
    results = {r.path: r for r in Engine.from_path(always_urgent, device="cpu").triage([frontal, lateral, by_code])}
    assert results[frontal].urgent
    for path in (lateral, by_code):
        assert results[path].ok and not results[path].urgent and "Cardiomegaly" in results[path].probabilities
    worklist = Worklist()
    row = worklist.add(lateral, read_header(lateral))
    assert row.view_note == LATERAL_NOTE
    assert triage_main([str(tmp_path), "--model", str(always_urgent), "--quiet", "--out", str(tmp_path / "o.csv")]) == 0
    assert "2 lateral views scored but never flagged urgent" in capsys.readouterr().err


def test_csv_cells_that_start_a_formula_are_neutralised(tmp_path, tiny_bundle):
    folder = tmp_path / "in"
    folder.mkdir()
    ids = {"eq.dcm": "=HYPERLINK(1)", "plus.dcm": "+1+2", "minus.dcm": "-3+4", "at.dcm": "@SUM(A1)", "ok.dcm": "P1"}
    for name, patient in ids.items():
        write_dicom(folder / name, CHEST, patient_id=patient)
    out = tmp_path / "triage.csv"
    assert triage_main([str(folder), "--model", str(tiny_bundle), "--out", str(out), "--quiet"]) == 0
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    for name, patient in ids.items():
        expected = patient if name == "ok.dcm" else "'" + patient
        assert rows[name]["patient_id"] == expected
        assert float(rows[name]["Cardiomegaly"]) >= 0 and float(rows[name]["cardiomegaly_threshold"]) >= 0
    worklist = Worklist()
    row = worklist.add(folder / "eq.dcm", read_header(folder / "eq.dcm"))
    row.review.comment = "-see prior"
    export_csv([row], tmp_path / "export.csv")
    (exported,) = csv.DictReader((tmp_path / "export.csv").open(encoding="utf-8"))
    assert exported["patient_id"] == "'=HYPERLINK(1)" and exported["comment"] == "'-see prior"
    assert safe_row({"Cardiomegaly": "-0.5", "patient_id": "-0.5"}) == {"Cardiomegaly": "-0.5", "patient_id": "'-0.5"}
    assert neutralise("\tcmd") == "'\tcmd" and neutralise("plain") == "plain"


def test_any_exception_of_a_reader_is_that_files_error(tmp_path, tiny_bundle, monkeypatch):
    bad = write_dicom(tmp_path / "a_bad.dcm", CHEST)
    good = tmp_path / "b_good.png"
    cv2.imwrite(str(good), CHEST)
    original = dicom.dicom_info

    def explode(path, *args):
        if path.name == "a_bad.dcm":
            raise ZeroDivisionError("a reader bug")
        return original(path, *args)

    monkeypatch.setattr(dicom, "dicom_info", explode)
    result = scan([tmp_path])
    assert [e.path.name for e in result.errors] == ["a_bad.dcm"]
    assert "ZeroDivisionError" in result.errors[0].reason and len(result.studies) == 1
    results = list(Engine.from_path(tiny_bundle, device="cpu").triage([bad, good]))
    assert "ZeroDivisionError" in results[0].error and results[1].ok


def test_a_fifo_given_by_name_is_refused_without_blocking(tmp_path, tiny_bundle):
    pipe = tmp_path / "pipe.dcm"
    fifo(pipe)
    out = tmp_path / "o.csv"
    done = []
    worker = threading.Thread(
        target=lambda: done.append(triage_main([str(pipe), "--model", str(tiny_bundle), "--out", str(out), "--quiet"])),
        daemon=True,
    )
    worker.start()
    worker.join(60)
    assert done == [0], "cxr-triage blocked on a FIFO"
    (row,) = csv.DictReader(out.open())
    assert row["status"] == "error" and "not a regular file: a named pipe" in row["error"]


def test_pixel_data_length_checks(tmp_path):
    sheared = tmp_path / "sheared.dcm"
    columns_changed(sheared)
    with pytest.raises(StudyError, match="65,536 bytes does not match the header"):
        read_header(sheared)
    odd = write_dicom(tmp_path / "odd.dcm", CHEST[:255, :255].copy())  # 65,025 bytes + one pad byte
    assert read_study(odd).image.shape == (255, 255)


def _nan_bundle(tmp_path):
    folder = make_tiny_bundle(tmp_path / "nan")
    bundle = load_bundle(folder)
    with torch.no_grad():
        bundle.model.fc.bias[0] = float("nan")
    save_bundle(folder, bundle.model, bundle.card)
    return folder


def test_a_model_with_non_finite_outputs_is_refused_at_load(tmp_path):
    with pytest.raises(BundleFormatError, match="non-finite outputs"):
        Engine.from_path(_nan_bundle(tmp_path), device="cpu")
    assert triage_main([str(tmp_path), "--model", str(tmp_path / "nan"), "--quiet"]) == 2


def test_non_finite_outputs_in_a_batch_become_error_rows(tmp_path, tiny_bundle, monkeypatch):
    paths = [write_dicom(tmp_path / f"{i}.dcm", CHEST) for i in range(3)]
    engine = Engine.from_path(tiny_bundle, device="cpu")
    real = engine._forward

    def one_nan(inputs):
        out, embeddings = real(inputs)
        out[1, 2] = np.nan
        return out, embeddings

    monkeypatch.setattr(engine, "_forward", one_nan)
    results = list(engine.triage(paths))
    assert results[0].ok and results[2].ok
    assert results[1].error == NON_FINITE_ERROR and not results[1].probabilities


def test_card_numbers_are_bounded(tmp_path):
    folder = make_tiny_bundle(tmp_path / "big")
    card = json.loads((folder / "card.json").read_text())
    card["preprocessing"]["input_size"] = 100000
    write_card(folder, card)
    with pytest.raises(BundleFormatError, match="input_size 100000 is out of range"):
        read_card(folder)


def test_weights_must_be_a_regular_file_inside_the_bundle(tmp_path):
    folder = make_tiny_bundle(tmp_path / "linked")
    outside = tmp_path / "elsewhere.safetensors"
    (folder / "weights.safetensors").rename(outside)
    (folder / "weights.safetensors").symlink_to(outside)
    with pytest.raises(BundleFormatError, match="regular file inside the bundle folder"):
        Engine.from_path(folder, device="cpu")
