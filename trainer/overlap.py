"""Find the same film in two image sets (``cxr-train overlap``), and the signature a bundle keeps of every image
it was trained on so that an evaluation can leave copies of them out by itself.

A copy of a film may have been contrast-boosted, sprinkled with noise pixels, resized, requantised to 8 bits,
cropped a little or framed by a border. The comparison survives all of these:

1. **normalise the frame**: uniform edge bands are cropped (``core.borders``, as the preprocessing does), the
   rest is resized to 128 px and median-filtered (noise pixels);
2. **band-pass**: a difference of Gaussians (sigma 1.5 and 4 px) keeps the film's own texture (ribs, vessels,
   edges) and drops its global contrast, so a contrast boost or gamma barely changes it;
3. **signature**: the central window (a ``MARGIN`` inside each edge) sampled at ``SIZE`` x ``SIZE``,
   zero-mean, unit length. Two signatures of the same film correlate at 0.94-0.98 here; different films, even
   of one patient, at most about 0.8 at a fixed alignment;
4. **small crops**: a cropped copy shows the same window shifted and scaled. The query side is therefore
   sampled under a grid of assumed crops (each edge moved by -``STEP``, 0 or +``STEP``); the best of them,
   compared at half resolution, picks each query's ``CANDIDATES`` most similar references, and a local search
   of the crop at full resolution refines each candidate's similarity. Copies then measured 0.93-0.98 (crops
   up to 5-7 % of a side, borders, gamma, noise pixels, resizing to 64 px), and different films at most 0.914:
   the follow-up films of one patient taken in the same position (docs/experiments/leakage.md).

Only the reference side needs a stored signature (``SIZE``² int8 values a film), which is what a bundle keeps.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from cxr_desktop.core.borders import content_box
from cxr_desktop.core.preprocess import to_uint8
from cxr_desktop.studies.reader import read_study, study_kind
from cxr_desktop.studies.study import StudyError

log = logging.getLogger(__name__)

METHOD = "bandpass-dog-1.5-4-window-0.1-32px-v1"  # recorded with stored signatures; a change of method is refused
FRAME = 128  # the normalised frame (px)
SIGMAS = (1.5, 4.0)
MARGIN = 0.1  # the signature's window starts this share inside each edge
SIZE = 32  # the window is sampled at SIZE x SIZE
STEP = 0.05  # the crop grid of the query side (share of the side, each edge)
REFINE_STEPS = (0.025, 0.0125)
CANDIDATES = 5
THRESHOLD = 0.92  # at or above: the same film (copies measured 0.93-0.98, other films of one patient up to 0.914)
QUANT = SIZE * 32.0  # int8 quantisation: a unit-length signature's values have a standard deviation of 1/SIZE
CROP_GRID = list(itertools.product((-STEP, 0.0, STEP), repeat=4))  # (left, right, top, bottom)


class OverlapError(ValueError):
    """A signature set that cannot be compared (another method, a broken file)."""


def band_passed(gray: np.ndarray) -> np.ndarray:
    """The normalised, band-passed frame of a gray image (any dtype), blurred for sampling at SIZE."""
    image = to_uint8(gray)
    y0, x0, y1, x1 = content_box(image)
    frame = cv2.resize(image[y0:y1, x0:x1], (FRAME, FRAME), interpolation=cv2.INTER_AREA)
    frame = cv2.medianBlur(frame, 3).astype(np.float32)
    band = cv2.GaussianBlur(frame, (0, 0), SIGMAS[0]) - cv2.GaussianBlur(frame, (0, 0), SIGMAS[1])
    pixel = FRAME * (1 - 2 * MARGIN) / SIZE  # one signature sample in frame pixels
    return cv2.GaussianBlur(band, (0, 0), pixel / 2)


def window(band: np.ndarray, crop: Sequence[float] = (0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """The signature of ``band`` when the image is the original cropped by ``crop`` = (left, right, top,
    bottom) shares of its sides (negative: extra content), i.e. the original's central window found in it."""
    left, right, top, bottom = crop
    x0, x1 = ((MARGIN - left) / (1 - left - right), (1 - MARGIN - left) / (1 - left - right))
    y0, y1 = ((MARGIN - top) / (1 - top - bottom), (1 - MARGIN - top) / (1 - top - bottom))
    sx, sy = (x1 - x0) * FRAME / SIZE, (y1 - y0) * FRAME / SIZE
    affine = np.array([[sx, 0, x0 * FRAME + sx / 2 - 0.5], [0, sy, y0 * FRAME + sy / 2 - 0.5]], np.float32)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    sampled = cv2.warpAffine(band, affine, (SIZE, SIZE), flags=flags, borderMode=cv2.BORDER_REFLECT).ravel()
    return unit(sampled)


def unit(vectors: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-length rows (a flat image stays zero)."""
    centred = vectors - vectors.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(centred, axis=-1, keepdims=True)
    return (centred / np.maximum(norm, 1e-8)).astype(np.float32)


def coarse(signatures: np.ndarray) -> np.ndarray:
    """Half-resolution signatures (2 x 2 means), for the candidate search."""
    grid = signatures.reshape(*signatures.shape[:-1], SIZE // 2, 2, SIZE // 2, 2)
    return unit(grid.mean(axis=(-3, -1)).reshape(*signatures.shape[:-1], -1))


def quantise(signatures: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(signatures * QUANT), -127, 127).astype(np.int8)


def dequantise(stored: np.ndarray) -> np.ndarray:
    return unit(stored.astype(np.float32))


@dataclass
class SignatureSet:
    """One signature per readable image (``names[i]`` for row i), and the images that could not be read."""

    names: list[str]
    signatures: np.ndarray  # (N, SIZE * SIZE) float32, unit length
    errors: dict[str, str]

    def metadata(self) -> dict[str, str]:
        return {"method": METHOD, "names": json.dumps(self.names)}

    @classmethod
    def from_stored(cls, stored: np.ndarray, metadata: dict[str, str]) -> SignatureSet:
        if metadata.get("method") != METHOD:
            raise OverlapError(f"signatures made by {metadata.get('method')!r}, this trainer compares {METHOD!r}")
        names = json.loads(metadata["names"])
        if stored.shape != (len(names), SIZE * SIZE):
            raise OverlapError(f"signatures of shape {stored.shape} for {len(names)} names")
        return cls(names, dequantise(stored), {})


def _read_band(path: str) -> tuple[np.ndarray | None, str]:
    try:
        return band_passed(read_study(Path(path)).image), ""
    except StudyError as exc:
        return None, exc.reason
    except Exception as exc:  # noqa: BLE001 - any failure of one file is that file's error
        return None, f"{type(exc).__name__}: {exc}"


def _bands(paths: Sequence[Path], workers: int, what: str) -> Iterable[tuple[Path, np.ndarray | None, str]]:
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(_read_band, [str(p) for p in paths], chunksize=32)
        for path, (band, error) in tqdm(zip(paths, results, strict=True), total=len(paths), unit="img", desc=what):
            yield path, band, error


def reference_signatures(paths: Sequence[Path], names: Sequence[str] | None = None, workers: int = 2) -> SignatureSet:
    """The stored-side signature of each image (``names`` label them; default: the paths)."""
    names = [str(p) for p in paths] if names is None else list(names)
    label = dict(zip(map(str, paths), names, strict=True))
    kept, rows, errors = [], [], {}
    for path, band, error in _bands(paths, workers, "reference"):
        if band is None:
            errors[label[str(path)]] = error
            continue
        kept.append(label[str(path)])
        rows.append(window(band))
    signatures = np.stack(rows) if rows else np.zeros((0, SIZE * SIZE), np.float32)
    return SignatureSet(kept, signatures, errors)


@dataclass(frozen=True)
class Pair:
    image: str
    reference: str
    similarity: float


def _refine(band: np.ndarray, crop: tuple[float, ...], reference: np.ndarray) -> float:
    """The best similarity to ``reference`` near ``crop`` (coordinate search over the four edges)."""
    best = float(window(band, crop) @ reference)
    crop = list(crop)
    for step in REFINE_STEPS:
        improved = True
        while improved:
            improved = False
            for edge, sign in itertools.product(range(4), (-1, 1)):
                trial = list(crop)
                trial[edge] += sign * step
                value = float(window(band, trial) @ reference)
                if value > best:
                    best, crop, improved = value, trial, True
    return best


def match_one(band: np.ndarray, references: SignatureSet, reference_coarse: np.ndarray) -> list[tuple[int, float]]:
    """(reference row, similarity) of the ``CANDIDATES`` references most like the image ``band`` shows."""
    variants = np.stack([window(band, crop) for crop in CROP_GRID])
    scores = coarse(variants) @ reference_coarse.T  # (variants, references)
    best_variant = scores.argmax(axis=0)
    best = scores.max(axis=0)
    top = np.argsort(best)[::-1][:CANDIDATES]
    return [(int(j), _refine(band, CROP_GRID[best_variant[j]], references.signatures[j])) for j in top]


def find_copies(
    images: Sequence[Path], references: SignatureSet, threshold: float = THRESHOLD, workers: int = 2
) -> tuple[list[Pair], dict[str, str]]:
    """Every (image, reference) pair at or above ``threshold``, and the images that could not be read."""
    pairs, errors = [], {}
    if not len(references.names):
        return pairs, errors
    reference_coarse = coarse(references.signatures)
    for path, band, error in _bands(images, workers, "compare"):
        if band is None:
            errors[str(path)] = error
            continue
        for j, similarity in match_one(band, references, reference_coarse):
            if similarity >= threshold:
                pairs.append(Pair(str(path), references.names[j], round(similarity, 4)))
    return pairs, errors


def collect_images(sources: Sequence[Path]) -> list[Path]:
    """Image files from folders (recursively), single files and the trainer's label CSVs (``path,label...``)."""
    from trainer.data.local import read_label_csv

    found: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found += sorted(p for p in source.rglob("*") if p.is_file() and study_kind(p))
        elif source.suffix.lower() == ".csv":
            found += [row.path for row in read_label_csv(source)]
        elif source.is_file():
            found.append(source)
        else:
            raise FileNotFoundError(f"{source}: no such file or folder")
    return list(dict.fromkeys(found))


def write_pairs(pairs: Iterable[Pair], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "reference", "similarity"])
        writer.writerows((p.image, p.reference, f"{p.similarity:.4f}") for p in pairs)
    partial.replace(out)


def save_signatures(path: Path, signatures: SignatureSet) -> None:
    """Write ``signatures`` (int8, with the method and names as metadata) as a safetensors file."""
    from safetensors.numpy import save_file

    save_file({"signatures": quantise(signatures.signatures)}, str(path), metadata=signatures.metadata())


def load_signatures(path: Path) -> SignatureSet:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as stored:
            return SignatureSet.from_stored(stored.get_tensor("signatures"), stored.metadata() or {})
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise OverlapError(f"{path.name}: unreadable training signatures ({exc})") from None


def common_names(paths: Sequence[Path]) -> list[str]:
    """The paths relative to their common folder (a bundle names its training images without the machine's
    folder layout)."""
    if not paths:
        return []
    root = Path(os.path.commonpath([str(Path(p).resolve().parent) for p in paths]))
    return [str(Path(p).resolve().relative_to(root)) for p in paths]
