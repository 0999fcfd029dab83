"""The input guard's mirror probe (issue 21, item 7d): a film mirrored left-right is named "probably mirrored (or
dextrocardia)" from the embedding and its left and right halves; a guard fitted before the probe existed loads,
judges as before and never says so."""

import json

import numpy as np
import pytest
from conftest import make_tiny_bundle

from cxr_desktop.core import bundle as B
from cxr_desktop.core.guard import (
    MIRRORED,
    MIRRORED_OR_NOT_CHEST,
    NOT_CHEST,
    OK,
    PROBE_CLASSES,
    ROTATED,
    InputGuard,
    guard_features,
    lateral_difference,
)
from trainer.guard import ALL_VARIANTS, MIRROR_FALSE_ALARMS, VARIANTS, fit_guard, save_guard

DIMS = 64


def _features(rng, n: int) -> dict[str, np.ndarray]:
    """Synthetic guard features (embedding + lateral difference): the probe classes apart in the embedding as in
    tests/test_guard.py, a mirrored film like an upright one in the embedding but with its halves' difference
    shifted (as pooling forgets where a feature was)."""
    out = {}
    for i, name in enumerate(ALL_VARIANTS):
        embedding = rng.normal(size=(n, DIMS)) + (np.eye(DIMS)[i] * 6.0 if name in VARIANTS and i else 0.0)
        halves = rng.normal(size=(n, DIMS)) + (np.eye(DIMS)[0] * 6.0 if name == "mirrored" else 0.0)
        out[name] = np.hstack([embedding, halves])
    return out


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    reference, validation = rng.normal(size=(400, 2 * DIMS)), rng.normal(size=(300, 2 * DIMS))
    guard = fit_guard(reference, validation, _features(rng, 300), components=4, regularisation=0.1)
    return guard, _features(rng, 1000)


def test_mirrored_films_are_named_and_upright_ones_rarely(fitted):
    guard, held_out = fitted
    assert guard.has_mirror_probe and guard.probe_weights.shape == (len(PROBE_CLASSES), DIMS)
    mirrored = guard.verdicts(held_out["mirrored"])
    assert mirrored.count(MIRRORED) + mirrored.count(MIRRORED_OR_NOT_CHEST) > 0.9 * len(mirrored)
    upright = guard.verdicts(held_out["upright"])
    extra = sum(v.startswith(MIRRORED) for v in upright) / len(upright)
    assert extra <= 3 * MIRROR_FALSE_ALARMS  # the cut-off aims at MIRROR_FALSE_ALARMS on films it did not fit
    # the embedding alone (no halves): the mirror probe cannot run and says nothing
    assert MIRRORED not in guard.verdicts(held_out["mirrored"][:, :DIMS])


def test_the_mirror_probe_round_trips_and_an_incomplete_one_is_refused(fitted, tmp_path):
    guard, held_out = fitted
    path = tmp_path / "guard.safetensors"
    guard.save(path)
    settings = {"distance_cutoff": guard.distance_cutoff, "mirror_cutoff": guard.mirror_cutoff}
    again = InputGuard.load(path, settings)
    assert again.verdicts(held_out["mirrored"][:50]) == guard.verdicts(held_out["mirrored"][:50])
    with pytest.raises(KeyError):
        InputGuard.load(path, {"distance_cutoff": guard.distance_cutoff})  # the card must give its cut-off
    from safetensors.numpy import save_file

    tensors = guard.tensors()
    del tensors["mirror_bias"]
    save_file(tensors, str(path))
    with pytest.raises(ValueError, match="incomplete"):
        InputGuard.load(path, settings)


def _handmade(mirror: bool) -> InputGuard:
    dims = 4
    weights = np.zeros((len(PROBE_CLASSES), dims))
    weights[1, 0] = 10.0  # feature 0 says "rotated 90"
    guard = InputGuard(
        mean=np.zeros(dims), scale=np.ones(dims), components=np.eye(dims)[:2], variances=np.ones(2),
        residual_variance=1.0, distance_cutoff=2.0, probe_weights=weights, probe_bias=np.zeros(len(PROBE_CLASSES)),
    )  # fmt: skip
    if mirror:  # the halves' first feature says "mirrored"
        guard.mirror_mean, guard.mirror_scale = np.zeros(2 * dims), np.ones(2 * dims)
        guard.mirror_weights, guard.mirror_cutoff = np.eye(2 * dims)[dims] * 5.0, 1.0
    guard.check()
    return guard


def test_a_turned_film_is_called_turned_first_and_a_far_mirrored_one_gets_both_reasons():
    films = np.array(
        [[0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0, 0], [1, 0, 0, 0, 1, 0, 0, 0], [0, 0, 9, 0, 1, 0, 0, 0],
         [0, 0, 9, 0, 0, 0, 0, 0]], float,
    )  # fmt: skip
    assert _handmade(True).verdicts(films) == [OK, MIRRORED, ROTATED, MIRRORED_OR_NOT_CHEST, NOT_CHEST]
    assert _handmade(False).verdicts(films) == [OK, OK, ROTATED, NOT_CHEST, NOT_CHEST]  # a guard fitted before


def test_lateral_difference_is_left_minus_right_after_the_activation():
    maps = np.zeros((1, 2, 3, 5), np.float32)
    maps[0, 0, :, :2] = 8.0  # left: clipped to 6 by relu6
    maps[0, 1, :, 3:] = -2.0  # right, negative: zero after relu6 and relu
    maps[0, 1, :, 2] = 100.0  # the middle column counts in neither half
    assert lateral_difference(maps, "relu6").tolist() == [[6.0, 0.0]]
    assert lateral_difference(maps, None).tolist() == [[8.0, 2.0]]
    # column pairs, the outermost first: (0, 4) then (1, 3), each channel in turn
    assert lateral_difference(maps, None, groups=2).tolist() == [[8.0, 2.0, 8.0, 2.0]]
    maps[0, 0, :, 1] = 0.0
    assert lateral_difference(maps, None, groups=2).tolist() == [[8.0, 2.0, 0.0, 2.0]]
    with pytest.raises(ValueError, match="3 column pairs"):
        lateral_difference(maps, None, groups=3)
    assert guard_features(np.ones((1, 2)), maps, "relu").shape == (1, 4)
    assert guard_features(np.ones((1, 2)), maps, "relu", groups=2).shape == (1, 6)
    assert guard_features(np.ones((1, 2)), None, "relu").shape == (1, 2)


def _with_guard(folder, guard: InputGuard, **settings):
    save_guard(folder, guard)
    data = json.loads((folder / B.CARD_NAME).read_text())
    data.update(
        guard_file="guard.safetensors",
        guard_sha256=B.sha256_of(folder / "guard.safetensors"),
        guard={"distance_cutoff": guard.distance_cutoff, "min_confidence": 0.5, **settings},
    )
    B.write_card(folder, data)
    return folder


def _always_mirrored(width: int, mirror: bool) -> InputGuard:
    """A guard of a tiny model: nothing is far or turned; with ``mirror``, every film is mirrored."""
    guard = InputGuard(
        mean=np.zeros(width), scale=np.ones(width), components=np.eye(width)[:2], variances=np.ones(2),
        residual_variance=1.0, distance_cutoff=1e9, probe_weights=np.zeros((len(PROBE_CLASSES), width)),
        probe_bias=np.array([10.0, 0, 0, 0, 0]),
    )  # fmt: skip
    if mirror:
        guard.mirror_mean, guard.mirror_scale = np.zeros(2 * width), np.ones(2 * width)
        guard.mirror_weights, guard.mirror_bias, guard.mirror_cutoff = np.zeros(2 * width), 5.0, 1.0
    return guard


@pytest.mark.parametrize("onnx", [False, True], ids=["pytorch", "onnxruntime"])
def test_the_engine_gives_the_guard_the_halves_from_the_same_pass(tmp_path, onnx):
    from cxr_desktop.inference.engine import Engine
    from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom

    studies = tmp_path / "studies"
    studies.mkdir()
    write_dicom(studies / "a.dcm", synthetic_chest(128, seed=1))
    for mirror in (False, True):
        folder = make_tiny_bundle(tmp_path / f"bundle-{mirror}", cardiomegaly_threshold=1e-6, onnx=onnx)
        width = B.load_bundle(folder).model.fc.in_features
        settings = {"mirror_cutoff": 1.0} if mirror else {}
        engine = Engine(B.load_bundle(_with_guard(folder, _always_mirrored(width, mirror), **settings)), device="cpu")
        assert engine.backend == ("onnxruntime" if onnx else "pytorch")
        [result] = engine.triage(sorted(studies.iterdir()))
        assert result.quality == (MIRRORED if mirror else OK)
        assert result.urgent is not mirror  # a threshold of 1e-6 flags every film the guard lets through


def test_a_bundle_whose_guard_predates_the_mirror_probe_still_loads(tmp_path):
    folder = make_tiny_bundle(tmp_path / "old")
    width = B.load_bundle(folder).model.fc.in_features
    _with_guard(folder, _always_mirrored(width, mirror=False))
    tensors_file = folder / "guard.safetensors"
    from safetensors.numpy import load_file

    assert not any(name.startswith("mirror") for name in load_file(str(tensors_file)))
    loaded = B.load_bundle(folder)
    assert loaded.guard is not None and not loaded.guard.has_mirror_probe
    assert "mirror_cutoff" not in loaded.card.guard


def test_the_trainers_embedder_gives_the_embedding_and_its_halves_from_one_pass():
    torch = pytest.importorskip("torch")
    from cxr_desktop.core.architectures import create, forward_with_embedding
    from cxr_desktop.core.preprocess import PreprocessSpec, normalize_input, resize_to_input
    from cxr_desktop.studies.synthetic import synthetic_chest
    from trainer.guard import Embedder

    torch.manual_seed(0)
    model, spec = create("resnet18", 14).eval(), PreprocessSpec(input_size=64)
    grays = [synthetic_chest(96, seed=s) for s in (1, 2)]
    features = Embedder(model, "resnet18", spec, torch.device("cpu"))(grays)
    width = model.fc.in_features
    assert features.shape == (2, 2 * width)
    batch = normalize_input(torch.from_numpy(np.stack([resize_to_input(g, spec) for g in grays])), spec)
    with torch.inference_mode():
        _, embedding = forward_with_embedding(model, batch)
        stem = model.maxpool(model.relu(model.bn1(model.conv1(batch))))
        maps = model.layer4(model.layer3(model.layer2(model.layer1(stem))))
    assert np.allclose(features[:, :width], embedding.numpy(), atol=1e-5)
    assert np.allclose(features[:, width:], lateral_difference(maps.numpy(), "identity"), atol=1e-5)
    mirrored = Embedder(model, "resnet18", spec, torch.device("cpu"))([np.ascontiguousarray(g[:, ::-1]) for g in grays])
    assert not np.allclose(mirrored[:, width:], features[:, width:], atol=1e-3)  # the halves see the flip
    # at 224 px the map is 7 columns wide: its three column pairs
    big = PreprocessSpec(input_size=224)
    embedder = Embedder(model, "resnet18", big, torch.device("cpu"))
    features = embedder(grays)
    assert embedder.groups == 3 and features.shape == (2, 4 * width)
    batch = normalize_input(torch.from_numpy(np.stack([resize_to_input(g, big) for g in grays])), big)
    with torch.inference_mode():
        stem = model.maxpool(model.relu(model.bn1(model.conv1(batch))))
        maps = model.layer4(model.layer3(model.layer2(model.layer1(stem))))
    assert np.allclose(features[:, width:], lateral_difference(maps.numpy(), "identity", 3), atol=1e-5)


def test_the_probes_length_says_how_many_column_pairs_it_reads(tmp_path):
    dims, groups = 4, 3
    guard = _handmade(False)
    width = (1 + groups) * dims
    guard.mirror_mean, guard.mirror_scale = np.zeros(width), np.ones(width)
    guard.mirror_weights, guard.mirror_cutoff = np.eye(width)[-1] * 5.0, 1.0  # the innermost pair's last channel
    guard.check()
    assert guard.mirror_groups == groups
    films = np.zeros((2, width))
    films[1, -1] = 1.0
    assert guard.verdicts(films) == [OK, MIRRORED]
    assert guard.verdicts(films[:, : 2 * dims]) == [OK, OK]  # the halves layout is not what this probe reads
    path = tmp_path / "guard.safetensors"
    guard.save(path)
    again = InputGuard.load(path, {"distance_cutoff": 2.0, "mirror_cutoff": 1.0})
    assert again.mirror_groups == groups and again.verdicts(films) == [OK, MIRRORED]
    guard.mirror_scale = np.ones(width + 1)
    with pytest.raises(ValueError, match="shape"):
        guard.check()
