"""Pure numpy window/level for display."""

from __future__ import annotations

import numpy as np

DEFAULT_WINDOW = (0.5, 1.0)  # center, width on the [0, 1] display scale
PRESETS: dict[str, tuple[float, float]] = {
    "Full range": (0.5, 1.0),
    "Lung": (0.40, 0.70),
    "Mediastinum": (0.60, 0.50),
    "Bone": (0.70, 0.45),
}


def as_unit_float(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if np.issubdtype(image.dtype, np.integer):
        return image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    return image.astype(np.float32, copy=False)


def apply_window(image: np.ndarray, center: float, width: float) -> np.ndarray:
    """Map a display-polarity image through a linear window (on the [0, 1] scale) to uint8."""
    width = max(float(width), 1e-3)
    unit = as_unit_float(image)
    low = center - width / 2.0
    out = (unit - low) / width
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
