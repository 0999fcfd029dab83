"""The desktop app's responsiveness, with the default model: launch to first paint, and the longest
event-loop stall while it triages a folder of full-size studies (a 5 ms timer records the gaps between its
ticks; the first row is selected mid-run so its image and Grad-CAM load while scoring goes on, and the timer
notes when the viewer holds them: the time a reader waits, not the time a worker sent them).

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/gui_responsiveness.py --count 200

First paint is measured by running the real `cxr-desktop` main() in a child process with an event filter
that stops the app at the main window's first paint (offscreen platform here: no compositor or GPU).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
from study_folder import SHARED, build_folder  # benchmarks/study_folder.py


def first_paint_child(launched: float) -> None:
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication(sys.argv[:1])

    class FirstPaint(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint and isinstance(obj, QMainWindow):
                print(f"FIRST_PAINT {time.time() - launched:.3f}", flush=True)
                app.removeEventFilter(self)
                QTimer.singleShot(0, app.quit)
            return False

    paint_filter = FirstPaint()
    app.installEventFilter(paint_filter)
    from cxr_desktop.ui.app import main

    main(["--reviews", str(Path(tempfile.mkdtemp()) / "r.sqlite3")])


def measure_first_paint(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        launched = time.time()
        out = subprocess.run(
            [sys.executable, __file__, "--first-paint-child", str(launched)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")},
        )
        line = next(line for line in out.stdout.splitlines() if line.startswith("FIRST_PAINT"))
        times.append(float(line.split()[1]))
    return times


def _where(frame, depth: int = 3) -> str:
    return " <- ".join(f"{f.name}:{f.lineno}" for f in reversed(traceback.extract_stack(frame)[-depth:]))


class StackSampler:
    """Samples the GUI thread's Python stack every few ms from another thread, so that a long event-loop gap can
    be told apart: a line of the GUI thread's own work, or a line where it waits for the GIL."""

    def __init__(self, period_s: float = 0.005) -> None:
        self.thread_id, self.period_s = threading.get_ident(), period_s
        self.samples: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StackSampler:
        self._worker.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._worker.join()

    def _run(self) -> None:
        last = time.perf_counter()
        while not self._stop.wait(self.period_s):
            now, frames = time.perf_counter(), sys._current_frames()
            if now - last > 0.05:  # this thread could not run either: some thread held the GIL; where is each now?
                names = {t.ident: t.name for t in threading.enumerate()}
                for ident, frame in frames.items():
                    if ident != threading.get_ident():
                        self.samples.append((now, f"[GIL] {names.get(ident, ident)}: {_where(frame)}"))
            last = now
            if self.thread_id in frames:
                self.samples.append((now, _where(frames[self.thread_id])))

    def during(self, start: float, end: float) -> list[tuple[str, int]]:
        return Counter(stack for t, stack in self.samples if start <= t <= end).most_common(8)


def measure_stalls(count: int, shared: Path, wait_for_warm_up: bool = True, explain: bool = False) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from cxr_desktop.core.resources import default_model_dir
    from cxr_desktop.ui.main_window import MainWindow
    from cxr_desktop.worklist.reviews import ReviewStore
    from cxr_desktop.worklist.rows import DONE, ERROR

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "studies"
        folder.mkdir()
        build_folder(folder, count, shared)
        window = MainWindow(default_model_dir(), ReviewStore(Path(tmp) / "r.sqlite3"), device="cpu")
        warmed: list[float] = []
        # runs in the Grad-CAM thread as it finishes warming up (a plain callable has no thread of its own)
        window.heat.warmed_up.connect(lambda: warmed.append(time.perf_counter()))
        shown = time.perf_counter()
        window.show()
        while window.engine is None or not (warmed or not wait_for_warm_up):
            app.processEvents()
            time.sleep(0.01)
        if warmed:
            print(f"model loaded and Grad-CAM warmed up {warmed[0] - shown:.1f} s after the window was shown")
        ticks: list[float] = []
        marks: dict[str, float] = {}

        def tick() -> None:
            now = time.perf_counter()
            ticks.append(now)
            shown = window.model.visible  # what the window shows (the session's lock is not taken here)
            if "first urgent" not in marks and any(row.urgent for row in shown):
                marks["first urgent"] = now
            finished = sum(row.status in (DONE, ERROR) for row in shown)
            if finished >= count // 2 and "selected" not in marks:
                marks["selected"] = now
                window.table.selectRow(0)  # the user opens the top study while scoring goes on
            elif "selected" in marks:  # seen by the GUI thread in the viewer, not when a worker sent it
                if window.view.image is not None:
                    marks.setdefault("image", now)
                if window.view.heatmap is not None:
                    marks.setdefault("heatmap", now)
            if finished >= count:
                marks.setdefault("done", now)
                if "heatmap" in marks:
                    app.quit()

        timer = QTimer(interval=5, timeout=tick)
        with StackSampler() as sampler:
            started = time.perf_counter()
            timer.start()
            window.open_paths([str(folder)])
            opened = time.perf_counter()
            app.exec()
        timer.stop()
        print(f"open_paths() returned to the event loop after {(opened - started) * 1000:.0f} ms")
        times = np.array([started, *ticks])
        gaps = np.diff(times) * 1000
        for i in np.flatnonzero(gaps > 100) if explain else []:
            print(f"gap of {gaps[i]:.0f} ms at {times[i] - started:.2f} s; the GUI thread was at:")
            for stack, n in sampler.during(times[i], times[i + 1] + 0.01):
                print(f"    {n:3d} samples  {stack}")
        print(f"app triaged {count} studies in {marks['done'] - started:.1f} s "
              f"({count / (marks['done'] - started):.1f} studies/s, {window.engine.description})")  # fmt: skip
        print(f"first urgent row {marks['first urgent'] - started:.2f} s after opening the folder")
        print(f"top study selected mid-run: image shown after {(marks['image'] - marks['selected']) * 1000:.0f} ms, "
              f"Grad-CAM after {(marks['heatmap'] - marks['selected']) * 1000:.0f} ms")  # fmt: skip
        print(f"event-loop gaps (5 ms timer, {len(gaps)} ticks): max {gaps.max():.0f} ms, "
              f"p99 {np.percentile(gaps, 99):.0f} ms, median {np.median(gaps):.1f} ms, "
              f"> 100 ms: {(gaps > 100).sum()}")  # fmt: skip
        window.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--paint-repeats", type=int, default=3)
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--first-paint-child", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--stalls-child", choices=["warm", "overlap"], help=argparse.SUPPRESS)
    parser.add_argument("--explain-stalls", action="store_true", help="print where the GUI thread was in each gap")
    args = parser.parse_args()
    if args.first_paint_child is not None:
        first_paint_child(args.first_paint_child)
        return
    if args.stalls_child:
        measure_stalls(args.count, args.shared, args.stalls_child == "warm", args.explain_stalls)
        return
    paints = measure_first_paint(args.paint_repeats)
    print(f"launch to first paint: {', '.join(f'{t:.2f}' for t in paints)} s (median {np.median(paints):.2f} s)")
    scenarios = {
        "warm": "folder opened once the model is loaded and Grad-CAM warmed up (a user picking a folder)",
        "overlap": "folder opened as soon as the model is loaded (`cxr-desktop FOLDER`): warm-up overlaps scoring",
    }
    for scenario, title in scenarios.items():  # each in a fresh process, imports included
        print(f"-- {title}", flush=True)
        command = [sys.executable, __file__, "--stalls-child", scenario, "--count", str(args.count)]
        command += ["--explain-stalls"] if args.explain_stalls else []
        out = subprocess.run([*command, "--shared", str(args.shared)], capture_output=True, text=True, timeout=600)
        print("\n".join(line for line in out.stdout.splitlines() if line.strip()), flush=True)


if __name__ == "__main__":
    main()
