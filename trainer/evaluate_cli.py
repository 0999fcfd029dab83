"""``cxr-train evaluate``: a run's split, or any images with labels, through a run or a model bundle."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

import numpy as np

from cxr_desktop.core.bundle import CARD_NAME, load_bundle, read_card
from cxr_desktop.core.labels import multi_hot
from cxr_desktop.studies.nih import read_nih_table
from trainer.config import TrainConfig
from trainer.data.local import binary_table
from trainer.data.nih import index_images
from trainer.data.samples import SampleTable
from trainer.evaluate import load_run, markdown_table, predict_table, thresholds_on, write_evaluation
from trainer.run import build_splits

log = logging.getLogger(__name__)


def labelled_images(images: Path, labels: Path) -> SampleTable:
    """Images under a folder joined to labels: an NIH Data_Entry file, or a CSV ``path,label``."""
    present = index_images(images)
    if "Data_Entry" in labels.name:
        table = read_nih_table(labels)
        names = sorted(n for n in present if n in table)
        rows = np.stack([multi_hot(table[n].labels) for n in names])
        return SampleTable([present[n] for n in names], rows, [table[n].patient_id for n in names])
    with open(labels, encoding="utf-8") as handle:
        items = list(csv.DictReader(handle))
    paths = [images / r["path"] for r in items]
    positive = [r["label"].strip().lower() in ("1", "true", "cardiomegaly") for r in items]
    return binary_table(paths, positive, [str(p) for p in paths], "Cardiomegaly")


def record_in_card(bundle_dir: Path, name: str, result: dict, how: str) -> None:
    """Add an external check to the bundle card's metrics (the weights and their sha256 are untouched)."""
    card_path = bundle_dir / CARD_NAME
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card.setdefault("metrics", {}).setdefault("checks", {})[name] = {"how": how, **result}
    card_path.write_text(json.dumps(card, indent=2), encoding="utf-8")
    read_card(bundle_dir)  # still valid


def evaluate_command(args: argparse.Namespace) -> int:
    if args.run:
        run = load_run(args.run)
        model, spec, cache = run.model, run.config.spec(), run.config.cache
        splits = build_splits(run.config)
        val_probs = predict_table(model, splits.val, spec, cache, args.device)
        thresholds = thresholds_on(splits.val.labels, val_probs, 0.9)
        source = f"run {args.run.name}"
    else:
        bundle = load_bundle(args.model)
        model, spec, cache = bundle.model, bundle.card.spec, ""
        thresholds = bundle.card.thresholds
        trained_with = bundle.card.provenance.get("config")
        # a bundle exported by cxr-train knows its training config, so its own val/test split can be rebuilt
        splits = build_splits(TrainConfig(**trained_with)) if trained_with and not args.images else None
        source = f"model {bundle.card.model_id}"
    if args.images:
        if not args.labels:
            print("cxr-train evaluate: --images needs --labels", file=sys.stderr)
            return 2
        table = labelled_images(args.images, args.labels)
        where = f"{args.images}"
    elif splits is not None:
        table = splits.test if args.split == "test" else splits.val
        where = f"{args.split} split"
    else:
        print("cxr-train evaluate: this bundle has no training config; give --images and --labels", file=sys.stderr)
        return 2
    if len(table) == 0:
        print("cxr-train evaluate: no labelled images to evaluate", file=sys.stderr)
        return 2
    probs = predict_table(model, table, spec, cache, args.device)
    out = args.out or (args.run / f"eval-{args.split}" if args.run else Path("eval"))
    result = write_evaluation(
        table.labels,
        probs,
        thresholds,
        out,
        f"{source} on {where} ({len(table)} images)",
        {"images": len(table), "source": source, "where": where},
    )
    if args.record_as and args.model:
        record_in_card(args.model, args.record_as, result, f"cxr-train evaluate on {where}")
    print(markdown_table(result))
    print(f"\nwritten to {out} (metrics.json, metrics.md, roc.png)")
    return 0
