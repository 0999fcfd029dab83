"""Evented plain Python (the pattern of napari's evented models): a session announces what changed through
small events that listeners connect to, ``session.events.rows_changed.connect(callback)``. No Qt: the app
turns them into Qt signals (``cxr_desktop.ui.session_bridge``), which carry them across threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

Callback = Callable[..., Any]


class Event:
    """Callbacks called in connection order, with the event's arguments, in the thread that emits. A
    callback's exception is not caught here: it reaches the code that made the change."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callback] = []
        self._lock = threading.Lock()

    def connect(self, callback: Callback) -> Callback:
        with self._lock:
            if callback not in self._callbacks:
                self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callback) -> None:
        with self._lock:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback(*args)

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {len(self._callbacks)} listeners)"


class SessionEvents:
    """What a :class:`~cxr_desktop.worklist.session.TriageSession` announces."""

    def __init__(self) -> None:
        self.rows_changed = Event("rows_changed")  # (paths): rows added, scored, re-flagged, reordered or reviewed
        self.progress = Event("progress")  # (done, total): studies scored of those queued
        self.idle = Event("idle")  # scoring has caught up with the list
        self.policy_changed = Event("policy_changed")  # (TriagePolicy): a new model or operating point
        self.notice = Event("notice")  # (message): something the user must be told (reviews not read)
        # (paths): listed files found changed on disk outside a scan (when decoded): to be read again
        self.files_changed = Event("files_changed")
        # (paths): rows whose file turned out to hold another study: their earlier heatmaps and images are void
        self.replaced = Event("replaced")
