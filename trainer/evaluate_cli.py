"""``cxr-train evaluate``: a run's split, or any images with labels, through a run or a model bundle."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cxr_desktop.core.bundle import CARD_NAME, LoadedBundle, load_bundle, onnx_path, read_card, write_card
from cxr_desktop.core.preprocess import PreprocessSpec
from cxr_desktop.core.validation import VALIDATION_FLOOR
from trainer.config import TrainConfig
from trainer.data.local import csv_table
from trainer.data.samples import Splits
from trainer.evaluate import markdown_table, predict_table, predict_table_onnx, trained_labels, write_evaluation
from trainer.external import LabelledImages, nih_labelled, select_half
from trainer.leakage import bundle_signatures, check_overlap, exclude_patients_of, run_signatures
from trainer.overlap import SignatureSet
from trainer.run import build_splits
from trainer.run_evaluation import DEFAULT_SENSITIVITY, RunEvaluation

log = logging.getLogger(__name__)


def labelled_images(folders: list[Path] | None, labels: Path, half: str, finding: str) -> LabelledImages:
    """Labelled images: NIH images under ``folders`` joined to a ``Data_Entry`` file (with sex, age and view
    for the subgroups; ``half`` picks the protocol's tune or report half), or a label CSV ``path,label``
    (paths relative to the CSV's folder, as for training)."""
    if "Data_Entry" in labels.name:
        if not folders:
            raise ValueError("NIH labels (a Data_Entry file) need --images DIR...")
        return select_half(nih_labelled(folders, labels), half)
    if half != "all":
        raise ValueError("--half needs NIH labels (a Data_Entry file): the halves are split by NIH patient")
    if folders:
        raise ValueError("a label CSV names its own images (paths relative to the CSV's folder): drop --images")
    return LabelledImages(csv_table(labels, finding), None)


def validated_from(result: dict, trained: list[str], floor: float = VALIDATION_FLOOR) -> list[str]:
    """Findings whose AUROC lower 95 % bound reaches ``floor`` here (degenerate outputs never count)."""
    return [
        name
        for name, r in result["findings"].items()
        if name in trained
        and not r.get("degenerate")
        and not np.isnan(r["auroc_ci95"][0])
        and r["auroc_ci95"][0] >= floor
    ]


def record_in_card(
    bundle_dir: Path, name: str, result: dict, how: str, validate: bool = False, rates: bool = False
) -> None:
    """Add an external check to the bundle card's metrics (the weights and their sha256 are untouched); with
    ``validate``, this check also sets the card's ``validated_findings`` — refused, leaving the card as it
    was, when the urgent finding does not pass (such a model must not triage). With ``rates`` (a report half,
    which no threshold saw) the check is also the card's ``external_operating_points``: the flag rate,
    sensitivity and specificity of each operating point that the app's chooser shows."""
    current = read_card(bundle_dir)
    card_path = bundle_dir / CARD_NAME
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card.setdefault("metrics", {}).setdefault("checks", {})[name] = {"how": how, **result}
    if validate:
        validated = validated_from(result, current.trained_findings)
        if current.urgent_finding not in validated:
            found = result["findings"].get(current.urgent_finding, {}).get("auroc_ci95", [float("nan")])[0]
            raise ValueError(
                f"{current.urgent_finding}: AUROC lower 95 % bound {found:.3f} < {VALIDATION_FLOOR} on {name}; "
                "the urgent finding did not pass external validation, so the card was not changed"
            )
        card["validated_findings"] = validated
        card["metrics"]["validation_check"] = name
        log.info("validated findings (AUROC lower 95 %% bound >= %.2f on %s): %s", VALIDATION_FLOOR, name, validated)
    if rates and result.get("operating_points"):
        urgent = current.urgent_finding
        card["metrics"]["external_operating_points"] = {
            "check": name,
            "findings": {urgent: result["findings"][urgent]},
            "operating_points": result["operating_points"],
        }
    write_card(bundle_dir, card)
    read_card(bundle_dir)  # still valid


@dataclass
class Source:
    """What is evaluated: a model, its preprocessing, thresholds, trained findings and its own splits."""

    name: str
    model: torch.nn.Module
    spec: PreprocessSpec
    cache: str
    thresholds: dict[str, float]
    points: dict[str, dict[str, float]]
    trained: list[str]
    urgent: str
    splits: Splits | None
    run: RunEvaluation | None = None  # a run keeps the probabilities of its splits
    bundle: LoadedBundle | None = None  # a bundle scores with its ONNX copy, as the app does on the CPU

    @classmethod
    def of_run(cls, run: RunEvaluation) -> Source:
        """A run with the thresholds for the default sensitivity on its validation split."""
        thresholds = run.thresholds(DEFAULT_SENSITIVITY)
        return cls(
            name=f"run {run.run_dir.name}",
            model=run.model,
            spec=run.spec,
            cache=run.config.cache,
            thresholds=thresholds,
            points={f"sensitivity_{DEFAULT_SENSITIVITY:.2f}": thresholds},
            trained=run.trained_findings,
            urgent=run.urgent_finding,
            splits=run.splits,
            run=run,
        )

    def probabilities(self, images: LabelledImages, split: str | None, device: str) -> np.ndarray:
        """The model's probabilities on ``images``: ``split`` names the run's own split they are, if so."""
        if self.run is not None and split is not None:
            return self.run.probabilities(split)
        onnx_file = onnx_path(self.bundle) if self.bundle is not None and device in ("auto", "cpu") else None
        if onnx_file is not None:
            log.info("scoring with the bundle's ONNX copy (the app's CPU scores)")
            return predict_table_onnx(onnx_file, images.table, self.spec)
        return predict_table(self.model, images.table, self.spec, self.cache, device)

    def training_signatures(self) -> SignatureSet | None:
        """What the model was trained and validated on, for the leakage check."""
        if self.bundle is not None:
            return bundle_signatures(self.bundle)
        assert self.run is not None
        return run_signatures([*self.run.splits.train.paths, *self.run.splits.val.paths])


def load_source(args: argparse.Namespace) -> Source:
    if args.run:
        return Source.of_run(RunEvaluation.open(args.run, args.device))
    bundle = load_bundle(args.model)
    card = bundle.card
    trained_with = card.provenance.get("config")
    # a bundle exported by cxr-train knows its training config, so its own val/test split can be rebuilt
    splits = build_splits(TrainConfig(**trained_with)) if trained_with and not args.labels else None
    name, points, urgent = f"model {card.model_id}", card.operating_points, card.urgent_finding
    trained = card.trained_findings
    return Source(name, bundle.model, card.spec, "", card.thresholds, points, trained, urgent, splits, bundle=bundle)


def evaluation_images(args: argparse.Namespace, source: Source) -> tuple[LabelledImages, str, str | None]:
    """The labelled images to score, a description, and the run's own split they are (if so)."""
    if args.images or args.labels:
        if not args.labels:
            raise ValueError("--images needs --labels")
        images = labelled_images(args.images, args.labels, args.half, source.urgent)
        where = " + ".join(str(f) for f in args.images or [args.labels])
        return images, where + ("" if args.half == "all" else f", {args.half} half"), None
    if source.splits is not None:
        table = source.splits.test if args.split == "test" else source.splits.val
        return LabelledImages(table, None), f"{args.split} split", args.split
    raise ValueError("this bundle has no training config; give --images and --labels")


def leakage_checked(
    args: argparse.Namespace, source: Source, images: LabelledImages
) -> tuple[LabelledImages, dict[str, dict]]:
    """The images without copies of training images (unless --keep-overlap) and, with --exclude-patients-of,
    without the patients who have a listed copy; the records of both."""
    records: dict[str, dict] = {}
    images, records["overlap"] = check_overlap(images, source.training_signatures(), keep=args.keep_overlap)
    if args.exclude_patients_of:
        images, records["patients_excluded"] = exclude_patients_of(images, args.exclude_patients_of)
    return images, records


def evaluate_command(args: argparse.Namespace) -> int:
    source = load_source(args)
    images, where, split = evaluation_images(args, source)
    if split is None:  # a run's own split is scored (and cached) whole; other images are checked for copies
        images, records = leakage_checked(args, source, images)
    else:
        records = {"overlap": {"checked": False, "note": "a run's own split: its images are its data, not copies"}}
    table = images.table
    if len(table) == 0:
        raise ValueError("no labelled images to evaluate")
    labels = trained_labels(table.labels, source.trained)
    log.info("scoring %d images (%s)", len(table), where)
    probs = source.probabilities(images, split, args.device)
    out = args.out or (args.run / f"eval-{args.split}" if args.run else Path("eval"))
    extra = {"images": len(table), "source": source.name, "where": where, "trained_findings": source.trained}
    result = write_evaluation(
        labels,
        probs,
        source.thresholds,
        out,
        f"{source.name} on {where} ({len(table)} images)",
        {**extra, **records},
        focus=source.urgent,
        metadata=images.metadata,
        points=source.points,
        patients=table.patients,
    )
    if args.record_as and args.model:
        main_report = args.half == "report" and not args.exclude_patients_of  # the app's chooser shows its rates
        record_in_card(args.model, args.record_as, result, f"cxr-train evaluate on {where}", args.validate, main_report)
    print(markdown_table(result))
    print(overlap_summary(records))
    print(f"\nwritten to {out} (metrics.json, metrics.md, roc.png, reliability.png)")
    return 0


def overlap_summary(records: dict[str, dict]) -> str:
    overlap = records["overlap"]
    if not overlap.get("checked"):
        text = f"\nLeakage check: not run — {overlap['note']}"
    else:
        text = (
            f"\nLeakage check: {overlap['training_copies']} evaluation images are copies of the model's "
            f"{overlap['training_images']} training/validation images; {overlap['excluded']} left out"
        )
    if "patients_excluded" in records:
        gone = records["patients_excluded"]
        text += f"; {gone['images']} images of {gone['patients']} patients with a listed copy left out"
    return text
