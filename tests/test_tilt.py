"""Issue 21 item 7: a film turned by 15° took the urgent flag from real films with the guard's "ok". The pixel
check of core.tilt names a film stored at an angle on a filled canvas, through `cxr-triage`, and real films
(whose dark background beside the patient also makes corner wedges, mirror-symmetric ones) pass."""

import cv2
import numpy as np
from changed_films import triage_upright_and_changed

from cxr_desktop.core.guard import OK
from cxr_desktop.core.preprocess import resize_to_input
from cxr_desktop.core.tilt import TILTED, turned_angle


def turn(gray: np.ndarray, degrees: float, fill: int = 0, expand: bool = False) -> np.ndarray:
    """``gray`` turned counter-clockwise about its centre, the uncovered canvas filled with ``fill``; on a canvas
    grown to hold the whole film when ``expand``, else cut to the film's own size."""
    h, w = gray.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    size = (w, h)
    if expand:
        cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
        size = (round(h * sin + w * cos), round(h * cos + w * sin))
        matrix[0, 2] += size[0] / 2 - w / 2
        matrix[1, 2] += size[1] / 2 - h / 2
    return cv2.warpAffine(gray, matrix, size, flags=cv2.INTER_LINEAR, borderValue=fill)


def test_real_films_pass_and_films_turned_by_15_degrees_are_found_with_their_angle(nih_films):
    grays, spec = nih_films
    for degrees in (15.0, -15.0):
        angles = [turned_angle(resize_to_input(turn(gray, degrees), spec)) for gray in grays]
        found = [angle for angle in angles if angle is not None]
        assert len(found) >= 22, f"{degrees}°: {angles}"  # 98 % of 1113 NIH films (docs/robustness.md)
        assert all(abs(angle - degrees) < 1.5 for angle in found), angles
    assert [turned_angle(resize_to_input(gray, spec)) for gray in grays] == [None] * len(grays)


def test_any_fill_any_canvas_a_frame_and_jpeg(nih_films):
    grays, spec = nih_films
    for gray in grays[:4]:
        wide = cv2.resize(gray, (gray.shape[1], gray.shape[0] * 2 // 3), interpolation=cv2.INTER_AREA)
        framed = cv2.copyMakeBorder(turn(gray, 10), 8, 8, 8, 8, cv2.BORDER_CONSTANT, value=255)
        jpeg = cv2.imdecode(cv2.imencode(".jpg", turn(gray, -10, fill=255), [cv2.IMWRITE_JPEG_QUALITY, 90])[1], 0)
        changed = [turn(gray, 10, fill=255), turn(gray, -15, fill=128, expand=True), turn(wide, 15), framed, jpeg]
        for film in changed:
            assert turned_angle(resize_to_input(film, spec)) is not None


def test_mirror_symmetric_dark_corners_a_shutter_and_one_wedge_are_not_a_turn(nih_films):
    """Dark background beside a patient makes wedges left and right alike, which no turn does; so does a
    shutter cutting every corner alike (whose opposite corners agree as a turn's do); one wedge alone (a cut
    corner, a label) is not a turn either."""
    grays, spec = nih_films
    for gray in grays[:6]:
        h, w = gray.shape
        left = np.array([[0, h // 2], [0, h - 1], [w // 5, h - 1]], np.int32)
        right = left.copy()
        right[:, 0] = w - 1 - right[:, 0]
        both, one, shutter = gray.copy(), gray.copy(), gray.copy()
        cv2.fillPoly(both, [left, right], 0)
        cv2.fillPoly(one, [left], 0)
        across, down = w // 3, h // 12  # the same cut at every corner; a marker on two of them leaves two
        for x, y, dx, dy in ((0, 0, 1, 1), (w - 1, 0, -1, 1), (0, h - 1, 1, -1), (w - 1, h - 1, -1, -1)):
            cv2.fillPoly(shutter, [np.array([[x, y], [x + dx * across, y], [x, y + dy * down]], np.int32)], 0)
        for x, y in ((w - w // 6, h // 60), (w // 6, h - 1 - h // 60)):  # on the top right and bottom left cuts
            cv2.circle(shutter, (x, y), h // 60, 255, -1)  # clean wedges at opposite corners, which agree
        for film in (both, one, shutter):
            assert turned_angle(resize_to_input(film, spec)) is None


def test_a_turned_film_is_named_and_never_flagged_urgent(nih_sample, tmp_path):
    turned, upright = triage_upright_and_changed(nih_sample, tmp_path, lambda gray: turn(gray, 15), 4)
    assert all(r["quality"] not in (OK, "") and r["urgent"] == "0" and r["priority"] != "urgent" for r in turned)
    assert sum(r["quality"] == TILTED for r in turned) >= 3  # the guard may name one first
    assert sum(r["quality"] == OK for r in upright) >= 3
