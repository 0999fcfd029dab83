"""Square pixels for DICOM images whose pixels are not square.

A DICOM image may store pixels taller than wide (or wider than tall): Pixel Spacing (0028,0030) and Imager
Pixel Spacing (0018,1164) give the row spacing and the column spacing in mm, Pixel Aspect Ratio (0028,0034)
the ratio of a pixel's height to its width (it is present when the ratio is not 1:1 and no spacing is). A
viewer shows such an image at its true proportions, and the model was trained on films of true proportions,
so the decoded image is resampled to square pixels before anything else sees it: the axis with the larger
spacing is stretched (no detail is lost), or, where that would pass the decoded-pixel limit, the other axis
is shrunk. A value that is not two positive numbers is ignored (logged); a ratio beyond 1:4 or 4:1 is refused
as a damaged header.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset

from cxr_desktop.studies.study import MAX_PIXELS, StudyError

log = logging.getLogger(__name__)

# the elements that may say a pixel's proportions, in the order they are trusted: the first usable one counts
SOURCES = ("PixelSpacing", "ImagerPixelSpacing", "PixelAspectRatio")
MAX_RATIO = 4.0
SQUARE_TOLERANCE = 0.01  # ratios within 1 % of 1:1 are square


def _pair(ds: Dataset, keyword: str) -> tuple[float, float] | None:
    """(vertical, horizontal) from a two-valued element, or None when absent or unusable."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        vertical, horizontal = (float(v) for v in value)
    except (TypeError, ValueError, OverflowError):
        name = getattr(ds, "filename", None)  # a path, or a file descriptor's number when read from an open file
        log.warning("ignored an unusable %s in %s", keyword, name if isinstance(name, str) else "a DICOM file")
        return None
    if not (math.isfinite(vertical) and math.isfinite(horizontal) and vertical > 0 and horizontal > 0):
        log.warning("ignored a non-positive %s in %s", keyword, getattr(ds, "filename", "a DICOM file"))
        return None
    return vertical, horizontal


def pixel_ratio(path: Path, ds: Dataset) -> float:
    """A pixel's height over its width (1.0 for square pixels or when the header does not say)."""
    for keyword in SOURCES:
        pair = _pair(ds, keyword)
        if pair is None:
            continue
        ratio = pair[0] / pair[1]
        if not 1 / MAX_RATIO <= ratio <= MAX_RATIO:
            raise StudyError(path, f"{keyword} {pair[0]:g}\\{pair[1]:g} gives a pixel aspect ratio outside 1:4 to 4:1")
        return ratio
    return 1.0


def square_pixels(image: np.ndarray, ratio: float) -> np.ndarray:
    """``image`` (rows x columns, pixels ``ratio`` times as tall as wide) resampled to square pixels."""
    if abs(ratio - 1.0) <= SQUARE_TOLERANCE:
        return image
    rows, cols = image.shape
    if ratio > 1:
        size = (cols, round(rows * ratio))  # (width, height): stretch the rows
        if size[0] * size[1] > MAX_PIXELS:
            size = (max(1, round(cols / ratio)), rows)
    else:
        size = (round(cols / ratio), rows)  # stretch the columns
        if size[0] * size[1] > MAX_PIXELS:
            size = (cols, max(1, round(rows * ratio)))
    shrinking = size[0] * size[1] < rows * cols
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation)
