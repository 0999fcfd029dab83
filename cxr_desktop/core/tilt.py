"""A pixel check beside the learned input guard: a film stored turned by a few degrees.

A film scanned askew, or turned in a viewer and saved, is a rotated rectangle on a canvas filled with one grey
level, so each corner of the canvas holds a wedge of that level: a right triangle whose legs lie on the canvas
edges and whose third side is a straight edge of the film. On real NIH films a turn of +15° or -15° took the
urgent flag from 5 and 3 of 54 flagged cardiomegaly films with the guard's verdict "ok" (docs/robustness.md),
and the guard's rotation probe knows only quarter turns. The check looks for such wedges in the model's own
input, inside any frame of uniform lines (letterbox bars, a margin): a corner whose run of the corner's exact
grey level shrinks linearly row by row. Two wedges or more must agree on the angle, on the sense of the turn and
on the fill's level. The wedges of one turn follow each other around the corners (wide at one diagonal, tall at
the other), while dark background beside a patient, or a shutter, lies alike left and right: that is what keeps
real films from being named (measured on 6124 real films and on edits that cut corners without a turn:
docs/robustness.md). A shutter (collimation) set at an angle on an upright film makes the same wedges as a turn,
hence the verdict's wording. A film turned on its detector (no fill), or on a noisy fill, is not caught.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TILTED = "probably turned or collimated at an angle"

MIN_LEG = 0.025  # of the shorter side: a wedge's legs are at least this long (6 px of a 224 px input)
MAX_LEG = 0.9  # of its side: a longer run is a flat band or an empty image, not a wedge
MAX_RMS = 1.5  # pixels: the wedge's third side is straight (a line fit to the per-row runs)
MIN_ANGLE, MAX_ANGLE = 3.0, 40.0  # degrees of the turn a wedge may show
AGREE = 1.5  # degrees: the wedges of one turn show the same angle (all within this of each other)
MIN_WEDGES = 2
LEVEL_TOLERANCE = 0  # grey levels: a fill or a frame is one exact level (1 caught noisy fills but cost more)
CORNERS = ((1, 1), (1, -1), (-1, 1), (-1, -1))  # (row, column) steps that bring each corner to [0, 0]
DIAGONALS = ({0, 3}, {1, 2})  # indices into CORNERS: top left and bottom right, top right and bottom left


@dataclass(frozen=True)
class _Corner:
    level: int  # the corner's grey level
    across: int  # how far it runs along the top row (of the corner brought to [0, 0])
    down: int  # and down the left column
    angle: float | None  # the turn its wedge shows (sign: the sense of the turn), None when it holds no wedge


def _uniform_lines(image: np.ndarray) -> np.ndarray:
    """Per row: whether all its pixels lie within 2 x LEVEL_TOLERANCE grey levels of each other."""
    return (image.max(axis=1).astype(np.int16) - image.min(axis=1)) <= 2 * LEVEL_TOLERANCE


def _inside_frame(image: np.ndarray) -> np.ndarray:
    """``image`` without the uniform lines at its edges (letterbox bars, a frame of any one grey level) and,
    where there were some, the line next to them (the frame's edge blended into the film by the resize)."""
    rows, columns = np.flatnonzero(~_uniform_lines(image)), np.flatnonzero(~_uniform_lines(image.T))
    if rows.size == 0 or columns.size == 0:
        return image
    height, width = image.shape
    top, bottom = rows[0] + (rows[0] > 0), rows[-1] + 1 - (rows[-1] < height - 1)
    left, right = columns[0] + (columns[0] > 0), columns[-1] + 1 - (columns[-1] < width - 1)
    return image[top:bottom, left:right] if bottom > top and right > left else image


def _leading_runs(mask: np.ndarray) -> np.ndarray:
    """Per row of a boolean array, how many of its first elements are True."""
    runs = np.argmin(mask, axis=1)
    runs[mask.all(axis=1)] = mask.shape[1]
    return runs


def _wedge_angle(runs: np.ndarray, across: int, down: int, shape: tuple[int, int]) -> float | None:
    """The angle (degrees) of the wedge whose per-row runs from the corner are ``runs``: positive when its long
    leg runs along the top row, negative down the left column; None when they make no straight-edged wedge."""
    height, width = shape
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


def _corner(corner: np.ndarray) -> _Corner:
    """What the corner at ``corner[0, 0]`` holds: its level, the extent of that level along both edges, its wedge."""
    level = int(np.median(corner[:3, :3]))
    same = np.abs(corner.astype(np.int16) - level) <= LEVEL_TOLERANCE
    runs = _leading_runs(same)
    across, down = int(runs[0]), int(_leading_runs(same.T)[0])
    return _Corner(level, across, down, _wedge_angle(runs, across, down, corner.shape))


def _complements(pair: set[int], corners: list[_Corner], shortest: int) -> bool:
    """Whether the two corners off the diagonal ``pair`` hold the same fill, at least a wedge's size (``MIN_LEG``
    of the ``shortest`` side), with its long leg on the other axis, as a turn's do: a shape the same at all four
    corners (a shutter symmetric left to right and top to bottom) is also the same at both ends of each diagonal,
    and is not a turn."""
    wide = corners[min(pair)].across > corners[min(pair)].down
    level, least = corners[min(pair)].level, MIN_LEG * shortest
    return all(
        abs(c.level - level) <= LEVEL_TOLERANCE and (c.across > c.down) != wide and min(c.across, c.down) >= least
        for c in (corners[i] for i in set(range(len(CORNERS))) - pair)
    )


def turned_angle(image: np.ndarray) -> float | None:
    """The turn (degrees; its sign is the sense of the turn) of a film stored at an angle on a filled canvas,
    read from the uint8 model input ``image``; None when the corners show no agreeing wedges."""
    if min(image.shape) < 8:  # no model input is this small (PreprocessSpec: input_size >= 8)
        return None
    content = _inside_frame(image)
    corners = [_corner(np.ascontiguousarray(content[::rows, ::columns])) for rows, columns in CORNERS]
    angles = {  # a mirrored corner sees the turn's sense reversed
        i: c.angle * rows * columns
        for i, (c, (rows, columns)) in enumerate(zip(corners, CORNERS, strict=True))
        if c.angle is not None
    }
    if len(angles) < MIN_WEDGES or min(angles.values()) < 0 < max(angles.values()):
        return None
    agreeing = max(({i for i, b in angles.items() if a <= b <= a + AGREE} for a in angles.values()), key=len)
    levels = [corners[i].level for i in agreeing]
    if len(agreeing) < MIN_WEDGES or max(levels) - min(levels) > LEVEL_TOLERANCE:  # one canvas, one fill
        return None
    if agreeing in DIAGONALS and not _complements(agreeing, corners, min(content.shape)):
        return None
    return float(np.median([angles[i] for i in agreeing]))
