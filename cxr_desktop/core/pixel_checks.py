"""The pixel checks beside the learned input guard: what a film's pixels show plainly and the model's features do
not, read from the model's own uint8 input (224 px for the shipped model; each check takes well under a
millisecond there)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cxr_desktop.core.occlusion import BOXED, covering_box
from cxr_desktop.core.tilt import TILTED, turned_angle

# each check: its verdict, and whether the input shows it; in order, the first that applies is the reason
CHECKS: tuple[tuple[str, Callable[[np.ndarray], bool]], ...] = (
    (BOXED, lambda image: covering_box(image) is not None),
    (TILTED, lambda image: turned_angle(image) is not None),
)


def pixel_verdict(image: np.ndarray) -> str | None:
    """The first reason the pixels give to doubt the model input ``image`` (a box over the film, a film turned
    at an angle), or None."""
    return next((verdict for verdict, shows in CHECKS if shows(image)), None)
