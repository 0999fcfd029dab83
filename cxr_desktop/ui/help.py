"""The Help menu's "Keys and gestures" window (F1)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

KEYS = [
    ("↑ / ↓", "next / previous study in the worklist"),
    ("H", "heatmap (Grad-CAM) on / off"),
    ("C", "confirm the flag (press again to undo)"),
    ("D", "dismiss the flag (press again to undo)"),
    ("Enter", "save the comment being typed"),
    ("R", "reset window / level"),
    ("+ / −", "zoom in / out"),
    ("F1", "this help"),
]
GESTURES = [
    ("left drag", "window / level (horizontal: width, vertical: level)"),
    ("middle drag, or Shift + left drag", "pan"),
    ("wheel", "zoom"),
    ("double-click", "fit the image to the view"),
    ("drop files or folders", "open them"),
]
ORDER_NOTE = (
    "Reading order: studies that have waited longer than <i>Max wait</i> come first (longest wait first, "
    "marked WAITED), then urgent studies by score (highest first), then the rest in arrival order. "
    "The <i>Operating point</i> menu sets the threshold that flags a study urgent."
)


def help_html() -> str:
    def table(title: str, rows: list[tuple[str, str]]) -> str:
        cells = "".join(f"<tr><td><b>{key}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>" for key, what in rows)
        return f"<h3>{title}</h3><table cellspacing='2'>{cells}</table>"

    return table("Keys", KEYS) + table("Mouse, on the image", GESTURES) + f"<p>{ORDER_NOTE}</p>"


class HelpDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keys and gestures")
        layout = QVBoxLayout(self)
        self.text = QLabel(help_html())
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setWordWrap(True)
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        self.resize(520, 420)
