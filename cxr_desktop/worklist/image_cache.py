"""Decoded study images, each decoded once and shared by scoring, the viewer and Grad-CAM: a least recently
used cache bounded by count and bytes. Thread-safe; two threads asking for the same study at once get one
decode (the second waits for the first)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

DEFAULT_ITEMS = 256
DEFAULT_BYTES = 512 * 2**20  # 512 MB: ~500 1024^2 8-bit PNGs, ~30 3000x2500 float32 DICOM images


class ImageCache:
    def __init__(self, max_items: int = DEFAULT_ITEMS, max_bytes: int = DEFAULT_BYTES) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("an image cache holds at least one image and one byte")
        self.max_items, self.max_bytes = max_items, max_bytes
        self._images: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._loading: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._images)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._images

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            image = self._images.get(key)
            if image is not None:
                self._images.move_to_end(key)
            return image

    def put(self, key: Hashable, image: np.ndarray) -> None:
        """Keep ``image`` (made read-only: it is shared) unless it alone is over the byte bound; the least
        recently used images go until both bounds hold."""
        image.flags.writeable = False
        with self._lock:
            self._drop(key)
            if image.nbytes > self.max_bytes:
                return
            self._images[key] = image
            self._bytes += image.nbytes
            while len(self._images) > self.max_items or self._bytes > self.max_bytes:
                self._drop(next(iter(self._images)))

    def get_or_load(self, key: Hashable, load: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached image, else ``load()``'s, cached. ``load``'s exception goes to the caller (a thread
        that waited on it then loads for itself)."""
        while True:
            with self._lock:
                image = self._images.get(key)
                if image is not None:
                    self._images.move_to_end(key)
                    return image
                loading = self._loading.get(key)
                if loading is None:
                    loading = self._loading[key] = threading.Event()
                    break
            loading.wait()
        try:
            image = load()
            self.put(key, image)
            return image
        finally:
            with self._lock:
                del self._loading[key]
            loading.set()

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._drop(key)

    def clear(self) -> None:
        with self._lock:
            self._images.clear()
            self._bytes = 0

    def _drop(self, key: Hashable) -> None:
        image = self._images.pop(key, None)
        if image is not None:
            self._bytes -= image.nbytes
