"""Save screenshots of the app's main states (offscreen, at 1,920 x 1,080 and 1,280 x 800) on the shipped demo
with the shipped model:

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py [--refused FILE] [--out docs/screenshots]

worklist.png and worklist-1280x800.png (the demo triaged, the top study selected with its heatmap),
heatmap.png (the viewer and the findings of that study), help.png (Help > Keys and gestures, F1),
input-check.png (a demo film turned 90° and one inverted, which the input guard doubts, and one with a box
drawn over the heart and one stored turned by 15°, which the pixel checks name; boxed-film.png and
turned-film.png show those selected), refused-file.png (a file that is not a chest radiograph, selected: by
default the CT slice of ../shared/data/dicom, else a generated one) and ai-off.png (no model could be loaded).
The app's settings (splitter, text size) are a fresh file's, not the user's.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["CXR_SETTINGS"] = os.path.join(tempfile.mkdtemp(prefix="cxr-screenshots-"), "settings.ini")

from PySide6.QtCore import QRect  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from cxr_desktop.core.resources import default_model_dir, demo_dir  # noqa: E402
from cxr_desktop.ui.main_window import MainWindow  # noqa: E402
from cxr_desktop.worklist.reviews import ReviewStore  # noqa: E402
from cxr_desktop.worklist.rows import DONE  # noqa: E402

log = logging.getLogger("screenshots")
REPO = Path(__file__).resolve().parents[1]
SHARED_CT = REPO.parent / "shared" / "data" / "dicom" / "not_chest_ct_abdomen.dcm"


def wait(app: QApplication, condition: Callable[[], bool], seconds: float = 120) -> None:
    end = time.time() + seconds
    while not condition() and time.time() < end:
        app.processEvents()
        time.sleep(0.02)


LARGE, SMALL = (1920, 1080), (1280, 800)


def open_window(
    app: QApplication, store: Path, paths: list[str], size: tuple[int, int] = LARGE, model: Path | None = None
) -> MainWindow:
    window = MainWindow(model or default_model_dir(), ReviewStore(store), device="cpu", demo=True)
    window.resize(*size)
    window.show()
    if model is not None:  # a model that cannot be loaded: AI triage is off
        wait(app, lambda: window.model.ai_off)
        window.open_paths(paths)
        wait(app, lambda: len(window.session.rows_in_arrival()) >= len(paths))
        wait(app, lambda: False, 1.0)
        return window
    wait(app, lambda: window.engine is not None)
    window.open_paths(paths)
    wait(app, lambda: len(window.session.rows_in_arrival()) >= len(paths) and window.session.counts()["queued"] == 0)
    wait(app, lambda: False, 0.5)  # a refresh tick
    return window


def select(app: QApplication, window: MainWindow, index: int, heatmap: bool) -> None:
    window.table.selectRow(index)
    if heatmap:
        wait(app, lambda: window.view.image is not None and window.view.heatmap is not None, 60)
    elif window.model.row_at(index).status == DONE:  # a scored study's image is shown (a refused one has none)
        wait(app, lambda: window.view.image is not None, 60)
    wait(app, lambda: False, 0.3)


def refused_file(folder: Path, given: Path | None) -> Path:
    source = given or (SHARED_CT if SHARED_CT.exists() else None)
    if source is None:
        import numpy as np

        from cxr_desktop.studies.synthetic import write_dicom

        slab = np.random.default_rng(0).integers(-1000, 1000, (256, 256)).astype(np.int16)
        return write_dicom(folder / "ct_abdomen.dcm", slab, modality="CT", view_position="", body_part="ABDOMEN")
    link = folder / source.name
    link.symlink_to(source.resolve())
    return link


def doubtful_films(folder: Path) -> list[Path]:
    """A demo cardiomegaly film turned 90°, one with inverted polarity, one with a box drawn over the heart and
    one stored turned by 15°, as PNGs: the input guard doubts the first two and the pixel checks name the others,
    so none is flagged urgent on its score alone."""
    import cv2
    import numpy as np
    from film_changes import heart_box, rotate  # scripts/film_changes.py: the changes its measurements make

    from cxr_desktop.core.preprocess import to_uint8
    from cxr_desktop.studies.reader import read_study

    gray = to_uint8(read_study(demo_dir() / "demo_02.dcm").image)
    names = ("rotated", "inverted", "boxed", "turned-15")
    paths = [folder / f"demo_02-{name}.png" for name in names]
    cv2.imwrite(str(paths[0]), np.ascontiguousarray(np.rot90(gray)))
    cv2.imwrite(str(paths[1]), 255 - gray)
    cv2.imwrite(str(paths[2]), heart_box(gray, np.random.default_rng(0)))
    cv2.imwrite(str(paths[3]), rotate(15)(gray, np.random.default_rng(0)))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refused", type=Path, default=None, help="a file the app must refuse (default: a CT)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = QApplication(sys.argv[:1])
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        window = open_window(app, Path(tmp) / "r0.sqlite3", [str(demo_dir())], SMALL)
        select(app, window, 0, heatmap=True)
        window.grab().save(str(args.out / "worklist-1280x800.png"))
        window.close()

        window = open_window(app, Path(tmp) / "r.sqlite3", [str(demo_dir())])
        select(app, window, 0, heatmap=True)
        window.grab().save(str(args.out / "worklist.png"))
        split = window.centralWidget()  # the viewer and the findings, right of the worklist
        left = split.widget(1).geometry().left()
        split.grab(QRect(left, 0, split.width() - left, split.height())).save(str(args.out / "heatmap.png"))
        window.show_help()
        wait(app, lambda: False, 0.3)
        window.help_dialog.grab().save(str(args.out / "help.png"))
        window.help_dialog.close()
        window.close()

        bad = refused_file(Path(tmp), args.refused)
        window = open_window(app, Path(tmp) / "r2.sqlite3", [str(demo_dir()), str(bad)])
        index = next(i for i, row in enumerate(window.model.visible) if row.path == bad)
        select(app, window, index, heatmap=False)
        window.grab().save(str(args.out / "refused-file.png"))
        window.close()

        doubted = doubtful_films(Path(tmp))
        window = open_window(app, Path(tmp) / "r3.sqlite3", [str(demo_dir()), *map(str, doubted)])
        for film, name in ((doubted[0], "input-check"), (doubted[2], "boxed-film"), (doubted[3], "turned-film")):
            select(app, window, next(i for i, row in enumerate(window.model.visible) if row.path == film), False)
            window.grab().save(str(args.out / f"{name}.png"))
        window.close()

        window = open_window(app, Path(tmp) / "r4.sqlite3", [str(demo_dir())], model=Path(tmp) / "no-model")
        select(app, window, 0, heatmap=False)
        window.grab().save(str(args.out / "ai-off.png"))
        window.close()
    names = ("worklist", "worklist-1280x800", "heatmap", "help", "refused-file", "input-check", "boxed-film")
    names += ("turned-film", "ai-off")
    for name in names:
        log.info("saved %s", args.out / f"{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
