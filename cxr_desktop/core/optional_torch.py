"""PyTorch is optional for the app: the base install scores and explains with ONNX Runtime and numpy on the
CPU. Scoring on a GPU, the PyTorch backend, and the check that the ONNX copy agrees with the weights need it;
they ask for it here, and a missing PyTorch is reported with the extra that brings it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

TORCH_EXTRA = "cuda"
INSTALL_HINT = f"pip install 'cxr-desktop[{TORCH_EXTRA}]'"


class TorchMissingError(RuntimeError):
    """PyTorch is needed for what was asked and is not installed (the base install comes without it)."""


def torch_available() -> bool:
    """Whether ``import torch`` can work, without importing it (seconds) when it has not been imported yet."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    return importlib.util.find_spec("torch") is not None


def require_torch(purpose: str) -> ModuleType:
    """The ``torch`` module, or ``TorchMissingError`` saying that ``purpose`` needs the ``[cuda]`` extra."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise TorchMissingError(
            f"{purpose} needs PyTorch, which this installation does not include (the base install scores with "
            f"ONNX Runtime on the CPU). Install the [{TORCH_EXTRA}] extra: {INSTALL_HINT}"
        ) from None
