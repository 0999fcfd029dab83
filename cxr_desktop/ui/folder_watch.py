"""The "Watch folder" mode: new files in the opened folders, and failed files there that change, are sent to
the scoring worker (which reads a file only once its size and mtime have settled)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject

MAX_WATCHED_FILES = 256  # failed files watched for a change (inotify watches are a limited resource)


class FolderWatch(QObject):
    def __init__(self, rescan: Callable[[list[str]], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.folders: list[str] = []
        self.on = False
        self.watcher = QFileSystemWatcher(self)
        self._rescan = rescan
        self._tried: set[str] = set()  # failed files given to the watcher (some it may have refused)
        self.watcher.directoryChanged.connect(lambda folder: self._rescan([folder]))
        self.watcher.fileChanged.connect(lambda path: self._rescan([path]))

    def set(self, on: bool, folders: list[str] | None = None) -> None:
        """Watch ``folders`` (default: the ones watched so far) while ``on``; nothing while off."""
        self.on, self.folders = on, folders or self.folders
        self._tried.clear()
        watching = self.watcher.directories() + self.watcher.files()
        if watching:
            self.watcher.removePaths(watching)
        if on and self.folders:
            self.watcher.addPaths(self.folders)

    def watch_failed(self, paths: Iterable[Path]) -> None:
        """Failed files of a watched folder are watched themselves: a file that changes is read again, also
        one that changed before the watch began."""
        if not self.on:
            return
        folders = {Path(folder) for folder in self.folders}
        files = [str(p) for p in paths if p.parent in folders and str(p) not in self._tried]
        room = MAX_WATCHED_FILES - len(self.watcher.files())
        if files and room > 0:
            self._tried.update(files[:room])  # once each, even where the watcher refuses one (unreadable, gone)
            self.watcher.addPaths(files[:room])
            # a file that changed between its failure and this watch would go unnoticed: look once now (the
            # session reads it again only if its size or mtime differ from when it failed)
            self._rescan(files[:room])
