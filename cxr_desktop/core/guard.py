"""The input guard: a quality verdict for every scored study, from the model's own pooled features.

Before a score may raise a flag, the guard asks two questions of the feature vector the model's classifier
sees (its *embedding*, one forward pass, no extra cost):

- is it far from the reference radiographs (the model's training images and real NIH radiographs)? The
  distance is a Mahalanobis distance within the reference's principal components plus the residual outside
  them over its variance (root-mean-square per feature); beyond ``distance_cutoff`` (the 99th percentile of
  NIH validation radiographs that were not in the reference, chosen by ``cxr-train guard``) the study is
  "probably not a chest radiograph";
- does a linear probe on the standardised embedding, fitted on real radiographs shown upright, rotated
  (90°, 180°, 270°) and with inverted polarity, say the film is not upright and not of normal polarity?

A film that is both far and, by the probe, turned or inverted gets both reasons, the probe's first ("probably
rotated, or not a chest radiograph"): most rotated chest films are also far from upright ones, and a
radiologist who sees a turned chest film called "not a chest radiograph" stops trusting the check.

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
ROTATED_OR_NOT_CHEST = f"{ROTATED}, or not a chest radiograph"
INVERTED_OR_NOT_CHEST = f"{INVERTED}, or not a chest radiograph"
LATERAL = "lateral view"
# the probe's classes, in the order of its weight rows
PROBE_CLASSES = ("upright", "rotated_90", "rotated_180", "rotated_270", "inverted")
GUARD_NAME = "guard.safetensors"


@dataclass
class InputGuard:
    mean: np.ndarray  # (D,) per-feature mean of the reference embeddings
    scale: np.ndarray  # (D,) per-feature standard deviation (floored): the probe's standardisation
    components: np.ndarray  # (K, D) the reference's principal directions (orthonormal rows)
    variances: np.ndarray  # (K,) the reference's variance along each
    residual_variance: float  # the mean variance per feature outside the components
    distance_cutoff: float
    probe_weights: np.ndarray  # (len(PROBE_CLASSES), D), on the standardised embedding
    probe_bias: np.ndarray  # (len(PROBE_CLASSES),)
    min_confidence: float = 0.5  # a probe class other than upright must have at least this probability

    def standardise(self, embeddings: np.ndarray) -> np.ndarray:
        return (np.asarray(embeddings, dtype=np.float64) - self.mean) / self.scale

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """How far each embedding is from the reference radiographs (see the module docstring)."""
        centred = np.asarray(embeddings, dtype=np.float64) - self.mean
        along = centred @ self.components.T
        residual = np.maximum((centred**2).sum(axis=1) - (along**2).sum(axis=1), 0.0)
        total = (along**2 / self.variances).sum(axis=1) + residual / self.residual_variance
        return np.sqrt(total / centred.shape[1])

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
            turned = best != 0 and probs[best] >= self.min_confidence
            inverted = PROBE_CLASSES[best] == "inverted"
            if is_far and turned:
                result.append(INVERTED_OR_NOT_CHEST if inverted else ROTATED_OR_NOT_CHEST)
            elif is_far:
                result.append(NOT_CHEST)
            elif turned:
                result.append(INVERTED if inverted else ROTATED)
            else:
                result.append(OK)
        return result

    def tensors(self) -> dict[str, np.ndarray]:
        arrays = {
            "mean": self.mean,
            "scale": self.scale,
            "components": self.components,
            "variances": self.variances,
            "residual_variance": np.array([self.residual_variance]),
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
            tensors["components"],
            tensors["variances"],
            float(tensors["residual_variance"].reshape(-1)[0]),
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
            and self.components.ndim == 2
            and self.components.shape[1:] == dims
            and self.variances.shape == self.components.shape[:1]
            and self.probe_weights.shape == (len(PROBE_CLASSES), dims[0])
            and self.probe_bias.shape == (len(PROBE_CLASSES),)
        )
        if not shapes_ok:
            raise ValueError("the guard's tensors do not have matching shapes")
        values = [self.mean, self.scale, self.components, self.variances, self.probe_weights, self.probe_bias]
        positive = [self.scale, self.variances, np.array([self.residual_variance])]
        if not all(np.isfinite(v).all() for v in values) or any((v <= 0).any() for v in positive):
            raise ValueError("the guard's tensors hold non-finite values or a non-positive scale or variance")
        if not (np.isfinite(self.distance_cutoff) and self.distance_cutoff > 0 and 0 < self.min_confidence <= 1):
            raise ValueError("the guard's cut-off or confidence is out of range")
