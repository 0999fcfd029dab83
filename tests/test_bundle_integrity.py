"""One integrity record over the whole bundle, the pinned default bundle, and a probe a crafted ONNX cannot
learn (issue 12, items 11 and 12)."""

import json
import shutil

import numpy as np
import pytest
import torch
from conftest import make_tiny_bundle

from cxr_desktop import cli
from cxr_desktop.core import bundle as B
from cxr_desktop.core.onnx_model import export_onnx
from cxr_desktop.core.preprocess import resize_to_input, to_uint8
from cxr_desktop.core.resources import DEFAULT_MODEL_SHA256, default_model_dir, demo_dir
from cxr_desktop.inference.engine import Engine
from cxr_desktop.inference.onnx_scorer import OnnxMismatchError, open_verified
from cxr_desktop.inference.probe import PROBE_NOISE, PROBE_RADIOGRAPHS, probe_inputs
from cxr_desktop.studies.reader import read_study


def _copy(source, tmp_path, name="copy"):
    folder = tmp_path / name
    shutil.copytree(source, folder)
    return folder


def _card_data(folder):
    return json.loads((folder / B.CARD_NAME).read_text())


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["operating_points"]["sensitivity_0.90"].update(Cardiomegaly=0.999),
        lambda d: d.update(urgent_finding="Effusion"),
        lambda d: d["preprocessing"].update(contrast="equalize"),
        lambda d: d.update(model_id="someone-elses-model"),
    ],
    ids=["threshold", "urgent-finding", "preprocessing", "model-id"],
)
def test_an_edited_card_is_refused(tiny_bundle, tmp_path, edit):
    folder = _copy(tiny_bundle, tmp_path)
    data = _card_data(folder)
    edit(data)
    (folder / B.CARD_NAME).write_text(json.dumps(data, indent=2))
    with pytest.raises(B.BundleChecksumError, match="changed after the bundle was written"):
        B.load_bundle(folder)


def test_a_card_without_integrity_record_is_refused(tiny_bundle, tmp_path):
    folder = _copy(tiny_bundle, tmp_path)
    data = _card_data(folder)
    del data[B.INTEGRITY_FIELD]
    (folder / B.CARD_NAME).write_text(json.dumps(data))
    with pytest.raises(B.BundleChecksumError, match="no integrity record"):
        B.read_card(folder)


def test_reformatting_the_card_keeps_its_record(tiny_bundle, tmp_path):
    """The record is over the content, not the bytes: key order and indentation do not matter."""
    folder = _copy(tiny_bundle, tmp_path)
    data = _card_data(folder)
    (folder / B.CARD_NAME).write_text(json.dumps(dict(reversed(list(data.items())))))
    assert B.read_card(folder).fingerprint == data[B.INTEGRITY_FIELD][: B.FINGERPRINT_LENGTH]


def test_a_changed_onnx_copy_is_refused_at_load_whatever_the_backend(tmp_path):
    folder = make_tiny_bundle(tmp_path / "b", onnx=True)
    data = bytearray((folder / B.ONNX_NAME).read_bytes())
    data[-10] ^= 0xFF
    (folder / B.ONNX_NAME).write_bytes(bytes(data))
    with pytest.raises(B.BundleChecksumError, match="model.onnx"):
        B.load_bundle(folder)  # before any backend is chosen


def test_the_fingerprint_covers_weights_and_onnx(tmp_path):
    """Two bundles that differ only in their weights differ in fingerprint."""
    first = B.read_card(make_tiny_bundle(tmp_path / "a", seed=0)).fingerprint
    second = B.read_card(make_tiny_bundle(tmp_path / "b", seed=1)).fingerprint
    assert len(first) == B.FINGERPRINT_LENGTH and first != second


def test_the_shipped_default_bundle_is_the_pinned_one():
    card = B.read_card(default_model_dir())
    assert card.bundle_sha256 == DEFAULT_MODEL_SHA256
    assert B.card_digest(_card_data(default_model_dir())) == DEFAULT_MODEL_SHA256


def test_an_edited_default_bundle_is_refused_even_when_resealed(tmp_path, monkeypatch, capsys):
    resources = tmp_path / "resources"
    shutil.copytree(default_model_dir(), resources / "models" / "default")
    folder = resources / "models" / "default"
    data = _card_data(folder)
    data["operating_points"][data["default_operating_point"]]["Cardiomegaly"] = 0.999
    B.write_card(folder, data)  # a well-formed record, but not the one this version shipped
    monkeypatch.setenv("CXR_RESOURCES", str(resources))
    with pytest.raises(B.BundleChecksumError, match="not the one this version shipped"):
        B.load_bundle(default_model_dir())
    assert cli.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not the one this version shipped" in err and "no default model is installed" not in err


def test_the_fingerprint_is_on_cxr_triage_stderr(tiny_bundle, tmp_path, capsys):
    assert cli.main(["--model", str(tiny_bundle), "--quiet", str(tmp_path)]) == 0
    fingerprint = B.read_card(tiny_bundle).fingerprint
    assert f"fingerprint {fingerprint}" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA device")
def test_cuda_without_a_gpu_names_the_real_problem(capsys):
    assert cli.main(["--device", "cuda", "."]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "no default model is installed" not in err


# -- the probe -------------------------------------------------------------------------------------------


def test_the_probe_holds_real_radiographs_and_changes_at_every_load(tiny_bundle):
    spec = B.read_card(tiny_bundle).spec
    first, second = probe_inputs(spec), probe_inputs(spec)
    assert len(first) == PROBE_RADIOGRAPHS + PROBE_NOISE
    assert all(x.shape == (spec.input_size, spec.input_size) and x.dtype == np.uint8 for x in first)
    assert any(not np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    # the first inputs are the shipped radiographs the seed picked, varied (crop, gamma) but still them
    files = sorted(demo_dir().glob("*.dcm"))
    picked = np.random.default_rng(7).permutation(len(files))[:PROBE_RADIOGRAPHS]
    seeded = probe_inputs(spec, np.random.default_rng(7))
    for index, varied in zip(picked, seeded, strict=False):
        original = resize_to_input(to_uint8(read_study(files[index]).image), spec).astype(float)
        assert np.corrcoef(original.ravel(), varied.astype(float).ravel())[0, 1] > 0.6


class _NoiseOnlyImpostor(torch.nn.Module):
    """Computes the real model on noise-like inputs (what the old, public seed-0 probe used) and a constant
    "nothing to see" on anything smooth, i.e. every real radiograph."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.layer4 = model.layer4  # where the export reads the Grad-CAM feature map (ResNet's layer4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        roughness = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3), keepdim=True)
        logits = self.model(x)
        return torch.where(roughness.squeeze(-1).squeeze(-1) > 0.5, logits, torch.full_like(logits, -9.0))


def test_a_crafted_onnx_that_passes_a_noise_probe_is_refused(tmp_path):
    folder = make_tiny_bundle(tmp_path / "crafted")
    loaded = B.load_bundle(folder)
    export_onnx(folder, _NoiseOnlyImpostor(loaded.model), loaded.card)  # sealed like a real export
    bundle = B.load_bundle(folder)
    size = bundle.card.spec.input_size
    old_probe = list(np.random.default_rng(0).integers(0, 256, (2, size, size), dtype=np.uint8))
    assert open_verified(bundle, old_probe) is not None  # what the old check accepted
    with pytest.raises(OnnxMismatchError, match="disagrees"):
        Engine(bundle, device="cpu", backend="auto")
