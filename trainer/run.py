"""A run folder: resolved config, the split it used, a log, per-epoch metrics, checkpoints, best weights."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

from trainer.config import TrainConfig, load_config
from trainer.data.local import csv_splits, folder_splits
from trainer.data.nih import nih_splits
from trainer.data.samples import Splits
from trainer.fit import fit

log = logging.getLogger(__name__)


def build_splits(config: TrainConfig) -> Splits:
    if config.dataset == "nih":
        for key in ("images", "labels_csv", "train_list", "test_list"):
            if not getattr(config, key):
                raise ValueError(f"the NIH dataset needs '{key}' in the config")
        splits = nih_splits(
            Path(config.images),
            Path(config.labels_csv),
            Path(config.train_list),
            Path(config.test_list),
            config.val_fraction,
            config.seed,
        )
    elif config.dataset == "folder":
        splits = folder_splits(
            Path(config.images),
            config.binary or "Cardiomegaly",
            config.positive_class,
            config.val_fraction,
            config.seed,
            config.class_counts,
        )
    elif config.dataset == "csv":
        splits = csv_splits(
            Path(config.images),
            config.binary or "Cardiomegaly",
            config.positive_class,
            config.val_fraction,
            config.seed,
        )
    else:
        raise ValueError(f"unknown dataset {config.dataset!r}; use nih, folder or csv")
    if config.binary:
        splits = Splits(*(t.mask_to(config.binary) for _, t in splits.items()), splits.notes)
    if config.max_train_images and len(splits.train) > config.max_train_images:
        splits.train = splits.train.subset(range(config.max_train_images))
    return splits


def code_version() -> str:
    """``git describe`` of the trainer's checkout (or ``CXR_CODE_VERSION`` where there is no git)."""
    if os.environ.get("CXR_CODE_VERSION"):
        return os.environ["CXR_CODE_VERSION"]
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def attach_log(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler


def train(config: TrainConfig, run_dir: Path | None = None) -> Path:
    """Start a run (or continue the one in ``run_dir``) and return its folder."""
    run_dir = Path(run_dir or Path(config.out_dir) / config.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = attach_log(run_dir)
    try:
        if not (run_dir / "config.yaml").exists():
            config.save(run_dir / "config.yaml")
        splits = build_splits(config)
        splits.save_csv(run_dir / "split.csv")
        info = {
            "code_version": code_version(),
            "counts": {name: len(table) for name, table in splits.items()},
            "positives": {name: table.positives() for name, table in splits.items()},
            "notes": splits.notes,
        }
        (run_dir / "data.json").write_text(json.dumps(info, indent=2))
        log.info("run %s: train %d, val %d, test %d images", run_dir, *info["counts"].values())
        fit(config, splits, run_dir)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    return run_dir


def resume(run_dir: Path) -> Path:
    config = load_config(run_dir / "config.yaml")
    return train(config, run_dir)
