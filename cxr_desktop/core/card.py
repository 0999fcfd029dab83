"""The model card (``card.json``): what the app needs to know about a model and what an ML engineer needs to
trust it, validated and normalised at read (canonical finding names), and sealed by its integrity record.

The card records the sha256 of the weights and of the ONNX copy, and ``bundle_sha256`` is the sha256 of the
card's own content (everything but that field), so this one record covers the whole bundle; its first 12 hex
digits are the bundle's *fingerprint*, shown beside the model id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cxr_desktop.core.architectures import is_registered
from cxr_desktop.core.cam import CAM_ACTIVATIONS
from cxr_desktop.core.labels import FINDINGS, URGENT_FINDING, canonical_finding
from cxr_desktop.core.preprocess import PreprocessSpec

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CARD_NAME = "card.json"
WEIGHTS_NAME = "weights.safetensors"
ONNX_NAME = "model.onnx"
TRAINING_SIGNATURES_NAME = "training-signatures.safetensors"  # what the model was trained on (trainer.overlap)
# the ONNX copy's tensors (core.onnx_model)
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
EMBEDDING_NAME = "embedding"  # the classifier head's input, for the input guard (core.guard)
CAM_FEATURES_NAME = "cam_features"  # the Grad-CAM layer's feature map, for the closed-form heatmap (core.cam)
INTEGRITY_FIELD = "bundle_sha256"
FINGERPRINT_LENGTH = 12


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
    guard_file: str = ""  # optional input guard (core.guard): its tensors; its settings are ``guard``
    guard_sha256: str = ""
    guard: dict[str, Any] = field(default_factory=dict)
    # a compact signature of every training and validation image (trainer.overlap), so that an evaluation finds
    # copies of them by itself; ``training_signatures`` records the method and the counts
    training_signatures_file: str = ""
    training_signatures_sha256: str = ""
    training_signatures: dict[str, Any] = field(default_factory=dict)
    # whether Grad-CAM has a closed form for this network (head: global average pooling + one linear layer), so
    # the app computes heatmaps from the ONNX copy's ``cam_features`` output without PyTorch (core.cam):
    # {"applies": true, "activation": ..., "output": "cam_features", "head_weight": <tensor name>}, or
    # {"applies": false}; empty for an ONNX copy exported before (heatmaps then need PyTorch)
    closed_form_cam: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    bundle_sha256: str = ""  # the integrity record of the whole bundle (see the module docstring)

    @property
    def fingerprint(self) -> str:
        """A short, stable name for exactly this bundle (card, weights and ONNX copy)."""
        return self.bundle_sha256[:FINGERPRINT_LENGTH]

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


def card_digest(data: Mapping[str, Any]) -> str:
    """sha256 of the card's content without its integrity record, in one canonical JSON spelling."""
    body = {key: value for key, value in data.items() if key != INTEGRITY_FIELD}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def write_card(folder: str | Path, card: ModelCard | Mapping[str, Any]) -> str:
    """Seal ``card`` (a ``ModelCard`` or its JSON object) with its integrity record and write ``card.json``
    atomically; returns the record. Every writer of a card goes through here."""
    data = asdict(card) if isinstance(card, ModelCard) else dict(card)
    data[INTEGRITY_FIELD] = card_digest(data)
    path = Path(folder) / CARD_NAME
    tmp = path.with_name(CARD_NAME + ".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, path)
    if isinstance(card, ModelCard):
        card.bundle_sha256 = data[INTEGRITY_FIELD]
    return data[INTEGRITY_FIELD]


def validate_card_fields(card: ModelCard) -> None:
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
    _validate_closed_form_cam(card.closed_form_cam)
    _validate_trained_preprocessing(card)


def _validate_trained_preprocessing(card: ModelCard) -> None:
    """The preprocessing the weights were trained with (``provenance.config.preprocessing``, recorded by
    ``cxr-train export``) must be the card's: a re-sealed card that feeds the model 448 px, or another
    normalisation, would score every film wrongly and still look healthy."""
    config = card.provenance.get("config") if isinstance(card.provenance, dict) else None
    trained = config.get("preprocessing") if isinstance(config, dict) else None
    if trained is None:
        return
    try:
        recorded = PreprocessSpec.from_dict(trained).to_dict()
    except (TypeError, ValueError, AttributeError) as exc:
        raise BundleFormatError(f"provenance.config.preprocessing is invalid: {exc}") from None
    given = card.spec.to_dict()
    if recorded != given:
        changed = sorted(k for k in {*recorded, *given} if recorded.get(k) != given.get(k))
        detail = ", ".join(f"{k} {given.get(k)!r} (trained with {recorded.get(k)!r})" for k in changed)
        raise BundleFormatError(f"card preprocessing does not match what the weights were trained with: {detail}")


def _validate_closed_form_cam(record: Any) -> None:
    if not isinstance(record, dict):
        raise BundleFormatError(f"closed_form_cam must be an object, got {record!r}")
    if not record.get("applies"):
        return
    named = all(isinstance(record.get(key), str) and record[key] for key in ("output", "head_weight"))
    if record.get("activation") not in CAM_ACTIVATIONS or not named:
        raise BundleFormatError(
            f"closed_form_cam {record!r} needs an activation in {CAM_ACTIVATIONS}, an output and a head_weight"
        )


def _validate_operating_points(card: ModelCard) -> None:
    """Thresholds in (0, 1), finding names normalised to the canonical spelling."""
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
            if key in cleaned[name]:
                raise BundleFormatError(f"operating point {name!r}: {finding} has two thresholds")
            # 0 would flag every film and 1 none (scores are sigmoids); NaN fails the comparison too
            if not 0.0 < threshold < 1.0:
                raise BundleFormatError(
                    f"operating point {name!r}: threshold {finding}={value!r} must lie strictly between 0 and 1"
                )
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
    _check_integrity_record(card_path, data)
    if "trained_findings" not in data:
        data["trained_findings"] = _legacy_trained_findings(data)
    try:
        card = ModelCard(**data)
    except TypeError as exc:
        raise BundleFormatError(f"{card_path}: {exc}") from None
    validate_card_fields(card)
    return card


def _check_integrity_record(card_path: Path, data: dict[str, Any]) -> None:
    recorded = data.get(INTEGRITY_FIELD)
    if not recorded:
        raise BundleChecksumError(
            f"{card_path}: the card has no integrity record ({INTEGRITY_FIELD}): it was written by hand or by an "
            "older version; re-export the bundle with `cxr-train export`"
        )
    actual = card_digest(data)
    if actual != recorded:
        raise BundleChecksumError(
            f"{card_path}: the card was changed after the bundle was written (its content gives "
            f"{actual[:FINGERPRINT_LENGTH]}, its integrity record says {str(recorded)[:FINGERPRINT_LENGTH]}); "
            "refused — a changed threshold, finding or preprocessing would change every flag"
        )


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
