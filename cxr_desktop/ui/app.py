"""cxr-desktop: the chest X-ray triage worklist. Open folders or files of studies (DICOM, PNG, JPEG);
--demo opens 15 real NIH ChestX-ray14 radiographs; --self-test checks an installation without a screen."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from cxr_desktop.core.resources import default_model_dir, demo_dir

log = logging.getLogger("cxr_desktop.app")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxr-desktop", description=__doc__)
    parser.add_argument("paths", nargs="*", help="folders or files to open")
    parser.add_argument("--model", type=Path, default=None, help="model bundle (default: the shipped model)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--demo", action="store_true", help="also open the demo studies (real NIH images)")
    parser.add_argument("--reviews", type=Path, default=None, help="review database (default: user data dir)")
    parser.add_argument("--max-wait", type=float, default=30.0, help="minutes before a waiting study is promoted")
    parser.add_argument(
        "--allow-unvalidated",
        action="store_true",
        help="flag studies even when the model has no external validation record (default: research mode, no "
        "flag; also Settings ▸ Flag with an unvalidated model)",
    )
    parser.add_argument(
        "--nih-labels",
        type=Path,
        default=None,
        help="NIH Data_Entry CSV (plain or .gz): patient IDs and views for NIH PNG files (as cxr-triage takes it)",
    )
    parser.add_argument("--self-test", action="store_true", help="triage generated DICOMs (and PATHS), print, exit")
    return parser


def self_test(model_dir: Path, device: str, files: list[Path] | None = None) -> int:
    """Load the model and triage a generated DICOM in each transfer syntax the codecs must handle
    (uncompressed, RLE, JPEG-LS, JPEG 2000; all lossless, so all must score the same), then any ``files``
    given (e.g. real JPEG-baseline DICOMs; a folder stands for the studies in it, as in the app), which must all
    be scored, except that a study inside a folder may be refused with its reason (e.g. a CT) as long as the
    folder gives at least one score; no window opens."""
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

    from cxr_desktop.core.bundle import BundleError
    from cxr_desktop.inference.engine import Engine
    from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom

    try:
        engine = Engine.from_path(model_dir, device=device)
    except (BundleError, RuntimeError) as exc:
        print(f"self-test FAILED: cannot load model {model_dir}: {exc}", file=sys.stderr)
        return 1
    syntaxes = {"uncompressed": None, "RLE": RLELossless, "JPEG-LS": JPEGLSLossless, "JPEG 2000": JPEG2000Lossless}
    pixels = synthetic_chest(512, heart_ratio=0.6)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [
            write_dicom(Path(tmp) / f"self_test_{i}.dcm", pixels, syntax) for i, syntax in enumerate(syntaxes.values())
        ]
        results = list(engine.triage(paths))
    given, failed = _triage_given(engine, files or [])
    failed += [f"{name}: {r.error}" for name, r in zip(syntaxes, results, strict=True) if not r.ok]
    if failed:
        print("self-test FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    urgent = engine.card.urgent_finding
    scores = [r.probabilities[urgent] for r in results]
    if max(scores) - min(scores) > 1e-4:
        print(f"self-test FAILED: lossless copies scored differently {scores}", file=sys.stderr)
        return 1
    heatmap_problem = _heatmap_problem(engine, pixels)
    if heatmap_problem:
        print(f"self-test FAILED: heatmap: {heatmap_problem}", file=sys.stderr)
        return 1
    print(
        f"self-test OK: {engine.description}; DICOM {', '.join(syntaxes)} decoded; "
        f"{urgent} {scores[0]:.3f} (threshold {engine.policy.threshold:.3f}, urgent={results[0].urgent}, "
        f"input check: {_synthetic_check(results[0].quality)}); "
        f"heatmap by {engine.heatmap_method}"
    )
    for r in given:
        check = r.quality or "unchecked"
        print(f"self-test OK: {r.path.name} {urgent} {r.probabilities[urgent]:.3f} (input check: {check})")
    return 0


def _synthetic_check(quality: str) -> str:
    """The input check's verdict on the generated image, and why a doubt there is expected."""
    if quality in ("", "ok"):
        return quality or "unchecked"
    return f"{quality}, as expected: the generated image is a drawing, not a radiograph"


def _heatmap_problem(engine, image) -> str:
    """What is wrong with the heatmap of ``image`` ("" when it is a finite map in [0, 1] over the image)."""
    try:
        heatmap = engine.heatmap(image)
    except RuntimeError as exc:  # e.g. PyTorch missing for a model whose card records no closed form
        return str(exc)
    if heatmap.shape != image.shape or not np.isfinite(heatmap).all() or heatmap.min() < 0 or heatmap.max() > 1:
        return f"not a map in [0, 1] over the image (shape {heatmap.shape})"
    return ""


def _triage_given(engine, paths: list[Path]) -> tuple[list, list[str]]:
    """The self-test's own studies: (scored results, failures). A file named must be scored; a folder must give
    at least one score, and its refused studies are listed with their reasons."""
    from cxr_desktop.studies.scan import iter_study_files

    scored, failed = [], []
    for path in paths:
        if not path.is_dir():
            result = next(engine.triage([path]))
            if result.ok:
                scored.append(result)
            else:
                failed.append(f"{path.name}: {result.error}")
            continue
        results = list(engine.triage(iter_study_files([path])))
        for r in results:
            if not r.ok:
                print(f"self-test: {r.path.name} refused as the app would: {r.error}")
        scored += [r for r in results if r.ok]
        if not any(r.ok for r in results):
            failed.append(f"{path}: no study in this folder could be scored")
    return scored, failed


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    model_dir = args.model or default_model_dir()
    if args.self_test:
        return self_test(model_dir, args.device, [Path(p) for p in args.paths])

    from PySide6.QtWidgets import QApplication

    from cxr_desktop.ui.main_window import MainWindow
    from cxr_desktop.worklist.reviews import ReviewStore

    metadata = None
    if args.nih_labels is not None:
        from cxr_desktop.studies.nih import nih_study_metadata, read_nih_table

        try:
            metadata = nih_study_metadata(read_nih_table(args.nih_labels))
        except (OSError, KeyError, ValueError, UnicodeDecodeError) as exc:
            print(f"cxr-desktop: cannot read the NIH label file {args.nih_labels}: {exc}", file=sys.stderr)
            return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("CXR Triage")
    window = MainWindow(
        model_dir,
        ReviewStore(args.reviews),
        args.device,
        max_wait_minutes=args.max_wait,
        demo=args.demo,
        allow_unvalidated=args.allow_unvalidated,
        metadata=metadata,
    )
    paths = list(args.paths)
    if args.demo:
        if not demo_dir().is_dir():
            log.error("no demo studies at %s (scripts/make_demo.py builds them)", demo_dir())
        paths.append(str(demo_dir()))
    window.show()
    if paths:
        window.open_paths(paths)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
