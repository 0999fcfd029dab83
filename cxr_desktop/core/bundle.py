"""The model file ("bundle"): a folder with ``weights.safetensors`` and ``card.json``.

Loading checks the format version, the sha256 of the weights, the labels and the architecture before any
tensor reaches a model, and never unpickles code (safetensors, or ``torch.load(weights_only=True)`` for
legacy ``.pt`` files).
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cxr_desktop.core.architectures import create, is_registered
from cxr_desktop.core.labels import FINDINGS, URGENT_FINDING, canonical_finding
from cxr_desktop.core.preprocess import PreprocessSpec

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CARD_NAME = "card.json"
WEIGHTS_NAME = "weights.safetensors"
ONNX_NAME = "model.onnx"


class BundleError(Exception):
    """A model bundle that cannot be used; the message says why."""


class BundleMissingError(BundleError):
    pass


class BundleFormatError(BundleError):
    pass


class BundleVersionError(BundleError):
    pass


class BundleChecksumError(BundleError):
    pass


class BundleLabelsError(BundleError):
    pass


class UnsafeWeightsError(BundleError):
    """The weights file holds something other than plain tensors (e.g. a pickle that would run code)."""


@dataclass
class ModelCard:
    """Everything the app needs to know about a model, and what an ML engineer needs to trust it."""

    model_id: str
    architecture: str
    labels: list[str] = field(default_factory=lambda: list(FINDINGS))
    preprocessing: dict[str, Any] = field(default_factory=lambda: PreprocessSpec().to_dict())
    operating_points: dict[str, dict[str, float]] = field(default_factory=dict)
    default_operating_point: str = "default"
    urgent_finding: str = URGENT_FINDING
    # the findings the model was trained on; the others' outputs are untrained heads and are never reported
    trained_findings: list[str] = field(default_factory=lambda: list(FINDINGS))
    # the findings whose external validation passed (AUROC lower 95 % CI bound >= 0.70 on real images the model
    # never saw); None: the card carries no external validation record (all trained findings shown as before)
    validated_findings: list[str] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    intended_use: str = "Triage aid that orders a reading worklist; not a diagnosis."
    limitations: list[str] = field(default_factory=list)
    weights_file: str = WEIGHTS_NAME
    weights_sha256: str = ""
    onnx_file: str = ""  # optional ONNX copy of the model for ONNX Runtime (see core.onnx_model)
    onnx_sha256: str = ""
    format_version: int = FORMAT_VERSION

    @property
    def spec(self) -> PreprocessSpec:
        return PreprocessSpec.from_dict(self.preprocessing)

    @property
    def thresholds(self) -> dict[str, float]:
        """Per-finding thresholds of the default operating point (0.5 where none was chosen)."""
        chosen = self.operating_points.get(self.default_operating_point, {})
        return {name: float(chosen.get(name, 0.5)) for name in self.labels}

    def chosen_thresholds(self, operating_point: str | None = None) -> dict[str, float]:
        """Thresholds the card really chose at ``operating_point`` (default: the card's default), for trained
        findings only; a finding without one is absent (no made-up 0.5)."""
        chosen = self.operating_points.get(operating_point or self.default_operating_point, {})
        return {name: float(chosen[name]) for name in self.trained_findings if name in chosen}

    @property
    def untrained_findings(self) -> list[str]:
        """Findings the model was not trained on: their outputs are meaningless and are never reported."""
        return [name for name in FINDINGS if name not in self.trained_findings]

    @property
    def research_findings(self) -> list[str]:
        """Trained but not externally validated (research only); empty when the card has no validation record."""
        if self.validated_findings is None:
            return []
        return [name for name in self.trained_findings if name not in self.validated_findings]

    @property
    def shown_findings(self) -> list[str]:
        """Findings presented as results: the validated ones, or all trained ones without a validation record."""
        return list(self.trained_findings if self.validated_findings is None else self.validated_findings)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(folder: str | Path, model: torch.nn.Module, card: ModelCard) -> Path:
    """Write the weights and the card (with the weights' sha256); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card.labels = [canonical_finding(name) for name in card.labels]
    card.weights_file = WEIGHTS_NAME
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights_path = folder / WEIGHTS_NAME
    save_file(state, str(weights_path))
    card.weights_sha256 = sha256_of(weights_path)
    card.onnx_file = card.onnx_sha256 = ""  # new weights: any ONNX copy beside them is stale
    (folder / ONNX_NAME).unlink(missing_ok=True)
    card.format_version = FORMAT_VERSION
    _validate_card_fields(card)
    (folder / CARD_NAME).write_text(card.to_json(), encoding="utf-8")
    log.info("saved bundle %s (%s)", folder, card.model_id)
    return folder


def _validate_card_fields(card: ModelCard) -> None:
    if not is_registered(card.architecture):
        raise BundleFormatError(f"unknown architecture {card.architecture!r} in the card")
    try:
        canonical = [canonical_finding(name) for name in card.labels]
    except ValueError as exc:
        raise BundleLabelsError(f"card labels: {exc}") from None
    if tuple(canonical) != FINDINGS:
        raise BundleLabelsError(
            f"card labels {canonical} do not match the 14 NIH findings in canonical order {list(FINDINGS)}"
        )
    card.labels = canonical
    _validate_finding_scope(card)
    try:
        size = card.spec.input_size  # also validates the preprocessing spec
    except (TypeError, ValueError, AttributeError) as exc:
        raise BundleFormatError(f"card preprocessing is invalid: {exc}") from None
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 2048:
        raise BundleFormatError(f"card preprocessing input_size {size!r} is out of range (16 to 2048 px)")
    _validate_operating_points(card)


def _validate_operating_points(card: ModelCard) -> None:
    """Thresholds in [0, 1], finding names normalised to the canonical spelling."""
    if not isinstance(card.operating_points, dict):
        raise BundleFormatError("operating_points must be an object of {point: {finding: threshold}}")
    cleaned: dict[str, dict[str, float]] = {}
    for name, points in card.operating_points.items():
        if not isinstance(points, dict):
            raise BundleFormatError(f"operating point {name!r} must be an object of {{finding: threshold}}")
        cleaned[name] = {}
        for finding, value in points.items():
            try:
                key, threshold = canonical_finding(finding), float(value)
            except (AttributeError, TypeError, ValueError):
                raise BundleFormatError(f"operating point {name!r}: bad threshold {finding}={value!r}") from None
            if not 0.0 <= threshold <= 1.0 or key in cleaned[name]:
                raise BundleFormatError(f"operating point {name!r}: bad threshold {finding}={value!r}")
            cleaned[name][key] = threshold
    card.operating_points = cleaned


def _canonical_list(card: ModelCard, field_name: str) -> list[str]:
    """The card's list ``field_name`` in canonical spelling and order; a clear error for anything else."""
    names = getattr(card, field_name)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BundleLabelsError(f"{field_name} must be a list of finding names, got {names!r}")
    try:
        given = {canonical_finding(name) for name in names}
    except ValueError as exc:
        raise BundleLabelsError(f"{field_name}: {exc}") from None
    if len(given) != len(names):
        raise BundleLabelsError(f"{field_name} names a finding twice: {names!r}")
    return [name for name in FINDINGS if name in given]


def _validate_finding_scope(card: ModelCard) -> None:
    """Normalise ``urgent_finding``, ``trained_findings`` and ``validated_findings`` to the canonical
    spelling, and check validated ⊆ trained and that the urgent finding is trained (and validated, if any)."""
    try:
        card.urgent_finding = canonical_finding(str(card.urgent_finding))
    except ValueError as exc:
        raise BundleLabelsError(f"urgent_finding: {exc}") from None
    card.trained_findings = _canonical_list(card, "trained_findings")
    if not card.trained_findings:
        raise BundleLabelsError("trained_findings is empty: the model must be trained on at least one finding")
    if card.urgent_finding not in card.trained_findings:
        raise BundleLabelsError(
            f"urgent finding {card.urgent_finding!r} is not among the trained findings {card.trained_findings}"
        )
    if card.validated_findings is None:
        return
    card.validated_findings = _canonical_list(card, "validated_findings")
    extra = [name for name in card.validated_findings if name not in card.trained_findings]
    if extra:
        raise BundleLabelsError(f"validated_findings {extra} are not among the trained findings")
    if card.urgent_finding not in card.validated_findings:
        raise BundleLabelsError(
            f"urgent finding {card.urgent_finding!r} did not pass external validation "
            f"(validated_findings: {card.validated_findings}); this model cannot triage"
        )


def read_card(folder: str | Path) -> ModelCard:
    """Read and validate ``card.json`` (format version, labels, architecture, preprocessing)."""
    folder = Path(folder)
    card_path = folder / CARD_NAME
    if not card_path.is_file():
        raise BundleMissingError(f"{folder} is not a model bundle: {CARD_NAME} is missing")
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleFormatError(f"{card_path}: unreadable card ({exc})") from None
    if not isinstance(data, dict):
        raise BundleFormatError(f"{card_path}: the card must be a JSON object")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleVersionError(
            f"{card_path}: unsupported bundle format version {version!r} (this app reads {FORMAT_VERSION})"
        )
    if "trained_findings" not in data:
        data["trained_findings"] = _legacy_trained_findings(data)
    try:
        card = ModelCard(**data)
    except TypeError as exc:
        raise BundleFormatError(f"{card_path}: {exc}") from None
    _validate_card_fields(card)
    return card


def _legacy_trained_findings(data: dict[str, Any]) -> list[str]:
    """For a card written before ``trained_findings`` existed: the findings its provenance says had labels
    (``cxr-train export`` records them), when that list names the urgent finding; else all 14."""
    provenance = data.get("provenance")
    named = provenance.get("findings_with_labels") if isinstance(provenance, dict) else None
    try:
        names = [canonical_finding(n) for n in named] if isinstance(named, list) and named else []
        urgent = canonical_finding(str(data.get("urgent_finding", URGENT_FINDING)))
    except (AttributeError, ValueError):
        names, urgent = [], ""
    if urgent not in names:
        return list(FINDINGS)
    log.info("card has no trained_findings; taking %s from provenance.findings_with_labels", names)
    return names


def _load_state(weights_path: Path) -> dict[str, torch.Tensor]:
    if weights_path.suffix == ".safetensors":
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
    model: torch.nn.Module
    path: Path


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


def load_bundle(folder: str | Path) -> LoadedBundle:
    """Validate a bundle and return its card and a ready model in eval mode on the CPU."""
    folder = Path(folder)
    card = read_card(folder)
    weights_path = verified_file(folder, "weights_file", card.weights_file, card.weights_sha256)
    state = _load_state(weights_path)
    model = model_from_state(card.architecture, state, len(card.labels))
    model.eval()
    return LoadedBundle(card=card, model=model, path=folder)
