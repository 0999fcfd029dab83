"""A pixel check beside the learned input guard: a filled box drawn over part of the film.

A box burnt into the pixels (an annotation, a redaction, a label pasted over the heart) hides what the model
looks at, and the model's features do not say so: on real NIH films a box over the heart took the urgent flag
from about half of the flagged cardiomegaly films with the guard's verdict "ok" (docs/robustness.md). Real
radiographs have no perfectly flat interior patch that large, so the check looks for one in the model's own
input: pixels whose whole neighbourhood has one grey level, grouped into regions; a region counts when it is
large, nearly rectangular and clear of the image's edges. A dark one (at the film's darkest grey levels) may be
background: a margin, a collimated or scanned film's frame, a saturated gap beside the body. It counts only well
inside the film (``DARK_CLEARANCE`` from every edge) and surrounded by film clearly lighter than itself
(``DARK_STEP``), ending at its own edge (``DARK_REACH``), as a black box (a redaction) over the film is and
background, or a clipped dark lung cut into blocks by JPEG, is not. Measured on real films and
boxes in docs/robustness.md.
"""

from __future__ import annotations

import cv2
import numpy as np

BOXED = "probably a box drawn over the film"

MIN_AREA_FRACTION = 0.005  # of the model input: 0.5 % (a 224 px input: a flat core of 16 x 16 px, a 20 px box)
MIN_FILL = 0.85  # region area / its bounding box area: a filled rectangle, not a flat blob
NEIGHBOURHOOD = 5  # pixels: a region's pixels have a NEIGHBOURHOOD x NEIGHBOURHOOD patch of one grey level
DARK_PERCENTILE, DARK_MARGIN = 5, 8  # a region at or below the film's 5th percentile grey + 8 is dark
DARK_CLEARANCE = 0.08  # of the shorter side: a dark box lies at least this far from every edge
DARK_STEP = 30  # grey levels: the film around a dark box (RING pixels outside it) is at least this much lighter
RING = (4, 8)  # pixels outside a region's flat core: from the box's own edge to its surroundings
DARK_REACH = 5  # pixels: the dark pixels (its level + 2) joined to a dark box end this close to its flat core


def covering_box(image: np.ndarray) -> tuple[int, int, int, int] | None:
    """The largest filled box (x, y, width, height) over the uint8 model input ``image``, or None."""
    kernel = np.ones((NEIGHBOURHOOD, NEIGHBOURHOOD), np.uint8)
    flat = (cv2.dilate(image, kernel) == cv2.erode(image, kernel)).astype(np.uint8)
    count, labels, stats, _centroids = cv2.connectedComponentsWithStats(flat, connectivity=4)
    height, width = image.shape[:2]
    dark = float(np.percentile(image, DARK_PERCENTILE)) + DARK_MARGIN
    margin = NEIGHBOURHOOD // 2  # a box's flat core stops this far from its edge
    best = None
    for index, (x, y, w, h, area) in enumerate(stats[1:count], start=1):
        touches_edge = x <= margin or y <= margin or x + w >= width - margin or y + h >= height - margin
        if touches_edge or area < MIN_AREA_FRACTION * height * width or area < MIN_FILL * w * h:
            continue
        level = int(image[labels == index].max())  # one grey level
        if level <= dark and not _dark_box_on_film(image, (int(x), int(y), int(w), int(h)), level):
            continue
        if best is None or w * h > best[2] * best[3]:
            best = (int(x), int(y), int(w), int(h))
    return best


def _dark_box_on_film(image: np.ndarray, core: tuple[int, int, int, int], level: int) -> bool:
    """Whether a dark flat region (its core's x, y, width, height) is a box on the film, not background: far
    from every edge, and the film around it (``RING``) lighter by ``DARK_STEP``."""
    x, y, w, h = core
    height, width = image.shape
    if min(x, y, width - x - w, height - y - h) < DARK_CLEARANCE * min(height, width):
        return False
    near, far = RING
    around = np.zeros(image.shape, bool)
    around[max(0, y - far) : y + h + far, max(0, x - far) : x + w + far] = True
    around[max(0, y - near) : y + h + near, max(0, x - near) : x + w + near] = False
    if not around.any() or float(np.median(image[around])) < level + DARK_STEP:
        return False
    return _ends_at_its_edge(image, core, level)


def _ends_at_its_edge(image: np.ndarray, core: tuple[int, int, int, int], level: int) -> bool:
    """Whether the dark pixels joined to a dark region end within ``DARK_REACH`` of its flat core, as a box's
    do: a flat piece of a larger dark area (a clipped lung cut into blocks by JPEG) is not a box."""
    x, y, w, h = core
    top, left = max(0, y - DARK_REACH - 1), max(0, x - DARK_REACH - 1)
    window = image[top : y + h + DARK_REACH + 1, left : x + w + DARK_REACH + 1] <= level + 2
    _count, labels = cv2.connectedComponents(window.astype(np.uint8), connectivity=4)
    joined = labels == labels[y - top + h // 2, x - left + w // 2]
    return not (joined[0].any() or joined[-1].any() or joined[:, 0].any() or joined[:, -1].any())
