"""``cxr-train``: a thin CLI over the trainer library (cache, train, evaluate, export, onnx, experiment, list,
guard, overlap)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml

from cxr_desktop.core.preprocess import PreprocessSpec
from trainer.guard_site import add_guard_site_parser
from trainer.overlap_cli import add_overlap_parser

RAW = argparse.RawDescriptionHelpFormatter
MAIN_EPILOG = """\
the cycle: cache -> train -> evaluate -> export (each subcommand has --help).
  cxr-train list keys | architectures | augmentations     what a config can say
"""
TRAIN_EPILOG = """\
config: a YAML file of key: value; `cxr-train list keys` gives every key with its type, default and meaning.
--set key=value changes one value (read as YAML; dots reach nested keys: --set preprocessing.input_size=128).
Every value is checked before anything is written; a wrong one fails with a "did you mean".

run folders: a run is written to OUT_DIR/NAME. A new run into a folder that already holds one is refused:
  --resume RUN     continue it from its last checkpoint with its saved config.yaml; a -c or --set value
                   that differs from the saved one is refused, naming the key
  --overwrite      delete that run and start again
  --set name=NEW   start a separate run instead

CSV data (dataset: csv): `images` is the CSV file, with a header row and the columns
  path,label[,patient_id][,split]
  path        an image file (DICOM, PNG, JPEG); a relative path is relative to the CSV file's own
              folder, an absolute path is taken as it is
  label       positive_class (default cardiomegaly, any case), 1, true or yes: positive; else negative
  patient_id  optional: a patient's images stay on one side of the validation split
  split       optional: train, val or test (empty: train); with no val rows a seeded, patient-wise
              val_fraction of train is held out
  labels_csv, train_list and test_list are for dataset nih only (refused for folder and csv data);
  class_counts caps the train split per class, e.g. {cardiomegaly: 1000, other: 2000}.

examples:
  cxr-train train -c trainer/configs/nih14-sample.yaml --set epochs=3 --set name=nih-3ep
  cxr-train train -c my.yaml --set dataset=csv --set images=data/labels.csv --binary Cardiomegaly
  cxr-train train --resume runs/nih-3ep
"""
EXPERIMENT_EPILOG = """\
experiment YAML: name, base (a config mapping or a config file relative to this one), base_overrides,
grid (key: [values], over any config key, dotted keys nest; the runs are every combination), extra_runs
(a list of {key: value} outside the product), baseline ({key: value} the report compares against),
finding, caveats, out_dir. Every run's config is checked before the first one trains; runs are named
key=value__key=value and a finished one is skipped when the experiment is run again.
"""


def _cache(args: argparse.Namespace) -> int:
    from trainer.data.cache import build_cache

    spec = PreprocessSpec(
        input_size=args.size, resize=args.resize, contrast=args.contrast, crop_borders=args.crop_borders
    )
    index = build_cache(args.images, args.out, spec, workers=args.workers)
    errors = index["errors"]
    print(f"cached {len(index['names']) - len(errors)} images into {args.out}; {len(errors)} could not be read")
    for name, reason in sorted(errors.items()):
        print(f"  {name}: {reason}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from trainer.config import load_config
    from trainer.run import resume, train

    overrides = list(args.set or [])
    if args.binary:
        overrides.append(f"binary={args.binary}")
    if args.resume:
        run_dir = resume(args.resume, args.config, overrides)
    else:
        if not args.config:
            print("cxr-train train: give -c CONFIG or --resume RUN", file=sys.stderr)
            return 2
        run_dir = train(load_config(args.config, overrides), existing="overwrite" if args.overwrite else "refuse")
    done = json.loads((run_dir / "done.json").read_text()) if (run_dir / "done.json").exists() else {}
    print(f"run {run_dir}: best validation mean AUROC {done.get('best_val_mean_auroc', float('nan')):.4f}")
    return 0


def _table(rows: list[tuple[str, ...]]) -> str:
    """Aligned columns; a cell longer than 24 characters (a long default) overflows its column."""
    widths = [max(len(row[i]) for row in rows if len(row[i]) <= 24) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]) for row in rows)


def key_table() -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) of every key, for ``cxr-train list keys``."""
    from trainer.config import CHOICES, default_of, key_fields

    rows = []
    for name, f in key_fields().items():
        default = yaml.safe_dump(default_of(name), default_flow_style=True, width=1000, sort_keys=False).strip()
        default = default.removesuffix("...").strip() or "''"
        text = f.metadata["help"] + (f" [{' | '.join(CHOICES[name])}]" if name in CHOICES else "")
        rows.append((name, str(f.type), default, text))
    return rows


def _list(args: argparse.Namespace) -> int:
    if args.what == "architectures":
        from cxr_desktop.core import architectures

        rows = [(name, architectures.get(name).description) for name in architectures.available()]
        print(_table([("architecture", "description"), *rows]))
    elif args.what == "augmentations":
        from trainer.augment import REGISTRY

        rows = [(name, entry.doc) for name, entry in sorted(REGISTRY.items())]
        print(_table([("augmentation", "spelled `name` or `name:param` in the config's augment list"), *rows]))
    else:
        print(_table([("key", "type", "default", "meaning [choices]"), *key_table()]))
    return 0


def _onnx(args: argparse.Namespace) -> int:
    from cxr_desktop.core.bundle import load_bundle
    from cxr_desktop.core.onnx_model import export_onnx

    bundle = load_bundle(args.bundle)
    path = export_onnx(args.bundle, bundle.model, bundle.card)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) for {bundle.card.model_id}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from trainer.evaluate_cli import evaluate_command

    return evaluate_command(args)


def _export(args: argparse.Namespace) -> int:
    from trainer.export import export_run

    if bool(args.threshold_images) != bool(args.threshold_labels):
        raise ValueError("--threshold-images and --threshold-labels go together")
    external = (args.threshold_images, args.threshold_labels) if args.threshold_images else None
    card = export_run(
        Path(args.run),
        Path(args.out),
        args.target_sensitivity,
        args.model_id,
        args.device,
        onnx=not args.no_onnx,
        threshold_images=external,
    )
    point = card.operating_points[card.default_operating_point]
    urgent = card.urgent_finding
    print(f"exported {card.model_id} to {args.out}; {urgent} threshold {point.get(urgent, 0.5):.4f}")
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from trainer.experiment import run_experiment

    run_experiment(Path(args.config), Path(args.out) if args.out else None, args.set, args.report_only)
    return 0


def _add_cache_and_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="decode every image once into a uint8 cache at the training size")
    p.add_argument("--images", type=Path, required=True, help="image folder (DICOM, PNG, JPEG; searched recursively)")
    p.add_argument("--size", type=int, required=True, help="side in pixels (the config's preprocessing.input_size)")
    p.add_argument("--out", type=Path, required=True, help="cache folder; an unfinished one is resumed")
    p.add_argument(
        "--resize",
        default="letterbox",
        choices=["letterbox", "stretch", "center_crop"],
        help="how an image is fitted to the square (preprocessing.resize; default %(default)s)",
    )
    p.add_argument(
        "--contrast",
        default="none",
        choices=["none", "equalize", "clahe"],
        help="contrast step before caching (preprocessing.contrast; default %(default)s)",
    )
    p.add_argument(
        "--crop-borders",
        action="store_true",
        help="crop uniform dark/bright edge bands before the resize (preprocessing.crop_borders: true)",
    )
    p.add_argument("--workers", type=int, default=2, help="decoding processes (default %(default)s)")
    p.set_defaults(func=_cache)

    p = sub.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train a model from a YAML config (or continue a run).",
        epilog=TRAIN_EPILOG,
        formatter_class=RAW,
    )
    p.add_argument("-c", "--config", type=Path, help="YAML config (keys: `cxr-train list keys`)")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="change one config value (repeatable; dotted keys nest)"
    )
    p.add_argument("--binary", metavar="FINDING", help="one finding vs rest (the same as --set binary=FINDING)")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument(
        "--resume", type=Path, metavar="RUN", help="continue the run in folder RUN with its saved config.yaml"
    )
    existing.add_argument("--overwrite", action="store_true", help="delete an earlier run of the same name first")
    p.set_defaults(func=_train)


def _add_onnx_experiment_and_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("onnx", help="add (or renew) the ONNX copy of an existing bundle's model")
    p.add_argument("bundle", type=Path, help="model bundle folder (weights.safetensors + card.json)")
    p.set_defaults(func=_onnx)

    p = sub.add_parser(
        "experiment", help="run a grid of runs and write report.md", epilog=EXPERIMENT_EPILOG, formatter_class=RAW
    )
    p.add_argument("config", type=Path, help="experiment YAML (see below)")
    p.add_argument("--out", type=Path, help="experiment folder (default: the file's out_dir/name)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a base config value (repeatable)")
    p.add_argument("--report-only", action="store_true", help="train nothing; report the finished runs")
    p.set_defaults(func=_experiment)

    p = sub.add_parser("list", help="list architectures, augmentations or config keys")
    p.add_argument(
        "what",
        choices=["architectures", "augmentations", "keys"],
        help="registry entries with their docs, or every config key with its type, default and meaning",
    )
    p.set_defaults(func=_list)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxr-train", description=__doc__, epilog=MAIN_EPILOG, formatter_class=RAW)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    _add_cache_and_train(sub)

    p = sub.add_parser(
        "evaluate",
        help="AUROC with 95 %% CIs, thresholds, ROC curves, calibration and subgroups",
        description="Evaluate a run (on its own split) or a model bundle (on its split or on any labelled "
        "images). Writes metrics.json, metrics.md, roc.png, reliability.png and probabilities.npy.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a run folder (thresholds chosen on its validation split)")
    source.add_argument("--model", type=Path, help="a model bundle (its card's thresholds)")
    p.add_argument("--split", choices=["test", "val"], default="test", help="which split of the run to score")
    p.add_argument("--images", type=Path, nargs="+", metavar="DIR", help="score these image folders instead")
    p.add_argument(
        "--labels",
        type=Path,
        help="the NIH Data_Entry CSV(.gz) for --images (matched by file name; adds sex/age/view subgroups), "
        "or, without --images, a label CSV path,label[,patient_id] with paths relative to the CSV's folder",
    )
    p.add_argument(
        "--half",
        choices=["all", "tune", "report"],
        default="all",
        help="with NIH labels: the external protocol's patient-wise half (thresholds are tuned on 'tune', "
        "results reported on 'report'; docs/experiments/default-model.md)",
    )
    p.add_argument("--out", type=Path, help="folder for the results (default: RUN/eval-SPLIT or ./eval)")
    p.add_argument("--record-as", metavar="NAME", help="with --model: store the result in the card's metrics.checks")
    p.add_argument(
        "--validate",
        action="store_true",
        help="with --record-as: set the card's validated_findings to the trained findings whose AUROC lower "
        "95 %% bound is >= 0.70 here (use only on real images the model never saw)",
    )
    p.add_argument(
        "--keep-overlap",
        action="store_true",
        help="keep evaluation images that are copies of the model's training images (found and reported either "
        "way; by default they are left out)",
    )
    p.add_argument(
        "--exclude-patients-of",
        type=Path,
        metavar="PAIRS_CSV",
        help="also leave out every image of the patients with an image in this `cxr-train overlap` CSV (a "
        "sensitivity analysis for copies no check can see)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto/cpu: a bundle's ONNX copy scores)")
    p.set_defaults(func=_evaluate)

    _add_export(sub)

    _add_onnx_experiment_and_list(sub)
    _add_guard(sub)
    add_guard_site_parser(sub)
    add_overlap_parser(sub)
    return parser


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a run as an app model bundle",
        description="Write weights.safetensors, card.json and model.onnx. Operating thresholds are chosen on "
        "the run's validation split, or with --threshold-images on the tune half of external NIH images.",
    )
    p.add_argument("run", type=Path, help="the run folder")
    p.add_argument("--out", type=Path, required=True, help="the bundle folder to write")
    p.add_argument("--target-sensitivity", type=float, default=0.9, help="the default operating point")
    p.add_argument(
        "--threshold-images",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="choose thresholds on the tune half of these NIH image folders (needs --threshold-labels)",
    )
    p.add_argument("--threshold-labels", type=Path, help="the NIH Data_Entry CSV(.gz) for --threshold-images")
    p.add_argument("--model-id", help="the bundle's model id (default: ARCH-RUN)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX copy used by the faster CPU backend")
    p.set_defaults(func=_export)


def _add_guard(sub) -> None:
    p = sub.add_parser(
        "guard",
        help="fit and measure a bundle's input guard (not a chest film, rotated, inverted)",
        description="Fit the bundle's input guard on real radiographs and write it into the bundle: the "
        "distance reference from the model's training images and half the NIH patients' films, the 99th-percentile "
        "distance cut-off from the other half, the rotation/polarity probe from all of them. Measured by "
        "patient-wise cross-fitting (each NIH film judged by a guard fitted without its fold) and on --non-chest "
        "images.",
    )
    p.add_argument("bundle", type=Path, help="the model bundle folder (its card is resealed)")
    p.add_argument("--images", type=Path, nargs="+", required=True, metavar="DIR", help="NIH image folders")
    p.add_argument("--labels", type=Path, required=True, help="the NIH Data_Entry CSV(.gz) for --images")
    p.add_argument("--reference", type=Path, required=True, help="the model's training images: a label CSV or a folder")
    p.add_argument("--max-reference", type=int, default=800, help="training images sampled for the reference")
    p.add_argument("--non-chest", type=Path, help="a folder of images that are not chest radiographs, to measure")
    p.add_argument("--components", type=int, default=64, help="principal components of the distance reference")
    p.add_argument("--regularisation", type=float, default=0.01, help="the probe's inverse L2 strength (C)")
    p.add_argument("--folds", type=int, default=5, help="patient-wise folds of the cross-fitted measurement")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.set_defaults(func=_guard)


def _guard(args: argparse.Namespace) -> int:
    from trainer.guard import guard_command

    return guard_command(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from cxr_desktop.core.card import BundleError

    try:
        return args.func(args)
    except (BundleError, ValueError, KeyError, FileNotFoundError, yaml.YAMLError) as exc:
        print(f"cxr-train {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
