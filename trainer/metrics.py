"""AUROC with bootstrap intervals, DeLong's test, and thresholds at a target sensitivity."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score, roc_curve


def valid(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ~np.isnan(y)
    return y[keep].astype(np.int64), p[keep]


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    y, p = valid(y, p)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, p))


def resample_indices(n: int, groups: Sequence[str] | None, rng: np.random.Generator) -> np.ndarray:
    """One bootstrap draw of row indices: whole groups (patients) with replacement when ``groups`` is given, so a
    patient's films stay together (they are not independent), else single rows."""
    if groups is None:
        return rng.integers(0, n, n)
    names, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    return np.concatenate([members[i] for i in rng.integers(0, len(names), len(names))])


def bootstrap_ci(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    y: np.ndarray,
    p: np.ndarray,
    groups: Sequence[str] | None = None,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(y, p)`` over labelled rows, resampling ``groups``
    (patients) when given; draws where the statistic is undefined (NaN) are skipped."""
    keep = ~np.isnan(y)
    y, p = y[keep].astype(np.int64), p[keep]
    groups = None if groups is None else np.asarray(groups)[keep]
    if len(y) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = [statistic(y[idx], p[idx]) for idx in (resample_indices(len(y), groups, rng) for _ in range(n))]
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def bootstrap_auroc_ci(
    y: np.ndarray, p: np.ndarray, n: int = 1000, seed: int = 0, alpha: float = 0.05, groups: Sequence[str] | None = None
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC (resampling patients when ``groups`` is given, else images)."""
    if len(np.unique(y[~np.isnan(y)])) < 2:
        return float("nan"), float("nan")
    return bootstrap_ci(auroc, y.astype(np.float64), p, groups, n, seed, alpha)


def _midrank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    i = 0
    while i < len(x):
        j = i
        while j < len(x) and sorted_x[j] == sorted_x[i]:
            j += 1
        ranks[i:j] = 0.5 * (i + j - 1) + 1
        i = j
    out = np.empty(len(x), dtype=np.float64)
    out[order] = ranks
    return out


def delong_test(y: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> tuple[float, float, float]:
    """DeLong's test for two correlated AUROCs on the same cases: (auc1, auc2, two-sided p-value)."""
    keep = ~np.isnan(y)
    y, p1, p2 = y[keep].astype(int), p1[keep], p2[keep]
    pos, neg = y == 1, y == 0
    m, n = int(pos.sum()), int(neg.sum())
    if m < 2 or n < 2:
        return float("nan"), float("nan"), float("nan")
    v10, v01, aucs = [], [], []
    for p in (p1, p2):
        tx, ty, tz = _midrank(p[pos]), _midrank(p[neg]), _midrank(np.concatenate([p[pos], p[neg]]))
        auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
        v10.append((tz[:m] - tx) / n)
        v01.append(1.0 - (tz[m:] - ty) / m)
        aucs.append(auc)
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    if var <= 0:
        return float(aucs[0]), float(aucs[1]), 1.0
    z = (aucs[0] - aucs[1]) / np.sqrt(var)
    return float(aucs[0]), float(aucs[1]), float(2 * stats.norm.sf(abs(z)))


@dataclass(frozen=True)
class BinaryStats:
    threshold: float
    accuracy: float
    sensitivity: float
    specificity: float


def binary_stats(y: np.ndarray, p: np.ndarray, threshold: float) -> BinaryStats:
    y, p = valid(y, p)
    pred = p >= threshold
    tp, tn = int(np.sum(pred & (y == 1))), int(np.sum(~pred & (y == 0)))
    pos, neg = int(np.sum(y == 1)), int(np.sum(y == 0))
    return BinaryStats(
        threshold,
        (tp + tn) / max(1, len(y)),
        tp / pos if pos else float("nan"),
        tn / neg if neg else float("nan"),
    )


def midway_below(p: np.ndarray, score: float) -> float:
    """A threshold midway between ``score`` and the next lower score in ``p`` (half of ``score`` when none is
    lower): it flags exactly the images at or above ``score`` here, and no image sits on it, so a score that
    moves by rounding (another backend, another run) does not flip across it."""
    lower = p[p < score]
    return float((score + lower.max()) / 2 if lower.size else score / 2)


def threshold_at_sensitivity(y: np.ndarray, p: np.ndarray, target: float) -> float:
    """The highest threshold whose sensitivity on (y, p) is at least ``target``, placed midway below the
    lowest positive score it must flag (``midway_below``)."""
    y, p = valid(y, p)
    positives = np.sort(p[y == 1])[::-1]
    if len(positives) == 0:
        return 0.5
    k = int(np.ceil(target * len(positives)))  # number of positives that must be flagged
    return midway_below(p, float(positives[min(max(k, 1), len(positives)) - 1]))


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold of the ROC point with the largest sensitivity + specificity - 1, midway below its score."""
    y, p = valid(y, p)
    if len(np.unique(y)) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return midway_below(p, float(min(thr[best], 1.0)))
