"""Augmentation registry: each entry maps (uint8 image, rng) -> uint8 image of the same size.

No flips by default: a horizontal flip moves the heart to the wrong side and is here only as an ablation.
``cutout`` and ``text`` put on a film what real films carry (a box drawn over it, burnt-in markers), so that a
model trained with them keeps its score when a film has them.
Spell an entry as ``name`` or ``name:param`` (e.g. ``rotate:5``, ``rotate:18``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class AugmentEntry:
    name: str
    make: Callable[[float | None], Augment]
    doc: str


REGISTRY: dict[str, AugmentEntry] = {}


def register(name: str, doc: str):
    def wrap(make: Callable[[float | None], Augment]):
        REGISTRY[name] = AugmentEntry(name, make, doc)
        return make

    return wrap


def _affine(img: np.ndarray, angle: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0, 0)):
    h, w = img.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    matrix[:, 2] += shift
    return cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


@register("none", "No augmentation: the baseline every study compares against.")
def _none(_: float | None) -> Augment:
    return lambda img, rng: img


@register("rotate", "Random rotation by up to ±param degrees (default 5), zero fill.")
def _rotate(param: float | None) -> Augment:
    degrees = 5.0 if param is None else param
    return lambda img, rng: _affine(img, angle=float(rng.uniform(-degrees, degrees)))


def _checked_param(
    name: str, what: str, param: float | None, default: float, bounds: tuple[float, float], unit: str
) -> float:
    """``param`` (or ``default``), refused with a message naming the entry when outside ``bounds``."""
    value = default if param is None else param
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name}: {what} must be {bounds[0]}-{bounds[1]} {unit}, got {value}")
    return value


def _half_the_time(change: Augment) -> Augment:
    """``change`` applied to half of the images (one draw of the rng first, whatever happens next)."""

    def apply(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return change(img, rng) if rng.random() < 0.5 else img

    return apply


@register("blur", "Gaussian blur with sigma drawn from [0.1, param] pixels (default 2).")
def _blur(param: float | None) -> Augment:
    top = 2.0 if param is None else param
    return lambda img, rng: cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.1, top)))


@register("hflip", "Horizontal flip with probability 0.5 (ablation only: the heart moves to the wrong side).")
def _hflip(_: float | None) -> Augment:
    return _half_the_time(lambda img, rng: np.ascontiguousarray(img[:, ::-1]))


@register("brightness_contrast", "Brightness ±param (default 0.1) and contrast ×(1±param) on the [0, 1] scale.")
def _brightness_contrast(param: float | None) -> Augment:
    amount = 0.1 if param is None else param

    def apply(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        alpha = 1.0 + rng.uniform(-amount, amount)
        beta = 255.0 * rng.uniform(-amount, amount)
        return cv2.convertScaleAbs(img, alpha=alpha, beta=beta)

    return apply


@register("gamma", "Gamma correction with gamma drawn from [1/param, param] (default 1.3).")
def _gamma(param: float | None) -> Augment:
    top = 1.3 if param is None else param

    def apply(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        gamma = float(np.exp(rng.uniform(-np.log(top), np.log(top))))
        table = np.clip(((np.arange(256) / 255.0) ** gamma) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return cv2.LUT(img, table)

    return apply


@register("equalize", "Global histogram equalisation (deterministic).")
def _equalize(_: float | None) -> Augment:
    return lambda img, rng: cv2.equalizeHist(img)


@register("clahe", "CLAHE with clip limit drawn from [1, param] (default 3), 8x8 tiles.")
def _clahe(param: float | None) -> Augment:
    top = 3.0 if param is None else param
    return lambda img, rng: cv2.createCLAHE(float(rng.uniform(1.0, top)), (8, 8)).apply(img)


@register("zoom", "Random resized crop: zoom in by up to param (default 0.15) of the side, re-centred randomly.")
def _zoom(param: float | None) -> Augment:
    amount = 0.15 if param is None else param

    def apply(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        scale = 1.0 + rng.uniform(0.0, amount)
        h, w = img.shape
        room = (scale - 1.0) * w / 2
        return _affine(img, scale=scale, shift=(rng.uniform(-room, room), rng.uniform(-room, room)))

    return apply


@register("translate", "Random translation by up to param (default 0.05) of the side in x and y.")
def _translate(param: float | None) -> Augment:
    amount = 0.05 if param is None else param

    def apply(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape
        return _affine(img, shift=(rng.uniform(-amount, amount) * w, rng.uniform(-amount, amount) * h))

    return apply


@register("noise", "Additive Gaussian noise with std drawn from [0, param] grey levels (default 8).")
def _noise(param: float | None) -> Augment:
    top = 8.0 if param is None else param

    def apply(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noisy = img.astype(np.float32) + rng.normal(0.0, rng.uniform(0, top), img.shape).astype(np.float32)
        return np.clip(noisy, 0, 255).astype(np.uint8)

    return apply


@register(
    "cutout",
    "With probability 0.5, one filled box of up to param (default 0.3) of each side, anywhere (often over the "
    "heart), black, white or grey: a box drawn or pasted onto the film.",
)
def _cutout(param: float | None) -> Augment:
    top = _checked_param("cutout", "the box side", param, 0.3, (0.05, 0.6), "of the image side")

    @_half_the_time
    def apply(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape
        bh, bw = (max(1, round(rng.uniform(0.05, top) * side)) for side in (h, w))
        y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
        out = img.copy()
        out[y : y + bh, x : x + bw] = int(rng.choice([0, 255, int(rng.integers(60, 200))]))
        return out

    return apply


# what technologists and printers burn into chest films
MARKER_WORDS = (
    "PORTABLE",
    "AP",
    "PA",
    "PORTABLE AP",
    "SUPINE",
    "UPRIGHT",
    "ERECT",
    "SEMI-ERECT",
    "L",
    "R",
    "AP SITTING",
)
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_PLAIN)


@register(
    "text",
    "With probability 0.5, 1-3 burnt-in markers (PORTABLE, AP, SUPINE, L, R, ...) in near-white letters up to "
    "param (default 0.08) of the image height, near the edges, as portable films carry them.",
)
def _text(param: float | None) -> Augment:
    top = _checked_param("text", "the letter height", param, 0.08, (0.02, 0.2), "of the image height")

    @_half_the_time
    def apply(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape
        out = img.copy()
        for _ in range(int(rng.integers(1, 4))):
            word = str(rng.choice(MARKER_WORDS))
            font = int(rng.choice(_FONTS))
            height = rng.uniform(0.02, top) * h
            scale = height / cv2.getTextSize("A", font, 1.0, 1)[0][1]
            thickness = max(1, round(height / int(rng.integers(6, 12))))
            (tw, _), _ = cv2.getTextSize(word, font, scale, thickness)
            x = int(rng.integers(0, max(1, w - tw)))
            near_top = rng.random() < 0.7  # mostly in the upper corners, some at the bottom
            y = int(rng.uniform(height, 0.25 * h) if near_top else rng.uniform(0.8 * h, h - 1))
            cv2.putText(out, word, (x, y), font, scale, int(rng.integers(200, 256)), thickness, cv2.LINE_AA)
        return out

    return apply


def parse(spec: str) -> Augment:
    name, _, raw = spec.partition(":")
    if name not in REGISTRY:
        raise KeyError(f"unknown augmentation {name!r}; available: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name].make(float(raw) if raw else None)


def compose(specs: list[str]) -> Augment:
    steps = [parse(s) for s in specs]

    def apply(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in steps:
            img = step(img, rng)
        return img

    return apply
