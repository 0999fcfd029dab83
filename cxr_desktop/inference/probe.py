"""The probe batch a model must pass before it scores anything.

Real radiographs shipped with the app (the demo studies, ``resources/demo``), a few of them picked and varied
(crop, gamma) by a seed drawn fresh at every load, plus noise from the same seed. A crafted model cannot
know the batch in advance, so it cannot agree with the bundle's weights on the probe and score real films
differently, and a damaged model's non-finite outputs show up before the first study.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from cxr_desktop.core.card import BundleFormatError
from cxr_desktop.core.guard import OK, InputGuard
from cxr_desktop.core.preprocess import PreprocessSpec, resize_to_input, to_uint8
from cxr_desktop.core.resources import demo_dir
from cxr_desktop.studies.reader import read_study

log = logging.getLogger(__name__)

PROBE_RADIOGRAPHS = 4
PROBE_NOISE = 2


def probe_inputs(spec: PreprocessSpec, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Preprocessed uint8 model inputs: up to ``PROBE_RADIOGRAPHS`` varied real radiographs and
    ``PROBE_NOISE`` noise images. ``rng`` defaults to a fresh, unpredictable seed."""
    rng = rng if rng is not None else np.random.default_rng()
    files = sorted(demo_dir().glob("*.dcm"))
    if not files:
        log.warning("no shipped radiographs in %s: the model probe uses noise only", demo_dir())
    picked = rng.permutation(len(files))[:PROBE_RADIOGRAPHS]
    inputs = [_varied(to_uint8(read_study(files[i]).image), spec, rng) for i in picked]
    size = spec.input_size
    for _ in range(PROBE_NOISE):
        noise = rng.integers(0, 256, (size, size), dtype=np.uint8)
        inputs.append(cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(0.5, 3.0))))
    return inputs


def _varied(image: np.ndarray, spec: PreprocessSpec, rng: np.random.Generator) -> np.ndarray:
    """A random crop of 85–100 % of each side and a random gamma, then the model's own resize."""
    height, width = image.shape[:2]
    crop_h, crop_w = (int(side * rng.uniform(0.85, 1.0)) for side in (height, width))
    top, left = int(rng.integers(0, height - crop_h + 1)), int(rng.integers(0, width - crop_w + 1))
    crop = image[top : top + crop_h, left : left + crop_w]
    gamma = float(rng.uniform(0.7, 1.4))
    table = (np.linspace(0.0, 1.0, 256) ** gamma * 255.0).round().astype(np.uint8)
    return resize_to_input(cv2.LUT(np.ascontiguousarray(crop), table), spec)


def plain_radiographs(spec: PreprocessSpec, count: int = PROBE_RADIOGRAPHS) -> list[np.ndarray]:
    """The first ``count`` shipped radiographs as they are (no crop, no gamma), through the model's own resize:
    the same inputs at every load, so the input guard's check of the card gives the same answer every time
    (on the varied probe films, a card with another normalisation now and then got one film past the guard)."""
    files = sorted(demo_dir().glob("*.dcm"))[:count]
    return [resize_to_input(to_uint8(read_study(path).image), spec) for path in files]


def check_guard_accepts(guard: InputGuard, features: np.ndarray, bundle: Path) -> None:
    """The shipped radiographs (``plain_radiographs``), prepared as the card says, must look like chest films to
    the model's own input guard (its distance and orientation probe; the mirror probe is left out): none judged
    upright and near means the card's preprocessing is not the one the model was trained with (e.g. another
    normalisation: measured on the 15 shipped films with the v3 model, 15 of 15 pass as shipped, 0 of 15 with
    "unit" or "symmetric"), and every score would be wrong."""
    if len(features) == 0:
        return
    verdicts = guard.verdicts(features[:, : guard.mean.shape[0]])
    if OK not in verdicts:
        raise BundleFormatError(
            f"{bundle}: with the card's preprocessing, none of {len(verdicts)} shipped chest radiographs looks like "
            f"a chest film to the model's own input guard ({'; '.join(sorted(set(verdicts)))}): the card does not "
            "belong to these weights"
        )
