"""Scoring with ONNX Runtime on the CPU: ~2.3x the PyTorch forward of EfficientNet-Lite0 on a 2-core
AVX2 machine (docs/performance.md), same outputs to ~1e-6. The ONNX copy also gives the Grad-CAM layer's
feature map, from which ``core.cam`` computes heatmaps without PyTorch where the card records a closed form.
No PyTorch here: it is needed only to check the ONNX copy against the weights, when it is installed."""

from __future__ import annotations

import logging

import numpy as np

from cxr_desktop.core.bundle import BundleError, BundleFormatError, LoadedBundle, onnx_path
from cxr_desktop.core.onnx_runtime import OnnxScorer, onnxruntime_available, sigmoid  # noqa: F401 - the scorer's API
from cxr_desktop.core.preprocess import PreprocessSpec, normalize_array
from cxr_desktop.inference.probe import probe_inputs

log = logging.getLogger(__name__)

AGREEMENT_TOLERANCE = 1e-3  # largest probability difference from the PyTorch model that is accepted


class OnnxMismatchError(BundleError):
    """The bundle's ONNX file does not compute what its weights compute."""


def open_verified(
    bundle: LoadedBundle, probe: list[np.ndarray] | None = None, threads: int | None = None
) -> OnnxScorer | None:
    """The bundle's ONNX scorer after checking its checksum and that it agrees with the weights on the probe
    batch (``inference.probe``: real radiographs and noise drawn anew at each load; a fresh one when not
    given); None when the bundle has no ONNX file. Raises ``BundleError`` for a changed or disagreeing file.
    Without PyTorch (the bundle has no model) the agreement check cannot run: the card's integrity record,
    which holds the sha256 of both files, stands in for it."""
    path = onnx_path(bundle)
    if path is None:
        return None
    scorer = OnnxScorer(path, threads)
    check_input_shape(scorer, bundle.card.spec, path.name)
    if bundle.model is None:
        log.info(
            "ONNX Runtime scorer ready (%s); PyTorch is not installed, so the ONNX-vs-weights agreement check "
            "does not run: the card's integrity record (sha256 of the weights and of %s) stands in for it",
            path.name,
            path.name,
        )
        return scorer
    spec = bundle.card.spec
    batch = normalize_array(np.stack(probe if probe is not None else probe_inputs(spec)), spec)
    expected = _torch_probabilities(bundle, batch)
    got = sigmoid(scorer(batch)[0])
    difference = float(np.abs(got - expected).max()) if np.isfinite(got).all() else float("inf")
    if not difference <= AGREEMENT_TOLERANCE:
        raise OnnxMismatchError(
            f"{path.name} disagrees with the bundle's weights (largest probability difference {difference:.4f}); "
            "re-export it with `cxr-train onnx BUNDLE`"
        )
    log.info("ONNX Runtime scorer ready (%s, agrees with the weights to %.1e)", path.name, difference)
    return scorer


def check_input_shape(scorer: OnnxScorer, spec: PreprocessSpec, name: str) -> None:
    """The ONNX graph must take what the card's preprocessing makes: ``channels`` x ``input_size`` squared (a
    symbolic size accepts any). A card edited to another size is refused here, with the reason, rather than
    by ONNX Runtime's error at the first batch."""
    dims = scorer.input_shape
    expected = (spec.channels, spec.input_size, spec.input_size)
    fixed = [(got, want) for got, want in zip(dims[1:], expected, strict=False) if isinstance(got, int)]
    if len(dims) != 4 or any(got != want for got, want in fixed):
        shown = " x ".join(str(d) for d in dims[1:])
        raise BundleFormatError(
            f"{name} takes {shown} inputs, but the card's preprocessing makes {spec.channels} x {spec.input_size} x "
            f"{spec.input_size} (channels, input_size): the card does not belong to this model"
        )


def check_onnx_input(bundle: LoadedBundle) -> None:
    """``check_input_shape`` for a bundle scored by PyTorch: its ONNX copy (when it has one and ONNX Runtime is
    installed) still says which input size the model was exported for."""
    path = onnx_path(bundle)
    if path is not None and onnxruntime_available():
        check_input_shape(OnnxScorer(path, threads=1), bundle.card.spec, path.name)


def _torch_probabilities(bundle: LoadedBundle, batch: np.ndarray) -> np.ndarray:
    import torch

    model = bundle.require_model("The ONNX-vs-weights agreement check")
    with torch.inference_mode():
        return torch.sigmoid(model(torch.from_numpy(batch))).numpy()
