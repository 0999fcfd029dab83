"""The input guard: its verdicts, its file in the bundle, and fitting it (issue 13, item 4)."""

import json
import shutil

import numpy as np
import pytest
from conftest import make_tiny_bundle

from cxr_desktop.core import bundle as B
from cxr_desktop.core.guard import (
    INVERTED,
    INVERTED_OR_NOT_CHEST,
    NOT_CHEST,
    OK,
    PROBE_CLASSES,
    ROTATED,
    ROTATED_OR_NOT_CHEST,
    InputGuard,
)
from trainer.guard import (
    CUTOFF_PERCENTILE,
    VARIANTS,
    cross_fitted_verdicts,
    fit_guard,
    fit_on_patients,
    measure,
    patient_folds,
    save_guard,
    summarise,
)

DIMS = 256


def _clusters(rng, n=200):
    """Synthetic embeddings: upright around the reference's centre, each other probe class shifted along its
    own direction, all within the distance cut-off."""
    centres = {name: np.eye(DIMS)[i] * 6.0 * (i > 0) for i, name in enumerate(VARIANTS)}
    return {name: centre + rng.normal(size=(n, DIMS)) for name, centre in centres.items()}


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    reference, validation = rng.normal(size=(400, DIMS)), rng.normal(size=(300, DIMS))
    tune, held_out = _clusters(rng), _clusters(rng)
    return fit_guard(reference, validation, tune, components=4, regularisation=1.0), held_out, validation


def test_the_probe_tells_upright_from_rotated_and_inverted(fitted):
    guard, held_out, _ = fitted
    rates = measure(guard, held_out)
    assert rates["upright"]["rate"] < 0.06
    for name in ("rotated_90", "rotated_180", "rotated_270"):  # some are far enough to be "not a chest film" too
        assert rates[name]["rate"] > 0.95 and rates[name].get(ROTATED, 0) > 0.5 * rates[name]["n"]
        assert rates[name].get(INVERTED, 0) < 0.05 * rates[name]["n"]
    assert rates["inverted"]["rate"] > 0.95 and rates["inverted"].get(INVERTED, 0) > 0.5 * rates["inverted"]["n"]


def test_the_cutoff_is_the_99th_percentile_of_the_validation_images(fitted):
    guard, _, validation = fitted
    assert guard.distance_cutoff == pytest.approx(np.percentile(guard.distances(validation), CUTOFF_PERCENTILE))


def test_the_distance_grows_away_from_the_reference(fitted):
    guard, held_out, validation = fitted
    direction = guard.components[0]
    near, far = guard.distances(np.stack([guard.mean, guard.mean + 100 * direction]))
    assert near == pytest.approx(0.0) and far > guard.distance_cutoff
    off_plane = np.linalg.svd(guard.components)[2][-1]  # a direction outside the kept components
    assert guard.distances((guard.mean + 100 * off_plane)[None])[0] > guard.distance_cutoff


def test_something_far_from_the_training_images_is_not_a_chest_film(fitted):
    guard, held_out, _ = fitted
    far = held_out["upright"][:5] + 40.0
    assert all(NOT_CHEST.removeprefix("probably ") in v for v in guard.verdicts(far))
    assert guard.verdicts(np.zeros((0, DIMS))) == []


def test_round_trip_and_refusals(fitted, tmp_path):
    guard, held_out, _ = fitted
    path = tmp_path / "guard.safetensors"
    guard.save(path)
    settings = {"distance_cutoff": guard.distance_cutoff, "min_confidence": guard.min_confidence}
    again = InputGuard.load(path, settings)
    assert again.verdicts(held_out["inverted"][:20]) == guard.verdicts(held_out["inverted"][:20])
    with pytest.raises(ValueError, match="cut-off"):
        InputGuard.load(path, {**settings, "distance_cutoff": float("nan")})
    broken = InputGuard(
        guard.mean,
        guard.scale,
        guard.components,
        guard.variances,
        1.0,
        1.0,
        guard.probe_weights[:, :3],
        guard.probe_bias,
    )
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
    tune = {n: rng.normal(size=(30, width)) + i for i, n in enumerate(VARIANTS)}
    guard = fit_guard(rng.normal(size=(100, width)), rng.normal(size=(50, width)), tune, components=8)
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
    guard, held_out, _ = fitted
    assert guard.verdicts(held_out["upright"][:3]).count(OK) >= 2


def test_folds_keep_a_patients_images_together_and_use_every_fold():
    patients = [f"p{i // 3}" for i in range(60)]  # 20 patients, 3 images each
    fold = patient_folds(patients, folds=5, seed=0)
    assert sorted(set(fold)) == [0, 1, 2, 3, 4]
    for patient in set(patients):
        assert len({f for f, p in zip(fold, patients, strict=True) if p == patient}) == 1
    assert (patient_folds(patients, 5, 0) == fold).all() and not (patient_folds(patients, 5, 1) == fold).all()


def test_each_image_is_judged_by_a_guard_fitted_without_its_fold():
    rng = np.random.default_rng(2)
    n = 150
    nih = {name: e[:n] for name, e in _clusters(rng, n).items()}
    nih["upright"][7] += 40.0  # one film far from everything: it is its own fold's business only
    patients = [f"p{i // 2}" for i in range(n)]
    training = rng.normal(size=(200, DIMS))
    verdicts = cross_fitted_verdicts(training, nih, patients, folds=3, components=4, regularisation=1.0)
    fold = patient_folds(patients, 3)
    rest = np.flatnonzero(fold != fold[7])
    alone = fit_on_patients(
        training, {k: e[rest] for k, e in nih.items()}, [patients[i] for i in rest], int(fold[7]),
        components=4, regularisation=1.0,
    )  # fmt: skip
    held_out = np.flatnonzero(fold == fold[7])
    assert [verdicts["upright"][i] for i in held_out] == alone.verdicts(nih["upright"][held_out])
    assert NOT_CHEST.removeprefix("probably ") in verdicts["upright"][7]
    rates = summarise(verdicts)
    assert rates["upright"]["n"] == n and rates["upright"]["rate"] < 0.1
    assert all(rates[name]["rate"] > 0.9 for name in VARIANTS if name != "upright")


def test_a_far_film_the_probe_finds_turned_gets_both_reasons_the_probes_first():
    dims = 4
    weights = np.zeros((len(PROBE_CLASSES), dims))
    weights[1, 0] = weights[4, 1] = 10.0  # feature 0 says "rotated 90", feature 1 "inverted"
    guard = InputGuard(
        mean=np.zeros(dims), scale=np.ones(dims), components=np.eye(dims)[:2], variances=np.ones(2),
        residual_variance=1.0, distance_cutoff=2.0, probe_weights=weights, probe_bias=np.zeros(len(PROBE_CLASSES)),
    )  # fmt: skip
    films = np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [9, 0, 0, 0], [0, 9, 0, 0], [0, 0, 9, 0]], float)
    assert guard.verdicts(films) == [OK, ROTATED, INVERTED, ROTATED_OR_NOT_CHEST, INVERTED_OR_NOT_CHEST, NOT_CHEST]
