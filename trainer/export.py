"""Export a run as the app's model bundle: thresholds chosen on validation, metrics and provenance in the card."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cxr_desktop.core.bundle import ModelCard, save_bundle
from cxr_desktop.core.labels import FINDINGS, URGENT_FINDING
from cxr_desktop.core.onnx_model import export_onnx
from trainer.evaluate import (
    LoadedRun,
    evaluate_predictions,
    labelled_findings,
    load_run,
    point_rates,
    predict_table,
    thresholds_on,
    trained_labels,
)
from trainer.external import nih_labelled, select_half
from trainer.metrics import youden_threshold
from trainer.run import build_splits

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
    run: LoadedRun, folders: list[Path], labels_csv: Path, trained: list[str], urgent: str, device: str
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Labels (untrained findings masked) and probabilities on the external protocol's tune half."""
    tune = select_half(nih_labelled(folders, labels_csv), "tune", FINDINGS.index(urgent)).table
    labels = trained_labels(tune.labels, trained)
    log.info("choosing thresholds on the tune half of %s: %d images", [str(f) for f in folders], len(tune))
    probs = predict_table(run.model, tune, run.config.spec(), "", device)
    where = {"images": [str(f) for f in folders], "labels": str(labels_csv), "half": "tune", "n": len(tune)}
    return labels, probs, where


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
    run = load_run(Path(run_dir))
    splits = build_splits(run.config)
    spec = run.config.spec()
    trained = labelled_findings([t for _, t in splits.items()])
    urgent = run.config.binary or URGENT_FINDING
    log.info("scoring the validation split (%d images)", len(splits.val))
    val_probs = predict_table(run.model, splits.val, spec, run.config.cache, device)
    default_point = f"sensitivity_{target_sensitivity:.2f}"
    metrics: dict = {}
    if threshold_images:
        tune_labels, tune_probs, tuned_on = external_tuning(run, *threshold_images, trained, urgent, device)
        points = operating_points(tune_labels, tune_probs, target_sensitivity)
        metrics["threshold_tuning"] = evaluate_predictions(tune_labels, tune_probs, points[default_point])
        column = FINDINGS.index(urgent)
        metrics["threshold_tuning"]["operating_points"] = point_rates(
            tune_labels[:, column], tune_probs[:, column], points, urgent
        )
    else:
        points = operating_points(splits.val.labels, val_probs, target_sensitivity)
        tuned_on = {"split": "validation", "n": len(splits.val)}
    metrics["validation"] = evaluate_predictions(splits.val.labels, val_probs, points[default_point])
    if len(splits.test):
        log.info("scoring the test split (%d images)", len(splits.test))
        test_probs = predict_table(run.model, splits.test, spec, run.config.cache, device)
        metrics["test"] = evaluate_predictions(splits.test.labels, test_probs, points[default_point])
    data = json.loads((run.run_dir / "data.json").read_text())
    history = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines() if line]
    card = ModelCard(
        model_id=model_id or f"{run.config.architecture}-{run.run_dir.name}",
        architecture=run.config.architecture,
        preprocessing=spec.to_dict(),
        operating_points=points,
        default_operating_point=default_point,
        urgent_finding=urgent,
        trained_findings=trained,
        provenance={
            "run": run.run_dir.name,
            "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "code_version": data.get("code_version", "unknown"),
            "data": {"dataset": run.config.dataset, "images": run.config.images, **data},
            "config": run.config.to_dict(),
            "epochs_trained": len(history),
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
