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
    "marked WAITED), then URGENT studies by score (highest first), then CHECK studies by score: a score at or "
    "above the threshold on a film the input check doubts (rotated, inverted, not a chest film), shown with the "
    "reason; then the rest in arrival order. A lateral view is outside the model's scope and stays routine. "
    "The <i>Operating point</i> menu sets the score threshold that flags a study."
)
SCORE_NOTE = (
    "<b>The score is a ranking score, not a probability.</b> It orders studies (a higher score, more likely the "
    "finding), but its value is not the chance that the finding is present: the model was trained on a balanced "
    "set and is not calibrated (the shipped model: expected calibration error 0.21 on 1,113 external NIH images)."
)
RESEARCH_NOTE = (
    "A model whose card has no external validation record for its urgent finding runs in <i>research mode</i>: "
    "scores are shown, but no study is flagged (a banner says so). <i>Settings ▸ Flag with an unvalidated "
    "model</i> (or <tt>--allow-unvalidated</tt>) flags anyway, under a red banner."
)


def help_html() -> str:
    def table(title: str, rows: list[tuple[str, str]]) -> str:
        cells = "".join(f"<tr><td><b>{key}</b>&nbsp;&nbsp;</td><td>{what}</td></tr>" for key, what in rows)
        return f"<h3>{title}</h3><table cellspacing='2'>{cells}</table>"

    notes = "".join(f"<p>{note}</p>" for note in (SCORE_NOTE, ORDER_NOTE, RESEARCH_NOTE))
    return table("Keys", KEYS) + table("Mouse, on the image", GESTURES) + notes


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
        self.resize(560, 560)
