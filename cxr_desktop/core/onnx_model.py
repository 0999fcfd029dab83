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

from cxr_desktop.core.architectures import WithEmbedding
from cxr_desktop.core.bundle import (
    ONNX_NAME,
    LoadedBundle,
    ModelCard,
    sha256_of,
    verified_file,
    write_card,
)

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
EMBEDDING_NAME = "embedding"  # the classifier head's input, for the input guard (core.guard)
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


def export_onnx(folder: str | Path, model: torch.nn.Module, card: ModelCard) -> Path:
    """Write ``model.onnx`` (dynamic batch; outputs the logits and the embedding) beside the weights and record
    it in ``card.json``."""
    folder = Path(folder)
    size = card.spec.input_size
    example = torch.zeros(2, card.spec.channels, size, size)  # not 1: export would specialise on it
    batch = torch.export.Dim("batch", min=1, max=4096)
    path = folder / ONNX_NAME
    with quiet_export_logs():
        program = torch.onnx.export(
            WithEmbedding(model.eval().float().cpu()).eval(),
            (example,),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME, EMBEDDING_NAME],
            verbose=False,
        )
        program.save(str(path))
    card.onnx_file = ONNX_NAME
    card.onnx_sha256 = sha256_of(path)
    write_card(folder, card)
    log.info("wrote %s (%.1f MB); bundle fingerprint %s", path, path.stat().st_size / 1e6, card.fingerprint)
    return path


def onnx_path(bundle: LoadedBundle) -> Path | None:
    """The bundle's verified ONNX file, or None when it has none. A changed file is refused."""
    card = bundle.card
    if not card.onnx_file:
        return None
    return verified_file(bundle.path, "onnx_file", card.onnx_file, card.onnx_sha256)
