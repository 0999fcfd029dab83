"""Seed-paired comparisons and Holm's correction used by experiment reports."""

import numpy as np
import pytest

from trainer.comparisons import compare_over_seeds, holm


def test_holm_matches_the_step_down_definition():
    # m = 4: sorted p 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (kept monotone), 0.5; back in input order
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2 × 0.8 capped at 1, kept monotone
    assert holm([0.04, 0.2]) == pytest.approx([0.08, 0.2])
    assert holm([0.3]) == pytest.approx([0.3])


def _scores(y: np.ndarray, separation: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, len(y)) + separation * y


def test_a_real_difference_is_found_and_a_null_one_is_not():
    rng = np.random.default_rng(1)
    y = (rng.random(600) < 0.3).astype(float)
    baseline = {s: _scores(y, 0.8, 100 + s) for s in range(3)}
    better = {s: _scores(y, 1.6, 200 + s) for s in range(3)}
    same = {s: _scores(y, 0.8, 300 + s) for s in range(3)}

    found = compare_over_seeds(y, better, baseline, draws=300)
    assert found.mean_delta > 0.1 and found.ci95[0] > 0 and found.p_value < 0.01
    assert found.sign_agreement == "3/3 +" and found.seeds == [0, 1, 2]

    null = compare_over_seeds(y, same, baseline, draws=300)
    assert abs(null.mean_delta) < 0.05 and null.ci95[0] < 0 < null.ci95[1] and null.p_value > 0.05


def test_seeds_pair_by_seed_and_unlabelled_rows_are_left_out():
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.4).astype(float)
    y[:10] = np.nan
    ours = {0: _scores(np.nan_to_num(y), 1.0, 1), 1: _scores(np.nan_to_num(y), 1.0, 2), 5: _scores(y, 1.0, 3)}
    theirs = {0: _scores(np.nan_to_num(y), 1.0, 4), 1: _scores(np.nan_to_num(y), 1.0, 5)}
    result = compare_over_seeds(y, ours, theirs, draws=200)
    assert result.seeds == [0, 1] and len(result.per_seed_delta) == 2
    with pytest.raises(ValueError, match="no seed"):
        compare_over_seeds(y, {3: ours[0]}, theirs)


def test_patients_are_resampled_whole():
    rng = np.random.default_rng(3)
    y = np.repeat((rng.random(100) < 0.4).astype(float), 3)  # 100 patients, 3 films each
    groups = np.repeat([f"p{i}" for i in range(100)], 3)
    a = {s: _scores(y, 1.0, 10 + s) for s in range(2)}
    b = {s: _scores(y, 1.0, 20 + s) for s in range(2)}
    by_image = compare_over_seeds(y, a, b, draws=300)
    by_patient = compare_over_seeds(y, a, b, groups=groups, draws=300)
    assert by_patient.mean_delta == pytest.approx(by_image.mean_delta)
    assert by_patient.ci95 != by_image.ci95
