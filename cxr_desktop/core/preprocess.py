"""One function from a grayscale image to the model's input tensor, used by the trainer and the app alike.

The image arrives in display polarity (bright bone, dark lung), as any integer dtype or as float in [0, 1].
A :class:`PreprocessSpec` (stored in every model card) says how to size, contrast-normalise and scale it, and
whether uniform bands at its edges (a film's frame, collimation) are cropped first (``crop_borders``,
``core.borders``). That field is off unless a spec says otherwise, and a spec that does not crop is written
exactly as before the field existed, so every card, cache index and run configuration written before keeps
its meaning and its bytes: the shipped model scores as it was trained and validated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

import cv2
import numpy as np

from cxr_desktop.core.borders import Box, content_box

if TYPE_CHECKING:  # PyTorch is optional for the app (core.optional_torch); the trainer always has it
    import torch

ResizePolicy = Literal["letterbox", "stretch", "center_crop"]
Contrast = Literal["none", "equalize", "clahe"]
Normalization = Literal["imagenet", "unit", "symmetric"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PreprocessError(ValueError):
    """The image cannot be turned into a model input (wrong shape, empty, not finite)."""


@dataclass(frozen=True)
class PreprocessSpec:
    """How a gray image becomes the model input; saved in the model card so training and triage agree."""

    input_size: int = 224
    resize: ResizePolicy = "letterbox"
    contrast: Contrast = "none"
    normalization: Normalization = "imagenet"
    channels: int = 3
    # crop near-uniform dark or bright bands at the image edges before the resize (core.borders); False for
    # every spec written before the field existed
    crop_borders: bool = False

    def __post_init__(self) -> None:
        if self.input_size < 8:
            raise ValueError(f"input_size must be >= 8, got {self.input_size}")
        if self.resize not in ("letterbox", "stretch", "center_crop"):
            raise ValueError(f"unknown resize policy {self.resize!r}")
        if self.contrast not in ("none", "equalize", "clahe"):
            raise ValueError(f"unknown contrast {self.contrast!r}")
        if self.normalization not in ("imagenet", "unit", "symmetric"):
            raise ValueError(f"unknown normalization {self.normalization!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.normalization == "imagenet" and self.channels != 3:
            raise ValueError("imagenet normalization needs 3 channels")
        if not isinstance(self.crop_borders, bool):
            raise ValueError(f"crop_borders must be true or false, got {self.crop_borders!r}")

    def to_dict(self) -> dict[str, Any]:
        """The spec as a card, cache index or run configuration stores it; ``crop_borders`` only when on, so a
        spec that does not crop is spelled exactly as before the field existed."""
        data = asdict(self)
        if not self.crop_borders:
            del data["crop_borders"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown preprocessing keys: {sorted(unknown)}")
        return cls(**data)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale a display-polarity gray image to uint8: integers by their dtype range, floats from [0, 1]."""
    if image.ndim != 2:
        raise PreprocessError(f"expected a 2-D grayscale image, got shape {image.shape}")
    if image.size == 0:
        raise PreprocessError("empty image")
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        scaled = (image.astype(np.float32) - info.min) / float(info.max - info.min)
    elif np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise PreprocessError("image contains NaN or infinite values")
        scaled = image.astype(np.float32, copy=False)
    else:
        raise PreprocessError(f"unsupported pixel type {image.dtype}")
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class InputBox:
    """Where the original image lies inside the square model input, and which part of it was kept."""

    top: int
    left: int
    height: int
    width: int
    crop: tuple[int, int, int, int]  # (y0, x0, y1, x1) of the original image that was kept


def border_box(gray: np.ndarray, spec: PreprocessSpec) -> Box:
    """The part of a uint8 gray image the resize starts from: inside its uniform edge bands when the spec
    crops them, else the whole image."""
    if not spec.crop_borders:
        return (0, 0, *gray.shape)
    return content_box(gray)


def input_box(image_shape: tuple[int, int], spec: PreprocessSpec, content: Box | None = None) -> InputBox:
    """Geometry of the resize step, so a heatmap on the input can be mapped back onto the original image;
    ``content`` is the ``border_box`` the resize started from (default: the whole image)."""
    cy0, cx0, cy1, cx1 = content or (0, 0, *image_shape)
    h, w = cy1 - cy0, cx1 - cx0
    size = spec.input_size
    if spec.resize == "stretch":
        return InputBox(0, 0, size, size, (cy0, cx0, cy1, cx1))
    if spec.resize == "center_crop":
        side = min(h, w)
        y0, x0 = cy0 + (h - side) // 2, cx0 + (w - side) // 2
        return InputBox(0, 0, size, size, (y0, x0, y0 + side, x0 + side))
    scale = size / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    return InputBox((size - new_h) // 2, (size - new_w) // 2, new_h, new_w, (cy0, cx0, cy1, cx1))


def _enhance(gray: np.ndarray, contrast: Contrast) -> np.ndarray:
    if contrast == "equalize":
        return cv2.equalizeHist(gray)
    if contrast == "clahe":
        return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
    return gray


def resize_to_input(gray: np.ndarray, spec: PreprocessSpec, content: Box | None = None) -> np.ndarray:
    """Crop the edge bands (when the spec says so), resize and contrast-normalise a uint8 gray image to the
    square uint8 model input; ``content`` is its ``border_box`` when the caller has it already."""
    box = input_box(gray.shape, spec, content or border_box(gray, spec))
    y0, x0, y1, x1 = box.crop
    region = gray[y0:y1, x0:x1]
    shrinking = box.height < region.shape[0]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(region, (box.width, box.height), interpolation=interp)
    if spec.resize == "letterbox" and (box.height, box.width) != (spec.input_size, spec.input_size):
        canvas = np.zeros((spec.input_size, spec.input_size), dtype=np.uint8)
        canvas[box.top : box.top + box.height, box.left : box.left + box.width] = resized
        resized = canvas
    return _enhance(resized, spec.contrast)


def normalize_input(batch_uint8: torch.Tensor, spec: PreprocessSpec) -> torch.Tensor:
    """uint8 tensor (N, H, W) or (H, W) -> float (N, C, H, W) normalised as the spec says."""
    import torch

    x = batch_uint8.float().div_(255.0)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    x = x.unsqueeze(1)  # N, 1, H, W
    if spec.normalization == "symmetric":
        x = x.mul_(2.0).sub_(1.0)
    if spec.channels == 3:
        x = x.expand(-1, 3, -1, -1)
        if spec.normalization == "imagenet":
            mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        else:
            x = x.contiguous()
    return x


def normalize_array(batch_uint8: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """``normalize_input`` in numpy, for scoring without PyTorch: uint8 (N, H, W) or (H, W) -> contiguous
    float32 (N, C, H, W), the same float32 steps in the same order (tests/test_preprocess.py compares them)."""
    x = np.asarray(batch_uint8).astype(np.float32) / np.float32(255.0)
    if x.ndim == 2:
        x = x[None]
    x = x[:, None]  # N, 1, H, W
    if spec.normalization == "symmetric":
        x = x * np.float32(2.0) - np.float32(1.0)
    if spec.channels == 3:
        x = np.broadcast_to(x, (x.shape[0], 3, *x.shape[2:]))
        if spec.normalization == "imagenet":
            mean = np.asarray(IMAGENET_MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
            std = np.asarray(IMAGENET_STD, dtype=np.float32).reshape(1, 3, 1, 1)
            x = (x - mean) / std
    return np.ascontiguousarray(x, dtype=np.float32)


def preprocess(image: np.ndarray, spec: PreprocessSpec) -> torch.Tensor:
    """Gray display-polarity image (any bit depth) -> model input tensor of shape (C, size, size)."""
    import torch

    small = resize_to_input(to_uint8(image), spec)
    return normalize_input(torch.from_numpy(small), spec)[0]
