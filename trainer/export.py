"""Export a run as the app's model bundle: thresholds chosen on validation, metrics and provenance in the card."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cxr_desktop.core.bundle import (
    ONNX_NAME,
    TRAINING_SIGNATURES_NAME,
    ModelCard,
    save_bundle,
    sha256_of,
    validate_card_fields,
    write_card,
)
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.core.onnx_model import export_onnx
from trainer.data.samples import SampleTable
from trainer.evaluate import (
    evaluate_predictions,
    point_rates,
    predict_table,
    predict_table_onnx,
    thresholds_on,
    trained_labels,
)
from trainer.external import nih_labelled, select_half
from trainer.leakage import check_overlap, run_signatures
from trainer.metrics import youden_threshold
from trainer.overlap import METHOD, THRESHOLD, SignatureSet, save_signatures
from trainer.run_evaluation import RunEvaluation

Scorer = Callable[[SampleTable], np.ndarray]

log = logging.getLogger(__name__)

LIMITATIONS = [
    "Triage aid that orders a reading worklist; every study must still be read by a radiologist.",
    "Trained on small public samples (NIH ChestX-ray14 subsets); AUROC intervals are wide.",
    "Heart size is overstated on AP films; the model was not calibrated separately for AP views.",
    "Not validated on paediatric images, lateral views or devices other than those in the training data.",
]


def operating_points(labels: np.ndarray, probs: np.ndarray, target: float) -> dict[str, dict[str, float]]:
    """Sensitivity 0.90 and 0.95 (and ``target``, the default point), and Youden's J, per labelled finding."""
    targets = sorted({0.90, 0.95, round(target, 2)})
    points = {f"sensitivity_{t:.2f}": thresholds_on(labels, probs, t) for t in targets}
    points["youden"] = {
        name: youden_threshold(labels[:, i], probs[:, i])
        for i, name in enumerate(FINDINGS)
        if np.nansum(labels[:, i]) > 0
    }
    return points


def external_tuning(
    run: RunEvaluation, folders: list[Path], labels_csv: Path, signatures: SignatureSet, scorer: Scorer
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Labels (untrained findings masked) and probabilities on the external protocol's tune half, without the
    copies of the run's own training images."""
    tune, overlap = check_overlap(select_half(nih_labelled(folders, labels_csv), "tune"), signatures)
    labels = trained_labels(tune.table.labels, run.trained_findings)
    log.info("choosing thresholds on the tune half of %s: %d images", [str(f) for f in folders], len(tune.table))
    probs = scorer(tune.table)
    where = {
        "images": [str(f) for f in folders],
        "labels": str(labels_csv),
        "half": "tune",
        "n": len(tune.table),
        "overlap": {k: v for k, v in overlap.items() if k != "pairs"},
    }
    return labels, probs, where


def choose_operating_points(
    run: RunEvaluation,
    target_sensitivity: float,
    threshold_images: tuple[list[Path], Path] | None,
    signatures: SignatureSet,
    scorer: Scorer,
) -> tuple[dict[str, dict[str, float]], dict, dict]:
    """The operating points, where they were chosen, and the tuning metrics when chosen on external images."""
    if not threshold_images:
        points = operating_points(run.splits.val.labels, run.probabilities("val"), target_sensitivity)
        return points, {"split": "validation", "n": len(run.splits.val)}, {}
    tune_labels, tune_probs, tuned_on = external_tuning(run, *threshold_images, signatures, scorer)
    points = operating_points(tune_labels, tune_probs, target_sensitivity)
    tuning = evaluate_predictions(tune_labels, tune_probs, points[f"sensitivity_{target_sensitivity:.2f}"])
    column = FINDINGS.index(run.urgent_finding)
    tuning["operating_points"] = point_rates(tune_labels[:, column], tune_probs[:, column], points, run.urgent_finding)
    return points, tuned_on, {"threshold_tuning": tuning}


def record_training_signatures(folder: Path, card: ModelCard, signatures: SignatureSet, run: RunEvaluation) -> None:
    """Store the signature of every training and validation image in the bundle (checked by its integrity
    record), so that ``cxr-train evaluate`` finds copies of them by itself."""
    save_signatures(folder / TRAINING_SIGNATURES_NAME, signatures)
    card.training_signatures_file = TRAINING_SIGNATURES_NAME
    card.training_signatures_sha256 = sha256_of(folder / TRAINING_SIGNATURES_NAME)
    card.training_signatures = {
        "method": METHOD,
        "threshold": THRESHOLD,
        "images": len(signatures.names),
        "of": f"the train and validation splits of run {run.run_dir.name}",
        "unreadable": len(signatures.errors),
    }


def export_run(
    run_dir: Path,
    out: Path,
    target_sensitivity: float = 0.9,
    model_id: str | None = None,
    device: str = "auto",
    extra_provenance: dict | None = None,
    onnx: bool = True,
    threshold_images: tuple[list[Path], Path] | None = None,
) -> ModelCard:
    """Write the bundle (weights, card, the training images' signatures and, unless ``onnx`` is False, the ONNX
    copy for ONNX Runtime).

    Thresholds are chosen on the run's validation split, or on the tune half of external NIH images
    (``threshold_images`` = (folders, Data_Entry CSV)) when given, without copies of the run's training images,
    from the ONNX copy's scores (what the app shows on the CPU) when there is one."""
    run = RunEvaluation.open(Path(run_dir), device)
    default_point = f"sensitivity_{target_sensitivity:.2f}"
    val_points = operating_points(run.splits.val.labels, run.probabilities("val"), target_sensitivity)
    data = run.data_info()
    card = ModelCard(
        model_id=model_id or f"{run.config.architecture}-{run.run_dir.name}",
        architecture=run.config.architecture,
        preprocessing=run.spec.to_dict(),
        operating_points=val_points,
        default_operating_point=default_point,
        urgent_finding=run.urgent_finding,
        trained_findings=run.trained_findings,
        provenance={
            "run": run.run_dir.name,
            "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code_version": data.get("code_version", "unknown"),
            "data": {"dataset": run.config.dataset, "images": run.config.images, **data},
            "config": run.config.to_dict(),
            "epochs_trained": len(run.history()),
            **(extra_provenance or {}),
        },
        limitations=list(LIMITATIONS),
    )
    save_bundle(out, run.model, card)
    if onnx:
        log.info("writing the ONNX copy")
        export_onnx(out, run.model, card)
    signatures = run_signatures([*run.splits.train.paths, *run.splits.val.paths])
    scorer = _scorer(run, out / ONNX_NAME if onnx else None)
    points, tuned_on, metrics = choose_operating_points(run, target_sensitivity, threshold_images, signatures, scorer)
    metrics["validation"] = evaluate_predictions(run.splits.val.labels, run.probabilities("val"), points[default_point])
    if len(run.splits.test):
        metrics["test"] = evaluate_predictions(run.splits.test.labels, run.probabilities("test"), points[default_point])
    card.operating_points, card.metrics = points, metrics
    card.provenance["thresholds_chosen_on"] = tuned_on
    record_training_signatures(out, card, signatures, run)
    validate_card_fields(card)
    write_card(out, card)
    log.info("exported %s to %s (fingerprint %s)", run.run_dir, out, card.fingerprint)
    return card


def _scorer(run: RunEvaluation, onnx_file: Path | None) -> Scorer:
    if onnx_file is not None:
        return lambda table: predict_table_onnx(onnx_file, table, run.spec)
    return lambda table: predict_table(run.model, table, run.spec, "", run.device)
