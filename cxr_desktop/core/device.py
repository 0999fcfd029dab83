"""The one device choice of the app and the trainer: a name (auto, cpu, cuda, cuda:N, mps) to a torch device.

"auto" takes CUDA when a GPU is present, else the CPU; a GPU asked for by name that this machine lacks is an
error, never a silent fallback to the CPU, and so is a name that is not a device."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cxr_desktop.core.optional_torch import require_torch

if TYPE_CHECKING:
    import torch

DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")
_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


class DeviceError(ValueError, RuntimeError):
    """A device that is not a device name, or that this machine does not have. A ``ValueError`` for the
    command lines that report bad values; a ``RuntimeError`` as the app's missing-GPU error always was."""


def is_device_name(name: str) -> bool:
    """Whether ``name`` is one of :data:`DEVICE_NAMES` (``cuda:N`` with a whole number N)."""
    return _DEVICE_PATTERN.fullmatch(name) is not None


def check_device_name(name: str) -> None:
    """``DeviceError`` unless ``name`` is one of :data:`DEVICE_NAMES` (checked without PyTorch)."""
    if not is_device_name(name):
        raise DeviceError(f"unknown device {name!r}; use {', '.join(DEVICE_NAMES)}")


def resolve_device(requested: str = "auto", cuda_index: int | None = None) -> torch.device:
    """The torch device for ``requested``. ``cuda_index`` is the GPU that "auto" and a plain "cuda" take
    (a ``torchrun`` process's ``LOCAL_RANK``); ``None`` leaves it to CUDA's current device."""
    check_device_name(requested)
    torch = require_torch(f"The PyTorch device {requested!r}")
    if requested == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        requested = "cuda"
    if requested == "cpu":
        return torch.device("cpu")
    if requested == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("MPS was requested but this machine has no MPS device")
        return torch.device("mps")
    if not torch.cuda.is_available():
        raise DeviceError(f"{requested} was requested but no CUDA device is available")
    index = int(requested.split(":", 1)[1]) if ":" in requested else cuda_index
    if index is not None and index >= torch.cuda.device_count():
        raise DeviceError(f"cuda:{index} was requested but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index) if index is not None else torch.device("cuda")
