"""The window's file dialogs and drag-and-drop: everything that turns a user's pick into paths to open."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog


class FileActions:
    """Mixed into the main window, which provides ``open_paths``, ``export``, ``request_model`` and
    ``device_box``."""

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of studies")
        if folder:
            self.open_paths([folder])

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open studies", "", "Studies (*.dcm *.png *.jpg *.jpeg);;All (*)")
        if files:
            self.open_paths(files)

    def choose_model(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a model bundle folder")
        if folder:
            self.request_model.emit(folder, self.device_box.currentText())

    def choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export worklist", "worklist.csv", "CSV (*.csv)")
        if path:
            self.export(Path(path))

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            self.open_paths(paths)
            event.acceptProposedAction()
