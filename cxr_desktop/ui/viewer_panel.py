"""The film and what is drawn with it: the display controls (heatmap, opacity, window, invert), the viewer, the
heatmap's colour legend and its note (no colour below the floor; a film that failed the input check), and the
comment box."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from cxr_desktop.core.heatmap_overlay import FLOOR, flag_scale, jet
from cxr_desktop.studies.windowing import PRESETS
from cxr_desktop.ui.image_view import ImageView
from cxr_desktop.worklist.rows import Row

CUSTOM = "Custom"  # the Window box when the window was dragged to no preset
LEGEND_TIP = (
    "The heatmap shows where the model looked for its score, weighed by the study's score over the flag "
    f"threshold: red marks what drives a score at or above the flag; below {FLOOR:.0%} of it nothing is drawn. "
    "It is the same scale on every study."
)


def legend_pixmap(width: int = 100, height: int = 12) -> QPixmap:
    """The colours the overlay uses, from the floor (left) to the flag (right)."""
    row = jet(np.linspace(FLOOR, 1.0, width, dtype=np.float32)[None, :])
    rgb = np.ascontiguousarray(np.repeat(row, height, axis=0))
    image = QImage(rgb.data, width, height, rgb.strides[0], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


def heat_note(row: Row, score: float | None, threshold: float | None) -> str:
    """What the reader must know about this study's heatmap ("" when nothing)."""
    notes = []
    if row.doubtful:
        notes.append(f"⚠ Input check failed ({row.quality}): the heatmap is of a film the model may not read right")
    if score is not None and flag_scale(score, threshold) < FLOOR:
        limit = f" {threshold:.3f}" if threshold is not None else ""
        notes.append(f"No heatmap colour: score {score:.2f} is below {FLOOR:.0%} of the flag threshold{limit}")
    return " · ".join(notes)


class ViewerPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = ImageView()
        self.heatmap_box = QCheckBox("Heatmap (H)")
        self.heatmap_box.setChecked(True)
        self.heatmap_box.setToolTip(LEGEND_TIP)
        self.heatmap_box.toggled.connect(lambda on: self.view.set_overlay(on))
        self.opacity = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=50)
        self.opacity.setFixedWidth(80)
        self.opacity.setToolTip("Heatmap opacity: how strongly its colours cover the film (0: not at all)")
        self.opacity.valueChanged.connect(lambda v: self.view.set_overlay(self.heatmap_box.isChecked(), v / 100))
        self.view.opacity = self.opacity.value() / 100
        self.preset = QComboBox()
        self.preset.addItems([*PRESETS, CUSTOM])
        self.preset.setToolTip("Window / level preset. Left-drag on the film sets it freely; R resets it")
        self.preset.textActivated.connect(self._preset_chosen)
        self.view.window_changed.connect(self._window_shown)
        self.invert_box = QCheckBox("Invert (I)")
        self.invert_box.setToolTip("Show the film as a negative; kept from study to study")
        self.invert_box.toggled.connect(self.view.set_inverted)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #8a0000")
        self.comment = QLineEdit(placeholderText="Comment on the selected study (E; Enter saves, Esc returns)")
        self.setMinimumWidth(360)  # the splitter may narrow the film's pane below its controls' width
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._controls())
        layout.addWidget(self.view, 1)
        layout.addWidget(self.note)
        layout.addWidget(self.comment)

    def _controls(self) -> QGridLayout:
        """The heatmap's controls and legend, then the film's (window, invert): on one line, or on two when the
        pane is narrower than both (``resizeEvent``)."""
        legend = QLabel()
        legend.setPixmap(legend_pixmap())
        low, high = QLabel(f"{FLOOR:.0%}"), QLabel("flag")
        for label in (legend, low, high):
            label.setToolTip(LEGEND_TIP)
        self._heat_group = self._group(self.heatmap_box, self.opacity, low, legend, high)
        self._film_group = self._group(QLabel("Window"), self.preset, self.invert_box)
        self._grid = QGridLayout()
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.addWidget(self._heat_group, 0, 0, Qt.AlignmentFlag.AlignLeft)
        self._grid.addWidget(self._film_group, 0, 1, Qt.AlignmentFlag.AlignLeft)
        self._grid.setColumnStretch(2, 1)
        return self._grid

    @staticmethod
    def _group(*widgets: QWidget) -> QWidget:
        group = QWidget()
        row = QHBoxLayout(group)
        row.setContentsMargins(0, 0, 8, 0)
        for widget in widgets:
            row.addWidget(widget)
        return group

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        wide = self.width() >= self._heat_group.sizeHint().width() + self._film_group.sizeHint().width() + 16
        place = (0, 1) if wide else (1, 0)
        if self._grid.getItemPosition(self._grid.indexOf(self._film_group))[:2] != place:
            self._grid.addWidget(self._film_group, *place, Qt.AlignmentFlag.AlignLeft)

    def show_image(self, image: np.ndarray | None, heatmap: np.ndarray | None, row: Row, policy) -> None:
        """The study's film with its heatmap when known (one render), weighed by the score over the flag
        threshold of ``policy`` (a ``TriagePolicy`` or None), and the heatmap's note."""
        score, threshold = self._score(row, policy)
        self.view.set_image(image, heatmap, flag_scale(score, threshold))
        self.note.setText(heat_note(row, score, threshold) if heatmap is not None else "")

    def show_heat(self, heatmap: np.ndarray | None, row: Row, policy) -> None:
        """The study's heatmap (it came after the film, or the policy changed), and its note."""
        score, threshold = self._score(row, policy)
        self.view.set_heatmap(heatmap, flag_scale(score, threshold))
        self.note.setText(heat_note(row, score, threshold) if heatmap is not None else "")

    @staticmethod
    def _score(row: Row, policy) -> tuple[float | None, float | None]:
        if policy is None:
            return None, None
        return row.probabilities.get(policy.finding), policy.threshold

    def _preset_chosen(self, name: str) -> None:
        if name in PRESETS:
            self.view.set_window(*PRESETS[name])

    def _window_shown(self, center: float, width: float) -> None:
        """The Window box in step with the film's window (R, a drag, a new study)."""
        name = next((n for n, w in PRESETS.items() if np.allclose(w, (center, width), atol=1e-3)), CUSTOM)
        self.preset.setCurrentText(name)
