"""How often the box check (cxr_desktop/core/occlusion.py) fires on real films, changed and unchanged.

Every NIH film of ../shared (nih14-sample and nih14-extra, 1113) and every `cardiomegaly-local/test` film (1018,
the local hospital's) goes through the app's preprocessing (the shipped model's card) and the check, untouched
and, for the NIH films, changed as in scripts/film_changes.py plus boxes of other sizes and a black one. A false
alarm is a real film without a box that the check names; the check needs no fit, so no film was seen before.

    .venv/bin/python scripts/box_check.py > eval/box_check.md
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
from film_changes import DATA, HEART, border, burnt_in_text, filled_box, heart_box, rotate  # scripts/film_changes.py

from cxr_desktop.core.card import read_card
from cxr_desktop.core.occlusion import covering_box
from cxr_desktop.core.preprocess import resize_to_input, to_uint8
from cxr_desktop.core.resources import default_model_dir
from cxr_desktop.studies.reader import read_study

Change = Callable[[np.ndarray, np.random.Generator], np.ndarray]


CHANGES: dict[str, Change] = {
    "untouched": lambda gray, rng: gray,
    "box over the heart (28 x 22 % of the sides, grey 200)": heart_box,
    "box 12 x 12 % of the sides, grey 200": filled_box((0.50, 0.55, 0.62, 0.67), 200),
    "box 8 x 8 % of the sides, grey 200": filled_box((0.50, 0.55, 0.58, 0.63), 200),
    "black box over the heart (28 x 22 %)": filled_box(HEART, 0),
    "burnt-in PORTABLE AP + L": burnt_in_text,
    "rotated +15°": rotate(15),
    "20 % dark border": border(0.2),
    "25 % dark border": border(0.25),
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
    print("| films | change | films | named by the box check |\n|---|---|---:|---:|")
    for name, files, changes in (("NIH", nih, CHANGES), ("local test", local, {"untouched": CHANGES["untouched"]})):
        named = dict.fromkeys(changes, 0)
        for path in files:
            gray = to_uint8(read_study(path).image)
            for change, apply in changes.items():
                named[change] += covering_box(resize_to_input(apply(gray, rng), spec)) is not None
        for change, count in named.items():
            print(f"| {name} | {change} | {len(files)} | {count} ({100 * count / len(files):.1f} %) |")


if __name__ == "__main__":
    main()
