"""Scoring with ONNX Runtime on the CPU: ~2.3x the PyTorch forward of EfficientNet-Lite0 on a 2-core
AVX2 machine (docs/performance.md), same outputs to ~1e-6. Grad-CAM still runs in PyTorch (it needs
gradients)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from cxr_desktop.core.bundle import BundleError, LoadedBundle
from cxr_desktop.core.onnx_model import INPUT_NAME, onnx_path
from cxr_desktop.core.preprocess import normalize_input
from cxr_desktop.inference.probe import probe_inputs

log = logging.getLogger(__name__)

AGREEMENT_TOLERANCE = 1e-3  # largest probability difference from the PyTorch model that is accepted


class OnnxMismatchError(BundleError):
    """The bundle's ONNX file does not compute what its weights compute."""


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxScorer:
    """Logits (and embeddings) for a normalized float32 batch (N, C, H, W)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only; ORT's own warnings go to stderr otherwise
        # idle ORT threads sleep instead of spinning, leaving the cores to the decoder threads and the GUI
        # (+5 % end to end on 2 cores, benchmarks/triage_throughput.py)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        self.has_embedding = len(self.session.get_outputs()) > 1  # exported before the guard: logits only

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and, when the file has them, the embeddings (the classifier head's input)."""
        outputs = self.session.run(None, {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
        return outputs[0], (outputs[1] if self.has_embedding else None)


def open_verified(
    bundle: LoadedBundle, probe: list[np.ndarray] | None = None, threads: int | None = None
) -> OnnxScorer | None:
    """The bundle's ONNX scorer after checking its checksum and that it agrees with the weights on the probe
    batch (``inference.probe``: real radiographs and noise drawn anew at each load; a fresh one when not
    given); None when the bundle has no ONNX file. Raises ``BundleError`` for a changed or disagreeing file."""
    path = onnx_path(bundle)
    if path is None:
        return None
    scorer = OnnxScorer(path, threads)
    spec = bundle.card.spec
    inputs = probe if probe is not None else probe_inputs(spec)
    batch = normalize_input(torch.from_numpy(np.stack(inputs)), spec).contiguous()
    with torch.inference_mode():
        expected = torch.sigmoid(bundle.model(batch)).numpy()
    got = torch.sigmoid(torch.from_numpy(scorer(batch.numpy())[0])).numpy()
    difference = float(np.abs(got - expected).max()) if np.isfinite(got).all() else float("inf")
    if not difference <= AGREEMENT_TOLERANCE:
        raise OnnxMismatchError(
            f"{path.name} disagrees with the bundle's weights (largest probability difference {difference:.4f}); "
            "re-export it with `cxr-train onnx BUNDLE`"
        )
    log.info("ONNX Runtime scorer ready (%s, agrees with the weights to %.1e)", path.name, difference)
    return scorer
