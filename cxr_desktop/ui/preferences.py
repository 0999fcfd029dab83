"""The reader's own settings, kept between runs (QSettings): the splitter between the worklist, the film and the
findings, the text size and the reader's name. ``CXR_SETTINGS`` names an INI file to use instead of the user's
settings (tests, screenshots)."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings

ORGANISATION, APPLICATION = "cxr-desktop", "CXR Triage"
SPLITTER, FONT_PT, READER = "window/splitter", "view/font_pt", "reader/name"


def settings() -> QSettings:
    path = os.environ.get("CXR_SETTINGS")
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(ORGANISATION, APPLICATION)
