"""The colour overlay of a heatmap on a gray image (numpy and OpenCV only, so the viewer imports it cheaply).

A Grad-CAM map comes scaled to [0, 1] per image: its hottest spot is 1 whatever the score. Shown as it is, a
film scoring 0.002 would look as red as one scoring 0.92. So the map shown is weighed by the study's score
relative to the flag threshold (``flag_scale``): colour then means the same on every study (red: the region
that drives a score at or above the flag), and a film scoring far below the flag shows no colour. Values below
``FLOOR`` draw nothing (no wash over the film); above it the colour fades in."""

from __future__ import annotations

import math

import cv2
import numpy as np

FLOOR = 0.2  # shown map values below this draw no colour
FULL = 0.6  # from this value up the colour is drawn at the chosen opacity (it fades in from FLOOR)


def flag_scale(score: float | None, threshold: float | None) -> float:
    """How strongly a study's map is shown: its score over the flag threshold, at most 1 (1 at or above the
    flag); 0 without a score. Without a threshold (no model policy) the score itself."""
    if score is None or math.isnan(score):
        return 0.0
    if threshold is None or threshold <= 0:
        return float(np.clip(score, 0.0, 1.0))
    return float(np.clip(score / threshold, 0.0, 1.0))


def jet(values: np.ndarray) -> np.ndarray:
    """RGB uint8 colours of ``values`` in [0, 1] (the JET map: blue low, red high)."""
    colour = cv2.applyColorMap(np.clip(values * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)


def overlay(gray_uint8: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4, scale: float = 1.0) -> np.ndarray:
    """RGB uint8 image: the gray image with the JET colours of ``heatmap * scale`` (``heatmap`` in [0, 1])
    blended in, where that value is at least ``FLOOR``; elsewhere the gray image is untouched."""
    if gray_uint8.shape != heatmap.shape:
        raise ValueError(f"image {gray_uint8.shape} and heatmap {heatmap.shape} differ in shape")
    values = np.clip(heatmap.astype(np.float32) * float(scale), 0.0, 1.0)
    base = cv2.cvtColor(gray_uint8, cv2.COLOR_GRAY2RGB)
    alpha = np.clip((values - FLOOR) / (FULL - FLOOR), 0.0, 1.0) * float(opacity)
    if not alpha.any():
        return base
    blended = base * (1.0 - alpha[:, :, None]) + jet(values) * alpha[:, :, None]
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
