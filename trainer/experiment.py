"""``cxr-train experiment``: a grid of runs over any config keys (augmentation x init x lr x seed, say) in
sequence, resumable after a kill, then ``report.md`` with test AUROC (95 % CI), DeLong tests against the
baseline, one ROC plot and a Grad-CAM gallery. Every run's config is checked before the first one trains."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import yaml

from cxr_desktop.core.labels import finding_index
from trainer.config import TrainConfig, load_config
from trainer.gallery import save_gallery_rows
from trainer.grid import GridRun, expand, grid_configs, load_experiment_spec
from trainer.metrics import auroc, binary_stats, bootstrap_auroc_ci
from trainer.report import write_report
from trainer.run import train
from trainer.run_evaluation import DEFAULT_SENSITIVITY, RunEvaluation

log = logging.getLogger(__name__)


def evaluate_run(run: GridRun, finding: str) -> dict:
    """Test predictions and metrics at the validation threshold for 0.90 sensitivity (cached in the run)."""
    out = run.run_dir / "test_result.json"
    if out.exists():
        return json.loads(out.read_text())
    evaluation = RunEvaluation.open(run.run_dir)
    i = finding_index(finding)
    val_labels, y = evaluation.splits.val.labels[:, i], evaluation.splits.test.labels[:, i]
    val, p = evaluation.probabilities("val")[:, i], evaluation.probabilities("test")[:, i]
    threshold = evaluation.thresholds(DEFAULT_SENSITIVITY).get(finding, 0.5)
    stats = binary_stats(y, p, threshold)
    low, high = bootstrap_auroc_ci(y, p)
    history = evaluation.history()
    result = {
        "name": run.name,
        "values": run.values,
        "val_auroc": auroc(val_labels, val),
        "test_auroc": auroc(y, p),
        "test_auroc_ci95": [low, high],
        "threshold": threshold,
        "accuracy": stats.accuracy,
        "sensitivity": stats.sensitivity,
        "specificity": stats.specificity,
        "epochs": len(history),
        "seconds_per_epoch": float(np.mean([h["train_seconds"] for h in history])),
        "n_test": int((~np.isnan(y)).sum()),
    }
    config = evaluation.config
    save_gallery_rows(
        evaluation.model, config.architecture, evaluation.spec, config.cache, evaluation.splits.test, i, run.run_dir
    )
    np.save(run.run_dir / "test_probs.npy", p)
    np.save(run.run_dir / "test_labels.npy", y)
    out.write_text(json.dumps(result, indent=2))
    return result


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("name", "out_dir")}


def find_finished_twin(config: TrainConfig, folders: list[str]) -> Path | None:
    """A finished run with the same resolved config in another experiment folder (saves recomputing it)."""
    wanted = _comparable(config.to_dict())
    for folder in folders:
        for done in sorted(Path(folder).glob("runs/*/done.json")):
            other = load_config(done.parent / "config.yaml")
            if _comparable(other.to_dict()) == wanted:
                return done.parent
    return None


def finish_run(run: GridRun, config: TrainConfig, reuse_from: list[str]) -> None:
    """Train ``run`` to its end: a copy of an identical finished run when there is one, else train it (an
    interrupted run goes on when its config is equal)."""
    twin = find_finished_twin(config, reuse_from)
    if twin is not None and not run.run_dir.exists():
        log.info("reusing the identical finished run %s", twin)
        run.run_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(twin, run.run_dir)
    else:
        train(config, run.run_dir, existing="continue")


def run_experiment(
    config_path: Path, folder: Path | None = None, base_overrides: list[str] | None = None, report_only: bool = False
) -> Path:
    """Run every grid point not yet done, then write the report. ``base_overrides`` (``key=value``) change
    the base config, e.g. where the images are on this machine. ``report_only`` trains nothing and reports
    the finished runs (while the rest of the grid is still training, say), naming the ones not finished."""
    spec = load_experiment_spec(config_path, base_overrides)
    folder = Path(folder or Path(spec.get("out_dir", "experiments")) / spec["name"])
    runs = expand(spec, folder)
    configs = grid_configs(spec, runs)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (folder / "base.yaml").write_text(yaml.safe_dump(spec["base"], sort_keys=False))
    finding = spec.get("finding", "Cardiomegaly")
    log.info("experiment %s: %d runs", spec["name"], len(runs))
    if report_only:
        finished = [run for run in runs if (run.run_dir / "done.json").exists()]
        if not finished:
            raise ValueError(f"no finished run in {folder} to report")
        for run in finished:
            evaluate_run(run, finding)
        write_report(folder, spec, finished, finding, unfinished=[r.name for r in runs if r not in finished])
        return folder
    for position, run in enumerate(runs, start=1):
        if (run.run_dir / "done.json").exists():
            log.info("[%d/%d] %s: done, skipped", position, len(runs), run.name)
        else:
            log.info("[%d/%d] %s", position, len(runs), run.name)
            finish_run(run, configs[run.name], spec.get("reuse_from", []))
        evaluate_run(run, finding)
    write_report(folder, spec, runs, finding)
    return folder
