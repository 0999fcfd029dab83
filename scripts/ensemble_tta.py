"""Two levers that cost scoring time, measured on the external NIH images: test-time augmentation (small
shifts and scales only, never a flip) and the ensemble of several bundles (mean probability).

Prints the urgent finding's AUROC (95 % bootstrap CI by patient) and the specificity at sensitivity 0.90 for
each bundle plain, each bundle with TTA, and the ensembles, on one half of the external protocol (default: the
tune half, on which candidates are chosen; nih14-sample + nih14-extra), without the images that are copies of
the first bundle's training images (its training signatures).

    .venv/bin/python scripts/ensemble_tta.py bundles/A bundles/B [--half tune]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from cxr_desktop.core.bundle import load_bundle
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.core.preprocess import normalize_input, resize_to_input, to_uint8
from cxr_desktop.studies.reader import read_study
from trainer.external import nih_labelled, select_half
from trainer.leakage import bundle_signatures, check_overlap
from trainer.metrics import auroc, binary_stats, bootstrap_auroc_ci, threshold_at_sensitivity

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# (scale, shift as a fraction of the side): identity, four 4 % shifts, zoom in and out by 5 %
VIEWS = [
    (1.0, (0, 0)),
    (1.0, (0.04, 0)),
    (1.0, (-0.04, 0)),
    (1.0, (0, 0.04)),
    (1.0, (0, -0.04)),
    (1.05, (0, 0)),
    (0.95, (0, 0)),
]


def warp(img: np.ndarray, scale: float, shift: tuple[float, float]) -> np.ndarray:
    h, w = img.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale)
    matrix[:, 2] += (shift[0] * w, shift[1] * h)
    return cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def scores(bundle_dir: Path, paths: list[Path], column: int) -> tuple[np.ndarray, np.ndarray]:
    """(plain, TTA mean) probabilities of one finding for every image."""
    bundle = load_bundle(bundle_dir)
    spec, model = bundle.card.spec, bundle.model.eval()
    plain, tta = [], []
    with torch.inference_mode():
        for start in range(0, len(paths), 32):
            small = [resize_to_input(to_uint8(read_study(p).image), spec) for p in paths[start : start + 32]]
            views = np.stack([[warp(s, sc, sh) for sc, sh in VIEWS] for s in small])  # (B, V, H, W)
            batch = normalize_input(torch.from_numpy(views.reshape(-1, *views.shape[2:])), spec)
            probs = torch.sigmoid(model(batch))[:, column].reshape(len(small), len(VIEWS)).numpy()
            plain.append(probs[:, 0])
            tta.append(probs.mean(axis=1))
    return np.concatenate(plain), np.concatenate(tta)


def line(name: str, y: np.ndarray, p: np.ndarray, patients: list[str]) -> str:
    low, high = bootstrap_auroc_ci(y, p, groups=patients)
    spec90 = binary_stats(y, p, threshold_at_sensitivity(y, p, 0.9)).specificity
    return f"| {name} | {auroc(y, p):.3f} ({low:.3f}–{high:.3f}) | {spec90:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--finding", default="Cardiomegaly")
    parser.add_argument("--half", choices=["tune", "report", "all"], default="tune")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    images = nih_labelled(
        [args.data / "nih14-sample" / "images", args.data / "nih14-extra" / "images"],
        args.data / "Data_Entry_2017_v2020.csv.gz",
    )
    images, overlap = check_overlap(select_half(images, args.half), bundle_signatures(load_bundle(args.bundles[0])))
    column = FINDINGS.index(args.finding)
    y, patients = images.table.labels[:, column], images.table.patients
    print(
        f"{len(y)} external NIH images ({args.half} half; {overlap['excluded']} copies of training images left out), "
        f"{int(np.nansum(y))} with {args.finding}; TTA: {len(VIEWS)} views\n"
    )
    print("| model | AUROC (95 % CI) | specificity at sensitivity 0.90 |\n|---|---|---:|")
    plains, ttas = [], []
    for bundle in args.bundles:
        plain, tta = scores(bundle, images.table.paths, column)
        plains.append(plain)
        ttas.append(tta)
        print(line(bundle.name, y, plain, patients))
        print(line(f"{bundle.name} + TTA", y, tta, patients))
    if len(args.bundles) > 1:
        print(line(f"ensemble of {len(plains)}", y, np.mean(plains, axis=0), patients))
        print(line(f"ensemble of {len(ttas)} + TTA", y, np.mean(ttas, axis=0), patients))


if __name__ == "__main__":
    main()
