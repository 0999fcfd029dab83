"""Banners above the worklist for what the user must not miss: a review store that was damaged or cannot be
written, and every decision that could not be saved (``Banner``); a model that flags nothing because it has no
external validation record, or one that flags without it (``ModeBanner``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QLabel, QWidget

if TYPE_CHECKING:
    from cxr_desktop.inference.triage import TriagePolicy

STYLE = "QLabel { background: #ffe0e0; color: #800000; padding: 6px; border: 1px solid #c00000; }"
RESEARCH_STYLE = "QLabel { background: #fff4c2; color: #4d3b00; padding: 6px; border: 1px solid #b08c00; }"
UNVALIDATED_STYLE = "QLabel { background: #c00000; color: white; font-weight: bold; padding: 6px; }"
ALLOW_HINT = "Settings ▸ Flag with an unvalidated model"


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


class ModeBanner(QLabel):
    """What the policy's flagging mode says (``TriagePolicy.mode_note``): research mode in amber, flagging with
    an unvalidated model in red; hidden for a validated model."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.hide()

    def show_policy(self, policy: TriagePolicy | None) -> None:
        note = policy.mode_note if policy is not None else ""
        if note and policy.research_mode:
            note += f". {ALLOW_HINT} flags anyway."
        elif note:
            note += f": flags allowed by --allow-unvalidated or {ALLOW_HINT}."
        self.setStyleSheet(RESEARCH_STYLE if policy is not None and policy.research_mode else UNVALIDATED_STYLE)
        self.setText(note)
        self.setVisible(bool(note))
