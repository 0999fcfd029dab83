"""The triage session's events as Qt signals. The session announces a change in the thread that made it (the
scoring thread, mostly); a slot of a QObject in the GUI thread connected here gets it queued, in the GUI
thread, with no polling and no flag shared between threads."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from cxr_desktop.worklist.session import TriageSession


class SessionBridge(QObject):
    rows_changed = Signal(list)  # paths
    progress = Signal(int, int)  # done, total
    idle = Signal()
    notice = Signal(str)
    policy_changed = Signal(object)  # TriagePolicy
    replaced = Signal(list)  # paths of rows whose file now holds another study: their heatmaps are void

    def __init__(self, session: TriageSession, parent: QObject | None = None) -> None:
        super().__init__(parent)
        events = session.events
        events.rows_changed.connect(self.rows_changed.emit)
        events.progress.connect(self.progress.emit)
        events.idle.connect(self.idle.emit)
        events.notice.connect(self.notice.emit)
        events.policy_changed.connect(self.policy_changed.emit)
        events.replaced.connect(self.replaced.emit)
