"""Find near-uniform dark or bright bands at the edges of a radiograph (a scanned film's frame, collimation,
a viewer's padding), so that the one preprocessing function can crop them before the resize.

An edge line (a row or a column) belongs to a band when, after a 3x3 median filter that removes scattered
noise pixels, at least ``MIN_SHARE`` of its pixels lie within ``TOLERANCE`` grey levels of the line's median
and that median is within ``DRIFT`` of the outermost line's (real collimation is not perfectly uniform: it
may brighten or darken slowly inward). A dark band (outermost median at most ``DARK_LEVEL``) is cropped as
found: outside the patient, nothing in it is anatomy. A brighter band must also end in a sharp edge (at
least ``MIN_STEP`` of the line just inside differs from the band by more than twice the tolerance), as
collimation and a light frame do: a near-white band that fades inward is usually the patient's own
saturated abdomen or shoulders, and stays. A band narrower than ``MIN_BAND`` of the side is left alone (the
model barely sees it), so most films keep their exact pixels; a band wider than ``MAX_BAND`` of the side, or
bands that would leave less than ``MIN_KEPT`` of it, are not cropped either (an image mostly of one value is
the input guard's to judge, not this step's). The search runs on a copy at most
``SEARCH_SIDE`` pixels on its longer side (area-averaged) and its result is scaled back to the image.
"""

from __future__ import annotations

import cv2
import numpy as np

TOLERANCE = 20  # grey levels (of 255) a band pixel may differ from its line's median
MIN_SHARE = 0.95  # share of a band line's pixels within the tolerance
DRIFT = 28  # grey levels a band line's median may differ from the outermost line's
DARK_LEVEL = 64  # a band whose outermost line's median is at most this is dark
MIN_STEP = 0.5  # share of the line inside a bright band that must differ from it by over 2 x TOLERANCE
MIN_BAND = 0.05  # a band narrower than this share of the side is not cropped
MAX_BAND = 0.45  # nor one wider than this
MIN_KEPT = 0.4  # nor bands that leave less than this share of the side
SEARCH_SIDE = 512
PASSES = 3  # a dark frame around a bright collimated band: peeled one after the other

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1), y1 and x1 exclusive


def _band_lines(lines: np.ndarray) -> int:
    """How many of ``lines`` (the outermost first, one per row of the array) form one near-uniform band."""
    medians = np.median(lines, axis=1)
    close = (np.abs(lines - medians[:, None]) <= TOLERANCE).mean(axis=1) >= MIN_SHARE
    same = np.abs(medians - medians[0]) <= DRIFT
    ok = close & same
    return int(np.argmin(ok)) if not ok.all() else len(ok)


def _band_width(lines: np.ndarray, side: int) -> int:
    """The width of the band to crop at the edge whose lines (outermost first) are given; 0 for none."""
    width = _band_lines(lines)
    if not MIN_BAND * side <= width <= MAX_BAND * side:
        return 0
    if np.median(lines[0]) <= DARK_LEVEL:
        return width
    band = np.median(lines[:width], axis=0)
    step = (np.abs(lines[width] - band) > 2 * TOLERANCE).mean()
    return width if step >= MIN_STEP else 0


def _edges(small: np.ndarray) -> tuple[int, int, int, int]:
    """Band widths (top, left, bottom, right) in ``small``'s pixels, 0 where no band to crop."""
    h, w = small.shape
    sides = (small, small.T, small[::-1], small.T[::-1])
    widths = []
    for lines, side in zip(sides, (h, w, h, w), strict=True):
        widths.append(_band_width(lines[: int(MAX_BAND * side) + 1].astype(np.int16), side))
    top, left, bottom, right = widths
    if h - top - bottom < MIN_KEPT * h:
        top = bottom = 0
    if w - left - right < MIN_KEPT * w:
        left = right = 0
    return top, left, bottom, right


def content_box(gray: np.ndarray) -> Box:
    """The part of a uint8 gray image inside its uniform edge bands (the whole image when there are none)."""
    h, w = gray.shape
    scale = min(1.0, SEARCH_SIDE / max(h, w))
    y0, x0, y1, x1 = 0, 0, h, w
    for _ in range(PASSES):
        region = gray[y0:y1, x0:x1]
        rh, rw = region.shape
        if min(rh, rw) < 8:
            break
        size = (max(8, round(rw * scale)), max(8, round(rh * scale)))
        small = cv2.resize(region, size, interpolation=cv2.INTER_AREA) if scale < 1.0 else region
        top, left, bottom, right = _edges(cv2.medianBlur(np.ascontiguousarray(small), 3))
        if not any((top, left, bottom, right)):
            break
        fy, fx = rh / small.shape[0], rw / small.shape[1]
        # round inward: a blended edge pixel of the band is better dropped than kept
        y0, y1 = y0 + int(np.ceil(top * fy)), y1 - int(np.ceil(bottom * fy))
        x0, x1 = x0 + int(np.ceil(left * fx)), x1 - int(np.ceil(right * fx))
    return y0, x0, y1, x1
