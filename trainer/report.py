"""``report.md`` for an experiment: per-run and per-configuration tables, DeLong tests against the
baseline, one ROC plot and a Grad-CAM / feature-map gallery of the same test images under each run."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from cxr_desktop.core.architectures import cam_target_layer
from cxr_desktop.core.explain import grad_cam
from cxr_desktop.core.labels import finding_index
from cxr_desktop.core.preprocess import normalize_input
from trainer.data.cache import ImageCache, decode_for_training
from trainer.evaluate import load_run, plot_rocs
from trainer.experiment import GridRun
from trainer.metrics import delong_test
from trainer.run import build_splits

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
        if base is not None:
            y, p1 = _load_probs(run)
            _, p2 = _load_probs(base)
            a1, a2, pval = delong_test(y, p1, p2)
            delta, p = f"{a1 - a2:+.3f}", f"{pval:.3g}"
        lines.append(
            f"| {run.name} | {r['epochs']} | {r['seconds_per_epoch']:.0f} | {_f(r['val_auroc'])} | "
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


def _probability_and_feature_map(model, layer, x: torch.Tensor, index: int) -> tuple[float, np.ndarray]:
    """The finding's probability and the channel-mean activation of ``layer`` for one input."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output.detach().float()))
    try:
        with torch.no_grad():
            prob = torch.sigmoid(model(x)[0, index]).item()
    finally:
        handle.remove()
    return prob, captured[0][0].mean(0).numpy()


def gallery(runs: list[GridRun], finding: str, path: Path, count: int = 4) -> None:
    """Rows: one run per configuration (lowest seed); columns: the same test images; Grad-CAM and the
    mean feature map of the Grad-CAM layer side by side."""
    first = {}
    for run in runs:
        first.setdefault(_config_key(run.values), run)
    chosen = list(first.values())
    ref = load_run(chosen[0].run_dir)
    splits = build_splits(ref.config)
    column = splits.test.labels[:, finding_index(finding)]
    rng = np.random.default_rng(0)
    pos, neg = np.flatnonzero(column == 1), np.flatnonzero(column == 0)
    picks = list(rng.choice(pos, min(count - 1, len(pos)), replace=False)) + list(rng.choice(neg, 1, replace=False))
    cache = ImageCache.open(Path(ref.config.cache)) if ref.config.cache else None
    fig = Figure(figsize=(2.0 * 2 * len(picks), 2.1 * len(chosen) + 0.6))
    axes = fig.subplots(len(chosen), 2 * len(picks), squeeze=False)
    for row, run in enumerate(chosen):
        loaded = load_run(run.run_dir)
        spec = loaded.config.spec()
        model = loaded.model.float().eval()
        layer = cam_target_layer(loaded.config.architecture, model)
        for col, index in enumerate(picks):
            image_path = splits.test.paths[index]
            row_in_cache = cache.lookup(image_path) if cache else None
            if row_in_cache is not None:
                img = np.array(cache.array[row_in_cache])
            else:
                img = decode_for_training(image_path, spec)
            x = normalize_input(torch.from_numpy(img)[None], spec)
            cam = grad_cam(model, layer, x, finding_index(finding))[0]
            prob, fmap = _probability_and_feature_map(model, layer, x, finding_index(finding))
            ax_cam, ax_map = axes[row, 2 * col], axes[row, 2 * col + 1]
            ax_cam.imshow(img, cmap="gray")
            ax_cam.imshow(cam, cmap="jet", alpha=0.4)
            ax_cam.set_title(f"{'pos' if column[index] == 1 else 'neg'} p={prob:.2f}", fontsize=7)
            ax_map.imshow(fmap, cmap="viridis")
            ax_map.set_title("feature map", fontsize=7)
            for ax in (ax_cam, ax_map):
                ax.set_xticks([])
                ax.set_yticks([])
        axes[row, 0].set_ylabel(_config_key(run.values).replace(", ", "\n"), fontsize=6)
    fig.suptitle(f"Grad-CAM ({finding}) and mean feature map, same test images under each configuration", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(folder: Path, spec: dict, runs: list[GridRun], finding: str) -> Path:
    results = {run.name: json.loads((run.run_dir / "test_result.json").read_text()) for run in runs}
    baseline = spec.get("baseline", {})
    curves = {}
    lowest_seed = min((r.values.get("seed", 0) for r in runs), default=0)
    for run in runs:
        if run.values.get("seed", 0) == lowest_seed:
            curves[_config_key(run.values) or run.name] = _load_probs(run)
    plot_rocs(curves, folder / "roc.png", f"{finding}: test ROC, seed {lowest_seed}")
    try:
        gallery(runs, finding, folder / "gallery.png", spec.get("gallery_images", 4))
        gallery_line = "![Grad-CAM gallery](gallery.png)"
    except (RuntimeError, ValueError) as exc:  # a gallery failure must not lose the tables
        log.error("gallery failed: %s", exc)
        gallery_line = f"(gallery failed: {exc})"
    first = results[runs[0].name]
    lines = [
        f"# {spec.get('title', spec['name'])}",
        "",
        spec.get("description", "").strip(),
        "",
        f"Finding: **{finding}**. Test set: {first['n_test']} images. Thresholds are chosen on the validation "
        "split for sensitivity ≥ 0.90 and then applied to the test split. 95 % intervals: percentile bootstrap "
        "(1,000 resamples). DeLong p: two-sided test of the run's test AUROC against its baseline counterpart "
        f"(baseline: {baseline or 'none'}; same seed and other settings).",
        "",
        "## Configurations (mean over seeds, best first)",
        "",
        *config_table(runs, results),
        "",
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
    report = folder / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    log.info("report written to %s", report)
    return report
