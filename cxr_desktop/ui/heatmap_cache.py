"""A bounded cache of Grad-CAM maps for the viewer: maps over the original image are large (a 3000x2500
DICOM's float32 map is 30 MB), so they are kept as uint8 and only the most recently used ones stay. A map is
kept under its file and its study's key (``Row.key``): another study in the same file never gets it."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np


class HeatmapCache:
    def __init__(self, limit: int = 32) -> None:
        self.limit = limit
        self._maps: OrderedDict[tuple[Path, str], np.ndarray] = OrderedDict()

    def __contains__(self, item: Path | tuple[Path, str]) -> bool:
        """``path`` or ``(path, study key)``."""
        path, study = item if isinstance(item, tuple) else (item, "")
        return (Path(path), study) in self._maps

    def __len__(self) -> int:
        return len(self._maps)

    def put(self, path: Path, heatmap: np.ndarray, study: str = "") -> None:
        """Store a map in [0, 1]; the least recently used one goes when the cache is full."""
        key = (Path(path), study)
        self._maps[key] = np.round(np.clip(heatmap, 0.0, 1.0) * 255).astype(np.uint8)
        self._maps.move_to_end(key)
        while len(self._maps) > self.limit:
            self._maps.popitem(last=False)

    def get(self, path: Path, study: str = "") -> np.ndarray | None:
        """The map of ``study`` in ``path``, in [0, 1] as float32 (quantised to 1/255), or None."""
        key = (Path(path), study)
        stored = self._maps.get(key)
        if stored is None:
            return None
        self._maps.move_to_end(key)
        return stored.astype(np.float32) / 255.0

    def discard(self, path: Path) -> None:
        """Forget the maps of ``path`` (its file now holds another study)."""
        for key in [key for key in self._maps if key[0] == Path(path)]:
            del self._maps[key]

    def clear(self) -> None:
        self._maps.clear()
