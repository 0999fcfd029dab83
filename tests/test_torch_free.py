"""The CPU path without PyTorch (issue 15): heatmaps in closed form from the ONNX copy, the same as Grad-CAM by
gradients; scores without the PyTorch model, the same as the PyTorch path; a clear message naming the extra to
install when PyTorch is asked for and missing; no torch import on the app's CPU path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cxr_desktop.core.architectures import cam_target_layer, create
from cxr_desktop.core.bundle import closed_form_head, load_bundle
from cxr_desktop.core.cam import closed_form_cams, scaled_maps
from cxr_desktop.core.explain import grad_cam
from cxr_desktop.core.onnx_model import ExportedOutputs, closed_form_record
from cxr_desktop.core.optional_torch import TorchMissingError
from cxr_desktop.core.preprocess import PreprocessSpec, normalize_array, normalize_input
from cxr_desktop.core.resources import default_model_dir
from cxr_desktop.inference.engine import Engine
from cxr_desktop.studies.reader import read_study

REPO = Path(__file__).resolve().parents[1]


def _pixel_correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0", "densenet121", "efficientnet_b0"])
def test_closed_form_equals_grad_cam_by_gradients(arch):
    torch.manual_seed(0)
    model = create(arch, 14, init="scratch").eval()
    record = closed_form_record(model, arch)
    assert record["applies"]
    inputs = torch.randn(2, 3, 96, 96)
    expected = grad_cam(model, cam_target_layer(arch, model), inputs, 1)
    with torch.inference_mode():
        _logits, _embedding, features = ExportedOutputs(model, cam_target_layer(arch, model))(inputs)
    head = model.state_dict()[record["head_weight"]].numpy()
    got = scaled_maps(closed_form_cams(features.numpy(), head[1], record["activation"]), 96, 96)
    assert np.abs(got - expected).max() < 1e-3


def test_a_head_other_than_pooling_and_one_linear_layer_has_no_closed_form():
    model = create("mobilenet_v3_large", 14, init="scratch")
    assert closed_form_record(model, "mobilenet_v3_large") == {"applies": False}


def test_numpy_normalization_equals_torch():
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    for spec in (PreprocessSpec(input_size=32), PreprocessSpec(32, normalization="symmetric", channels=1)):
        expected = normalize_input(torch.from_numpy(images), spec).numpy()
        assert np.array_equal(normalize_array(images, spec), expected)


@pytest.fixture(scope="module")
def default_engines():
    """The default model on the CPU: loaded without its PyTorch model (as in an install without PyTorch), and
    the PyTorch backend as the reference."""
    light = Engine(load_bundle(default_model_dir(), build_model=False), device="cpu")
    reference = Engine(load_bundle(default_model_dir()), device="cpu", backend="torch")
    return light, reference


def test_default_bundle_records_the_closed_form(default_engines):
    light, _ = default_engines
    assert light.card.closed_form_cam["applies"] and light.card.closed_form_cam["activation"] == "relu6"
    assert closed_form_head(light.bundle).shape == (14, 1280)
    assert light.bundle.model is None and light.backend == "onnxruntime"
    assert light.heatmap_method.startswith("closed form")


def test_heatmaps_without_pytorch_match_grad_cam_on_real_nih_images(default_engines, nih_sample):
    """20 real NIH images: the closed-form heatmap from the ONNX copy and Grad-CAM by gradients (tests/
    test_explain.py: the same maps as pytorch-grad-cam) correlate >= 0.99 pixel by pixel and peak at the same
    place."""
    light, reference = default_engines
    paths = sorted((nih_sample / "images").glob("*.png"))[:20]
    assert len(paths) == 20
    correlations = []
    for path in paths:
        image = read_study(path).image
        got, expected = light.heatmap(image), reference.heatmap(image)
        assert got.shape == expected.shape == image.shape
        correlations.append(_pixel_correlation(got, expected))
        assert np.unravel_index(got.argmax(), got.shape) == np.unravel_index(expected.argmax(), expected.shape)
    assert min(correlations) >= 0.99, correlations


def test_scores_without_pytorch_equal_the_pytorch_path(default_engines, nih_sample):
    light, reference = default_engines
    paths = sorted((nih_sample / "images").glob("*.png"))[:24]
    got, expected = list(light.triage(paths)), list(reference.triage(paths))
    assert all(r.ok for r in got) and len(got) == 24
    pairs = list(zip(got, expected, strict=True))
    assert max(abs(a.probabilities[k] - b.probabilities[k]) for a, b in pairs for k in a.probabilities) < 1e-4
    assert [r.quality for r in got] == [r.quality for r in expected]


@pytest.mark.parametrize(
    ("kwargs", "needs"),
    [({"backend": "torch"}, "PyTorch backend"), ({"device": "cuda"}, "cuda"), ({"precision": "bf16"}, "bf16")],
)
def test_asking_for_pytorch_without_it_names_the_extra(monkeypatch, kwargs, needs):
    bundle = load_bundle(default_model_dir(), build_model=False)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "cxr_desktop.inference.torch_backend", raising=False)  # as if never imported
    with pytest.raises(TorchMissingError, match=r"\[cuda\]") as caught:
        Engine(bundle, **{"device": "cpu", **kwargs})
    assert needs in str(caught.value)


def test_the_cpu_path_imports_no_torch(tmp_path, dicom_dir):
    """The desktop self-test (heatmap included) and cxr-triage with heatmaps, in a process where torch cannot
    be imported: what an install without the [cuda] extra does."""
    block = "import sys; sys.modules['torch'] = None; "
    desktop = "from cxr_desktop.ui.app import main; sys.exit(main(['--self-test', sys.argv[1]]))"
    dicom = dicom_dir / "siim_cr_chest_pa_jpeg_baseline.dcm"
    env = {"PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", block + desktop, str(dicom)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "onnxruntime" in done.stdout and "heatmap by closed form" in done.stdout
    triage = "from cxr_desktop.cli import main; sys.exit(main(sys.argv[1:]))"
    demo = REPO / "resources" / "demo"  # has urgent studies, so heatmaps are written
    args = [str(dicom_dir), str(demo), "--out", str(tmp_path / "t.csv"), "--heatmaps", str(tmp_path / "maps")]
    done = subprocess.run(
        [sys.executable, "-c", block + triage, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "t.csv").is_file() and list((tmp_path / "maps").glob("*.png"))
