"""A run folder: resolved config, the split it used, a log, per-epoch metrics, checkpoints, best weights.

Runs never mix: a new run into a folder that already holds one is refused unless it is resumed (with the saved
config, any conflicting value refused) or overwritten (the folder cleared first), and everything that can be
checked (config values, data paths, the split) is checked before the folder is created or changed.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cxr_desktop.core.labels import finding_index
from trainer.config import TrainConfig, config_from_dict, load_config, read_values
from trainer.data.local import csv_splits, folder_splits
from trainer.data.nih import nih_splits
from trainer.data.samples import Splits, stratified_sample
from trainer.fit import BEST, CHECKPOINT, fit

log = logging.getLogger(__name__)
RUN_MARKERS = ("config.yaml", CHECKPOINT, BEST, "done.json")  # any of them: the folder holds a run
LOCATION_KEYS = ("name", "out_dir")  # where a run is, not what it trains
Existing = Literal["refuse", "overwrite", "continue"]


class RunExistsError(ValueError):
    """A new run was asked for in a folder that already holds one."""


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
    elif config.dataset in ("folder", "csv"):
        read = folder_splits if config.dataset == "folder" else csv_splits
        splits = read(
            Path(config.images),
            config.binary or "Cardiomegaly",
            config.positive_class,
            config.val_fraction,
            config.seed,
            config.class_counts,
        )
    else:
        raise ValueError(f"unknown dataset {config.dataset!r}; use nih, folder or csv")
    if config.binary:
        splits = Splits(*(t.mask_to(config.binary) for _, t in splits.items()), splits.notes)
    if config.max_train_images and len(splits.train) > config.max_train_images:
        splits.train, note = stratified_sample(splits.train, config.max_train_images, config.seed)
        splits.notes["max_train_images"] = note
        log.info("max_train_images: kept a seeded, stratified %s", note)
    return splits


def check_paths(config: TrainConfig) -> None:
    """The files and folders a config names exist (before any run folder is made)."""
    named = {"images": config.images, "cache": config.cache}
    if config.dataset == "nih":
        named.update({key: getattr(config, key) for key in ("labels_csv", "train_list", "test_list")})
    if config.init.startswith("checkpoint:"):
        named["init"] = config.init.split(":", 1)[1]
    hints = {"cache": " (make it with `cxr-train cache`)"}
    missing = [
        f"{key}: {value} does not exist{hints.get(key, '')}"
        for key, value in named.items()
        if value and not Path(value).exists()
    ]
    if missing:
        raise FileNotFoundError("; ".join(missing))


def balance_report(config: TrainConfig, splits: Splits) -> None:
    """Log what oversampling will do, and warn when ``oversample_to`` makes the minority the larger class."""
    if config.balance != "oversample":
        if config.oversample_to:
            log.warning(
                "oversample_to=%d is ignored: balance is %r, not 'oversample'", config.oversample_to, config.balance
            )
        return
    column = splits.train.labels[:, finding_index(config.binary or "Cardiomegaly")]
    pos, neg = int((column == 1).sum()), int((column == 0).sum())
    (small, n_small), (_, n_large) = sorted([("positive", pos), ("negative", neg)], key=lambda item: item[1])
    target = config.oversample_to or n_large
    log.info("oversample: %s images %d -> %d (against %d)", small, n_small, max(target, n_small), n_large)
    if target > n_large:
        log.warning(
            "oversample_to=%d makes the minority (%d %s images) larger than the majority (%d): it is an absolute "
            "count of minority images after oversampling (0 = match the majority)",
            target,
            n_small,
            small,
            n_large,
        )


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


def holds_run(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in RUN_MARKERS)


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``changes``, mappings merged key by key (a partial ``preprocessing`` keeps the rest)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def differing_keys(a: TrainConfig, b: TrainConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """The keys whose values differ between two configs."""
    left, right = a.to_dict(), b.to_dict()
    return [key for key in left if key not in ignore and left[key] != right[key]]


def check_folder(config: TrainConfig, run_dir: Path, existing: Existing) -> None:
    """Refuse a new run into a folder holding one (``refuse``), or a continuation with other settings."""
    if not holds_run(run_dir):
        return
    if existing == "refuse":
        held = next(name for name in RUN_MARKERS if (run_dir / name).exists())
        raise RunExistsError(
            f"{run_dir} already holds a run ({held}): continue it with `cxr-train train --resume {run_dir}`, "
            "start it again with --overwrite (deletes it), or pick another name (--set name=...)"
        )
    if existing == "overwrite" and any(run_dir.glob("*/config.yaml")):
        raise RunExistsError(f"{run_dir} holds other runs: --overwrite clears one run folder, not a folder of runs")
    if existing == "continue":
        if not (run_dir / "config.yaml").exists():
            raise RunExistsError(f"{run_dir} has a checkpoint but no config.yaml: it cannot be continued safely")
        saved = load_config(run_dir / "config.yaml")
        changed = differing_keys(saved, config, ignore=LOCATION_KEYS)
        if changed:
            described = ", ".join(f"{k}: {getattr(saved, k)!r} there, {getattr(config, k)!r} now" for k in changed)
            raise RunExistsError(f"{run_dir} was started with other settings ({described}); runs never mix")


def _check_split(run_dir: Path, splits: Splits) -> None:
    saved = run_dir / "split.csv"
    if saved.exists() and saved.read_bytes() != splits.csv_text().encode("utf-8"):
        raise RunExistsError(
            f"{run_dir}: the data gives another split than split.csv (images added, removed or moved since the run "
            "started); a resumed run would mix two datasets: start a new run"
        )


def train(config: TrainConfig, run_dir: Path | None = None, existing: Existing = "refuse") -> Path:
    """Start a run in ``run_dir`` (default ``out_dir/name``) and return the folder.

    ``existing`` says what to do when the folder already holds a run: ``refuse`` (raise
    :class:`RunExistsError`), ``overwrite`` (clear it once everything else checked out) or ``continue`` (resume
    it from its checkpoint; its config.yaml must equal ``config``). Under ``torchrun`` only rank 0 checks and
    writes the folder; the other ranks meet it in ``fit`` (whose process-group start waits for rank 0)."""
    run_dir = Path(run_dir or Path(config.out_dir) / config.name)
    main = int(os.environ.get("RANK", "0")) == 0
    check_paths(config)
    if main:
        check_folder(config, run_dir, existing)
    splits = build_splits(config)
    if main:
        if existing == "continue":
            _check_split(run_dir, splits)
        elif existing == "overwrite" and holds_run(run_dir):
            log.warning("--overwrite: deleting the earlier run in %s", run_dir)
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    handler = attach_log(run_dir) if main else None
    try:
        if main:
            _write_run_files(config, run_dir, splits)
        balance_report(config, splits)
        fit(config, splits, run_dir)
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
    return run_dir


def _write_run_files(config: TrainConfig, run_dir: Path, splits: Splits) -> None:
    """config.yaml, split.csv and data.json of a new run (a continued run keeps its own)."""
    if not (run_dir / "config.yaml").exists():
        config.save(run_dir / "config.yaml")
    if not (run_dir / "split.csv").exists():
        splits.save_csv(run_dir / "split.csv")
    info = {
        "code_version": code_version(),
        "counts": {name: len(table) for name, table in splits.items()},
        "positives": {name: table.positives() for name, table in splits.items()},
        "notes": splits.notes,
    }
    if not (run_dir / "data.json").exists():
        (run_dir / "data.json").write_text(json.dumps(info, indent=2, default=_plain))
    log.info("run %s: train %d, val %d, test %d images", run_dir, *info["counts"].values())
    for key, note in splits.notes.items():
        log.info("data %s: %s", key, note)


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else str(value)


def resume_config(run_dir: Path, path: Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """The saved config of ``run_dir``; values given again (``-c`` file, ``--set``) must equal the saved ones."""
    saved_file = Path(run_dir) / "config.yaml"
    if not saved_file.exists():
        raise FileNotFoundError(f"{run_dir}: no config.yaml, so no run to resume")
    saved = load_config(saved_file)
    given = read_values(path, overrides)
    if not given:
        return saved
    wanted = config_from_dict(merge(saved.to_dict(), given))
    conflicts = [key for key in given if getattr(wanted, key) != getattr(saved, key)]
    if conflicts:
        described = ", ".join(f"{k}={getattr(wanted, k)!r} (the run has {getattr(saved, k)!r})" for k in conflicts)
        raise ValueError(
            f"--resume keeps the run's config.yaml, but {described}; "
            "start a new run (another --set name=..., or --overwrite) to train with other values"
        )
    return saved


def resume(run_dir: Path, path: Path | None = None, overrides: list[str] | None = None) -> Path:
    """Continue ``run_dir`` from its checkpoint with its saved config (see :func:`resume_config`)."""
    return train(resume_config(run_dir, path, overrides), run_dir, existing="continue")
