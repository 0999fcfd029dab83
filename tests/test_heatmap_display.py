"""The heatmap never overstates (issue 23, item 3): its colour means the same on every study (weighed by the
score over the flag threshold), nothing is drawn below a floor (no wash over the film), the coarse Grad-CAM map
is upsampled smoothly (a round hot area, not a square), and a film that failed the input check says so."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from cxr_desktop.core.cam import scaled_maps
from cxr_desktop.core.heatmap_overlay import FLOOR, flag_scale, overlay
from cxr_desktop.worklist.rows import DONE, Row

GRAY = np.full((64, 64), 128, np.uint8)


def blob(size: int = 64) -> np.ndarray:
    """A per-image-scaled map as Grad-CAM gives it: 1 at the centre, falling to 0 at the edges."""
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    return np.clip(1 - np.hypot(y, x) / (size / 2), 0, 1).astype(np.float32)


def test_a_film_scoring_far_below_the_flag_shows_no_colour_at_all():
    threshold = 0.305
    shown = overlay(GRAY, blob(), opacity=1.0, scale=flag_scale(0.002, threshold))
    assert np.array_equal(shown, np.repeat(GRAY[:, :, None], 3, axis=2))


def test_colour_means_the_same_across_studies():
    """Two films with the same per-image map: the one at the flag is red at its hot spot, the one at a third
    of the threshold is not; two films at or above the flag look alike."""
    threshold, centre = 0.3, (32, 32)
    at_flag = overlay(GRAY, blob(), 1.0, flag_scale(0.92, threshold))
    also_flagged = overlay(GRAY, blob(), 1.0, flag_scale(0.45, threshold))
    low = overlay(GRAY, blob(), 1.0, flag_scale(0.10, threshold))
    red, green, blue = at_flag[centre].astype(int)
    assert red > 100 and red > green + 50 and red > blue + 50
    assert np.array_equal(at_flag, also_flagged)
    assert low[centre][0] < red - 50, "a third of the flag must not be drawn as red as the flag"


def test_no_wash_below_the_floor():
    shown = overlay(GRAY, blob(), opacity=0.5, scale=1.0)
    below = blob() < FLOOR
    assert below.mean() > 0.3
    assert np.array_equal(shown[below], np.repeat(GRAY[below][:, None], 3, axis=1))


@pytest.mark.parametrize("score", [float("nan"), None])
def test_no_score_no_colour(score):
    assert flag_scale(score, 0.3) == 0.0


def test_the_coarse_map_is_upsampled_smoothly_into_a_round_hot_area():
    cam = np.zeros((1, 7, 7), np.float32)
    cam[0, 3, 3] = 1.0
    shown = scaled_maps(cam, 224, 224)[0]
    hot = shown >= 0.5
    edge = hot & ~cv2.erode(hot.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    ys, xs = np.nonzero(edge)
    radius = np.hypot(ys - 111.5, xs - 111.5)
    # bilinear upsampling of one hot cell draws a square-edged diamond (radius ratio 1.22); bicubic a disc
    assert radius.max() / radius.min() < 1.1
    assert shown.min() >= 0.0 and shown.max() <= 1.0


def test_a_heatmap_on_a_film_that_failed_the_input_check_says_so():
    from cxr_desktop.ui.viewer_panel import heat_note

    row = Row(Path("inverted.png"), 0, 0.0, status=DONE, quality="inverted polarity", probabilities={"x": 0.9})
    assert "Input check failed (inverted polarity)" in heat_note(row, 0.9, 0.3)
    fine = Row(Path("ok.png"), 0, 0.0, status=DONE, quality="ok")
    assert heat_note(fine, 0.9, 0.3) == ""
    assert "No heatmap colour: score 0.01" in heat_note(fine, 0.01, 0.3)
