"""A training lever against the default recipe, seed for seed, on the external protocol's tune half (issue 21
item 5: "confirm what you adopt with 3 seeds against 3 seeds of the baseline").

Each run was exported and scored on the tune half by ``scripts/external_protocol.sh`` (ONNX scores, copies of
its own training images left out: none for these runs); this reads their ``probabilities.npy``, pairs the runs
by seed and prints the per-seed AUROCs, the paired differences and the two-level bootstrap (seeds x patients)
of ``trainer.comparisons``.

    .venv/bin/python scripts/lever_seeds.py v3-borders-text [--baseline v3-clean] [--seeds 0 1 2] [--eval DIR]

``--eval`` (default ``eval``) holds ``RUN/nih-tune-half/probabilities.npy``; the runs measured for the docs are
kept under ``docs/results/levers``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cxr_desktop.core.labels import FINDINGS
from trainer.comparisons import compare_over_seeds
from trainer.external import nih_labelled, select_half
from trainer.metrics import auroc, bootstrap_auroc_ci

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def tune_scores(folder: Path, run: str, column: int, n: int) -> np.ndarray:
    scores = np.load(folder / run / "nih-tune-half" / "probabilities.npy")[:, column]
    if len(scores) != n:
        raise SystemExit(f"{run}: {len(scores)} tune-half scores, the tune half has {n} images (copies left out?)")
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lever", help="the runs' name without -sN, e.g. v3-borders-text")
    parser.add_argument("--baseline", default="v3-clean")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--finding", default="Cardiomegaly")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--eval", type=Path, default=REPO / "eval", help="where the runs' tune-half scores are")
    args = parser.parse_args()
    folders = [args.data / "nih14-sample" / "images", args.data / "nih14-extra" / "images"]
    images = select_half(nih_labelled(folders, args.data / "Data_Entry_2017_v2020.csv.gz"), "tune")
    column = FINDINGS.index(args.finding)
    y, patients = images.table.labels[:, column], images.table.patients
    lever = {s: tune_scores(args.eval, f"{args.lever}-s{s}", column, len(y)) for s in args.seeds}
    base = {s: tune_scores(args.eval, f"{args.baseline}-s{s}", column, len(y)) for s in args.seeds}
    print(f"tune half: {len(y)} NIH images, {int(np.nansum(y))} with {args.finding}; paired by seed\n")
    print(f"| seed | {args.baseline} AUROC (95 % CI) | {args.lever} AUROC (95 % CI) | difference |")
    print("|---:|---|---|---:|")
    for seed in args.seeds:
        cells = []
        for scores in (base[seed], lever[seed]):
            low, high = bootstrap_auroc_ci(y, scores, groups=patients)
            cells.append(f"{auroc(y, scores):.3f} ({low:.3f}–{high:.3f})")
        print(f"| {seed} | {cells[0]} | {cells[1]} | {auroc(y, lever[seed]) - auroc(y, base[seed]):+.3f} |")
    result = compare_over_seeds(y, lever, base, groups=patients)
    low, high = result.ci95
    print(
        f"\nmean difference {result.mean_delta:+.3f} (95 % CI {low:+.3f} to {high:+.3f}; two-level bootstrap over "
        f"seeds and patients), p = {result.p_value:.3f}, seeds agreeing: {result.sign_agreement}"
    )


if __name__ == "__main__":
    main()
