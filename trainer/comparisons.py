"""Comparisons of one configuration against a baseline over several seeds, and Holm's correction.

Each seed trains the configuration and its baseline on the same split from the same start, so the runs pair
by seed. The effect is the mean over seeds of (configuration's test AUROC − baseline's). Its interval and
p-value come from a two-level bootstrap: each draw takes the seeds with replacement (training noise) and the
test images (or whole patients) with replacement (test sampling), the same images for every run of the draw.
With three seeds the seed level is coarse; the per-seed differences are reported beside it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from trainer.metrics import resample_indices


@dataclass(frozen=True)
class SeedComparison:
    seeds: list[int]
    per_seed_delta: list[float]  # configuration − baseline test AUROC, by seed
    mean_delta: float
    ci95: tuple[float, float]
    p_value: float  # two-sided, from the two-level bootstrap

    @property
    def sign_agreement(self) -> str:
        """'3/3 +' when every seed moves the same way, '2/3 +' otherwise (the majority's direction)."""
        up = sum(d > 0 for d in self.per_seed_delta)
        down = sum(d < 0 for d in self.per_seed_delta)
        return f"{max(up, down)}/{len(self.per_seed_delta)} {'+' if up >= down else '−'}"


def _auroc_columns(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """AUROC of every column of ``scores`` (rows: images) against binary ``y``, by the rank-sum formula."""
    positives = y == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return np.full(scores.shape[1], np.nan)
    ranks = rankdata(scores, axis=0)
    return (ranks[positives].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def compare_over_seeds(
    y: np.ndarray,
    config_scores: dict[int, np.ndarray],
    baseline_scores: dict[int, np.ndarray],
    groups: Sequence[str] | None = None,
    draws: int = 2000,
    rng_seed: int = 0,
) -> SeedComparison:
    """Paired comparison on one test set; ``*_scores`` map a seed to that run's test scores (same rows as
    ``y``, NaN labels left out). Only seeds present on both sides count."""
    seeds = sorted(set(config_scores) & set(baseline_scores))
    if not seeds:
        raise ValueError("no seed has both a run of the configuration and of its baseline")
    keep = ~np.isnan(y)
    labels = y[keep].astype(np.int64)
    ours = np.stack([config_scores[s][keep] for s in seeds], axis=1)
    theirs = np.stack([baseline_scores[s][keep] for s in seeds], axis=1)
    per_seed = _auroc_columns(labels, ours) - _auroc_columns(labels, theirs)
    groups = None if groups is None else np.asarray(groups)[keep]
    rng = np.random.default_rng(rng_seed)
    values = []
    for _ in range(draws):
        rows = resample_indices(len(labels), groups, rng)
        columns = rng.integers(0, len(seeds), len(seeds))
        delta = _auroc_columns(labels[rows], ours[rows][:, columns]) - _auroc_columns(
            labels[rows], theirs[rows][:, columns]
        )
        if not np.isnan(delta).any():
            values.append(float(delta.mean()))
    if not values:
        raise ValueError("no bootstrap draw held both classes")
    draws_arr = np.asarray(values)
    low, high = np.percentile(draws_arr, [2.5, 97.5])
    tail = min((draws_arr <= 0).mean(), (draws_arr >= 0).mean())
    p_value = min(1.0, max(2 * tail, 1 / (len(draws_arr) + 1)))
    return SeedComparison(
        seeds=seeds,
        per_seed_delta=[float(d) for d in per_seed],
        mean_delta=float(per_seed.mean()),
        ci95=(float(low), float(high)),
        p_value=float(p_value),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, kept monotone, capped at 1), in the input's order."""
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()
