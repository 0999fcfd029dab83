import numpy as np
from sklearn.metrics import roc_auc_score

from trainer.metrics import (
    binary_stats,
    bootstrap_auroc_ci,
    delong_test,
    threshold_at_sensitivity,
    youden_threshold,
)


def _data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    p1 = y * 0.8 + rng.normal(0, 0.5, n)
    p2 = y * 0.3 + rng.normal(0, 0.5, n)
    return y, p1, p2


def test_delong_matches_sklearn_auc_and_detects_a_difference():
    y, p1, p2 = _data()
    a1, a2, p = delong_test(y, p1, p2)
    assert abs(a1 - roc_auc_score(y, p1)) < 1e-9 and abs(a2 - roc_auc_score(y, p2)) < 1e-9
    assert p < 0.01
    _, _, same = delong_test(y, p1, p1 + 1e-12)
    assert same > 0.5


def test_bootstrap_interval_contains_the_auc():
    y, p1, _ = _data(1)
    low, high = bootstrap_auroc_ci(y, p1, n=300)
    assert low < roc_auc_score(y, p1) < high


def test_threshold_reaches_the_target_sensitivity():
    y, p1, _ = _data(2)
    for target in (0.8, 0.9, 0.95):
        t = threshold_at_sensitivity(y, p1, target)
        assert binary_stats(y, p1, t).sensitivity >= target
    assert 0 <= youden_threshold(y, 1 / (1 + np.exp(-p1))) <= 1


def test_nan_labels_are_ignored():
    y, p1, _ = _data(3)
    y_nan = y.copy()
    y_nan[:50] = np.nan
    stats = binary_stats(y_nan, p1, 0.4)
    assert stats == binary_stats(y[50:], p1[50:], 0.4)
