"""``cxr-train``: a thin CLI over the trainer library (cache, train, evaluate, export, onnx, experiment)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from cxr_desktop.core.preprocess import PreprocessSpec


def _cache(args: argparse.Namespace) -> int:
    from trainer.data.cache import build_cache

    spec = PreprocessSpec(input_size=args.size, resize=args.resize, contrast=args.contrast)
    index = build_cache(args.images, args.out, spec, workers=args.workers)
    errors = index["errors"]
    print(f"cached {len(index['names']) - len(errors)} images into {args.out}; {len(errors)} could not be read")
    for name, reason in sorted(errors.items()):
        print(f"  {name}: {reason}", file=sys.stderr)
    return 0


def _train(args: argparse.Namespace) -> int:
    from trainer.config import load_config
    from trainer.run import resume, train

    if args.resume:
        run_dir = resume(Path(args.resume))
    else:
        if not args.config:
            print("cxr-train train: give -c CONFIG or --resume RUN", file=sys.stderr)
            return 2
        overrides = list(args.set or [])
        if args.binary:
            overrides.append(f"binary={args.binary}")
        run_dir = train(load_config(args.config, overrides))
    done = json.loads((run_dir / "done.json").read_text()) if (run_dir / "done.json").exists() else {}
    print(f"run {run_dir}: best validation mean AUROC {done.get('best_val_mean_auroc', float('nan')):.4f}")
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

    card = export_run(
        Path(args.run), Path(args.out), args.target_sensitivity, args.model_id, args.device, onnx=not args.no_onnx
    )
    point = card.operating_points[card.default_operating_point]
    print(f"exported {card.model_id} to {args.out}; Cardiomegaly threshold {point.get('Cardiomegaly', 0.5):.4f}")
    return 0


def _experiment(args: argparse.Namespace) -> int:
    from trainer.experiment import run_experiment

    run_experiment(Path(args.config), Path(args.out) if args.out else None, args.set, args.report_only)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxr-train", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("cache", help="decode every image once into a uint8 cache at the training size")
    p.add_argument("--images", type=Path, required=True)
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--resize", default="letterbox", choices=["letterbox", "stretch", "center_crop"])
    p.add_argument("--contrast", default="none", choices=["none", "equalize", "clahe"])
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=_cache)

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("-c", "--config", type=Path)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (repeatable)")
    p.add_argument("--binary", metavar="FINDING", help="one finding vs rest")
    p.add_argument("--resume", type=Path, metavar="RUN", help="continue an interrupted run folder")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="AUROC with 95 %% CIs, thresholds, ROC curves")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path)
    source.add_argument("--model", type=Path, help="a model bundle")
    p.add_argument("--split", choices=["test", "val"], default="test")
    p.add_argument("--images", type=Path, help="evaluate on these images instead of a split")
    p.add_argument("--labels", type=Path, help="NIH Data_Entry CSV, or a CSV path,label for --images")
    p.add_argument("--out", type=Path, help="folder for metrics.json, metrics.md, roc.png")
    p.add_argument("--record-as", metavar="NAME", help="with --model: store the result in the card's metrics.checks")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("export", help="export a run as an app model bundle")
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--target-sensitivity", type=float, default=0.9)
    p.add_argument("--model-id")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX copy used by the faster CPU backend")
    p.set_defaults(func=_export)

    p = sub.add_parser("onnx", help="add (or renew) the ONNX copy of an existing bundle's model")
    p.add_argument("bundle", type=Path)
    p.set_defaults(func=_onnx)

    p = sub.add_parser("experiment", help="run a grid of runs and write report.md")
    p.add_argument("config", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a base config value")
    p.add_argument("--report-only", action="store_true", help="train nothing; report the finished runs")
    p.set_defaults(func=_experiment)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"cxr-train {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
