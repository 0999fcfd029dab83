"""A uint8 cache of every image at the training size, decoded once (``cxr-train cache``).

Layout: ``images.npy`` (N, S, S) uint8 memmap, ``done.npy`` (N,) bool, ``index.json`` (relative paths, the
preprocessing spec and the errors). Resumable: images already marked done are not decoded again.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cxr_desktop.core.preprocess import PreprocessSpec, resize_to_input, to_uint8
from cxr_desktop.studies.reader import read_study, study_kind
from cxr_desktop.studies.study import StudyError

log = logging.getLogger(__name__)
CHUNK = 256


def decode_for_training(path: Path, spec: PreprocessSpec) -> np.ndarray:
    """The geometric part of the core preprocessing: any study file -> uint8 (size, size)."""
    return resize_to_input(to_uint8(read_study(path).image), spec)


def _decode(args: tuple[str, dict]) -> tuple[np.ndarray | None, str]:
    path, spec = args
    try:
        return decode_for_training(Path(path), PreprocessSpec.from_dict(spec)), ""
    except StudyError as exc:
        return None, exc.reason


def build_cache(images: Path, out: Path, spec: PreprocessSpec, workers: int = 2) -> dict:
    """Decode every study under ``images`` into ``out``; returns the index (with errors)."""
    images, out = Path(images), Path(out)
    files = sorted(p for p in images.rglob("*") if p.is_file() and study_kind(p))
    names = [str(p.relative_to(images)) for p in files]
    out.mkdir(parents=True, exist_ok=True)
    index_path = out / "index.json"
    size = spec.input_size
    if index_path.exists():
        index = json.loads(index_path.read_text())
        if index["names"] != names or index["spec"] != spec.to_dict():
            raise ValueError(f"{out} holds a cache of other files or another spec; choose a new --out")
        array = np.load(out / "images.npy", mmap_mode="r+")
        done = np.load(out / "done.npy")
    else:
        index = {"root": str(images.resolve()), "names": names, "spec": spec.to_dict(), "errors": {}}
        array = np.lib.format.open_memmap(out / "images.npy", mode="w+", dtype=np.uint8, shape=(len(files), size, size))
        done = np.zeros(len(files), dtype=bool)
    todo = np.flatnonzero(~done)
    log.info("cache %s: %d images, %d to decode", out, len(files), len(todo))
    with (
        ProcessPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(total=len(files), initial=len(files) - len(todo), unit="img", desc="cache") as bar,
    ):
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            jobs = [(str(files[i]), spec.to_dict()) for i in chunk]
            for i, (pixels, error) in zip(chunk, pool.map(_decode, jobs, chunksize=16), strict=True):
                if error:
                    index["errors"][names[i]] = error
                else:
                    array[i] = pixels
                done[i] = True
            array.flush()
            np.save(out / "done.npy", done)
            index_path.write_text(json.dumps(index))
            bar.update(len(chunk))
    if index["errors"]:
        log.warning("%d files could not be cached (see index.json 'errors')", len(index["errors"]))
    return index


@dataclass
class ImageCache:
    root: Path
    array: np.ndarray
    position: dict[str, int]
    spec: PreprocessSpec

    @classmethod
    def open(cls, folder: Path) -> ImageCache:
        folder = Path(folder)
        index = json.loads((folder / "index.json").read_text())
        done = np.load(folder / "done.npy")
        if not done.all():
            raise ValueError(f"cache {folder} is incomplete: run `cxr-train cache` again to finish it")
        bad = set(index["errors"])
        position = {name: i for i, name in enumerate(index["names"]) if name not in bad}
        array = np.load(folder / "images.npy", mmap_mode="r")
        root = Path(index["root"])
        return cls(root.resolve(), array, position, PreprocessSpec.from_dict(index["spec"]))

    def lookup(self, path: Path) -> int | None:
        try:
            return self.position.get(str(Path(path).resolve().relative_to(self.root)))
        except ValueError:
            return None
