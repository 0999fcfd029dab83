"""The ONNX Runtime scoring backend: same outputs as PyTorch, and refused when its file was changed."""

import json
import shutil

import numpy as np
import pytest
from conftest import make_tiny_bundle

from cxr_desktop.core.bundle import BundleChecksumError, ModelCard, load_bundle, save_bundle, write_card
from cxr_desktop.core.resources import default_model_dir
from cxr_desktop.inference.engine import Engine
from cxr_desktop.inference.onnx_scorer import OnnxMismatchError


@pytest.fixture(scope="module")
def onnx_bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    return make_tiny_bundle(root / "a", onnx=True, seed=0), make_tiny_bundle(root / "b", onnx=True, seed=1)


def test_default_model_scores_the_same_with_onnx_runtime_on_real_nih_images(nih_sample):
    pytest.importorskip("torch", reason="the reference is the PyTorch backend (the [cuda] extra)")
    paths = sorted((nih_sample / "images").glob("*.png"))[:48]
    bundle = load_bundle(default_model_dir())
    fast = Engine(bundle, device="cpu", backend="auto")
    reference = Engine(load_bundle(default_model_dir()), device="cpu", backend="torch")
    assert fast.backend == "onnxruntime" and reference.backend == "pytorch"
    assert "onnxruntime" in fast.description
    got = list(fast.triage(paths))
    expected = list(reference.triage(paths))
    assert all(r.ok for r in got) and len(got) == 48
    pairs = list(zip(got, expected, strict=True))
    difference = max(abs(a.probabilities[k] - b.probabilities[k]) for a, b in pairs for k in a.probabilities)
    assert difference < 1e-4
    assert [r.urgent for r in got] == [r.urgent for r in expected]
    assert any(r.urgent for r in got) and not all(r.urgent for r in got)


def test_a_changed_onnx_file_is_refused(onnx_bundles, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(onnx_bundles[0], changed)
    data = bytearray((changed / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (changed / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleChecksumError, match="model.onnx"):
        Engine(load_bundle(changed), device="cpu")


def test_an_onnx_file_from_other_weights_is_refused(onnx_bundles, tmp_path):
    """Even with a matching checksum in the card, ONNX that computes something else is not used."""
    mixed = tmp_path / "mixed"
    shutil.copytree(onnx_bundles[1], mixed)
    shutil.copy(onnx_bundles[0] / "model.onnx", mixed / "model.onnx")
    card = ModelCard(**json.loads((mixed / "card.json").read_text()))
    card.onnx_sha256 = load_bundle(onnx_bundles[0]).card.onnx_sha256
    write_card(mixed, card)
    with pytest.raises(OnnxMismatchError, match="disagrees"):
        Engine(load_bundle(mixed), device="cpu")


def test_backend_choice(onnx_bundles, tiny_bundle):
    assert Engine(load_bundle(onnx_bundles[0]), device="cpu").backend == "onnxruntime"
    assert Engine(load_bundle(tiny_bundle), device="cpu").backend == "pytorch"  # no ONNX copy: PyTorch
    assert Engine(load_bundle(onnx_bundles[0]), device="cpu", precision="bf16").backend == "pytorch"
    with pytest.raises(RuntimeError, match="no ONNX file"):
        Engine(load_bundle(tiny_bundle), device="cpu", backend="onnx")
    with pytest.raises(ValueError, match="backend must be"):
        Engine(load_bundle(tiny_bundle), device="cpu", backend="tensorrt")


def test_new_weights_drop_a_stale_onnx_copy(onnx_bundles, tmp_path):
    folder = tmp_path / "resaved"
    shutil.copytree(onnx_bundles[0], folder)
    bundle = load_bundle(folder)
    save_bundle(folder, bundle.model, bundle.card)
    again = load_bundle(folder)
    assert again.card.onnx_file == "" and not (folder / "model.onnx").exists()
    image = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    assert Engine(again, device="cpu").predict_inputs([image]).shape == (1, 14)
