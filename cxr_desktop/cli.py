"""cxr-triage: headless batch triage through the same triage session as the app; one CSV row per image file.

Each scored file gets the model's score per finding (a ranking score, not a calibrated probability) and a
priority: urgent, check (score at or above the threshold, but the input check doubts the film) or routine. A
model without an external validation record flags nothing (research mode) unless --allow-unvalidated."""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import os
import re
import sys
from pathlib import Path
from typing import TextIO

import cv2
from tqdm import tqdm

from cxr_desktop.cli_outputs import output_problem, overlap_problem
from cxr_desktop.core.atomic import replaced_when_complete, write_bytes_when_complete
from cxr_desktop.core.bundle import BundleError, BundleMissingError, ModelCard
from cxr_desktop.core.guard import LATERAL
from cxr_desktop.core.heatmap_overlay import flag_scale, overlay
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.core.preprocess import to_uint8
from cxr_desktop.core.resources import default_model_dir
from cxr_desktop.inference.engine import BACKENDS, Engine
from cxr_desktop.network.listen import __doc__ as listen_doc
from cxr_desktop.network.listen import add_listen_arguments, serve
from cxr_desktop.network.produce import ResultSink
from cxr_desktop.studies.nih import NihTableError, nih_study_metadata, read_nih_table
from cxr_desktop.studies.study import StudyError
from cxr_desktop.worklist.export import (
    STUDY_COLUMNS,
    UNCHECKED,
    quality_cell,
    safe_row,
    study_fields,
    threshold_cell,
)
from cxr_desktop.worklist.rows import DONE, Row
from cxr_desktop.worklist.session import TriageSession

log = logging.getLogger("cxr_desktop.cli")

# ``quality`` (the input guard's verdict), then ``priority`` (urgent, check, routine; empty when not scored)
# came last so that the first 23 columns stay where they were
COLUMNS = [*STUDY_COLUMNS, "cardiomegaly_threshold", *FINDINGS, "quality", "priority"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxr-triage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="cxr-triage listen --port P --store DIR ...: run as a DICOM node (cxr-triage listen --help)",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="image files or folders (searched recursively)")
    add_model_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, help="CSV file to write (default: standard output)")
    parser.add_argument(
        "--heatmaps", type=Path, default=None, help="write Grad-CAM overlays of urgent and CHECK studies here"
    )
    parser.add_argument(
        "--dicom-out",
        type=Path,
        default=None,
        help="write each scored DICOM study's results here: an SR, and for an urgent one a heatmap capture",
    )
    parser.add_argument("--nih-labels", type=Path, default=None, help="NIH Data_Entry CSV for patient IDs and views")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and how it flags: the same for a batch run and the DICOM node."""
    parser.add_argument("--model", type=Path, default=None, help="model bundle folder (default: the shipped model)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument(
        "--backend", default="auto", choices=BACKENDS, help="auto: ONNX Runtime on the CPU when the model has it"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="studies per model call (default: 4 with ONNX Runtime, else 16)",
    )
    parser.add_argument(
        "--operating-point", default=None, help="named operating point from the model card: its score threshold"
    )
    parser.add_argument(
        "--allow-unvalidated",
        action="store_true",
        help="flag studies even when the model has no external validation record (default: research mode, no flag)",
    )


def listen(argv: list[str]) -> int:
    """``cxr-triage listen``: the DICOM node (``cxr_desktop.network``)."""
    parser = argparse.ArgumentParser(
        prog="cxr-triage listen", description=listen_doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    add_listen_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("cxr_desktop.network").setLevel(logging.INFO)
    engine = load_engine(args)
    if engine is None:
        return 2
    session = TriageSession(engine, operating_point=args.operating_point, allow_unvalidated=args.allow_unvalidated)
    if session.policy.mode_note:
        print(f"cxr-triage: model {engine.card.model_id}: {session.policy.mode_note}", file=sys.stderr)
    return serve(session, args)


def write_dicom_results(session: TriageSession, rows: list[Row], folder: Path) -> int:
    """The DICOM results of every scored DICOM study into ``folder``; returns how many objects."""
    sink = ResultSink(folder=folder)
    for row in rows:
        if row.status == DONE and row.info is not None and row.info.kind == "dicom":
            sink.deliver(session, row)
    return sink.written


def result_row(row: Row, threshold: float) -> dict[str, str]:
    status = "ok" if row.status == DONE else "error"
    fields = study_fields(row.path, status, row.error, row.info, row.urgent, row.probabilities)
    fields["cardiomegaly_threshold"] = threshold_cell(threshold)
    fields["quality"] = quality_cell(row)
    fields["priority"] = row.priority
    return safe_row(fields)


def write_heatmap(session: TriageSession, row: Row, folder: Path) -> str:
    """The Grad-CAM overlay of a scored study, from the session's decoded image (decoded again only when the
    bounded cache has let it go), written whole or not at all; returns why it was not written ("" if it was)."""
    try:
        image = session.image(row.path)
    except StudyError as exc:  # the file changed since it was scored
        return exc.reason
    policy = session.policy  # the map weighed by the score over the flag threshold, as the app shows it
    scale = flag_scale(row.probabilities.get(policy.finding), policy.threshold) if policy is not None else 1.0
    rgb = overlay(to_uint8(image), session.heatmap(row.path), scale=scale)
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        return "the overlay could not be encoded as PNG"
    try:
        write_bytes_when_complete(folder / heatmap_name(row.path), data.tobytes())
    except OSError as exc:  # e.g. a full disk: no half-written PNG is left
        return exc.strerror or str(exc)
    return ""


def write_heatmaps(session: TriageSession, rows: list[Row], folder: Path) -> list[str]:
    """The overlays of the urgent and CHECK studies; returns "file: reason" for each one not written."""
    failures = []
    for row in rows:
        if row.urgent or row.check:
            reason = write_heatmap(session, row, folder)
            if reason:
                log.warning("heatmap of %s not written: %s", row.path.name, reason)
                failures.append(f"{row.path.name}: {reason}")
    return failures


def heatmap_name(path: Path) -> str:
    """A file name unique to the study's file: its sanitised stem and a short hash of its full path (two
    studies may share a SOP Instance UID or a stem, e.g. the same image copied into two folders)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._")[:80] or "study"
    digest = hashlib.sha256(os.fsencode(path.absolute())).hexdigest()[:12]
    return f"{stem}-{digest}.png"


def scope_notes(card: ModelCard) -> list[str]:
    """What the run says once about the findings it does not report as results."""
    notes = []
    if card.untrained_findings:
        notes.append(
            f"model {card.model_id} was not trained on {', '.join(card.untrained_findings)}: "
            "their columns are left empty"
        )
    if card.research_findings:
        notes.append(
            f"model {card.model_id}: {', '.join(card.research_findings)} trained but not externally validated "
            "(research only, not for clinical use)"
        )
    return notes


def load_engine(args: argparse.Namespace) -> Engine | None:
    """The model the arguments name (None, said on stderr, when it cannot be loaded)."""
    model_dir = args.model or default_model_dir()
    try:
        return Engine.from_path(
            model_dir,
            device=args.device,
            precision=args.precision,
            batch_size=args.batch_size,
            operating_point=args.operating_point,
            backend=args.backend,
        )
    except (BundleError, RuntimeError, ValueError, KeyError) as exc:
        missing_default = not args.model and isinstance(exc, BundleMissingError)
        hint = " (no default model is installed; pass --model BUNDLE)" if missing_default else ""
        print(f"cxr-triage: cannot load model {model_dir}: {exc}{hint}", file=sys.stderr)
        return None


def write_csv(rows: list[Row], threshold: float, path: Path | None) -> None:
    """The CSV to ``path`` (through a temporary file beside it, renamed when complete: a failure leaves the
    previous file or none) or to standard output. A file name that is not valid UTF-8 is written with its odd
    bytes escaped (\\udcff), not lost."""
    if path is None:
        sys.stdout.reconfigure(errors="backslashreplace")
        _write_rows(sys.stdout, rows, threshold)
        return
    with replaced_when_complete(path, "w", newline="", encoding="utf-8", errors="backslashreplace") as out:
        _write_rows(out, rows, threshold)


def _write_rows(out: TextIO, rows: list[Row], threshold: float) -> None:
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow(result_row(row, threshold))


def check_inputs(args: argparse.Namespace) -> tuple[str, dict[str, dict[str, str]] | None]:
    """Everything that can be wrong before any study is scored: the paths, the outputs, the NIH label file.
    Returns what is wrong ("" when nothing) and the NIH metadata when asked for."""
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        return f"no such file or folder: {', '.join(missing)}", None
    folders = {"--heatmaps": args.heatmaps, "--dicom-out": args.dicom_out}
    problem = overlap_problem(args.paths, args.out, folders) or output_problem(args.out, args.heatmaps)
    if problem or not args.nih_labels:
        return problem, None
    try:
        return "", nih_study_metadata(read_nih_table(args.nih_labels))
    except NihTableError as exc:
        return str(exc), None


def write_outputs(session: TriageSession, rows: list[Row], args: argparse.Namespace) -> int:
    """The CSV and the heatmaps; every output that could not be written is said on stderr, and the exit code
    is then 1."""
    status = 0
    try:
        write_csv(rows, session.policy.threshold, args.out)
    except OSError as exc:
        kept = "the previous file is kept" if args.out is not None and args.out.is_file() else "nothing was written"
        print(f"cxr-triage: could not write {args.out}: {exc.strerror or exc}; {kept}", file=sys.stderr)
        status = 1
    failures = write_heatmaps(session, rows, args.heatmaps) if args.heatmaps else []
    if failures:
        flagged = sum(r.urgent or r.check for r in rows)
        print(f"cxr-triage: {len(failures)} of {flagged} heatmaps NOT written to {args.heatmaps}:", file=sys.stderr)
        for failure in failures:
            print(f"cxr-triage:   {failure}", file=sys.stderr)
        status = 1
    return status


def summary(rows: list[Row]) -> list[str]:
    """The lines that close the run on stderr: counts, CHECK studies, doubted films, lateral views."""
    scored = [r for r in rows if r.status == DONE]
    urgent, check = sum(r.urgent for r in rows), sum(r.check for r in rows)
    lines = [f"{len(scored)} scored, {urgent} urgent, {check} check, {len(rows) - len(scored)} errors"]
    unlisted = [r for r in rows if r.folder]
    if unlisted:
        named = ", ".join(str(r.path) for r in unlisted[:5]) + (" …" if len(unlisted) > 5 else "")
        lines.append(
            f"{len(unlisted)} folder{'s' if len(unlisted) > 1 else ''} could not be listed (their studies are not "
            f"triaged; counted among the errors, reason in the error column): {named}"
        )
    if check:
        lines.append(
            f"{check} CHECK studies: score at or above the threshold, but the input check doubts the film "
            "(priority=check, reason in the quality column): look at them right after the urgent ones"
        )
    doubted = sum(r.doubtful and not r.check for r in scored)
    if doubted:
        lines.append(
            f"{doubted} studies below the threshold failed the input check (rotated, inverted or not a chest "
            "film?): see the quality column"
        )
    lateral = sum(r.quality == LATERAL for r in scored)
    if lateral:
        lines.append(
            f"{lateral} lateral views scored but never flagged urgent: outside the model's scope (frontal films)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["listen"]:  # a study file named "listen" is given as ./listen
        return listen(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    problem, metadata = check_inputs(args)
    if problem:
        print(f"cxr-triage: {problem}", file=sys.stderr)
        return 2
    engine = load_engine(args)
    if engine is None:
        return 2
    session = TriageSession(engine, metadata=metadata, allow_unvalidated=args.allow_unvalidated)
    session.add_paths(args.paths)
    files = session.rows_in_arrival()
    print(f"cxr-triage: {len(files)} files, model {engine.description}", file=sys.stderr)
    if engine.guard is None:
        print(f"cxr-triage: model {engine.card.model_id} has no input guard: quality is '{UNCHECKED}'", file=sys.stderr)
    for note in scope_notes(engine.card):
        print(f"cxr-triage: {note}", file=sys.stderr)
    if session.policy.mode_note:  # research mode, or flagging with an unvalidated model
        allowed = "flags allowed by --allow-unvalidated" if session.policy.flags else "--allow-unvalidated flags anyway"
        print(f"cxr-triage: model {engine.card.model_id}: {session.policy.mode_note} ({allowed})", file=sys.stderr)
    bar = tqdm(total=session.progress[1], unit="study", disable=args.quiet, file=sys.stderr)
    session.events.progress.connect(lambda done, _total: bar.update(done - bar.n))
    session.score_pending()
    bar.close()
    rows = session.rows_in_arrival()
    status = write_outputs(session, rows, args)
    if args.dicom_out:
        written = write_dicom_results(session, rows, args.dicom_out)
        print(f"cxr-triage: {written} DICOM result objects written to {args.dicom_out}", file=sys.stderr)
    for line in summary(rows):
        print(f"cxr-triage: {line}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
