"""The study viewer: window/level by left-drag, pan by middle-drag (or Shift+left), wheel zoom, fit (kept on
resize until the reader zooms), invert, and a Grad-CAM overlay with a toggle and an opacity, weighed by the
study's score over the flag threshold (``core.heatmap_overlay``)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

from cxr_desktop.core.heatmap_overlay import overlay
from cxr_desktop.studies.windowing import DEFAULT_WINDOW, apply_window


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb)
    image = QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format.Format_RGB888)
    return image.copy()


class ImageView(QGraphicsView):
    window_changed = Signal(float, float)  # center, width: the Window box follows

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(Qt.GlobalColor.black)
        self._item = QGraphicsPixmapItem()
        self.scene().addItem(self._item)
        self.image: np.ndarray | None = None
        self.heatmap: np.ndarray | None = None
        self.heat_scale = 1.0  # the study's score over the flag threshold, at most 1 (``flag_scale``)
        self.inverted = False  # the reader's display choice: kept from study to study
        self.zoomed = False  # the reader zoomed: a resize keeps the zoom instead of fitting the film again
        self.show_heatmap = True
        self.opacity = 0.4
        self.center, self.width = DEFAULT_WINDOW
        self._drag: tuple[str, QPointF] | None = None

    # -- content -------------------------------------------------------------------------------------

    def set_image(self, image: np.ndarray | None, heatmap: np.ndarray | None = None, scale: float = 1.0) -> None:
        """Show ``image`` at the default window, fitted, with ``heatmap`` (weighed by ``scale``) when it is
        known already (one render)."""
        self.image, self.heatmap, self.heat_scale = image, heatmap, scale
        self.center, self.width = DEFAULT_WINDOW
        self.window_changed.emit(self.center, self.width)
        self.render_image()
        self.fit()

    def set_heatmap(self, heatmap: np.ndarray | None, scale: float = 1.0) -> None:
        self.heatmap, self.heat_scale = heatmap, scale
        self.render_image()

    def set_window(self, center: float, width: float) -> None:
        self.center, self.width = float(np.clip(center, 0, 1)), float(np.clip(width, 0.01, 2))
        self.window_changed.emit(self.center, self.width)
        self.render_image()

    def set_inverted(self, on: bool) -> None:
        """Show the film as a negative (white bones black) or as it is."""
        self.inverted = on
        self.render_image()

    def reset_window(self) -> None:
        self.set_window(*DEFAULT_WINDOW)

    def set_overlay(self, visible: bool, opacity: float | None = None) -> None:
        self.show_heatmap = visible
        if opacity is not None:
            self.opacity = opacity
        self.render_image()

    def displayed_rgb(self) -> np.ndarray | None:
        """What the viewer shows now, as RGB (used by tests and screenshots)."""
        if self.image is None:
            return None
        gray = apply_window(self.image, self.center, self.width)
        if self.inverted:
            gray = 255 - gray
        if self.show_heatmap and self.heatmap is not None:
            return overlay(gray, self.heatmap, self.opacity, self.heat_scale)
        return np.repeat(gray[:, :, None], 3, axis=2)

    def render_image(self) -> None:
        rgb = self.displayed_rgb()
        self._item.setPixmap(QPixmap() if rgb is None else QPixmap.fromImage(rgb_to_qimage(rgb)))
        if rgb is not None:
            self.scene().setSceneRect(self._item.boundingRect())

    # -- gestures ------------------------------------------------------------------------------------

    def fit(self) -> None:
        self.zoomed = False
        if self.image is not None:
            self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self.zoomed = True
        self.scale(factor, factor)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        if not self.zoomed:
            self.fit()

    def wheelEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.zoom(1.15 if event.angleDelta().y() > 0 else 1 / 1.15)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        self.fit()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        pan = event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton and event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        )
        if pan:
            self._drag = ("pan", event.position())
        elif event.button() == Qt.MouseButton.LeftButton:
            self._drag = ("window", event.position())
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._drag is None:
            return super().mouseMoveEvent(event)
        mode, last = self._drag
        delta = event.position() - last
        self._drag = (mode, event.position())
        if mode == "pan":
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
        else:  # horizontal drag = width, vertical drag = level, as in most PACS viewers
            self.set_window(self.center - delta.y() / 500.0, self.width + delta.x() / 500.0)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        self._drag = None
        super().mouseReleaseEvent(event)
