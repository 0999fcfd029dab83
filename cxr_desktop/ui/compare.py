"""Side by side: the study shown and the same patient's prior film (Shift+P), each fitted, at the same window
and polarity as the main viewer; both films drag, zoom and pan on their own."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QDialog, QGridLayout, QLabel, QWidget

from cxr_desktop.ui.image_view import ImageView
from cxr_desktop.worklist.rows import Row


class CompareDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare with the prior film")
        self.views = (ImageView(), ImageView())
        self.titles = (QLabel(""), QLabel(""))
        layout = QGridLayout(self)
        for column, (title, view) in enumerate(zip(self.titles, self.views, strict=True)):
            layout.addWidget(title, 0, column)
            layout.addWidget(view, 1, column)
            layout.setColumnStretch(column, 1)
        layout.setRowStretch(1, 1)
        self.resize(1400, 800)

    def show_pair(self, films: list[tuple[Row, np.ndarray]], like: ImageView, finding: str) -> None:
        """``films``: (row, image) of the prior and of the study shown, left to right; ``like``: the main viewer,
        whose window and polarity both take."""
        for (row, image), title, view in zip(films, self.titles, self.views, strict=True):
            score = row.probabilities.get(finding)
            title.setText(f"<b>{row.path.name}</b>" + (f" · score {score:.2f}" if score is not None else ""))
            view.set_overlay(False)
            view.inverted = like.inverted
            view.set_image(image)
            view.set_window(like.center, like.width)
        self.show()
        self.raise_()
        for view in self.views:
            view.fit()
