"""An ONNX copy of a bundle's model, for the faster CPU scoring path (ONNX Runtime).

The safetensors weights stay the source of truth: the ONNX file is exported from them, its sha256 is kept
in the card, and the engine checks that both give the same outputs before it trusts the ONNX file. ONNX is
a protobuf graph, so loading it runs no pickled code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from cxr_desktop.core.architectures import cam_activation, cam_target_layer, classifier_head, forward_with_embedding
from cxr_desktop.core.bundle import (  # noqa: F401 - onnx_path is imported from here too
    ONNX_NAME,
    ModelCard,
    onnx_path,
    sha256_of,
    write_card,
)
from cxr_desktop.core.card import CAM_FEATURES_NAME, EMBEDDING_NAME, INPUT_NAME, OUTPUT_NAME

log = logging.getLogger(__name__)

# third-party loggers that report every graph pass at INFO during an export (~70 lines per model)
EXPORT_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch.fx", "onnxscript", "onnx_ir")


@contextmanager
def quiet_export_logs(level: int = logging.WARNING) -> Iterator[None]:
    """Raise the export's third-party loggers to ``level`` for the block (our own loggers are untouched)."""
    loggers = [logging.getLogger(name) for name in EXPORT_LOGGERS]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        if logger.getEffectiveLevel() < level:
            logger.setLevel(level)
    try:
        yield
    finally:
        for logger, old in zip(loggers, saved, strict=True):
            logger.setLevel(old)


class ExportedOutputs(nn.Module):
    """``model`` returning ``(logits, embedding, cam_features)``: the classifier head's input for the input guard
    and the Grad-CAM layer's output for the closed-form heatmap (``core.cam``), in the same pass."""

    def __init__(self, model: nn.Module, cam_layer: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.cam_layer = cam_layer

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features: list[torch.Tensor] = []
        # a copy: an in-place activation after the layer (DenseNet) must not change what is exported
        handle = self.cam_layer.register_forward_hook(lambda _module, _args, out: features.append(out.clone()))
        try:
            logits, embedding = forward_with_embedding(self.model, x)
        finally:
            handle.remove()
        return logits, embedding, features[0]


def closed_form_record(model: nn.Module, architecture: str) -> dict[str, object]:
    """What the card says about the closed-form Grad-CAM (``ModelCard.closed_form_cam``): whether it applies,
    the activation before the pooling, the ONNX output holding the feature map and the head's weight tensor."""
    activation = cam_activation(architecture)
    if activation is None:
        return {"applies": False}
    head = classifier_head(model)
    weight_name = next(name for name, tensor in model.state_dict(keep_vars=True).items() if tensor is head.weight)
    return {"applies": True, "activation": activation, "output": CAM_FEATURES_NAME, "head_weight": weight_name}


def export_onnx(folder: str | Path, model: torch.nn.Module, card: ModelCard) -> Path:
    """Write ``model.onnx`` (dynamic batch; outputs the logits, the embedding and the Grad-CAM layer's feature
    map) beside the weights and record it in ``card.json``."""
    folder = Path(folder)
    model = model.eval().float().cpu()
    size = card.spec.input_size
    example = torch.zeros(2, card.spec.channels, size, size)  # not 1: export would specialise on it
    batch = torch.export.Dim("batch", min=1, max=4096)
    path = folder / ONNX_NAME
    with quiet_export_logs():
        program = torch.onnx.export(
            ExportedOutputs(model, cam_target_layer(card.architecture, model)).eval(),
            (example,),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME, EMBEDDING_NAME, CAM_FEATURES_NAME],
            verbose=False,
        )
        program.save(str(path))
    card.onnx_file = ONNX_NAME
    card.onnx_sha256 = sha256_of(path)
    card.closed_form_cam = closed_form_record(model, card.architecture)
    write_card(folder, card)
    log.info("wrote %s (%.1f MB); bundle fingerprint %s", path, path.stat().st_size / 1e6, card.fingerprint)
    return path
