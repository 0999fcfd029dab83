"""``report.md`` for an experiment: per-run and per-configuration tables, DeLong tests against the
baseline, one ROC plot and a Grad-CAM / feature-map gallery of the same test images under each run."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from trainer.comparisons import compare_over_seeds, holm
from trainer.evaluate import is_degenerate, plot_rocs
from trainer.gallery import GALLERY, draw_gallery
from trainer.grid import GridRun
from trainer.metrics import delong_test

log = logging.getLogger(__name__)


def _f(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.3f}"


def _config_key(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if k != "seed")


def baseline_of(run: GridRun, runs: list[GridRun], baseline: dict[str, Any]) -> GridRun | None:
    wanted = {**run.values, **baseline}
    if wanted == run.values:
        return None
    return next((r for r in runs if r.values == wanted), None)


def _load_probs(run: GridRun) -> tuple[np.ndarray, np.ndarray]:
    return np.load(run.run_dir / "test_labels.npy"), np.load(run.run_dir / "test_probs.npy")


def run_table(runs: list[GridRun], results: dict[str, dict], baseline: dict[str, Any]) -> list[str]:
    lines = [
        "| run | epochs | s/epoch | val AUROC | test AUROC (95 % CI) | accuracy | sensitivity | specificity "
        "| Δ vs baseline | DeLong p |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        r = results[run.name]
        low, high = r["test_auroc_ci95"]
        base = baseline_of(run, runs, baseline)
        delta, p = "baseline" if base is None else "–", "–"
        y, p1 = _load_probs(run)
        degenerate = is_degenerate(p1)
        if base is not None:
            _, p2 = _load_probs(base)
            a1, a2, pval = delong_test(y, p1, p2)
            delta = f"{a1 - a2:+.3f}"
            # ties everywhere: an AUROC of 0.5 by construction, and no test to report
            p = "– (degenerate)" if degenerate or is_degenerate(p2) else f"{pval:.3g}"
        name = f"{run.name} ⚠ constant output" if degenerate else run.name
        lines.append(
            f"| {name} | {r['epochs']} | {r['seconds_per_epoch']:.0f} | {_f(r['val_auroc'])} | "
            f"{_f(r['test_auroc'])} ({_f(low)}–{_f(high)}) | {_f(r['accuracy'])} | {_f(r['sensitivity'])} | "
            f"{_f(r['specificity'])} | {delta} | {p} |"
        )
    return lines


def config_table(runs: list[GridRun], results: dict[str, dict]) -> list[str]:
    groups: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        groups[_config_key(run.values)].append(results[run.name]["test_auroc"])
    ranked = sorted(groups.items(), key=lambda kv: -np.mean(kv[1]))
    lines = ["| configuration | seeds | mean test AUROC | sd | min | max |", "|---|---:|---:|---:|---:|---:|"]
    for key, values in ranked:
        sd = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
        lines.append(
            f"| {key} | {len(values)} | {np.mean(values):.3f} | {_f(sd)} | {min(values):.3f} | {max(values):.3f} |"
        )
    return lines


def seed_effects_table(runs: list[GridRun], baseline: dict[str, Any]) -> list[str]:
    """Each configuration against its baseline over the seeds both have (see ``trainer.comparisons``), with
    Holm-adjusted p-values over every comparison of the table; empty when no configuration has two seeds."""
    pairs: dict[str, list[tuple[GridRun, GridRun]]] = defaultdict(list)
    for run in runs:
        base = baseline_of(run, runs, baseline)
        if base is not None:
            pairs[_config_key(run.values)].append((run, base))
    if not pairs or max(len(v) for v in pairs.values()) < 2:
        return []
    rows = []
    for key, matched in pairs.items():
        y = _load_probs(matched[0][0])[0]
        ours = {run.values.get("seed", 0): _load_probs(run)[1] for run, _ in matched}
        theirs = {run.values.get("seed", 0): _load_probs(base)[1] for run, base in matched}
        rows.append((key, compare_over_seeds(y, ours, theirs)))
    adjusted = holm([c.p_value for _, c in rows])
    lines = [
        "| configuration | seeds | mean Δ AUROC (95 % CI) | Δ by seed | seeds agreeing | bootstrap p | Holm p |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for (key, c), p_holm in sorted(zip(rows, adjusted, strict=True), key=lambda item: -item[0][1].mean_delta):
        by_seed = ", ".join(f"{d:+.3f}" for d in c.per_seed_delta)
        lines.append(
            f"| {key} | {len(c.seeds)} | {c.mean_delta:+.3f} ({c.ci95[0]:+.3f} to {c.ci95[1]:+.3f}) | {by_seed} | "
            f"{c.sign_agreement} | {c.p_value:.3g} | {p_holm:.3g} |"
        )
    return lines


def _gallery_twin(run: GridRun, folders: list[str]) -> Path | None:
    """A run with the same settings in a gallery experiment (trained again with its weights kept)."""
    for folder in folders:
        for result in sorted(Path(folder).glob("runs/*/test_result.json")):
            values = json.loads(result.read_text())["values"]
            same = all(values.get(k, v) == v for k, v in run.values.items()) and set(values) <= set(run.values)
            if same and (result.parent / GALLERY).exists():
                return result.parent
    return None


def gallery(runs: list[GridRun], finding: str, path: Path, twins_from: list[str]) -> list[str]:
    """One row per configuration: its lowest seed with a saved gallery row, else a twin run from
    ``twins_from`` (labelled so). Returns the configurations left without a row."""
    rows: dict[str, Path] = {}
    for run in sorted(runs, key=lambda r: r.values.get("seed", 0)):
        key = _config_key(run.values) or run.name
        if key not in rows and (run.run_dir / GALLERY).exists():
            rows[key] = run.run_dir
    for run in runs:
        key = _config_key(run.values) or run.name
        if key not in rows and (twin := _gallery_twin(run, twins_from)) is not None:
            rows[f"{key} (twin run {twin.name})"] = twin
    covered = {k.split(" (twin")[0] for k in rows}
    missing = sorted({_config_key(r.values) or r.name for r in runs} - covered)
    if rows:
        draw_gallery(dict(sorted(rows.items())), finding, path)
    return missing


def write_report(
    folder: Path, spec: dict, runs: list[GridRun], finding: str, unfinished: list[str] | None = None
) -> Path:
    results = {run.name: json.loads((run.run_dir / "test_result.json").read_text()) for run in runs}
    baseline = spec.get("baseline", {})
    curves = {}
    lowest_seed = min((r.values.get("seed", 0) for r in runs), default=0)
    for run in runs:
        if run.values.get("seed", 0) == lowest_seed:
            curves[_config_key(run.values) or run.name] = _load_probs(run)
    plot_rocs(curves, folder / "roc.png", f"{finding}: test ROC, seed {lowest_seed}")
    missing = gallery(runs, finding, folder / "gallery.png", spec.get("gallery_twins_from", []))
    gallery_line = (
        "![Grad-CAM gallery](gallery.png)" if len(missing) < len({_config_key(r.values) for r in runs}) else ""
    )
    if missing:
        gallery_line += f"\n\nNo gallery row (run trained where its weights are no longer kept): {'; '.join(missing)}."
    first = results[runs[0].name]
    effects = seed_effects_table(runs, baseline)
    effects_section = (
        [
            "## Effects over seeds (paired by seed, Holm-corrected)",
            "",
            "Mean over seeds of the configuration's test AUROC minus its baseline's (same seed). 95 % interval "
            "and two-sided p: two-level bootstrap (2,000 draws; seeds with replacement, then test images with "
            "replacement, the same images for every run of a draw). Holm p: adjusted over every row of this "
            "table; read an effect as shown when Holm p < 0.05.",
            "",
            *effects,
            "",
        ]
        if effects
        else []
    )
    lines = [
        f"# {spec.get('title', spec['name'])}",
        "",
        spec.get("description", "").strip(),
        "",
        f"Finding: **{finding}**. Test set: {first['n_test']} images. Thresholds are chosen on the validation "
        "split for sensitivity ≥ 0.90 and then applied to the test split. 95 % intervals: percentile bootstrap "
        "(1,000 resamples). DeLong p: two-sided test of the run's test AUROC against its baseline counterpart "
        f"(baseline: {baseline or 'none'}; same seed and other settings; one test per run, not corrected for "
        "multiple comparisons).",
        "",
        "## Configurations (mean over seeds, best first)",
        "",
        *config_table(runs, results),
        "",
        *effects_section,
        "## Every run",
        "",
        *run_table(runs, results, baseline),
        "",
        "## ROC curves",
        "",
        "![ROC curves](roc.png)",
        "",
        "## Where the networks look",
        "",
        gallery_line,
        "",
    ]
    if spec.get("caveats"):
        lines += ["## Caveats", "", *[f"- {c}" for c in spec["caveats"]], ""]
    if unfinished:
        lines += [
            "## Not finished when this report was written",
            "",
            f"{len(unfinished)} of {len(runs) + len(unfinished)} runs of the grid; `cxr-train experiment` resumes "
            "them and rewrites this report:",
            "",
            *[f"- {name}" for name in unfinished],
            "",
        ]
    report = folder / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    log.info("report written to %s", report)
    return report
