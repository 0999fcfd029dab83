"""The default-model candidate table from the outputs of `scripts/external_protocol.sh` (one folder per
candidate under eval/): local test AUROC, external NIH AUROC with CI, specificity at sensitivity 0.90 on the
external images, and sensitivity / specificity / flag rate on the report half at the threshold chosen on the
tune half.

    .venv/bin/python scripts/candidate_table.py eval/v2-lite0-plain eval/v2-lite0-eq ...
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def finding_of(folder: Path, name: str, finding: str) -> dict | None:
    path = folder / name / "metrics.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["findings"].get(finding)


def row(folder: Path, finding: str) -> str:
    local, every, report = (finding_of(folder, n, finding) for n in ("local-test", "nih-all", "nih-report-half"))
    cells = [folder.name, f"{local['auroc']:.3f}" if local else "–"]
    if every:
        low, high = every["auroc_ci95"]
        cells += [f"{every['auroc']:.3f} ({low:.3f}–{high:.3f})", f"{every['specificity_at_sensitivity_0.90']:.3f}"]
    else:
        cells += ["–", "–"]
    if report:
        flagged = report["sensitivity"] * report["positives"] + (1 - report["specificity"]) * (
            report["n"] - report["positives"]
        )
        cells += [
            f"{report['threshold']:.3f}",
            f"{report['sensitivity']:.3f}",
            f"{report['specificity']:.3f}",
            f"{flagged / report['n']:.1%}",
        ]
    else:
        cells += ["–"] * 4
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--finding", default="Cardiomegaly")
    args = parser.parse_args()
    print(
        "| candidate | local test AUROC | external NIH AUROC (95 % CI), 1,113 images | specificity at sensitivity "
        "0.90 (external) | threshold (tune half) | report half: sensitivity | specificity | flagged |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for folder in args.folders:
        print(row(folder, args.finding))


if __name__ == "__main__":
    main()
