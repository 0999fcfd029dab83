"""ONNX Runtime on the CPU for a bundle's ONNX copy: logits, embeddings and the Grad-CAM layer's feature map of a
normalized batch. numpy only (no PyTorch), so the app's scorer and the trainer's evaluation score alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxr_desktop.core.card import CAM_FEATURES_NAME, INPUT_NAME


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

        names = [output.name for output in self.session.get_outputs()]
        self.has_embedding = len(names) > 1  # exported before the guard: logits only
        self.has_cam_features = CAM_FEATURES_NAME in names  # exported before the closed-form Grad-CAM: absent
        self._scoring_outputs = names[:2]

    @property
    def input_shape(self) -> tuple[int | str | None, ...]:
        """The graph input's shape, e.g. ("batch", 3, 224, 224): fixed sizes as ints, symbolic ones as names."""
        return tuple(self.session.get_inputs()[0].shape)

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and, when the file has them, the embeddings (the classifier head's input)."""
        outputs = self.session.run(self._scoring_outputs, {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
        return outputs[0], (outputs[1] if self.has_embedding else None)

    def cam_features(self, batch: np.ndarray) -> np.ndarray:
        """The Grad-CAM layer's feature maps (N, C, h, w) for a normalized batch."""
        if not self.has_cam_features:
            raise RuntimeError(f"this ONNX file has no {CAM_FEATURES_NAME!r} output; renew it with `cxr-train onnx`")
        return self.session.run([CAM_FEATURES_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits, in float32 (as ``torch.sigmoid``)."""
    return (1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float32)))).astype(np.float32)
