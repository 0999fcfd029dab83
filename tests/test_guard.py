"""The input guard: its verdicts, its file in the bundle, and fitting it (issue 13, item 4)."""

import json
import shutil

import numpy as np
import pytest
from conftest import make_tiny_bundle

from cxr_desktop.core import bundle as B
from cxr_desktop.core.guard import INVERTED, NOT_CHEST, OK, PROBE_CLASSES, ROTATED, InputGuard
from trainer.guard import CUTOFF_PERCENTILE, VARIANTS, fit_guard, measure, save_guard

DIMS = 16


def _clusters(rng, n=200):
    """Synthetic embeddings: each probe class its own direction, all near the reference."""
    centres = {name: np.eye(DIMS)[i] * 8.0 for i, name in enumerate(VARIANTS)}
    return {name: centre + rng.normal(size=(n, DIMS)) for name, centre in centres.items()}


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(400, DIMS))
    tune, held_out = _clusters(rng), _clusters(rng)
    return fit_guard(reference, tune, regularisation=1.0), held_out


def test_the_probe_tells_upright_from_rotated_and_inverted(fitted):
    guard, held_out = fitted
    rates = measure(guard, held_out)
    assert rates["upright"]["rate"] < 0.05
    for name in ("rotated_90", "rotated_180", "rotated_270"):
        assert rates[name]["rate"] > 0.9 and rates[name].get(ROTATED, 0) >= 0.9 * rates[name]["n"]
    assert rates["inverted"].get(INVERTED, 0) > 0.9 * rates["inverted"]["n"]


def test_the_cutoff_is_the_99th_percentile_of_the_tune_half(fitted):
    guard, _ = fitted
    rng = np.random.default_rng(0)
    rng.normal(size=(400, DIMS))  # the same draws as the fixture
    tune_upright = _clusters(rng)["upright"]
    assert guard.distance_cutoff == pytest.approx(np.percentile(guard.distances(tune_upright), CUTOFF_PERCENTILE))


def test_something_far_from_the_training_images_is_not_a_chest_film(fitted):
    guard, held_out = fitted
    far = held_out["upright"][:5] + 40.0
    assert guard.verdicts(far) == [NOT_CHEST] * 5
    assert guard.verdicts(np.zeros((0, DIMS))) == []


def test_round_trip_and_refusals(fitted, tmp_path):
    guard, held_out = fitted
    path = tmp_path / "guard.safetensors"
    guard.save(path)
    settings = {"distance_cutoff": guard.distance_cutoff, "min_confidence": guard.min_confidence}
    again = InputGuard.load(path, settings)
    assert again.verdicts(held_out["inverted"][:20]) == guard.verdicts(held_out["inverted"][:20])
    with pytest.raises(ValueError, match="cut-off"):
        InputGuard.load(path, {**settings, "distance_cutoff": float("nan")})
    broken = InputGuard(guard.mean, guard.scale, 1.0, guard.probe_weights[:, :3], guard.probe_bias)
    with pytest.raises(ValueError, match="shapes"):
        broken.check()


def _with_guard(folder, guard):
    save_guard(folder, guard)
    data = json.loads((folder / B.CARD_NAME).read_text())
    data.update(
        guard_file="guard.safetensors",
        guard_sha256=B.sha256_of(folder / "guard.safetensors"),
        guard={"distance_cutoff": guard.distance_cutoff, "min_confidence": 0.5},
    )
    B.write_card(folder, data)
    return folder


def test_a_bundle_carries_its_guard_under_the_integrity_record(tmp_path):
    import torch

    folder = make_tiny_bundle(tmp_path / "b")
    width = B.load_bundle(folder).model.fc.in_features
    rng = np.random.default_rng(1)
    guard = fit_guard(
        rng.normal(size=(100, width)), {n: rng.normal(size=(30, width)) + i for i, n in enumerate(VARIANTS)}
    )
    _with_guard(folder, guard)
    loaded = B.load_bundle(folder)
    assert loaded.guard is not None and loaded.guard.probe_weights.shape == (len(PROBE_CLASSES), width)
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    tensors = guard.tensors()
    tensors["mean"] = tensors["mean"] + 1.0
    from safetensors.numpy import save_file

    save_file(tensors, str(changed / "guard.safetensors"))
    with pytest.raises(B.BundleChecksumError, match="guard.safetensors"):
        B.load_bundle(changed)
    assert torch.is_tensor(next(loaded.model.parameters()))


def test_ok_is_the_verdict_of_typical_embeddings(fitted):
    guard, held_out = fitted
    assert guard.verdicts(held_out["upright"][:3]).count(OK) >= 2
