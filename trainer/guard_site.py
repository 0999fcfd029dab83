"""``cxr-train guard-site``: calibrate a bundle's input guard on one site's own films.

A guard fitted on NIH films and the model's training images calls some of another site's ordinary films
doubtful (a different detector, processing or contrast moves them away from the reference). Each of the
guard's three tests has a cut-off: the distance (``distance_cutoff``), the orientation/polarity probe's
confidence (``min_confidence``) and the mirror probe's score (``mirror_cutoff``). Here each is raised, never
lowered, just enough that at most ``target / 3`` of the site's films pass it, so that at most ``target`` of them
are called doubtful in all. The site's films are taken as they come (right way up, normal polarity); a few
that are not are tolerated by the quantile.

Raising a cut-off also lets through more of what it is there to catch. ``--check-images`` (films of the same
site the calibration did not see) measures both sides, before and after: the share of its films called
doubtful as they are, and the share caught when they are rotated, inverted or mirrored.

The calibrated guard is written into a copy of the bundle (``--out``; its card resealed with a
``site_calibration`` record), never into the bundle given: a site bundle is not the shipped default.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from cxr_desktop.core.guard import InputGuard

log = logging.getLogger(__name__)

DEFAULT_TARGET = 0.01
DEFAULT_SITE_IMAGES = 1000
MAX_CONFIDENCE = 0.999  # the probe's confidence cut-off never reaches 1 (it would switch the probe off)


def site_statistics(guard: InputGuard, features: np.ndarray) -> dict[str, np.ndarray]:
    """Per film, the three numbers the guard compares with its cut-offs: the distance, the probe's probability
    of its best class when that class is not upright (0 when it is), and the mirror score (-inf without a
    mirror probe)."""
    dims = guard.mean.shape[0]
    embeddings = features[:, :dims]
    probabilities = guard.probe_probabilities(embeddings)
    best = probabilities.argmax(axis=1)
    turned = np.where(best != 0, probabilities.max(axis=1), 0.0)
    mirror = np.full(len(features), -np.inf)
    if guard.has_mirror_probe:
        if features.shape[1] != (1 + guard.mirror_groups) * dims:
            raise ValueError(
                f"the guard's mirror probe reads {guard.mirror_groups} lateral difference(s); the features hold "
                f"{features.shape[1] // dims - 1}"
            )
        mirror = guard.mirror_scores(features)
    return {"distance": guard.distances(embeddings), "probe": turned, "mirror": mirror}


def calibrate(guard: InputGuard, features: np.ndarray, target: float = DEFAULT_TARGET) -> InputGuard:
    """A copy of ``guard`` whose cut-offs let at most ``target / 3`` of these (site) films past each test."""
    if not 0 < target < 0.5:
        raise ValueError(f"the target share of site films called doubtful must be in (0, 0.5), got {target}")
    if len(features) < 100:
        raise ValueError(f"{len(features)} site films are too few to set a cut-off from (at least 100)")
    stats = site_statistics(guard, features)
    quantile = 1.0 - target / 3
    calibrated = replace(
        guard,
        distance_cutoff=max(guard.distance_cutoff, float(np.quantile(stats["distance"], quantile))),
        min_confidence=min(MAX_CONFIDENCE, max(guard.min_confidence, float(np.quantile(stats["probe"], quantile)))),
    )
    if guard.has_mirror_probe:
        calibrated.mirror_cutoff = max(guard.mirror_cutoff, float(np.quantile(stats["mirror"], quantile)))
    calibrated.check()
    return calibrated


def cutoffs(guard: InputGuard) -> dict[str, float]:
    values = {"distance_cutoff": guard.distance_cutoff, "min_confidence": guard.min_confidence}
    if guard.has_mirror_probe:
        values["mirror_cutoff"] = guard.mirror_cutoff
    return values


def guard_site_command(args: argparse.Namespace) -> int:
    """Embed the site's films, calibrate, measure on --check-images before and after, write the copy."""
    from cxr_desktop.core.bundle import load_bundle
    from cxr_desktop.core.device import resolve_device
    from trainer.guard import Embedder, embed_variants, read_gray, reference_paths, summarise

    if args.out.exists():
        raise SystemExit(f"cxr-train guard-site: {args.out} exists; name a new folder for the site's bundle")
    bundle = load_bundle(args.bundle)
    if bundle.guard is None:
        raise SystemExit(f"cxr-train guard-site: {args.bundle} has no input guard to calibrate (cxr-train guard)")
    model = bundle.require_model("cxr-train guard-site")
    device = resolve_device(args.device)
    groups = bundle.guard.mirror_groups or None  # the differences this guard's mirror probe reads
    embed = Embedder(model, bundle.card.architecture, bundle.card.spec, device, groups=groups)
    site_paths = reference_paths(args.site_images, args.max_site_images, seed=args.seed)
    site = embed([g for g in map(read_gray, site_paths) if g is not None])
    calibrated = calibrate(bundle.guard, site, args.target)
    measured = {"site films (calibration)": {"before": summarise({"": bundle.guard.verdicts(site)})[""]}}
    measured["site films (calibration)"]["after"] = summarise({"": calibrated.verdicts(site)})[""]
    if args.check_images:
        check = embed_variants(embed, reference_paths(args.check_images, args.max_check_images, seed=args.seed))
        for name, features in check.items():
            before, after = bundle.guard.verdicts(features), calibrated.verdicts(features)
            measured[f"check films, {name.replace('_', ' ')}"] = {
                "before": summarise({"": before})[""],
                "after": summarise({"": after})[""],
            }
    record = {
        "site_images": str(args.site_images),
        "films": len(site),
        "target": args.target,
        "cutoffs_before": cutoffs(bundle.guard),
        "cutoffs_after": cutoffs(calibrated),
        "measured": measured,
    }
    write_site_bundle(args.bundle, args.out, calibrated, record)
    print_measurement(measured)
    return 0


def write_site_bundle(source: Path, out: Path, guard: InputGuard, record: dict) -> None:
    """A copy of ``source`` whose card holds ``guard``'s cut-offs and the ``site_calibration`` record, resealed
    and loaded back (the guard's tensors are unchanged: only cut-offs move)."""
    from cxr_desktop.core.bundle import CARD_NAME, load_bundle, write_card

    shutil.copytree(source, out)
    data = json.loads((out / CARD_NAME).read_text(encoding="utf-8"))
    data["guard"] = {**data["guard"], **cutoffs(guard), "site_calibration": record}
    write_card(out, data)
    load_bundle(out)


def print_measurement(measured: dict[str, dict]) -> None:
    print("| films | n | called doubtful before | after |\n|---|---:|---:|---:|")
    for name, row in measured.items():
        before, after = row["before"], row["after"]
        print(
            f"| {name} | {before['n']} | {before['flagged']} ({before['rate']:.1%}) | "
            f"{after['flagged']} ({after['rate']:.1%}) |"
        )


def add_guard_site_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "guard-site",
        help="calibrate a bundle's input guard on a site's own films (fewer false alarms there)",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundle", type=Path, help="a bundle with an input guard (not changed)")
    p.add_argument("--site-images", type=Path, required=True, help="the site's films: a folder or a label CSV")
    p.add_argument("--out", type=Path, required=True, help="a new folder for the calibrated copy of the bundle")
    p.add_argument(
        "--target",
        type=float,
        default=DEFAULT_TARGET,
        help="the most of the site's films the guard may call doubtful (default %(default)s)",
    )
    p.add_argument("--max-site-images", type=int, default=DEFAULT_SITE_IMAGES, help="site films sampled")
    p.add_argument("--check-images", type=Path, help="other films of the site, to measure before and after")
    p.add_argument("--max-check-images", type=int, default=2000, help="check films sampled")
    p.add_argument("--seed", type=int, default=0, help="the sampling seed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(func=guard_site_command)
