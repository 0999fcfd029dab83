"""Training augmentations for what real films carry (issue 21, item 7e): a box drawn over the film (``cutout``)
and burnt-in markers (``text``). Neither moves a pixel: no flip, no turn."""

import numpy as np
import pytest

from cxr_desktop.studies.synthetic import synthetic_chest
from trainer.augment import REGISTRY, compose, parse
from trainer.config import ConfigError, validate

CHEST = (synthetic_chest(224, seed=3) * 0.6).astype(np.uint8)  # a film darker than the letters


def _draws(name: str, n: int = 200) -> list[np.ndarray]:
    augment = parse(name)
    return [augment(CHEST, np.random.default_rng(seed)) for seed in range(n)]


def test_both_are_registered_with_what_they_do():
    assert {"cutout", "text"} <= set(REGISTRY)
    assert "box" in REGISTRY["cutout"].doc and "PORTABLE" in REGISTRY["text"].doc


def test_cutout_fills_one_box_with_one_value_half_of_the_time():
    applied = 0
    for out in _draws("cutout"):
        assert out.shape == CHEST.shape and out.dtype == np.uint8
        changed = out != CHEST
        if not changed.any():
            continue
        applied += 1
        ys, xs = np.nonzero(changed)
        box = out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        assert len(np.unique(box)) == 1  # one filled rectangle; everything outside it is untouched
        assert np.array_equal(out[~changed], CHEST[~changed])
        assert box.shape[0] <= 0.3 * 224 + 1 and box.shape[1] <= 0.3 * 224 + 1
    assert 70 <= applied <= 130


def test_text_burns_bright_letters_near_the_edges_and_moves_nothing():
    applied = 0
    for out in _draws("text"):
        changed = out != CHEST
        if not changed.any():
            continue
        applied += 1
        assert changed.mean() < 0.08  # letters, not a transformed film
        assert (out[changed].astype(int) > CHEST[changed]).mean() > 0.9  # brighter: burnt in white
        ys = np.nonzero(changed)[0]
        assert ((ys < 0.3 * 224) | (ys > 0.75 * 224)).all()  # in the upper or lower margin, not over the heart
    assert 70 <= applied <= 130


def test_the_same_seed_gives_the_same_film():
    both = compose(["cutout", "text"])
    for seed in range(10):
        first = both(CHEST, np.random.default_rng(seed))
        assert np.array_equal(first, both(CHEST, np.random.default_rng(seed)))


def test_a_parameter_out_of_range_is_refused_before_training():
    with pytest.raises(ValueError, match="cutout"):
        parse("cutout:0.9")
    with pytest.raises(ValueError, match="text"):
        parse("text:1")
    with pytest.raises(ConfigError) as caught:
        validate({"augment": ["cutout:0.9", "text:0.05"]})
    assert "cutout: the box side" in str(caught.value) and "text:" not in str(caught.value)
