"""How much small turns (±3-10°) move the shipped model's score on the NIH Cardiomegaly films it flags, with the
turn check of cxr_desktop/core/tilt.py on, or off (``off``: what the model and its guard alone would do). It
runs scripts/film_changes.py with these turns in place of its usual changes.

    .venv/bin/python scripts/small_turns.py on|off [--json PATH]
"""

from __future__ import annotations

import sys

import film_changes  # scripts/film_changes.py

from cxr_desktop.core import pixel_checks
from cxr_desktop.core.tilt import TILTED

TURNS = (-10, -7, -5, -3, 3, 5, 7, 10)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("on", "off"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "off":  # every pixel check but the turn check
        pixel_checks.CHECKS = tuple(check for check in pixel_checks.CHECKS if check[0] != TILTED)
    film_changes.PIXEL_CHANGES = {f"rotated {d:+d}°": film_changes.rotate(float(d)) for d in TURNS}
    return film_changes.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
