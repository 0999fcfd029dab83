"""The default model's training list: every image of the local hospital set (train and test folders, label =
class folder, split = train) except the films that `cxr-train overlap` found among the external NIH images, so
that every NIH image stays external.

    cxr-train overlap --reference ../shared/data/cardiomegaly-local --out cache/nih-films-in-local-set.csv \
        --images ../shared/data/nih14-sample/images ../shared/data/nih14-extra/images
    python scripts/local_training_csv.py --pairs cache/nih-films-in-local-set.csv --out cache/local-clean.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local", type=Path, default=Path("../shared/data/cardiomegaly-local"))
    parser.add_argument("--pairs", type=Path, required=True, help="a cxr-train overlap CSV (its reference column)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    root = args.local.resolve()
    with open(args.pairs, encoding="utf-8", newline="") as handle:
        excluded = {Path(row["reference"]).resolve() for row in csv.DictReader(handle)}
    rows, left_out = [], 0
    for split in ("train", "test"):
        for label in ("cardiomegaly", "other"):
            for path in sorted((root / split / label).glob("*.png"), key=lambda p: int(p.stem)):
                if path in excluded:
                    left_out += 1
                    continue
                rows.append((str(path), label, "train"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        writer.writerows(rows)
    print(f"{len(rows)} training images written to {args.out}; {left_out} local films left out")


if __name__ == "__main__":
    main()
