"""Export a run as the app's model bundle: thresholds chosen on validation, metrics and provenance in the card."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cxr_desktop.core.bundle import ModelCard, save_bundle
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.core.onnx_model import export_onnx
from trainer.evaluate import evaluate_predictions, point_rates, predict_table, thresholds_on, trained_labels
from trainer.external import nih_labelled, select_half
from trainer.metrics import youden_threshold
from trainer.run_evaluation import RunEvaluation

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


def external_tuning(run: RunEvaluation, folders: list[Path], labels_csv: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Labels (untrained findings masked) and probabilities on the external protocol's tune half."""
    tune = select_half(nih_labelled(folders, labels_csv), "tune", FINDINGS.index(run.urgent_finding)).table
    labels = trained_labels(tune.labels, run.trained_findings)
    log.info("choosing thresholds on the tune half of %s: %d images", [str(f) for f in folders], len(tune))
    probs = predict_table(run.model, tune, run.spec, "", run.device)
    where = {"images": [str(f) for f in folders], "labels": str(labels_csv), "half": "tune", "n": len(tune)}
    return labels, probs, where


def choose_operating_points(
    run: RunEvaluation, target_sensitivity: float, threshold_images: tuple[list[Path], Path] | None
) -> tuple[dict[str, dict[str, float]], dict, dict]:
    """The operating points, where they were chosen, and the tuning metrics when chosen on external images."""
    if not threshold_images:
        points = operating_points(run.splits.val.labels, run.probabilities("val"), target_sensitivity)
        return points, {"split": "validation", "n": len(run.splits.val)}, {}
    tune_labels, tune_probs, tuned_on = external_tuning(run, *threshold_images)
    points = operating_points(tune_labels, tune_probs, target_sensitivity)
    tuning = evaluate_predictions(tune_labels, tune_probs, points[f"sensitivity_{target_sensitivity:.2f}"])
    column = FINDINGS.index(run.urgent_finding)
    tuning["operating_points"] = point_rates(tune_labels[:, column], tune_probs[:, column], points, run.urgent_finding)
    return points, tuned_on, {"threshold_tuning": tuning}


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
    """Write the bundle (weights, card and, unless ``onnx`` is False, the ONNX copy for ONNX Runtime).

    Thresholds are chosen on the run's validation split, or on the tune half of external NIH images
    (``threshold_images`` = (folders, Data_Entry CSV)) when given."""
    run = RunEvaluation.open(Path(run_dir), device)
    default_point = f"sensitivity_{target_sensitivity:.2f}"
    points, tuned_on, metrics = choose_operating_points(run, target_sensitivity, threshold_images)
    metrics["validation"] = evaluate_predictions(run.splits.val.labels, run.probabilities("val"), points[default_point])
    if len(run.splits.test):
        metrics["test"] = evaluate_predictions(run.splits.test.labels, run.probabilities("test"), points[default_point])
    data = run.data_info()
    card = ModelCard(
        model_id=model_id or f"{run.config.architecture}-{run.run_dir.name}",
        architecture=run.config.architecture,
        preprocessing=run.spec.to_dict(),
        operating_points=points,
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
            "thresholds_chosen_on": tuned_on,
            **(extra_provenance or {}),
        },
        metrics=metrics,
        limitations=list(LIMITATIONS),
    )
    save_bundle(out, run.model, card)
    if onnx:
        log.info("writing the ONNX copy")
        export_onnx(out, run.model, card)
    log.info("exported %s to %s", run.run_dir, out)
    return card
