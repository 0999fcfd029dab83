"""The "Watch folder" mode: new files anywhere under the opened folders (sub-folders included, also ones
created later, as PACS exports arrive: ``PAT123/STUDY1/IM0001.dcm``), listed files that change, and failed
files that change are sent to the scoring worker (which reads a file only once its size and mtime have
settled, and reads a changed file again: it may hold another study now).

Events first: every folder of the tree is watched (inotify on Linux), so a new file or folder is seen at once.
A folder event does not say that a file inside it was rewritten in place, and events do not come from every
share: a sweep of the whole tree every ``SWEEP_MS`` catches those (only files whose stamp changed are read)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer

log = logging.getLogger(__name__)

MAX_WATCHED_FILES = 256  # failed files watched for a change (inotify watches are a limited resource)
SWEEP_MS = 15_000  # the whole tree is looked at this often (rewrites in place, shares without events)


class FolderWatch(QObject):
    def __init__(self, rescan: Callable[[list[str]], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.folders: list[str] = []
        self.on = False
        self.watcher = QFileSystemWatcher(self)
        self._rescan = rescan
        self._tried: set[str] = set()  # failed files given to the watcher (some it may have refused)
        self._warned = False  # the watcher refused a folder (watch limit): said once
        self.watcher.directoryChanged.connect(self._folder_changed)
        self.watcher.fileChanged.connect(lambda path: self._rescan([path]))
        self.sweep = QTimer(self, interval=SWEEP_MS, timeout=lambda: self._rescan(list(self.folders)))

    def set(self, on: bool, folders: list[str] | None = None) -> None:
        """Watch ``folders`` (default: the ones watched so far) and every folder under them while ``on``;
        nothing while off."""
        self.on, self.folders = on, folders or self.folders
        self._tried.clear()
        watching = self.watcher.directories() + self.watcher.files()
        if watching:
            self.watcher.removePaths(watching)
        self.sweep.stop()
        if on and self.folders:
            self._watch_tree(self.folders)
            self.sweep.start()

    def _folder_changed(self, folder: str) -> None:
        """A file or folder was added, removed or renamed in ``folder``: new sub-folders are watched (with
        what is under them), then the folder is scanned, so that nothing written into a new sub-folder before
        its watch began is missed."""
        self._watch_tree([folder])
        self._rescan([folder])

    def _watch_tree(self, roots: Iterable[str]) -> None:
        """Watch ``roots`` and the folders under them not watched yet (never following folder links)."""
        watched = set(self.watcher.directories())
        new: list[str] = []
        for root in roots:
            for folder, dirs, _files in os.walk(root, followlinks=False):  # unlistable ones: the scan's rows
                dirs.sort()
                if folder not in watched:
                    new.append(folder)
        refused = self.watcher.addPaths(new) if new else []
        if refused and not self._warned:
            self._warned = True
            log.warning("%d folders cannot be watched (watch limit?): the sweep finds their files", len(refused))

    def _watched_root(self, path: Path) -> bool:
        return any(path.is_relative_to(folder) for folder in self.folders)

    def watch_failed(self, paths: Iterable[Path]) -> None:
        """Failed files (and folders that could not be listed) under a watched folder are watched themselves:
        one that changes is read again, also one that changed before the watch began."""
        if not self.on:
            return
        files = [str(p) for p in paths if self._watched_root(p) and str(p) not in self._tried]
        room = MAX_WATCHED_FILES - len(self.watcher.files())
        if files and room > 0:
            self._tried.update(files[:room])  # once each, even where the watcher refuses one (unreadable, gone)
            self.watcher.addPaths(files[:room])
            # a file that changed between its failure and this watch would go unnoticed: look once now (the
            # session reads it again only if its stamp differs from when it failed)
            self._rescan(files[:room])
