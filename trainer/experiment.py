"""``cxr-train experiment``: a grid of runs over any config keys (augmentation x init x lr x seed, say) in
sequence, resumable after a kill, then ``report.md`` with test AUROC (95 % CI), DeLong tests against the
baseline, one ROC plot and a Grad-CAM gallery. Every run's config is checked before the first one trains."""

from __future__ import annotations

import copy
import itertools
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cxr_desktop.core.labels import finding_index
from trainer.config import (
    KEY_ALIASES,
    ConfigError,
    TrainConfig,
    config_from_dict,
    did_you_mean,
    key_fields,
    load_config,
    set_path,
)
from trainer.evaluate import load_run, predict_table, thresholds_on
from trainer.gallery import save_gallery_rows
from trainer.metrics import auroc, binary_stats, bootstrap_auroc_ci
from trainer.run import build_splits, train

log = logging.getLogger(__name__)
NAME_ORDER = ("augment", "init", "architecture", "seed")  # these lead a run's name (the earlier studies' names)
GRID_KEYS = NAME_ORDER  # kept for callers; a grid may vary any config key


@dataclass
class GridRun:
    name: str
    values: dict[str, Any]
    run_dir: Path


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(str(v) for v in value) or "none"
    if isinstance(value, dict):
        return "+".join(f"{k}-{_short(v)}" for k, v in value.items()) or "none"
    text = str(value)
    return text.rsplit("/", 1)[-1] if text.startswith("checkpoint:") else text


def run_name(values: dict[str, Any]) -> str:
    keys = [k for k in NAME_ORDER if k in values] + [k for k in values if k not in NAME_ORDER]
    name = "__".join(f"{k}={_short(values[k])}".replace(":", "") for k in keys)
    return re.sub(r"[^\w.=+,-]", "-", name)


def check_grid_keys(keys: list[str]) -> None:
    """Grid keys are config keys (dots reach nested ones: ``preprocessing.input_size``), not the run's place."""
    known = key_fields()
    problems = []
    for key in keys:
        top = key.split(".", 1)[0]
        if top not in known:
            problems.append(f"grid: unknown key {key!r}{did_you_mean(top, known, KEY_ALIASES)} (`cxr-train list keys`)")
        elif top in ("name", "out_dir"):
            problems.append(f"grid: {key!r} cannot vary (the experiment names and places its runs)")
    if problems:
        raise ConfigError(problems)


def expand(spec: dict[str, Any], folder: Path) -> list[GridRun]:
    grid = spec.get("grid", {})
    check_grid_keys([*grid, *(k for extra in spec.get("extra_runs", []) for k in extra)])
    for key, options in grid.items():
        if not isinstance(options, list) or not options:
            raise ConfigError([f"grid: {key} needs a non-empty list of values, got {options!r}"])
    keys = [k for k in NAME_ORDER if k in grid] + [k for k in grid if k not in NAME_ORDER]
    runs = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        values = dict(zip(keys, combo, strict=True))
        name = run_name(values)
        runs.append(GridRun(name, values, folder / "runs" / name))
    for extra in spec.get("extra_runs", []):  # runs outside the product, e.g. one more init
        values = dict(extra)
        runs.append(GridRun(run_name(values), values, folder / "runs" / run_name(values)))
    names = [run.name for run in runs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError([f"grid: two runs would share the folder {n!r}" for n in twice])
    return runs


def evaluate_run(run: GridRun, finding: str) -> dict:
    """Test predictions and metrics at the validation threshold for 0.90 sensitivity (cached in the run)."""
    out = run.run_dir / "test_result.json"
    if out.exists():
        return json.loads(out.read_text())
    loaded = load_run(run.run_dir)
    splits = build_splits(loaded.config)
    spec = loaded.config.spec()
    val = predict_table(loaded.model, splits.val, spec, loaded.config.cache)
    test = predict_table(loaded.model, splits.test, spec, loaded.config.cache)
    i = finding_index(finding)
    threshold = thresholds_on(splits.val.labels, val, 0.9).get(finding, 0.5)
    y, p = splits.test.labels[:, i], test[:, i]
    stats = binary_stats(y, p, threshold)
    low, high = bootstrap_auroc_ci(y, p)
    history = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    result = {
        "name": run.name,
        "values": run.values,
        "val_auroc": auroc(splits.val.labels[:, i], val[:, i]),
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
    save_gallery_rows(loaded.model, loaded.config.architecture, spec, loaded.config.cache, splits.test, i, run.run_dir)
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


def _load_spec(config_path: Path, base_overrides: list[str] | None) -> dict[str, Any]:
    spec = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    if isinstance(spec.get("base"), str):  # a base config file, relative to the experiment file
        spec["base"] = yaml.safe_load((config_path.parent / spec["base"]).read_text(encoding="utf-8"))
    for key, value in spec.get("base_overrides", {}).items():  # the study's own changes to its shared base
        set_path(spec["base"], key, value)
    for item in base_overrides or []:
        key, _, raw = item.partition("=")
        set_path(spec["base"], key.strip(), yaml.safe_load(raw))
    return spec


def grid_configs(spec: dict[str, Any], runs: list[GridRun]) -> dict[str, TrainConfig]:
    """Every run's checked config (base + its values), before any of them trains; all problems in one error."""
    configs, problems = {}, []
    for run in runs:
        data = copy.deepcopy(spec["base"])
        for key, value in {**run.values, "name": run.name}.items():
            set_path(data, key, copy.deepcopy(value))
        try:
            configs[run.name] = config_from_dict(data)
        except ConfigError as exc:
            problems += [f"{run.name}: {p}" for p in exc.problems]
    if problems:
        raise ConfigError(problems)
    return configs


def run_experiment(
    config_path: Path, folder: Path | None = None, base_overrides: list[str] | None = None, report_only: bool = False
) -> Path:
    """Run every grid point not yet done, then write the report. ``base_overrides`` (``key=value``) change
    the base config, e.g. where the images are on this machine. ``report_only`` trains nothing and reports
    the finished runs (while the rest of the grid is still training, say), naming the ones not finished."""
    spec = _load_spec(config_path, base_overrides)
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
        from trainer.report import write_report

        write_report(folder, spec, finished, finding, unfinished=[r.name for r in runs if r not in finished])
        return folder
    for position, run in enumerate(runs, start=1):
        if (run.run_dir / "done.json").exists():
            log.info("[%d/%d] %s: done, skipped", position, len(runs), run.name)
        else:
            log.info("[%d/%d] %s", position, len(runs), run.name)
            config = configs[run.name]
            twin = find_finished_twin(config, spec.get("reuse_from", []))
            if twin is not None and not run.run_dir.exists():
                log.info("reusing the identical finished run %s", twin)
                run.run_dir.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(twin, run.run_dir)
            else:
                train(config, run.run_dir, existing="continue")  # an interrupted run goes on if its config is equal
        evaluate_run(run, finding)
    from trainer.report import write_report

    write_report(folder, spec, runs, finding)
    return folder
