"""The input guard: a quality verdict for every scored study, from the model's own pooled features.

Before a score may raise a flag, the guard asks three questions of the feature vector the model's classifier
sees (its *embedding*, one forward pass, no extra cost) and of the same feature map's left side against its
right:

- is it far from the reference radiographs (the model's training images and real NIH radiographs)? The
  distance is a Mahalanobis distance within the reference's principal components plus the residual outside
  them over its variance (root-mean-square per feature); beyond ``distance_cutoff`` (the 99th percentile of
  NIH validation radiographs that were not in the reference, chosen by ``cxr-train guard``) the study is
  "probably not a chest radiograph";
- does a linear probe on the standardised embedding, fitted on real radiographs shown upright, rotated
  (90°, 180°, 270°) and with inverted polarity, say the film is not upright and not of normal polarity?
- is the film mirrored left-right (the heart on the image's left: flipped by mistake, or dextrocardia)? A
  second linear probe, on the embedding and the feature map's left-minus-right differences
  (``lateral_difference``: of the two halves, or of each pair of columns mirrored about the centre),
  fitted on real radiographs and their mirror images, says so beyond ``mirror_cutoff``, chosen by
  ``cxr-train guard`` for few false alarms on upright films it did not fit. The embedding alone does not tell
  a mirrored film well (pooling forgets where a feature was); the differences do, the column pairs best. The
  probe's length says which differences it reads (``mirror_groups``). A guard fitted before this probe existed
  has none and never says "mirrored".

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
MIRRORED = "probably mirrored (or dextrocardia)"
MIRRORED_OR_NOT_CHEST = f"{MIRRORED}, or not a chest radiograph"
LATERAL = "lateral view"
# the probe's classes, in the order of its weight rows
PROBE_CLASSES = ("upright", "rotated_90", "rotated_180", "rotated_270", "inverted")
GUARD_NAME = "guard.safetensors"
MIRROR_TENSORS = ("mirror_mean", "mirror_scale", "mirror_weights", "mirror_bias")


def lateral_difference(maps: np.ndarray, activation: str | None, groups: int = 1) -> np.ndarray:
    """(N, groups x C): the feature maps (N, C, h, w) of the layer the embedding pools, activated as before the
    pooling (``core.cam.CAM_ACTIVATIONS``; None: as they are), averaged over the rows, left minus right:
    ``groups`` 1, the left half of the columns minus the right half (the middle column of an odd width in
    neither); more, each of the outermost ``groups`` column pairs mirrored about the centre (column i minus
    column w-1-i), the outermost first."""
    maps = np.asarray(maps, dtype=np.float32)
    if activation == "relu6":
        maps = np.clip(maps, 0.0, 6.0)
    elif activation == "relu":
        maps = np.maximum(maps, 0.0)
    columns = maps.mean(axis=2)  # (N, C, w)
    width = columns.shape[-1]
    if not 1 <= groups <= max(1, width // 2):
        raise ValueError(f"{groups} column pairs asked of a feature map {width} columns wide")
    if groups == 1:
        half = width // 2
        return columns[..., :half].mean(axis=2) - columns[..., width - half :].mean(axis=2)
    return np.concatenate([columns[..., i] - columns[..., width - 1 - i] for i in range(groups)], axis=1)


def guard_features(
    embeddings: np.ndarray, maps: np.ndarray | None, activation: str | None, groups: int = 1
) -> np.ndarray:
    """What the guard reads: the embeddings (N, D), followed by their ``lateral_difference`` in ``groups``
    (N, (1 + groups) x D) when the feature maps are at hand (a guard with a mirror probe needs them)."""
    if maps is None:
        return np.asarray(embeddings)
    differences = lateral_difference(maps, activation, groups)
    return np.concatenate([np.asarray(embeddings, np.float32), differences], axis=1)


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
    # the mirror probe on the standardised guard features (embedding + lateral differences), or None
    mirror_mean: np.ndarray | None = None  # ((1 + mirror_groups) x D,)
    mirror_scale: np.ndarray | None = None  # ((1 + mirror_groups) x D,)
    mirror_weights: np.ndarray | None = None  # ((1 + mirror_groups) x D,)
    mirror_bias: float = 0.0
    mirror_cutoff: float = float("inf")  # a mirror score above it: "probably mirrored"

    @property
    def has_mirror_probe(self) -> bool:
        """Whether this guard tells mirrored films (it then needs ``guard_features`` with the differences)."""
        return self.mirror_weights is not None

    @property
    def mirror_groups(self) -> int:
        """How many lateral differences the mirror probe reads (``lateral_difference``); 0 without one."""
        if self.mirror_weights is None:
            return 0
        return len(self.mirror_weights) // len(self.mean) - 1

    def mirror_scores(self, features: np.ndarray) -> np.ndarray:
        """The mirror probe's logit per film, from ``guard_features`` with its ``mirror_groups`` differences."""
        if self.mirror_weights is None or self.mirror_mean is None or self.mirror_scale is None:
            raise ValueError("this guard has no mirror probe")
        standardised = (np.asarray(features, dtype=np.float64) - self.mirror_mean) / self.mirror_scale
        return standardised @ self.mirror_weights + self.mirror_bias

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

    def verdicts(self, features: np.ndarray) -> list[str]:
        """One verdict per film: ``OK`` or the short reason the score should not raise a flag alone.
        ``features`` are the embeddings (N, D), or ``guard_features`` with the ``mirror_groups`` differences,
        which a guard with a mirror probe needs to say "mirrored" (without them it judges as one without)."""
        features = np.atleast_2d(features)
        if len(features) == 0:
            return []
        dims = self.mean.shape[0]
        embeddings = features[:, :dims]
        far = self.distances(embeddings) > self.distance_cutoff
        probabilities = self.probe_probabilities(embeddings)
        mirrored = np.zeros(len(features), dtype=bool)
        if self.has_mirror_probe and features.shape[1] == (1 + self.mirror_groups) * dims:
            mirrored = self.mirror_scores(features) > self.mirror_cutoff
        result = []
        for is_far, probs, is_mirrored in zip(far, probabilities, mirrored, strict=True):
            best = int(np.argmax(probs))
            if best != 0 and probs[best] >= self.min_confidence:  # turned or inverted: the probe's reason first
                inverted = PROBE_CLASSES[best] == "inverted"
                alone, with_far = (INVERTED, INVERTED_OR_NOT_CHEST) if inverted else (ROTATED, ROTATED_OR_NOT_CHEST)
            elif is_mirrored:
                alone, with_far = MIRRORED, MIRRORED_OR_NOT_CHEST
            else:
                alone, with_far = OK, NOT_CHEST
            result.append(with_far if is_far else alone)
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
        if self.has_mirror_probe:
            arrays.update(
                mirror_mean=self.mirror_mean,
                mirror_scale=self.mirror_scale,
                mirror_weights=self.mirror_weights,
                mirror_bias=np.array([self.mirror_bias]),
            )
        # C order: safetensors writes an array's memory as is (scikit-learn's coefficients are Fortran order)
        return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in arrays.items()}

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        save_file(self.tensors(), str(path))

    @classmethod
    def load(cls, path: Path, settings: dict[str, Any]) -> InputGuard:
        """The guard from its tensors file and the card's ``guard`` entry (``distance_cutoff``,
        ``min_confidence``, and ``mirror_cutoff`` with a mirror probe); shapes and values are checked. A file
        written before the mirror probe existed has none of its tensors: the guard then has no mirror probe."""
        from safetensors.numpy import load_file

        tensors = {k: v.astype(np.float64) for k, v in load_file(str(path)).items()}
        mirror = [name for name in MIRROR_TENSORS if name in tensors]
        if mirror and len(mirror) < len(MIRROR_TENSORS):
            raise ValueError(f"the guard's mirror probe is incomplete (it has only {', '.join(mirror)})")
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
        if mirror:
            guard.mirror_mean, guard.mirror_scale = tensors["mirror_mean"], tensors["mirror_scale"]
            guard.mirror_weights = tensors["mirror_weights"]
            guard.mirror_bias = float(tensors["mirror_bias"].reshape(-1)[0])
            guard.mirror_cutoff = float(settings["mirror_cutoff"])
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
        if self.has_mirror_probe:
            self._check_mirror_probe(dims[0])

    def _check_mirror_probe(self, dims: int) -> None:
        parts = (self.mirror_mean, self.mirror_scale, self.mirror_weights)
        width = (1 + self.mirror_groups) * dims
        if self.mirror_groups < 1 or any(part is None or part.shape != (width,) for part in parts):
            raise ValueError("the guard's mirror probe does not have the shape of the embedding and its differences")
        finite = all(np.isfinite(part).all() for part in parts) and np.isfinite([self.mirror_bias]).all()
        if not finite or (self.mirror_scale <= 0).any() or not np.isfinite(self.mirror_cutoff):
            raise ValueError("the guard's mirror probe holds non-finite values, a non-positive scale or no cut-off")
