"""A banner above the worklist for what the user must not miss: a review store that was damaged or cannot
be written, and every decision that could not be saved."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

STYLE = "QLabel { background: #ffe0e0; color: #800000; padding: 6px; border: 1px solid #c00000; }"


class Banner(QLabel):
    """Hidden while there is nothing to say; ``permanent`` text (e.g. read-only mode) stays under the
    latest message."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(STYLE)
        self.setWordWrap(True)
        self.permanent = ""
        self.hide()

    def set_permanent(self, text: str) -> None:
        self.permanent = text
        self.say("")

    def say(self, message: str) -> None:
        text = "\n".join(part for part in (message, self.permanent) if part)
        self.setText(text)
        self.setVisible(bool(text))
