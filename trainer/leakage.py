"""Leakage control for evaluations: the images of an evaluation that are copies of the model's own training
images (found with ``trainer.overlap`` against the signatures its bundle carries, or against a run's training
and validation images) are left out by default and always reported; a sensitivity analysis may also leave out
every image of the patients who have a known copy."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from cxr_desktop.core.bundle import LoadedBundle, training_signatures_path
from trainer.external import LabelledImages
from trainer.overlap import METHOD, THRESHOLD, SignatureSet, common_names, find_copies, load_signatures
from trainer.overlap import reference_signatures as compute_signatures

log = logging.getLogger(__name__)

NO_SIGNATURES = (
    "this bundle was exported without training-image signatures (before the leakage check existed): "
    "its evaluation images could not be checked against its training images, so copies of them may be counted"
)


def bundle_signatures(bundle: LoadedBundle) -> SignatureSet | None:
    """The signatures of the images the bundle's model was trained and validated on, or None (say so)."""
    path = training_signatures_path(bundle.path, bundle.card)
    if path is None:
        log.warning("%s: %s", bundle.path, NO_SIGNATURES)
        return None
    return load_signatures(path)


def run_signatures(paths: list[Path], workers: int = 2) -> SignatureSet:
    """Signatures of a run's training and validation images, computed now (a run has its images at hand)."""
    return compute_signatures(paths, common_names(paths), workers)


def check_overlap(
    images: LabelledImages, signatures: SignatureSet | None, keep: bool = False, workers: int = 2
) -> tuple[LabelledImages, dict]:
    """Find the evaluation images that are copies of training images; leave them out unless ``keep``.
    Returns the images to evaluate and the ``overlap`` record for metrics.json and the card."""
    if signatures is None:
        return images, {"checked": False, "training_copies": None, "excluded": 0, "note": NO_SIGNATURES}
    pairs, unreadable = find_copies(images.table.paths, signatures, THRESHOLD, workers)
    copied = sorted({p.image for p in pairs})
    record = {
        "checked": True,
        "method": METHOD,
        "threshold": THRESHOLD,
        "training_images": len(signatures.names),
        "training_copies": len(copied),
        "excluded": 0 if keep else len(copied),
        "pairs": [{"image": Path(p.image).name, "reference": p.reference, "similarity": p.similarity} for p in pairs],
    }
    if unreadable:
        record["unreadable"] = unreadable
    if copied:
        log.warning(
            "%d of %d evaluation images are copies of the model's training images: %s",
            len(copied),
            len(images.table),
            "kept (--keep-overlap)" if keep else "left out",
        )
    if keep or not copied:
        return images, record
    drop = set(copied)
    return images.subset(np.array([str(p) not in drop for p in images.table.paths])), record


def exclude_patients_of(images: LabelledImages, pairs_csv: Path) -> tuple[LabelledImages, dict]:
    """Leave out every image of each patient who has an image listed in the ``image`` column of ``pairs_csv``
    (a ``cxr-train overlap`` output): a sensitivity analysis for copies no check can see (a patient's other films
    in the training set under other names)."""
    with open(pairs_csv, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if "image" not in (reader.fieldnames or []):
            raise ValueError(f"{pairs_csv}: not a cxr-train overlap CSV (no 'image' column)")
        listed = {Path(row["image"]).name for row in reader}
    table = images.table
    patients = {patient for path, patient in zip(table.paths, table.patients, strict=True) if path.name in listed}
    keep = np.array([patient not in patients for patient in table.patients])
    record = {"pairs_file": str(pairs_csv), "patients": len(patients), "images": int((~keep).sum())}
    log.info("left out %d images of %d patients with a copy listed in %s", record["images"], len(patients), pairs_csv)
    return images.subset(keep), record
