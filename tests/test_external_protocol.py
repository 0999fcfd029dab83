"""The external validation protocol: patient-wise tune/report halves, thresholds chosen on the tune half,
calibration, subgroups, degenerate-model warnings and the card's validated findings."""

import json

import cv2
import numpy as np
import pytest
from trainer_helpers import make_folder_dataset, textured_chest, write_config

from cxr_desktop.core.bundle import read_card, write_card
from cxr_desktop.inference.triage import point_rates
from trainer.cli import main as train_main
from trainer.evaluate import evaluate_predictions, is_degenerate, markdown_table
from trainer.evaluate_cli import record_in_card, validated_from
from trainer.external import age_band, calibration, nih_labelled, report_half, select_half, subgroup_aurocs


def test_report_half_keeps_patients_whole_and_never_moves_another_patient():
    rng = np.random.default_rng(1)
    patients = [f"p{rng.integers(0, 300)}" for _ in range(1000)]
    report = report_half(patients)
    assert np.array_equal(report, report_half(patients)), "the halves must never change"
    for patient in set(patients):
        sides = {bool(report[i]) for i, p in enumerate(patients) if p == patient}
        assert len(sides) == 1, f"patient {patient} is on both sides"
    assert 0.4 < report.mean() < 0.6
    # removing images (all of one patient, or one image of another) or adding a new patient moves nobody else
    gone = patients[0]
    kept = [i for i, p in enumerate(patients) if p != gone][1:]
    smaller = report_half([patients[i] for i in kept])
    assert np.array_equal(smaller, report[kept])
    assert np.array_equal(report_half([*patients, "new-patient"])[:-1], report)


def test_calibration_of_a_calibrated_and_an_overconfident_score():
    rng = np.random.default_rng(0)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(np.float32)
    good = calibration(y, p)
    assert good["ece"] < 0.02 and good["brier"] == pytest.approx(np.mean((p - y) ** 2))
    bad = calibration(y, np.where(p > 0.5, 0.99, 0.01))
    assert bad["ece"] > 0.2 and sum(b["n"] for b in bad["bins"]) == 20000


def test_subgroups_by_sex_age_band_and_view():
    y = np.array([1, 0, 1, 0, 1, 0, 0, 1], dtype=np.float32)
    p = np.array([0.9, 0.1, 0.8, 0.2, 0.4, 0.6, 0.3, 0.7])
    ages = ["30", "35", "50", "55", "70", "65", "45", "039Y"]
    meta = [{"sex": s, "age": a, "view": v} for s, a, v in zip("MMMMFFFF", ages, ["PA", "AP"] * 4, strict=True)]
    groups = subgroup_aurocs(y, p, meta)
    assert groups["male"]["auroc"] == 1.0 and groups["male"]["n"] == 4
    assert groups["female"]["auroc"] == pytest.approx(0.75)
    assert {"age < 40", "age 40–60", "age > 60", "PA", "AP"} <= set(groups)
    assert groups["age < 40"]["n"] == 3
    assert age_band("") == "" and age_band("61") == "age > 60" and age_band("60") == "age 40–60"


def test_a_constant_model_is_flagged_and_never_validated():
    labels = np.full((50, 14), np.nan, dtype=np.float32)
    labels[:, 1] = np.arange(50) % 2
    probs = np.full((50, 14), 0.5093, dtype=np.float32)
    assert is_degenerate(probs[:, 1])
    result = evaluate_predictions(labels, probs, {"Cardiomegaly": 0.5}, bootstrap=50)
    assert result["findings"]["Cardiomegaly"]["degenerate"]
    assert "degenerate" in markdown_table(result)
    assert validated_from(result, ["Cardiomegaly"]) == []
    probs[:, 1] = labels[:, 1] * 0.5 + 0.25
    result = evaluate_predictions(labels, probs, {"Cardiomegaly": 0.5}, bootstrap=50)
    assert not result["findings"]["Cardiomegaly"]["degenerate"]
    assert validated_from(result, ["Cardiomegaly"]) == ["Cardiomegaly"]
    assert validated_from(result, ["Edema"]) == []  # only trained findings can be validated


def make_nih_folder(root, count=40):
    """NIH-named synthetic radiographs (large hearts = Cardiomegaly) and a Data_Entry file for them."""
    images = root / "images"
    images.mkdir(parents=True)
    rows = ["Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position"]
    for i in range(count):
        big = i % 3 == 0
        name = f"{i // 2:08d}_{i % 2:03d}.png"
        cv2.imwrite(str(images / name), textured_chest(64, 0.62 if big else 0.38, 1000 + i))
        label = "Cardiomegaly" if big else "No Finding"
        rows.append(f"{name},{label},{i % 2},{i // 2},{30 + i},{'MF'[i % 2]},{('PA', 'AP')[i % 3 == 1]}")
    labels = root / "Data_Entry_test.csv"
    labels.write_text("\n".join(rows) + "\n")
    return images, labels


@pytest.mark.slow
def test_export_tunes_on_one_half_and_evaluation_records_the_other(tmp_path):
    root = make_folder_dataset(tmp_path / "data")
    config = write_config(tmp_path, root)
    assert train_main(["train", "-c", str(config), "--set", "name=ext"]) == 0
    images, labels = make_nih_folder(tmp_path / "nih")
    table = nih_labelled([images], labels)
    assert len(table.table) == 40 and table.metadata[0]["view"] == "PA"
    tune, report = select_half(table, "tune"), select_half(table, "report")
    assert not set(tune.table.patients) & set(report.table.patients)
    bundle = tmp_path / "bundle"
    args = ["export", str(tmp_path / "runs" / "ext"), "--out", str(bundle), "--no-onnx"]
    assert train_main([*args, "--threshold-images", str(images), "--threshold-labels", str(labels)]) == 0
    card = read_card(bundle)
    chosen_on = card.provenance["thresholds_chosen_on"]
    assert chosen_on["half"] == "tune" and chosen_on["n"] == len(tune.table)
    assert card.trained_findings == ["Cardiomegaly"]
    evaluate = ["evaluate", "--model", str(bundle), "--images", str(images), "--labels", str(labels)]
    assert train_main([*evaluate, "--half", "report", "--out", str(tmp_path / "ev"), "--record-as", "rep"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["images"] == len(report.table)
    assert list(metrics["findings"]) == ["Cardiomegaly"], "untrained outputs are not evaluated"
    assert {"ece", "brier", "bins"} <= set(metrics["calibration"]) and (tmp_path / "ev" / "reliability.png").exists()
    assert {"male", "female", "PA", "AP"} <= set(metrics["subgroups"])
    card = read_card(bundle)
    assert "rep" in card.metrics["checks"]
    # what each operating point flags on the report half is what the app's chooser shows
    recorded = card.metrics["external_operating_points"]["operating_points"]
    assert set(recorded) == set(card.operating_points)
    scores = np.load(tmp_path / "ev" / "probabilities.npy")[:, 1]
    threshold = card.operating_points["sensitivity_0.90"]["Cardiomegaly"]
    assert recorded["sensitivity_0.90"]["flag_rate"] == pytest.approx(np.mean(scores >= threshold))
    rates = {r.name: r for r in point_rates(card)}
    assert rates["sensitivity_0.90"].flag_rate == pytest.approx(recorded["sensitivity_0.90"]["flag_rate"])
    assert "report half" in rates["sensitivity_0.90"].where
    weak = {"findings": {"Cardiomegaly": {"auroc": 0.7, "auroc_ci95": [0.6, 0.8], "degenerate": False}}}
    with pytest.raises(ValueError, match="did not pass external validation"):
        record_in_card(bundle, "weak", weak, "test", validate=True)
    card = read_card(bundle)
    assert card.validated_findings is None and "weak" not in card.metrics["checks"], "a refusal changes nothing"
    strong = {"findings": {"Cardiomegaly": {"auroc": 0.9, "auroc_ci95": [0.85, 0.95], "degenerate": False}}}
    record_in_card(bundle, "strong", strong, "test", validate=True)
    card = read_card(bundle)
    assert card.validated_findings == ["Cardiomegaly"] and card.metrics["validation_check"] == "strong"
    assert card.training_signatures["images"] == 36, "every training and validation image has a signature"


@pytest.mark.slow
def test_evaluation_finds_and_leaves_out_copies_of_training_images_by_itself(tmp_path):
    root = make_folder_dataset(tmp_path / "data")
    assert train_main(["train", "-c", str(write_config(tmp_path, root)), "--set", "name=leak"]) == 0
    images, labels = make_nih_folder(tmp_path / "nih")
    # a training film reaches the "external" set as a contrast-boosted, cropped copy under an NIH name
    film = cv2.imread(str(root / "train" / "cardiomegaly" / "3.png"), cv2.IMREAD_GRAYSCALE)
    copy = np.clip(film[2:, 1:].astype(np.float32) * 1.3 - 25, 0, 255).astype(np.uint8)
    cv2.imwrite(str(images / "00000099_000.png"), cv2.resize(copy, (80, 80)))
    with open(labels, "a") as handle:
        handle.write("00000099_000.png,Cardiomegaly,0,99,50,M,PA\n")
    bundle = tmp_path / "bundle"
    export = ["export", str(tmp_path / "runs" / "leak"), "--out", str(bundle)]  # with the ONNX copy
    assert train_main([*export, "--threshold-images", str(images), "--threshold-labels", str(labels)]) == 0
    tuned_on = read_card(bundle).provenance["thresholds_chosen_on"]
    copy_in_tune = not report_half(["99"])[0]
    assert tuned_on["overlap"]["training_copies"] == int(copy_in_tune), "the tune half is checked for copies too"
    evaluate = ["evaluate", "--model", str(bundle), "--images", str(images), "--labels", str(labels)]
    assert train_main([*evaluate, "--half", "tune", "--out", str(tmp_path / "tune")]) == 0
    tune_scores = np.load(tmp_path / "tune" / "probabilities.npy")[:, 1]  # the ONNX copy's, as the app's
    for point, thresholds in read_card(bundle).operating_points.items():
        gaps = np.abs(tune_scores - thresholds["Cardiomegaly"])
        assert gaps.min() > 0, f"{point}: a tune-half score sits exactly on its threshold"
    assert train_main([*evaluate, "--out", str(tmp_path / "ev"), "--record-as", "all"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    overlap = metrics["overlap"]
    assert overlap["checked"] and overlap["training_copies"] == 1 and overlap["excluded"] == 1
    assert overlap["pairs"][0]["image"] == "00000099_000.png"
    assert overlap["pairs"][0]["reference"].endswith("train/cardiomegaly/3.png")
    assert metrics["images"] == 40, "the copy is left out; the 40 other films stay"
    assert read_card(bundle).metrics["checks"]["all"]["overlap"]["excluded"] == 1, "the card's record carries it"
    assert train_main([*evaluate, "--out", str(tmp_path / "kept"), "--keep-overlap"]) == 0
    kept = json.loads((tmp_path / "kept" / "metrics.json").read_text())
    assert kept["images"] == 41 and kept["overlap"]["training_copies"] == 1 and kept["overlap"]["excluded"] == 0
    # the sensitivity analysis: every film of a patient with a listed copy goes
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("image,reference,similarity\n00000003_001.png,x.png,0.95\n")
    assert train_main([*evaluate, "--out", str(tmp_path / "ex"), "--exclude-patients-of", str(pairs)]) == 0
    excluded = json.loads((tmp_path / "ex" / "metrics.json").read_text())
    assert excluded["images"] == 38 and excluded["patients_excluded"] == {
        "pairs_file": str(pairs),
        "patients": 1,
        "images": 2,
    }


def test_a_bundle_without_training_signatures_says_its_evaluation_is_unchecked(tmp_path):
    root = make_folder_dataset(tmp_path / "data")
    assert train_main(["train", "-c", str(write_config(tmp_path, root)), "--set", "name=old"]) == 0
    images, labels = make_nih_folder(tmp_path / "nih", count=12)
    bundle = tmp_path / "bundle"
    assert train_main(["export", str(tmp_path / "runs" / "old"), "--out", str(bundle), "--no-onnx"]) == 0
    card = json.loads((bundle / "card.json").read_text())
    (bundle / card.pop("training_signatures_file")).unlink()
    card["training_signatures_sha256"], card["training_signatures"] = "", {}
    write_card(bundle, card)  # as a bundle exported before the leakage check
    evaluate = ["evaluate", "--model", str(bundle), "--images", str(images), "--labels", str(labels)]
    assert train_main([*evaluate, "--out", str(tmp_path / "ev")]) == 0
    overlap = json.loads((tmp_path / "ev" / "metrics.json").read_text())["overlap"]
    assert overlap["checked"] is False and "without training-image signatures" in overlap["note"]
