"""The Help menu's "Keys and gestures" window (F1)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QScrollArea, QVBoxLayout, QWidget

KEYS = [
    ("↓ / ↑", "next / previous study in the worklist"),
    ("Home / End", "first / last study"),
    ("N or Space", "next unreviewed flagged study"),
    ("C", "confirm the flag, then the next study (C again on a confirmed study undoes it)"),
    ("D", "dismiss the flag, then the next study (D again undoes it)"),
    ("Ctrl+Z", "undo the last decision (its study is selected again)"),
    ("E", "write a comment (Enter saves and returns to the list; Esc returns, keeping it)"),
    ("F / U", "flagged only / unreviewed only"),
    ("P / Shift+P", "the same patient's prior film, when it is on the list / it and this one side by side"),
    ("Ctrl+F", "search a patient ID, name or study date, e.g. 2025-03 (Enter returns to the list)"),
    ("Tab", "leave the list (to the film's controls)"),
    ("H", "heatmap (Grad-CAM) on / off"),
    ("I", "invert the film (kept for the next films)"),
    ("R", "reset window / level"),
    ("+ / −", "zoom in / out (the film is fitted again on a resize until you zoom)"),
    ("Ctrl+P", "choose the operating point (fewer or more flags)"),
    ("Ctrl++ / Ctrl+−", "larger / smaller text"),
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
    "marked WAITED), then flagged studies (\u201cSuspected cardiomegaly\u201d) by score, highest first, with a "
    "score bar whose tick is the threshold, then \u201cCheck film\u201d studies by score: a score at or "
    "above the threshold on a film the input check doubts (rotated, inverted, mirrored, not a chest film, a box "
    "drawn over it, turned or collimated at an angle), shown with the reason; then the rest in arrival order. "
    "A lateral view is outside the model's scope and stays routine. "
    "The <i>Operating point</i> menu sets the score threshold that flags a study."
)
SCORE_NOTE = (
    "<b>The score is a ranking score, not a probability.</b> It orders studies (a higher score, more likely the "
    "finding), but its value is not the chance that the finding is present: the model was trained on a balanced "
    "set and is not calibrated (the shipped model: expected calibration error 0.21 on 1,113 external NIH images)."
)
HEATMAP_NOTE = (
    "<b>The heatmap</b> shows where the model looked for its score, weighed by the study's score over the flag "
    "threshold, so its colour means the same on every study: red marks what drives a score at or above the flag; "
    "a study scoring below a fifth of the threshold shows no colour, and faint values draw nothing (no wash). "
    "On a film the input check doubts, a note under the film says the heatmap may not mean anything. "
    "<i>Waiting</i> is the time since the study came on this worklist, not its age (see <i>Study date</i>)."
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

    notes = "".join(f"<p>{note}</p>" for note in (SCORE_NOTE, ORDER_NOTE, HEATMAP_NOTE, RESEARCH_NOTE))
    return table("Keys", KEYS) + table("Mouse, on the image", GESTURES) + notes


class HelpDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keys and gestures")
        layout = QVBoxLayout(self)
        self.text = QLabel(help_html())
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setWordWrap(True)
        self.text.setMargin(8)
        scroll = QScrollArea()  # the whole text, however small the screen or large the font
        scroll.setWidget(self.text)
        scroll.setWidgetResizable(True)
        layout.addWidget(scroll, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)
        self.resize(640, 820)
