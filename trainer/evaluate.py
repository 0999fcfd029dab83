"""Evaluation: per-finding AUROC with 95 % bootstrap intervals, mean AUROC, accuracy / sensitivity /
specificity at given thresholds, ROC curves (PNG), a JSON file and a markdown table."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve
from torch.utils.data import DataLoader

from cxr_desktop.core.device import resolve_device
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.core.preprocess import PreprocessSpec, normalize_array
from trainer.config import TrainConfig
from trainer.data.cache import ImageCache
from trainer.data.dataset import XrayDataset
from trainer.data.samples import SampleTable
from trainer.external import calibration, plot_reliability, subgroup_aurocs
from trainer.fit import predict, use_bf16
from trainer.metrics import auroc, binary_stats, bootstrap_auroc_ci, bootstrap_ci, threshold_at_sensitivity

log = logging.getLogger(__name__)


def predict_table(
    model: torch.nn.Module,
    table: SampleTable,
    spec: PreprocessSpec,
    cache: str = "",
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 0,
) -> np.ndarray:
    """Probabilities (images x findings) of ``model`` on ``table``, read from ``cache`` when it holds every image."""
    dev = resolve_device(device)
    model = model.to(dev).to(memory_format=torch.channels_last)
    image_cache = ImageCache.open(Path(cache)) if cache else None
    if image_cache is not None and any(image_cache.lookup(p) is None for p in table.paths):
        image_cache = None  # images outside the cache: decode them
    loader = DataLoader(XrayDataset(table, spec, None, image_cache), batch_size, num_workers=workers)
    bf16 = use_bf16(TrainConfig(precision="auto"), dev)
    return predict(model, loader, dev, spec, bf16)


def predict_table_onnx(onnx_file: Path, table: SampleTable, spec: PreprocessSpec, batch_size: int = 32) -> np.ndarray:
    """Probabilities (images x findings) from a bundle's ONNX copy with ONNX Runtime: the scores the app shows
    on the CPU (decoded and preprocessed as for training, without the cache)."""
    from cxr_desktop.core.onnx_runtime import OnnxScorer, sigmoid

    scorer = OnnxScorer(onnx_file)
    loader = DataLoader(XrayDataset(table, spec, None, None), batch_size, num_workers=0)
    batches = [sigmoid(scorer(normalize_array(images.numpy(), spec))[0]) for images, _ in loader]
    return np.concatenate(batches) if batches else np.zeros((0, len(FINDINGS)), np.float32)


def is_degenerate(p: np.ndarray, spread: float = 1e-3) -> bool:
    """Near-constant predictions: an AUROC, its interval and any test on them describe ties, not a model."""
    p = p[~np.isnan(p)]
    return len(p) > 1 and float(p.max() - p.min()) < spread


def evaluate_predictions(
    labels: np.ndarray,
    probs: np.ndarray,
    thresholds: dict[str, float],
    bootstrap: int = 1000,
    patients: list[str] | None = None,
) -> dict:
    """Per labelled finding: AUROC, and sensitivity / specificity at its threshold, each with a 95 % bootstrap
    interval that resamples ``patients`` (a patient's films together) when given, else images."""
    per: dict[str, dict] = {}
    for i, name in enumerate(FINDINGS):
        y, p = labels[:, i], probs[:, i]
        known = ~np.isnan(y)
        if known.sum() == 0:
            continue
        low, high = bootstrap_auroc_ci(y, p, n=bootstrap, seed=i, groups=patients)
        stats = binary_stats(y, p, thresholds.get(name, 0.5))
        intervals = rate_intervals(y, p, stats.threshold, patients, bootstrap, seed=i)
        degenerate = is_degenerate(p[known])
        if degenerate:
            log.warning(
                "%s: near-constant predictions (%.4f to %.4f): a degenerate model, not a result",
                name,
                np.nanmin(p[known]),
                np.nanmax(p[known]),
            )
        per[name] = {
            "degenerate": degenerate,
            "n": int(known.sum()),
            "positives": int(np.nansum(y)),
            "auroc": auroc(y, p),
            "auroc_ci95": [low, high],
            "threshold": stats.threshold,
            "accuracy": stats.accuracy,
            "sensitivity": stats.sensitivity,
            "specificity": stats.specificity,
            **intervals,
            # a property of the curve (threshold set on these same images), for comparing models
            "specificity_at_sensitivity_0.90": binary_stats(y, p, threshold_at_sensitivity(y, p, 0.9)).specificity,
        }
    scored = [v["auroc"] for v in per.values() if not np.isnan(v["auroc"])]
    return {"mean_auroc": float(np.mean(scored)) if scored else float("nan"), "findings": per}


def rate_intervals(
    y: np.ndarray, p: np.ndarray, threshold: float, patients: list[str] | None, n: int = 1000, seed: int = 0
) -> dict[str, list[float]]:
    """95 % bootstrap intervals of the sensitivity and specificity at ``threshold`` (by patient when given)."""
    return {
        f"{name}_ci95": list(
            bootstrap_ci(lambda yy, pp, f=name: getattr(binary_stats(yy, pp, threshold), f), y, p, patients, n, seed)
        )
        for name in ("sensitivity", "specificity")
    }


def _fmt(value: float) -> str:
    return "–" if value is None or np.isnan(value) else f"{value:.3f}"


def _with_ci(record: dict, name: str) -> str:
    low, high = record.get(f"{name}_ci95", (float("nan"), float("nan")))
    return _fmt(record[name]) + ("" if np.isnan(low) else f" ({_fmt(low)}–{_fmt(high)})")


def markdown_table(result: dict) -> str:
    lines = [
        "| finding | n | positives | AUROC | 95 % CI | threshold | accuracy | sensitivity (95 % CI) "
        "| specificity (95 % CI) |",
        "|---|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for name, r in result["findings"].items():
        low, high = r["auroc_ci95"]
        warning = " ⚠ near-constant predictions (degenerate model)" if r.get("degenerate") else ""
        lines.append(
            f"| {name}{warning} | {r['n']} | {r['positives']} | {_fmt(r['auroc'])} | {_fmt(low)}–{_fmt(high)} | "
            f"{r['threshold']:.3f} | {_fmt(r['accuracy'])} | {_with_ci(r, 'sensitivity')} | "
            f"{_with_ci(r, 'specificity')} |"
        )
    lines.append(f"\nMean AUROC over findings with positives and negatives: **{_fmt(result['mean_auroc'])}**")
    return "\n".join(lines)


def plot_rocs(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> None:
    """``curves``: label -> (y, p). One ROC curve per label on one set of axes."""
    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot()
    for label, (y, p) in curves.items():
        keep = ~np.isnan(y)
        if len(np.unique(y[keep])) < 2:
            continue
        fpr, tpr, _ = roc_curve(y[keep].astype(int), p[keep])
        ax.plot(fpr, tpr, lw=1.2, label=f"{label} ({auroc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def labelled_findings(tables: list[SampleTable]) -> list[str]:
    """The findings with at least one positive label in ``tables``: what a run was trained on."""
    return [name for i, name in enumerate(FINDINGS) if any(np.nansum(t.labels[:, i]) > 0 for t in tables)]


def trained_labels(labels: np.ndarray, trained: list[str]) -> np.ndarray:
    """A copy of ``labels`` with the findings a model was not trained on unlabelled (NaN): never evaluated."""
    masked = labels.copy()
    masked[:, [i for i, name in enumerate(FINDINGS) if name not in trained]] = np.nan
    return masked


def thresholds_on(labels: np.ndarray, probs: np.ndarray, sensitivity: float) -> dict[str, float]:
    return {
        name: threshold_at_sensitivity(labels[:, i], probs[:, i], sensitivity)
        for i, name in enumerate(FINDINGS)
        if np.nansum(labels[:, i]) > 0
    }


def write_evaluation(
    labels: np.ndarray,
    probs: np.ndarray,
    thresholds: dict[str, float],
    out: Path,
    title: str,
    extra: dict | None = None,
    focus: str | None = None,
    metadata: list[dict[str, str]] | None = None,
    points: dict[str, dict[str, float]] | None = None,
    patients: list[str] | None = None,
) -> dict:
    """Metrics of every labelled finding (intervals by bootstrap over ``patients`` when given); for ``focus``
    (the urgent finding) also calibration (reliability.png), what each named operating point in ``points``
    flags, and, where ``metadata`` is given, AUROC by sex, age band and view."""
    out.mkdir(parents=True, exist_ok=True)
    result = evaluate_predictions(labels, probs, thresholds, patients=patients)
    result.update(extra or {})
    sections = [markdown_table(result)]
    if focus and focus in result["findings"]:
        column = FINDINGS.index(focus)
        y, p = labels[:, column], probs[:, column]
        if points:
            result["operating_points"] = point_rates(y, p, points, focus)
            sections.append(points_markdown(result["operating_points"], focus))
        result["calibration"] = {"finding": focus, **calibration(y, p)}
        plot_reliability(result["calibration"], out / "reliability.png", f"{focus}: reliability")
        sections.append(calibration_markdown(result["calibration"]))
        if metadata is not None:
            result["subgroups"] = {"finding": focus, **subgroup_aurocs(y, p, metadata, patients)}
            sections.append(subgroup_markdown(result["subgroups"]))
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    (out / "metrics.md").write_text(f"# {title}\n\n" + "\n\n".join(sections) + "\n")
    plot_rocs(
        {n: (labels[:, i], probs[:, i]) for i, n in enumerate(FINDINGS) if n in result["findings"]},
        out / "roc.png",
        title,
    )
    np.save(out / "probabilities.npy", probs)
    return result


def point_rates(y: np.ndarray, p: np.ndarray, points: dict[str, dict[str, float]], finding: str) -> dict:
    """For each named operating point with a threshold for ``finding``: the share of images it flags and its
    sensitivity and specificity here."""
    known = ~np.isnan(y)
    rates = {}
    for name, thresholds in points.items():
        if finding not in thresholds:
            continue
        stats = binary_stats(y, p, thresholds[finding])
        rates[name] = {
            "threshold": stats.threshold,
            "flag_rate": float(np.mean(p[known] >= stats.threshold)) if known.any() else float("nan"),
            "sensitivity": stats.sensitivity,
            "specificity": stats.specificity,
        }
    return rates


def points_markdown(rates: dict, finding: str) -> str:
    lines = [
        f"## Operating points ({finding})",
        "",
        "| operating point | threshold | flagged | sensitivity | specificity |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in rates.items():
        lines.append(
            f"| {name} | {r['threshold']:.3f} | {r['flag_rate']:.1%} | {_fmt(r['sensitivity'])} | "
            f"{_fmt(r['specificity'])} |"
        )
    return "\n".join(lines)


def calibration_markdown(result: dict) -> str:
    return (
        f"## Calibration ({result['finding']})\n\nExpected calibration error {_fmt(result['ece'])} (10 equal-width "
        f"bins), Brier score {_fmt(result['brier'])}; reliability diagram: `reliability.png`."
    )


def subgroup_markdown(groups: dict) -> str:
    lines = [
        f"## Subgroups ({groups['finding']})",
        "",
        "| subgroup | n | positives | AUROC | 95 % CI |",
        "|---|---:|---:|---:|---|",
    ]
    for name, g in groups.items():
        if name == "finding":
            continue
        low, high = g["auroc_ci95"]
        lines.append(f"| {name} | {g['n']} | {g['positives']} | {_fmt(g['auroc'])} | {_fmt(low)}–{_fmt(high)} |")
    return "\n".join(lines)
