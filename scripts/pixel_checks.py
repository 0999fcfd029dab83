"""How often the pixel checks (cxr_desktop/core/pixel_checks.py: the box check of core/occlusion.py, the turn
check of core/tilt.py) fire on real films, changed and unchanged.

Every NIH film of ../shared (nih14-sample and nih14-extra, 1113) and every `cardiomegaly-local/test` film (1018,
the local hospital's) goes through the app's preprocessing (the shipped model's card) and each check, untouched
and, for the NIH films, changed as in scripts/film_changes.py plus boxes of other sizes and a black one, and turns
of other angles, fills and canvases. A false alarm is a real film that a check names without the change it looks
for; the checks need no fit, so no film was seen before.

    .venv/bin/python scripts/pixel_checks.py > eval/pixel_checks.md
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from film_changes import DATA, HEART, border, burnt_in_text, filled_box, heart_box, rotate  # scripts/film_changes.py

from cxr_desktop.core.card import read_card
from cxr_desktop.core.occlusion import covering_box
from cxr_desktop.core.preprocess import resize_to_input, to_uint8
from cxr_desktop.core.resources import default_model_dir
from cxr_desktop.core.tilt import turned_angle
from cxr_desktop.studies.reader import read_study

Change = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def turned_on_grown_canvas(degrees: float, fill: int) -> Change:
    """The whole film turned on a canvas grown to hold it, filled with ``fill`` (a film scanned askew)."""

    def change(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = gray.shape
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
        size = (round(h * sin + w * cos), round(h * cos + w * sin))
        matrix[0, 2] += size[0] / 2 - w / 2
        matrix[1, 2] += size[1] / 2 - h / 2
        return cv2.warpAffine(gray, matrix, size, flags=cv2.INTER_LINEAR, borderValue=fill)

    return change


def wide_then(change: Change) -> Change:
    """``change`` applied to the film squeezed to 3:2 (landscape), so the model input is letterboxed."""
    return lambda gray, rng: change(cv2.resize(gray, (gray.shape[1], gray.shape[0] * 2 // 3)), rng)


CHANGES: dict[str, Change] = {
    "untouched": lambda gray, rng: gray,
    "box over the heart (28 x 22 % of the sides, grey 200)": heart_box,
    "box 12 x 12 % of the sides, grey 200": filled_box((0.50, 0.55, 0.62, 0.67), 200),
    "box 8 x 8 % of the sides, grey 200": filled_box((0.50, 0.55, 0.58, 0.63), 200),
    "black box over the heart (28 x 22 %)": filled_box(HEART, 0),
    "burnt-in PORTABLE AP + L": burnt_in_text,
    "rotated +15°": rotate(15),
    "rotated -15°": rotate(-15),
    "rotated +10°": rotate(10),
    "rotated +5°": rotate(5),
    "rotated +3°": rotate(3),
    "rotated -15° on a grown canvas, black": turned_on_grown_canvas(-15, 0),
    "rotated +15° on a grown canvas, grey 128": turned_on_grown_canvas(15, 128),
    "3:2 film (letterboxed), rotated +15°": wide_then(rotate(15)),
    "20 % dark border, then rotated +15°": lambda gray, rng: rotate(15)(border(0.2)(gray, rng), rng),
    "20 % dark border": border(0.2),
    "25 % dark border": border(0.25),
    "mirrored left-right": lambda gray, rng: np.ascontiguousarray(gray[:, ::-1]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    spec = read_card(default_model_dir()).spec
    nih = sorted((args.data / "nih14-sample" / "images").glob("*.png"))
    nih += sorted((args.data / "nih14-extra" / "images").glob("*.png"))
    local = sorted((args.data / "cardiomegaly-local" / "test").rglob("*.png"))
    rng = np.random.default_rng(0)
    print(f"model card {default_model_dir().name}: input {spec.input_size} px\n")
    print("| films | change | films | named by the box check | named by the turn check |\n|---|---|---:|---:|---:|")
    for name, files, changes in (("NIH", nih, CHANGES), ("local test", local, {"untouched": CHANGES["untouched"]})):
        boxed, turned = dict.fromkeys(changes, 0), dict.fromkeys(changes, 0)
        for path in files:
            gray = to_uint8(read_study(path).image)
            for change, apply in changes.items():
                model_input = resize_to_input(apply(gray, rng), spec)
                boxed[change] += covering_box(model_input) is not None
                turned[change] += turned_angle(model_input) is not None
        for change in changes:
            counts = f"{share(boxed[change], files)} | {share(turned[change], files)}"
            print(f"| {name} | {change} | {len(files)} | {counts} |")


def share(count: int, files: list[Path]) -> str:
    return f"{count} ({100 * count / len(files):.1f} %)"


if __name__ == "__main__":
    main()
