"""A pixel check beside the learned input guard: a film stored turned by a few degrees.

A film scanned askew, or turned in a viewer and saved, is a rotated rectangle on a canvas filled with one grey
level, so each corner of the canvas holds a wedge of that level: a right triangle whose legs lie on the canvas
edges and whose third side is a straight edge of the film. On real NIH films a turn of +15° or -15° took the
urgent flag from 5 and 3 of 54 flagged cardiomegaly films with the guard's verdict "ok" (docs/robustness.md),
and the guard's rotation probe knows only quarter turns. The check looks for such wedges in the model's own
input (inside its letterbox bars): a corner whose run of the corner's exact grey level shrinks linearly row by
row. Two wedges or
more must agree on the angle and on the sense of the turn; the wedges of one rotation follow each other around
the corners, while dark background beside a patient lies mirror-symmetric (left and right alike), which keeps
real films from being named. A film turned on its detector, with no fill, has no wedges and is not caught.
"""

from __future__ import annotations

import numpy as np

TILTED = "probably turned at an angle"

MIN_LEG = 0.025  # of the shorter side: a wedge's legs are at least this long (6 px of a 224 px input)
MAX_LEG = 0.9  # of its side: a longer run is a flat band or an empty image, not a wedge
MAX_RMS = 1.5  # pixels: the wedge's third side is straight (a line fit to the per-row runs)
MIN_ANGLE, MAX_ANGLE = 3.0, 40.0  # degrees of the turn a wedge may show
AGREE = 1.0  # degrees: the wedges of one turn show the same angle
MIN_WEDGES = 2
CORNERS = ((1, 1), (1, -1), (-1, 1), (-1, -1))  # (row, column) steps that bring each corner to [0, 0]


def _inside_bars(image: np.ndarray) -> np.ndarray:
    """``image`` without letterbox bars (whole rows or columns of 0 at its edges)."""
    rows, columns = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    if rows.size == 0:
        return image
    return image[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1]


def _leading_runs(mask: np.ndarray) -> np.ndarray:
    """Per row of a boolean array, how many of its first elements are True."""
    runs = np.argmin(mask, axis=1)
    runs[mask.all(axis=1)] = mask.shape[1]
    return runs


def _wedge_angle(corner: np.ndarray) -> float | None:
    """The angle (degrees) of a fill wedge at ``corner[0, 0]``: positive when its long leg runs along the top
    row, negative along the left column; None when the corner holds no straight-edged wedge."""
    height, width = corner.shape
    same = corner == corner[0, 0]
    runs = _leading_runs(same)
    across, down = int(runs[0]), int(_leading_runs(same.T)[0])
    if min(across, down) < MIN_LEG * min(height, width) or across >= MAX_LEG * width or down >= MAX_LEG * height:
        return None
    rows = np.arange(int(0.9 * down))  # the wedge's tip is a few blended pixels
    if rows.size < 4:
        return None
    slope, intercept = np.polyfit(rows, runs[rows], 1)
    if np.sqrt(np.mean((slope * rows + intercept - runs[rows]) ** 2)) > MAX_RMS or slope >= 0:
        return None
    run_per_row = -slope
    angle = float(np.degrees(np.arctan(min(run_per_row, 1.0 / run_per_row))))
    if not MIN_ANGLE <= angle <= MAX_ANGLE:
        return None
    return angle if run_per_row > 1.0 else -angle


def turned_angle(image: np.ndarray) -> float | None:
    """The turn (degrees; its sign is the sense of the turn) of a film stored at an angle on a filled canvas,
    read from the uint8 model input ``image``; None when the corners show no agreeing wedges."""
    content = _inside_bars(image)
    angles = []
    for row_step, column_step in CORNERS:
        angle = _wedge_angle(np.ascontiguousarray(content[::row_step, ::column_step]))
        if angle is not None:  # a mirrored corner sees the turn's sense reversed
            angles.append(angle * row_step * column_step)
    if len(angles) < MIN_WEDGES or min(angles) < 0 < max(angles):
        return None
    median = float(np.median(angles))
    agreeing = sum(abs(angle - median) <= AGREE for angle in angles)
    return median if agreeing >= MIN_WEDGES else None
