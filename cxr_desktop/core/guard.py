"""The input guard: a quality verdict for every scored study, from the model's own pooled features.

Before a score may raise a flag, the guard asks two questions of the feature vector the model's classifier
sees (its *embedding*, one forward pass, no extra cost):

- is it far from the training images? The distance is the root-mean-square of the embedding standardised
  by the training images' per-feature mean and spread; beyond ``distance_cutoff`` (the 99th percentile of
  real NIH validation radiographs, chosen by ``cxr-train guard``) the study is "probably not a chest
  radiograph";
- does a linear probe on the standardised embedding, fitted on real radiographs shown upright, rotated
  (90°, 180°, 270°) and with inverted polarity, say the film is not upright and not of normal polarity?

The parameters live in the bundle's ``guard.safetensors`` (covered by the card's integrity record) and the
card's ``guard`` entry (cut-off, classes, how they were chosen and what they gave). numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OK = "ok"
NOT_CHEST = "probably not a chest radiograph"
ROTATED = "probably rotated"
INVERTED = "probably inverted polarity"
LATERAL = "lateral view"
# the probe's classes, in the order of its weight rows
PROBE_CLASSES = ("upright", "rotated_90", "rotated_180", "rotated_270", "inverted")
GUARD_NAME = "guard.safetensors"


@dataclass
class InputGuard:
    mean: np.ndarray  # (D,) per-feature mean of the training images' embeddings
    scale: np.ndarray  # (D,) per-feature standard deviation (floored)
    distance_cutoff: float
    probe_weights: np.ndarray  # (len(PROBE_CLASSES), D), on the standardised embedding
    probe_bias: np.ndarray  # (len(PROBE_CLASSES),)
    min_confidence: float = 0.5  # a probe class other than upright must have at least this probability

    def standardise(self, embeddings: np.ndarray) -> np.ndarray:
        return (np.asarray(embeddings, dtype=np.float64) - self.mean) / self.scale

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """How far each embedding is from the training images (RMS of the standardised features)."""
        return np.sqrt(np.mean(self.standardise(embeddings) ** 2, axis=1))

    def probe_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        logits = self.standardise(embeddings) @ self.probe_weights.T + self.probe_bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def verdicts(self, embeddings: np.ndarray) -> list[str]:
        """One verdict per embedding: ``OK`` or the short reason the score should not raise a flag alone."""
        embeddings = np.atleast_2d(embeddings)
        if len(embeddings) == 0:
            return []
        far = self.distances(embeddings) > self.distance_cutoff
        probabilities = self.probe_probabilities(embeddings)
        result = []
        for is_far, probs in zip(far, probabilities, strict=True):
            best = int(np.argmax(probs))
            if is_far:
                result.append(NOT_CHEST)
            elif best != 0 and probs[best] >= self.min_confidence:
                result.append(INVERTED if PROBE_CLASSES[best] == "inverted" else ROTATED)
            else:
                result.append(OK)
        return result

    def tensors(self) -> dict[str, np.ndarray]:
        arrays = {
            "mean": self.mean,
            "scale": self.scale,
            "probe_weights": self.probe_weights,
            "probe_bias": self.probe_bias,
        }
        # C order: safetensors writes an array's memory as is (scikit-learn's coefficients are Fortran order)
        return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in arrays.items()}

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        save_file(self.tensors(), str(path))

    @classmethod
    def load(cls, path: Path, settings: dict[str, Any]) -> InputGuard:
        """The guard from its tensors file and the card's ``guard`` entry (``distance_cutoff``,
        ``min_confidence``); shapes and values are checked."""
        from safetensors.numpy import load_file

        tensors = {k: v.astype(np.float64) for k, v in load_file(str(path)).items()}
        guard = cls(
            tensors["mean"],
            tensors["scale"],
            float(settings["distance_cutoff"]),
            tensors["probe_weights"],
            tensors["probe_bias"],
            float(settings.get("min_confidence", 0.5)),
        )
        guard.check()
        return guard

    def check(self) -> None:
        dims = self.mean.shape
        shapes_ok = (
            self.mean.ndim == 1
            and self.scale.shape == dims
            and self.probe_weights.shape == (len(PROBE_CLASSES), dims[0])
            and self.probe_bias.shape == (len(PROBE_CLASSES),)
        )
        if not shapes_ok:
            raise ValueError("the guard's tensors do not have matching shapes")
        values = [self.mean, self.scale, self.probe_weights, self.probe_bias]
        if not all(np.isfinite(v).all() for v in values) or (self.scale <= 0).any():
            raise ValueError("the guard's tensors hold non-finite values or a non-positive scale")
        if not (np.isfinite(self.distance_cutoff) and self.distance_cutoff > 0 and 0 < self.min_confidence <= 1):
            raise ValueError("the guard's cut-off or confidence is out of range")
