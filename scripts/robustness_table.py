"""Regenerate the measured parts of docs/robustness.md in place: the bad-input catalogue (tests/bad_inputs.py)
run through `cxr-triage` with the shipped model, with the exact reason each file gets, and the shipped input
guard's measurements from its card. Only the text between each block's `<!-- begin generated: NAME` and
`<!-- end generated: NAME -->` lines is replaced; the hand-written rest of the page is kept.

    .venv/bin/python scripts/robustness_table.py [--check]

``--check`` writes nothing and exits 1 when the page is not what the script would write.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import re
import sys
import tempfile
from contextlib import redirect_stderr
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "robustness.md"

sys.path.insert(0, str(REPO / "tests"))

from bad_inputs import CASES, build_catalogue  # noqa: E402

from cxr_desktop.cli import main as triage_main  # noqa: E402
from cxr_desktop.core.card import read_card  # noqa: E402
from cxr_desktop.core.resources import default_model_dir  # noqa: E402

GUARD_COMMAND = """    .venv/bin/python scripts/non_chest_images.py /tmp/non-chest
    .venv/bin/cxr-train guard BUNDLE --images ../shared/data/nih14-sample ../shared/data/nih14-extra \\
        --labels ../shared/data/Data_Entry_2017_v2020.csv.gz --reference TRAINING_IMAGES.csv --non-chest /tmp/non-chest"""


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (sound near 0 and 1, unlike the normal approximation)."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def guard_section() -> str:
    """The shipped model's input guard as its card records it (what ``cxr-train guard`` measured)."""
    card = read_card(default_model_dir())
    if not card.guard:
        return "## The input guard\n\nThe shipped model carries no input guard.\n"
    lines = [
        "## The input guard (quality column)\n",
        "Every scored study gets a verdict from the model's own pooled features (`cxr_desktop/core/guard.py`): "
        "`probably not a chest radiograph` (a distance from the reference radiographs beyond the 99th percentile "
        "of NIH validation films), `probably rotated` or `probably inverted polarity` (a linear probe), both "
        "with the probe's reason first (`probably rotated, or not a chest radiograph`), or `lateral view` (from "
        "the header). Such a study is shown with a warning and never flagged urgent on its score alone. "
        "Measured by",
        "",
        GUARD_COMMAND,
        "",
        f"for the shipped model ({card.guard['how']}):",
        "",
        "| images | n | caught (not `ok`) | rate | 95 % interval (Wilson) | reasons given |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, row in card.guard["measured"].items():
        low, high = wilson_interval(row["flagged"], row["n"])
        reasons = "; ".join(f"{k}: {v}" for k, v in row.items() if k not in ("n", "flagged", "rate", "ok"))
        lines.append(
            f"| {name} | {row['n']} | {row['flagged']} | {row['rate']:.3f} | {low:.3f}–{high:.3f} | {reasons} |"
        )
    lines.append(
        "\nFor the upright (untouched) NIH films the rate is the false-alarm rate; for every other row it is the "
        "detection rate. Each NIH film was judged by a guard fitted without its patient's fold, so no film "
        "judged its own fit; the shipped guard, fitted on all of them, is measured on the images that are not "
        "chest radiographs, which no fit saw. The abdominal CT is also refused by its header before any score; "
        "here its pixels were given to the guard directly."
    )
    return "\n".join(lines) + "\n"


def _scored(row: dict[str, str]) -> str:
    """A scored row's outcome: its score, and its quality and priority when the input check doubts it."""
    shown = [f"Cardiomegaly {float(row['Cardiomegaly']):.2f}"]
    if row.get("quality", "ok") != "ok":
        shown += [f"quality {row['quality']}", row.get("priority", "")]
    return f"scored ({', '.join(s for s in shown if s)})"


def bad_input_table() -> str:
    """The catalogue's files triaged by ``cxr-triage`` with the shipped model: one row per kind, its reason."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "catalogue"
        cases = build_catalogue(folder)
        out = Path(tmp) / "triage.csv"
        with redirect_stderr(io.StringIO()):
            code = triage_main([str(folder), "--out", str(out), "--quiet"])
        if code != 0:
            raise SystemExit(f"cxr-triage exited with {code}")
        rows = {r["path"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
        lines = ["| # | Input | Outcome | Reason shown in the row / CSV |", "|---|---|---|---|"]
        for number, case in enumerate(CASES, start=1):
            path = next(p for p, c in cases.items() if c is case)
            row = rows[str(path).encode("utf-8", "backslashreplace").decode()]
            outcome = "refused" if row["status"] == "error" else _scored(row)
            shown = row["error"].replace(str(folder) + "/", "").replace("|", "\\|") or case.note
            lines.append(f"| {number} | {case.kind} | {outcome} | {shown} |")
    refused = sum(1 for c in CASES if c.reason)
    lines.append(f"\n{refused} kinds refused with a reason, {len(CASES) - refused} accepted and scored.")
    return "\n".join(lines) + "\n"


def replace_block(page: str, name: str, content: str) -> str:
    """``page`` with the lines between its ``begin generated: NAME`` and ``end generated: NAME`` markers
    replaced by ``content``; a page without both markers is an error (the block would be lost)."""
    begin = re.search(rf"^<!-- begin generated: {re.escape(name)}\b.*\n", page, re.MULTILINE)
    end = re.search(rf"^<!-- end generated: {re.escape(name)} -->\n", page, re.MULTILINE)
    if begin is None or end is None or end.start() < begin.end():
        raise SystemExit(f"{DOC}: no '{name}' block between begin/end generated markers")
    return page[: begin.end()] + content + page[end.start() :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the page would change")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    page = DOC.read_text(encoding="utf-8")
    new = replace_block(page, "bad-input table", bad_input_table())
    new = replace_block(new, "input guard", guard_section())
    if args.check:
        raise SystemExit(0 if new == page else f"{DOC} is not what scripts/robustness_table.py writes")
    if new != page:
        tmp = DOC.with_suffix(".md.tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(DOC)


if __name__ == "__main__":
    main()
