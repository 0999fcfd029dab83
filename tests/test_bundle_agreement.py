"""Hardening round 3 (issue 22, items 5, 6 and 16): a re-sealed card must agree with the weights and the ONNX
graph or the bundle is refused with the reason; the bundle's standing (not the default, no input guard) is said
beside its fingerprint; the input guard's verdict is per study, and with a guard "unchecked" never flags."""

import json
import shutil

import numpy as np
import pytest
from conftest import make_tiny_bundle

from cxr_desktop import cli
from cxr_desktop.core import bundle as B
from cxr_desktop.core.guard import OK
from cxr_desktop.core.resources import default_model_dir
from cxr_desktop.inference.engine import NON_FINITE_ERROR, UNCHECKED_GUARD, Engine
from cxr_desktop.studies.synthetic import synthetic_chest, write_dicom


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("agree") / "b", onnx=True)


def _resealed(source, tmp_path, edit, name="edited"):
    """A copy of ``source`` whose card is edited and sealed again, as someone with a text editor and the
    (public) sealing code would."""
    folder = tmp_path / name
    shutil.copytree(source, folder)
    data = json.loads((folder / B.CARD_NAME).read_text())
    edit(data)
    B.write_card(folder, data)
    return folder


def _size(size):
    return lambda d: d["preprocessing"].update(input_size=size)


@pytest.mark.parametrize("backend", ["auto", "onnx", "torch"])
def test_a_card_resealed_with_another_input_size_is_refused_whatever_the_backend(onnx_bundle, tmp_path, backend):
    folder = _resealed(onnx_bundle, tmp_path, _size(128))
    with pytest.raises(B.BundleFormatError, match=r"model.onnx takes 3 x 64 x 64 inputs.*3 x 128 x 128"):
        Engine.from_path(folder, device="cpu", backend=backend)


def test_cxr_triage_names_the_disagreement_without_a_traceback(onnx_bundle, tmp_path, capsys):
    folder = _resealed(onnx_bundle, tmp_path, _size(128))
    assert cli.main(["--model", str(folder), "--quiet", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "cannot load model" in err and "takes 3 x 64 x 64" in err and "Traceback" not in err


def test_the_preprocessing_the_weights_were_trained_with_is_checked(tmp_path):
    """Without an ONNX copy the card's provenance still records what the weights were trained with."""
    source = make_tiny_bundle(tmp_path / "b")
    trained = B.read_card(source).preprocessing
    with_record = _resealed(source, tmp_path, lambda d: d["provenance"].update(config={"preprocessing": trained}))
    assert B.read_card(with_record).spec.input_size == 64
    for name, edit in {
        "size": _size(128),
        "norm": lambda d: d["preprocessing"].update(normalization="unit"),
        "crop": lambda d: d["preprocessing"].update(crop_borders=True),
    }.items():
        folder = _resealed(with_record, tmp_path, edit, name)
        with pytest.raises(B.BundleFormatError, match="does not match what the weights were trained with"):
            B.load_bundle(folder)


def test_a_card_resealed_with_another_channel_count_is_refused_by_the_weights(tmp_path):
    """No ONNX copy and no provenance: the weights' first convolution still says how many channels it takes."""
    source = make_tiny_bundle(tmp_path / "b")
    folder = _resealed(source, tmp_path, lambda d: d["preprocessing"].update(channels=1, normalization="unit"))
    with pytest.raises(B.BundleFormatError, match="weights take 3-channel images.*makes 1"):
        B.load_bundle(folder)


@pytest.mark.parametrize(
    "value",
    [{"input_size": "224"}, {"input_size": 224.5}, {"input_size": True}, {"normalization": "imagenet2"}]
    + [{"channels": 2}, {"crop_borders": "yes"}, {"resize": "zoom"}, {"contrast": "gamma"}, {"window": 1}],
    ids=lambda v: f"{next(iter(v))}={next(iter(v.values()))!r}",
)
def test_preprocessing_values_outside_the_known_set_are_refused(tmp_path, onnx_bundle, value):
    folder = _resealed(onnx_bundle, tmp_path, lambda d: d["preprocessing"].update(value))
    with pytest.raises(B.BundleFormatError, match="preprocessing"):
        B.load_bundle(folder)


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5, -0.1, "nan"])
def test_thresholds_must_lie_strictly_between_0_and_1(tmp_path, onnx_bundle, threshold):
    folder = _resealed(onnx_bundle, tmp_path, lambda d: d["operating_points"]["sensitivity_0.90"].update(
        Cardiomegaly=threshold))  # fmt: skip
    with pytest.raises(B.BundleFormatError, match="threshold|bad threshold"):
        B.load_bundle(folder)


def test_a_backend_error_on_the_probe_refuses_the_bundle_with_its_reason(onnx_bundle, monkeypatch):
    class EngineFailure(Exception):  # ONNX Runtime's errors are not RuntimeErrors
        pass

    def broken(self, inputs):
        raise EngineFailure("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions for input")

    monkeypatch.setattr(Engine, "_forward", broken)
    with pytest.raises(B.BundleFormatError, match="cannot score the inputs its card describes.*INVALID_ARGUMENT"):
        Engine.from_path(onnx_bundle, device="cpu")


# -- the bundle's standing beside its fingerprint ------------------------------------------------------


def test_a_bundle_that_is_not_the_default_nor_guarded_says_so_on_stderr(onnx_bundle, tmp_path, capsys):
    assert cli.main(["--model", str(onnx_bundle), "--quiet", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    fingerprint = B.read_card(onnx_bundle).fingerprint
    assert f"fingerprint {fingerprint}; {B.NOT_DEFAULT_NOTE}; {B.NO_GUARD_NOTE}" in err


def test_the_shipped_default_has_no_note_and_a_copy_without_its_guard_has_both(tmp_path):
    card = B.read_card(default_model_dir())
    assert card.guard_file and B.bundle_notes(card) == []
    folder = tmp_path / "noguard"
    shutil.copytree(default_model_dir(), folder)
    (folder / card.guard_file).unlink()
    data = json.loads((folder / B.CARD_NAME).read_text())
    data.update(guard_file="", guard_sha256="", guard={})
    B.write_card(folder, data)
    assert B.bundle_notes(B.read_card(folder)) == [B.NOT_DEFAULT_NOTE, B.NO_GUARD_NOTE]


# -- item 5: the guard's verdict is per study ---------------------------------------------------------


class _AlwaysOk:
    """A guard that judges every film it is given "ok" (and records how many it was given)."""

    has_mirror_probe = False
    mirror_groups = 0

    def __init__(self):
        self.judged = 0

    def verdicts(self, features):
        self.judged += len(features)
        return [OK] * len(features)


@pytest.fixture()
def guarded_engine(tmp_path, monkeypatch):
    engine = Engine.from_path(make_tiny_bundle(tmp_path / "always", cardiomegaly_threshold=1e-6), device="cpu")
    engine.guard = _AlwaysOk()
    return engine


def _paths(tmp_path, count=4):
    return [write_dicom(tmp_path / f"{i}.dcm", synthetic_chest(128, seed=i)) for i in range(count)]


def _spoil(engine, monkeypatch, rows, what):
    real = engine._forward

    def forward(inputs):
        out, embeddings = real(inputs)
        for row in rows:
            if what in ("output", "both"):
                out[row, 1] = np.nan
            if what in ("embedding", "both"):
                embeddings[row, 0] = np.inf
        return out, embeddings

    monkeypatch.setattr(engine, "_forward", forward)


def test_one_non_finite_output_leaves_the_guard_on_for_its_batch(guarded_engine, tmp_path, monkeypatch):
    _spoil(guarded_engine, monkeypatch, [1], "both")
    results = list(guarded_engine.triage(_paths(tmp_path)))
    assert results[1].error == NON_FINITE_ERROR
    others = [results[i] for i in (0, 2, 3)]
    assert [r.quality for r in others] == [OK] * 3 and all(r.urgent for r in others)
    assert guarded_engine.guard.judged == 3


def test_a_study_the_guard_cannot_judge_is_never_urgent(guarded_engine, tmp_path, monkeypatch):
    _spoil(guarded_engine, monkeypatch, [2], "embedding")
    results = list(guarded_engine.triage(_paths(tmp_path)))
    assert results[2].ok and results[2].quality == UNCHECKED_GUARD and not results[2].urgent
    assert all(results[i].quality == OK and results[i].urgent for i in (0, 1, 3))


def test_with_a_guard_a_batch_without_features_is_unchecked_not_flaggable(guarded_engine, tmp_path, monkeypatch):
    real = guarded_engine._forward
    monkeypatch.setattr(guarded_engine, "_forward", lambda inputs: (real(inputs)[0], None))
    results = list(guarded_engine.triage(_paths(tmp_path, 2)))
    assert all(r.ok and r.quality == UNCHECKED_GUARD and not r.urgent for r in results)


def test_without_a_guard_unchecked_studies_still_flag(tmp_path):
    engine = Engine.from_path(make_tiny_bundle(tmp_path / "plain", cardiomegaly_threshold=1e-6), device="cpu")
    results = list(engine.triage(_paths(tmp_path, 2)))
    assert all(r.quality == "" and r.urgent for r in results)


@pytest.mark.parametrize("normalization", ["unit", "symmetric"])
def test_a_normalisation_the_weights_were_not_trained_with_is_refused_by_the_guard(tmp_path, normalization):
    """Card and provenance both edited and sealed again (the ONNX graph takes the same shape): the shipped
    model's own input guard finds none of the probe's real radiographs a chest film, so the bundle is refused."""

    def edit(data):
        data["preprocessing"]["normalization"] = normalization
        data["provenance"]["config"]["preprocessing"]["normalization"] = normalization

    folder = _resealed(default_model_dir(), tmp_path, edit)
    with pytest.raises(B.BundleFormatError, match="none of 4 shipped chest radiographs looks like a chest film"):
        Engine.from_path(folder, device="cpu")


def test_the_shipped_model_passes_its_own_guard_probe_at_every_load():
    for _ in range(3):  # the probe's radiographs are drawn and varied anew at each load
        Engine.from_path(default_model_dir(), device="cpu")
