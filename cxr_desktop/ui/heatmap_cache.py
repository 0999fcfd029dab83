"""A bounded cache of Grad-CAM maps for the viewer: maps over the original image are large (a 3000x2500
DICOM's float32 map is 30 MB), so they are kept as uint8 and only the most recently used ones stay."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np


class HeatmapCache:
    def __init__(self, limit: int = 32) -> None:
        self.limit = limit
        self._maps: OrderedDict[Path, np.ndarray] = OrderedDict()

    def __contains__(self, path: Path) -> bool:
        return Path(path) in self._maps

    def __len__(self) -> int:
        return len(self._maps)

    def put(self, path: Path, heatmap: np.ndarray) -> None:
        """Store a map in [0, 1]; the least recently used one goes when the cache is full."""
        self._maps[Path(path)] = np.round(np.clip(heatmap, 0.0, 1.0) * 255).astype(np.uint8)
        self._maps.move_to_end(Path(path))
        while len(self._maps) > self.limit:
            self._maps.popitem(last=False)

    def get(self, path: Path) -> np.ndarray | None:
        """The map in [0, 1] as float32 (quantised to 1/255), or None."""
        stored = self._maps.get(Path(path))
        if stored is None:
            return None
        self._maps.move_to_end(Path(path))
        return stored.astype(np.float32) / 255.0

    def discard(self, path: Path) -> None:
        """Forget the map of ``path`` (its file now holds another study)."""
        self._maps.pop(Path(path), None)

    def clear(self) -> None:
        self._maps.clear()
