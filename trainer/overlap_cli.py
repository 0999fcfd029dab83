"""``cxr-train overlap``: list every image of one set that is the same film as an image of another."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from trainer.overlap import THRESHOLD, collect_images, find_copies, reference_signatures, write_pairs

log = logging.getLogger(__name__)

EPILOG = f"""\
Robust to contrast boosts, gamma, scattered noise pixels, resizing, 8-bit requantisation, uniform borders and
crops up to about 5 % of each side (method and measurements: trainer/overlap.py, docs/experiments/leakage.md).
Same-film pairs score 0.93-0.98 here; different films, even of one patient, up to 0.914 (a patient's
films taken on one day in one position come closest). --threshold (default {THRESHOLD}) sets what is listed.

examples:
  cxr-train overlap --reference ../shared/data/cardiomegaly-local --images ../shared/data/nih14-sample/images \\
      ../shared/data/nih14-extra/images --out pairs.csv
  cxr-train overlap --reference train.csv --images test.csv --out leaks.csv
"""


def add_overlap_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "overlap",
        help="list the images of --images that are the same film as an image of --reference",
        description="Find copies of the same radiograph between two image sets (training data leaking into "
        "an evaluation). Writes a CSV image,reference,similarity, one row a pair.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--reference", type=Path, nargs="+", required=True, help="folders, image files or label CSVs")
    p.add_argument("--images", type=Path, nargs="+", required=True, help="folders, image files or label CSVs")
    p.add_argument("--out", type=Path, required=True, help="the pairs CSV to write")
    p.add_argument("--threshold", type=float, default=THRESHOLD, help="lowest similarity listed (%(default)s)")
    p.add_argument("--workers", type=int, default=2, help="decoding processes (default %(default)s)")
    p.set_defaults(func=overlap_command)


def overlap_command(args: argparse.Namespace) -> int:
    if not -1.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold {args.threshold}: a similarity lies in [-1, 1]")
    if args.out.is_dir():
        raise ValueError(f"--out {args.out} is a folder; name the CSV file to write")
    references = collect_images(args.reference)
    images = collect_images(args.images)
    log.info("comparing %d images with %d references", len(images), len(references))
    signatures = reference_signatures(references, workers=args.workers)
    pairs, errors = find_copies(images, signatures, args.threshold, workers=args.workers)
    write_pairs(pairs, args.out)
    unreadable = {**signatures.errors, **errors}
    for name, reason in sorted(unreadable.items()):
        print(f"  could not read {name}: {reason}", file=sys.stderr)
    copied = len({p.image for p in pairs})
    print(
        f"{len(pairs)} pairs at similarity >= {args.threshold}: {copied} of {len(images)} images are the same film "
        f"as one of {len(references)} references; {len(unreadable)} files unreadable; written to {args.out}"
    )
    return 1 if unreadable else 0
