"""How often the pixel checks (cxr_desktop/core/pixel_checks.py: the box check of core/occlusion.py, the turn
check of core/tilt.py) fire on real films, changed and unchanged.

Every NIH film of ../shared/data (nih14-sample and nih14-extra, 1113) and every `cardiomegaly-local` film (5011, the
local hospital's, train and test) goes through the app's preprocessing (the shipped model's card) and each check,
untouched and, for the NIH films, changed as in scripts/film_changes.py plus boxes of other sizes and a black
one, turns of other angles, fills and canvases, and edits that make corner wedges without a turn (shutters, cut
corners, clipped darks). A false alarm is a real film that a check names without the change it looks for; the
checks need no fit, so no film was seen before. The untouched real films a check names are listed, to be looked
at.

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


def corner_cuts(across: float, down: float, corners: int = 4) -> Change:
    """Black triangles cut into the film's first ``corners`` corners (top left, bottom right, top right, bottom
    left), ``across`` and ``down`` fractions of its sides: a shutter's corners, not a turn."""

    def change(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = gray.shape
        a, d = round(across * w), round(down * h)
        out = gray.copy()
        for x, y, dx, dy in ((0, 0, 1, 1), (w - 1, h - 1, -1, -1), (w - 1, 0, -1, 1), (0, h - 1, 1, -1))[:corners]:
            cv2.fillPoly(out, [np.array([[x, y], [x + dx * a, y], [x, y + dy * d]], np.int32)], 0)
        return out

    return change


def tilted_shutter(degrees: float) -> Change:
    """Black outside a rectangle inset by 5 % and set at ``degrees``: collimation at an angle on an upright film."""

    def change(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = gray.shape
        corners = cv2.boxPoints(((w / 2, h / 2), (0.9 * w, 0.9 * h), degrees))
        inside = np.zeros_like(gray)
        cv2.fillPoly(inside, [np.intp(corners)], 255)
        return np.where(inside > 0, gray, 0).astype(np.uint8)

    return change


def noisy_fill(degrees: float, sigma: float) -> Change:
    """The film turned on a canvas of grey 20 with gaussian noise (a scanner bed)."""

    def change(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        turned = rotate(degrees)(gray, rng)
        outside = rotate(degrees)(np.full_like(gray, 255), rng) < 255
        noise = np.clip(20 + rng.normal(0, sigma, gray.shape), 0, 255).astype(np.uint8)
        return np.where(outside, noise, turned)

    return change


def jpeg(change: Change, quality: int) -> Change:
    def changed(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        encoded = cv2.imencode(".jpg", change(gray, rng), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)

    return changed


def clipped_darks(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every grey level below 60 set to black (a heavy window on export)."""
    return np.where(gray < 60, 0, gray).astype(np.uint8)


def white_frame(gray: np.ndarray, fraction: float) -> np.ndarray:
    width = round(fraction * gray.shape[0])
    return cv2.copyMakeBorder(gray, width, width, width, width, cv2.BORDER_CONSTANT, value=255)


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
    "rotated +10° on a noisy canvas (grey 20, sigma 1)": noisy_fill(10, 1.0),
    "rotated +10° on a noisy canvas (grey 20, sigma 2)": noisy_fill(10, 2.0),
    "rotated +10°, then framed by 2 % white": lambda gray, rng: white_frame(rotate(10)(gray, rng), 0.02),
    "rotated +10°, saved as JPEG quality 75": jpeg(rotate(10), 75),
    "shutter at 5° (upright film, black outside)": tilted_shutter(5),
    "20 % dark border": border(0.2),
    "25 % dark border": border(0.25),
    "mirrored left-right": lambda gray, rng: np.ascontiguousarray(gray[:, ::-1]),
    "corners cut alike (31 x 8 % of the sides)": corner_cuts(0.31, 0.08),
    "two opposite corners cut (8 x 78 %)": corner_cuts(0.08, 0.78, corners=2),
    "one corner cut (52 x 10 %)": corner_cuts(0.52, 0.10, corners=1),
    "darks below 60 clipped to black": clipped_darks,
    "saved as JPEG quality 50": jpeg(lambda gray, rng: gray, 50),
    "saved as JPEG quality 20": jpeg(lambda gray, rng: gray, 20),
    "darks below 60 clipped, then JPEG quality 50": jpeg(clipped_darks, 50),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    spec = read_card(default_model_dir()).spec
    nih = sorted((args.data / "nih14-sample" / "images").glob("*.png"))
    nih += sorted((args.data / "nih14-extra" / "images").glob("*.png"))
    local = sorted((args.data / "cardiomegaly-local").rglob("*.png"))
    rng = np.random.default_rng(0)
    print(f"model card {default_model_dir().name}: input {spec.input_size} px\n")
    print("| films | change | films | named by the box check | named by the turn check |\n|---|---|---:|---:|---:|")
    named_real: list[str] = []
    sets = (("NIH", nih, CHANGES), ("local (train and test)", local, {"untouched": CHANGES["untouched"]}))
    for name, files, changes in sets:
        boxed, turned = dict.fromkeys(changes, 0), dict.fromkeys(changes, 0)
        for path in files:
            gray = to_uint8(read_study(path).image)
            for change, apply in changes.items():
                model_input = resize_to_input(apply(gray, rng), spec)
                box, angle = covering_box(model_input), turned_angle(model_input)
                boxed[change] += box is not None
                turned[change] += angle is not None
                if change == "untouched" and (box is not None or angle is not None):
                    named_real.append(f"{path.relative_to(args.data)}: box {box}, turn {angle and round(angle, 1)}")
        for change in changes:
            counts = f"{share(boxed[change], files)} | {share(turned[change], files)}"
            print(f"| {name} | {change} | {len(files)} | {counts} |")
    print("\nUntouched real films named (look at each):", *named_real or ["none"], sep="\n- ")


def share(count: int, files: list[Path]) -> str:
    return f"{count} ({100 * count / len(files):.1f} %)"


if __name__ == "__main__":
    main()
