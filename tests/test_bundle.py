import json
import os
import pickle

import pytest
import torch

from cxr_desktop.core import bundle as B
from cxr_desktop.core.architectures import create
from cxr_desktop.core.labels import FINDINGS
from cxr_desktop.core.preprocess import PreprocessSpec


def make_bundle(folder, arch="resnet18"):
    model = create(arch, len(FINDINGS))
    card = B.ModelCard(
        model_id="test-model",
        architecture=arch,
        preprocessing=PreprocessSpec(input_size=64).to_dict(),
        operating_points={"sensitivity_0.90": {"Cardiomegaly": 0.3}, "youden": {"Cardiomegaly": 0.45}},
        default_operating_point="sensitivity_0.90",
        provenance={"data": "unit test"},
    )
    B.save_bundle(folder, model, card)
    return model


def _edit_card(folder, **changes):
    path = folder / B.CARD_NAME
    data = json.loads(path.read_text())
    data.update(changes)
    B.write_card(folder, data)  # resealed: these tests are about the content checks, not the integrity record


def test_round_trip(tmp_path):
    model = make_bundle(tmp_path)
    loaded = B.load_bundle(tmp_path)
    assert loaded.card.model_id == "test-model"
    assert loaded.card.spec == PreprocessSpec(input_size=64)
    assert loaded.card.thresholds["Cardiomegaly"] == 0.3
    assert loaded.card.thresholds["Hernia"] == 0.5
    x = torch.randn(1, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), loaded.model(x))


def test_sha256_mismatch_is_refused(tmp_path):
    make_bundle(tmp_path)
    weights = tmp_path / B.WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(B.BundleChecksumError, match="does not match"):
        B.load_bundle(tmp_path)


def test_truncated_weights_are_refused(tmp_path):
    make_bundle(tmp_path)
    weights = tmp_path / B.WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(B.BundleChecksumError):
        B.load_bundle(tmp_path)


def test_unknown_version_is_refused(tmp_path):
    make_bundle(tmp_path)
    _edit_card(tmp_path, format_version=99)
    with pytest.raises(B.BundleVersionError, match="99"):
        B.load_bundle(tmp_path)


def test_wrong_labels_are_refused(tmp_path):
    make_bundle(tmp_path)
    _edit_card(tmp_path, labels=list(reversed(FINDINGS)))
    with pytest.raises(B.BundleLabelsError, match="canonical order"):
        B.load_bundle(tmp_path)


def test_missing_card_is_refused(tmp_path):
    with pytest.raises(B.BundleMissingError, match="card.json"):
        B.load_bundle(tmp_path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickle_payload_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_bundle(tmp_path)
    evil = tmp_path / "weights.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"x": _Exploit()}, handle)
    _edit_card(tmp_path, weights_file="weights.pt", weights_sha256=B.sha256_of(evil))
    with pytest.raises(B.UnsafeWeightsError, match="refused"):
        B.load_bundle(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_plain_tensor_pt_file_is_accepted(tmp_path):
    model = make_bundle(tmp_path)
    pt = tmp_path / "weights.pt"
    torch.save(model.state_dict(), pt)
    _edit_card(tmp_path, weights_file="weights.pt", weights_sha256=B.sha256_of(pt))
    assert B.load_bundle(tmp_path).card.weights_file == "weights.pt"


def test_weights_that_do_not_fit_are_refused(tmp_path):
    make_bundle(tmp_path, arch="resnet18")
    _edit_card(tmp_path, architecture="mobilenet_v3_large")
    with pytest.raises(B.BundleFormatError, match="do not fit"):
        B.load_bundle(tmp_path)
