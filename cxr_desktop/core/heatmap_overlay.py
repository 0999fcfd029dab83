"""The colour overlay of a heatmap on a gray image (numpy and OpenCV only, so the viewer imports it cheaply)."""

from __future__ import annotations

import cv2
import numpy as np


def overlay(gray_uint8: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4) -> np.ndarray:
    """RGB uint8 image: the gray image with a JET heatmap blended in (``heatmap`` in [0, 1])."""
    if gray_uint8.shape != heatmap.shape:
        raise ValueError(f"image {gray_uint8.shape} and heatmap {heatmap.shape} differ in shape")
    colour = cv2.applyColorMap(np.clip(heatmap * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    base = cv2.cvtColor(gray_uint8, cv2.COLOR_GRAY2RGB)
    return cv2.addWeighted(base, 1.0 - opacity, colour, opacity, 0.0)
