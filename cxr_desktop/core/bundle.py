"""The model file ("bundle"): a folder with ``weights.safetensors``, ``card.json`` (``core.card``) and an
optional ONNX copy.

Loading checks the card's integrity record (which covers all three files), the format version, the labels
and the architecture before any tensor reaches a model, accepts only regular files inside the folder, and
never unpickles code (safetensors, or ``torch.load(weights_only=True)`` for legacy ``.pt`` files).

PyTorch is optional here: without it (the base install) a bundle is loaded and verified the same way, but no
torch model is built (``LoadedBundle.model`` is None) and the app scores with the ONNX copy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import SafetensorError, safe_open

from cxr_desktop.core.architectures import create
from cxr_desktop.core.card import (  # noqa: F401 - the card's names are part of the bundle's API
    CARD_NAME,
    FINGERPRINT_LENGTH,
    FORMAT_VERSION,
    INTEGRITY_FIELD,
    ONNX_NAME,
    TRAINING_SIGNATURES_NAME,
    WEIGHTS_NAME,
    BundleChecksumError,
    BundleError,
    BundleFormatError,
    BundleLabelsError,
    BundleMissingError,
    BundleVersionError,
    ModelCard,
    UnsafeWeightsError,
    card_digest,
    read_card,
    validate_card_fields,
    write_card,
)
from cxr_desktop.core.guard import InputGuard
from cxr_desktop.core.labels import canonical_finding
from cxr_desktop.core.optional_torch import require_torch, torch_available
from cxr_desktop.core.resources import DEFAULT_MODEL_SHA256, default_model_dir

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(folder: str | Path, model: torch.nn.Module, card: ModelCard) -> Path:
    """Write the weights and the card (with the weights' sha256); returns the folder."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card.labels = [canonical_finding(name) for name in card.labels]
    card.weights_file = WEIGHTS_NAME
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights_path = folder / WEIGHTS_NAME
    save_file(state, str(weights_path))
    card.weights_sha256 = sha256_of(weights_path)
    card.onnx_file = card.onnx_sha256 = ""  # new weights: any ONNX copy beside them is stale
    card.closed_form_cam = {}  # recorded with the ONNX copy it reads from (core.onnx_model)
    (folder / ONNX_NAME).unlink(missing_ok=True)
    # the training images' signatures describe the run these weights came from: written again by the export
    card.training_signatures_file = card.training_signatures_sha256 = ""
    card.training_signatures = {}
    (folder / TRAINING_SIGNATURES_NAME).unlink(missing_ok=True)
    card.format_version = FORMAT_VERSION
    validate_card_fields(card)
    write_card(folder, card)
    log.info("saved bundle %s (%s, fingerprint %s)", folder, card.model_id, card.fingerprint)
    return folder


def _load_state(weights_path: Path) -> dict[str, torch.Tensor]:
    torch = require_torch("Building the PyTorch model")
    if weights_path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(weights_path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise BundleFormatError(f"{weights_path.name}: not a readable safetensors file ({exc})") from None
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeWeightsError(
            f"{weights_path.name} holds objects other than tensors and was refused "
            f"(it may run code when unpickled): {str(exc).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise BundleFormatError(f"{weights_path.name}: unreadable weights ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnsafeWeightsError(f"{weights_path.name} is not a plain mapping of tensors")
    return state


def model_from_state(architecture: str, state: dict[str, torch.Tensor], num_outputs: int) -> torch.nn.Module:
    """A fresh ``architecture`` holding exactly the tensors of ``state``, in training mode as created: the
    one place a model is built from saved weights (a bundle's, a run's best, a ``checkpoint:`` init's)."""
    model = create(architecture, num_outputs=num_outputs, init="scratch")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[0]
        raise BundleFormatError(f"weights do not fit architecture {architecture!r}: {first_line}") from None
    return model


def model_from_weights(architecture: str, weights_path: Path, num_outputs: int) -> torch.nn.Module:
    """A fresh ``architecture`` holding the tensors of ``weights_path`` (safetensors, or a torch file of plain
    tensors), as a run's best weights and a ``checkpoint:`` initialisation are loaded."""
    return model_from_state(architecture, _load_state(weights_path), num_outputs)


@dataclass
class LoadedBundle:
    card: ModelCard
    model: torch.nn.Module | None  # None when loaded without PyTorch (``load_bundle(build_model=False)``)
    path: Path
    guard: InputGuard | None = None  # the input guard, when the bundle has one (``cxr-train guard``)

    def require_model(self, purpose: str) -> torch.nn.Module:
        """The PyTorch model; ``TorchMissingError`` (with the extra to install) when it was not built."""
        if self.model is None:
            require_torch(purpose)
            raise RuntimeError(f"{purpose}: {self.path} was loaded without its PyTorch model")
        return self.model


def verified_file(folder: Path, field_name: str, name: str, sha256: str) -> Path:
    """A file the card names (``field_name``): a plain name, present, with the sha256 the card records."""
    if Path(name).name != name:
        raise BundleFormatError(f"{field_name} must be a plain file name, got {name!r}")
    path = folder / name
    if not path.is_file():
        raise BundleMissingError(f"{folder}: {name} ({field_name} in the card) is missing")
    actual = sha256_of(path)
    if actual != sha256:
        raise BundleChecksumError(
            f"{name}: sha256 {actual[:12]}… does not match the card's {sha256[:12] or '(none)'}…; "
            "the file was changed or truncated"
        )
    return path


def check_regular_files(folder: Path, card: ModelCard) -> None:
    """The files the card names must be regular files inside the bundle folder: no symbolic link (to a
    file elsewhere, which someone else may change), no FIFO or device."""
    resolved = folder.resolve()
    for field_name in ("weights_file", "onnx_file", "guard_file", "training_signatures_file"):
        name = getattr(card, field_name)
        if not name:
            continue
        path = folder / name
        try:
            status = os.lstat(path)
        except OSError as exc:
            raise BundleMissingError(f"{folder}: cannot access {name} ({exc.strerror or exc})") from None
        if not stat.S_ISREG(status.st_mode) or path.resolve().parent != resolved:
            raise BundleFormatError(
                f"{folder}: {name} ({field_name}) must be a regular file inside the bundle folder, "
                "not a symbolic link or a special file"
            )


def check_pinned(folder: Path, card: ModelCard) -> None:
    """The default bundle must be exactly the one this version of the app shipped (its pinned record)."""
    if folder.resolve() != default_model_dir().resolve() or card.bundle_sha256 == DEFAULT_MODEL_SHA256:
        return
    raise BundleChecksumError(
        f"{folder}: the default model bundle is not the one this version shipped (fingerprint "
        f"{card.fingerprint}, expected {DEFAULT_MODEL_SHA256[:FINGERPRINT_LENGTH]}); refused — reinstall the app, "
        "or pass your own model with --model"
    )


NOT_DEFAULT_NOTE = "not the shipped default model"
NO_GUARD_NOTE = "NO INPUT GUARD: rotated, inverted or non-chest films are not caught"


def bundle_notes(card: ModelCard) -> list[str]:
    """What must be said beside a bundle's fingerprint wherever it is named: that it is not the default model
    this version shipped (pinned by its integrity record), and that it has no input guard (e.g. removed)."""
    notes = [] if card.bundle_sha256 == DEFAULT_MODEL_SHA256 else [NOT_DEFAULT_NOTE]
    return notes if card.guard_file else [*notes, NO_GUARD_NOTE]


def load_bundle(folder: str | Path, build_model: bool | None = None) -> LoadedBundle:
    """Validate a bundle (its integrity record, every file it names, the pinned record of the default
    bundle) and return its card and a ready model in eval mode on the CPU. ``build_model`` None: build the
    PyTorch model when PyTorch is installed; False: verify the files only (the model is None)."""
    folder = Path(folder)
    card = read_card(folder)
    check_pinned(folder, card)
    check_regular_files(folder, card)
    weights_path = verified_file(folder, "weights_file", card.weights_file, card.weights_sha256)
    if card.onnx_file:
        verified_file(folder, "onnx_file", card.onnx_file, card.onnx_sha256)
    guard = _load_guard(folder, card)
    training_signatures_path(folder, card)
    if not (torch_available() if build_model is None else build_model):
        log.info("loaded %s without PyTorch: the card's integrity record vouches for its files", folder)
        return LoadedBundle(card=card, model=None, path=folder, guard=guard)
    state = _load_state(weights_path)
    model = model_from_state(card.architecture, state, len(card.labels))
    _check_input_channels(model, card)
    model.eval()
    return LoadedBundle(card=card, model=model, path=folder, guard=guard)


def _check_input_channels(model: torch.nn.Module, card: ModelCard) -> None:
    """The weights' first convolution must take the channels the card's preprocessing makes."""
    import torch

    first = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    if first is not None and first.in_channels != card.spec.channels:
        raise BundleFormatError(
            f"the weights take {first.in_channels}-channel images, but the card's preprocessing makes "
            f"{card.spec.channels}: the card does not belong to these weights"
        )


def training_signatures_path(folder: Path, card: ModelCard) -> Path | None:
    """The verified file of training-image signatures (``trainer.overlap``), or None for a bundle exported
    without them. A changed file is refused."""
    if not card.training_signatures_file:
        return None
    return verified_file(
        folder, "training_signatures_file", card.training_signatures_file, card.training_signatures_sha256
    )


def onnx_path(bundle: LoadedBundle) -> Path | None:
    """The bundle's verified ONNX file, or None when it has none. A changed file is refused."""
    card = bundle.card
    if not card.onnx_file:
        return None
    return verified_file(bundle.path, "onnx_file", card.onnx_file, card.onnx_sha256)


def closed_form_head(bundle: LoadedBundle) -> np.ndarray | None:
    """The classifier head's weights (outputs, channels) for the closed-form Grad-CAM (``core.cam``), read with
    numpy from the verified weights; None when the card records no closed form for this bundle."""
    record = bundle.card.closed_form_cam
    if not record.get("applies") or not bundle.card.onnx_file:
        return None
    path = verified_file(bundle.path, "weights_file", bundle.card.weights_file, bundle.card.weights_sha256)
    try:
        with safe_open(str(path), framework="numpy") as weights:
            head = weights.get_tensor(record["head_weight"])
    except (SafetensorError, OSError, KeyError) as exc:
        raise BundleFormatError(f"{path.name}: no classifier head {record['head_weight']!r} ({exc})") from None
    if head.ndim != 2 or head.shape[0] != len(bundle.card.labels):
        raise BundleFormatError(f"{path.name}: the head {record['head_weight']!r} has shape {head.shape}")
    return head.astype(np.float32)


def _load_guard(folder: Path, card: ModelCard) -> InputGuard | None:
    if not card.guard_file:
        return None
    path = verified_file(folder, "guard_file", card.guard_file, card.guard_sha256)
    try:
        return InputGuard.load(path, card.guard)
    except (KeyError, TypeError, ValueError, SafetensorError, OSError) as exc:
        raise BundleFormatError(f"{folder}: the input guard is unusable ({type(exc).__name__}: {exc})") from None
