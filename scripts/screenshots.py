"""Save screenshots of the app's main states (offscreen) with the shipped model:

QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py FOLDER...
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication  # noqa: E402

from cxr_desktop.core.resources import default_model_dir  # noqa: E402
from cxr_desktop.ui.demo import write_demo_studies  # noqa: E402
from cxr_desktop.ui.main_window import MainWindow  # noqa: E402
from cxr_desktop.worklist.reviews import ReviewStore  # noqa: E402


def wait(app: QApplication, condition, seconds: float = 120) -> None:
    import time

    end = time.time() + seconds
    while not condition() and time.time() < end:
        app.processEvents()
        time.sleep(0.02)


def shoot(app, paths: list[str], out: Path, synthetic: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(
            default_model_dir(), ReviewStore(Path(tmp) / "r.sqlite3"), device="cpu", synthetic=synthetic
        )
        window.resize(1500, 900)
        window.show()
        wait(app, lambda: window.engine is not None)
        window.open_paths(paths)
        wait(app, lambda: window.worklist.rows and window.worklist.counts()["queued"] == 0)
        wait(app, lambda: False, 0.5)
        window.table.selectRow(0)
        wait(app, lambda: window.view.heatmap is not None, 60)
        window.grab().save(str(out))
        print("saved", out)
        window.close()


def main() -> None:
    app = QApplication(sys.argv[:1])
    out = Path("docs/screenshots")
    out.mkdir(parents=True, exist_ok=True)
    shoot(app, sys.argv[1:], out / "worklist-real-studies.png")
    shoot(app, [str(write_demo_studies())], out / "worklist-synthetic-demo.png", synthetic=True)


if __name__ == "__main__":
    main()
