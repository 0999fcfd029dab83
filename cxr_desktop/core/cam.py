"""Grad-CAM without PyTorch: the closed form for networks whose head is global average pooling + one linear
layer, computed with numpy from the target layer's feature map (an output of the bundle's ONNX copy).

For such a head, the logit of finding ``f`` is ``b_f + sum_k w_fk * mean_ij act(A_kij)``, so the gradient of
the logit at the target layer's activation ``A_kij`` is ``w_fk * act'(A_kij) / (H * W)``. Grad-CAM's channel
weight (the spatial mean of that gradient) is therefore ``w_fk / (H * W) * mean_ij act'(A_kij)``, and the map
is ``relu(sum_k weight_k * A_k)``: no backward pass is needed. ``act`` is what lies between the target layer
and the pooling (``CAM_ACTIVATIONS``); the card records it (``ModelCard.closed_form_cam``).

Also the steps both Grad-CAMs share (scaling to [0, 1] at input resolution, mapping back onto the image).
"""

from __future__ import annotations

import cv2
import numpy as np

from cxr_desktop.core.preprocess import Box, PreprocessSpec, input_box

# the activation between the Grad-CAM target layer and the global average pooling:
#   identity: none (ResNet's layer4, EfficientNet-B0's last block already ends in its activation)
#   relu6: a ReLU6 that is not in place (EfficientNet-Lite's head): Grad-CAM weighs the layer's own output
#   relu: an in-place ReLU (DenseNet): Grad-CAM sees the activated values, with the gradient of the output
CAM_ACTIVATIONS = ("identity", "relu", "relu6")


def closed_form_cams(features: np.ndarray, head_row: np.ndarray, activation: str) -> np.ndarray:
    """Grad-CAM maps (N, h, w), before scaling, from the target layer's feature maps ``features`` (N, C, h, w)
    and the classifier head's row ``head_row`` (C,) for the finding."""
    if activation not in CAM_ACTIVATIONS:
        raise ValueError(f"no closed-form Grad-CAM for activation {activation!r}; known: {CAM_ACTIVATIONS}")
    maps = np.asarray(features, dtype=np.float32)
    if maps.ndim != 4 or maps.shape[1] != head_row.shape[0]:
        raise ValueError(f"feature maps {maps.shape} do not fit a head row of {head_row.shape[0]} channels")
    if activation == "identity":
        slope = np.ones(maps.shape[:2], dtype=np.float32)
    elif activation == "relu":
        slope = (maps > 0).mean(axis=(2, 3), dtype=np.float32)
        maps = np.maximum(maps, 0.0)
    else:
        slope = ((maps > 0) & (maps < 6)).mean(axis=(2, 3), dtype=np.float32)
    height, width = maps.shape[2:]
    weights = slope * (np.asarray(head_row, dtype=np.float32) / float(height * width))[None, :]
    return np.maximum(np.einsum("nc,nchw->nhw", weights, maps), 0.0)


def scaled_maps(cams: np.ndarray, height: int, width: int, smooth: bool = True) -> np.ndarray:
    """Raw Grad-CAM maps (N, h, w) -> maps in [0, 1] at input resolution (N, height, width): scaled to
    [0, 1], resized, scaled again, as pytorch-grad-cam does, except that with ``smooth`` (the maps shown) the
    coarse map (7 x 7 for a 224 px input) is upsampled bicubically (clipped at 0): bilinear upsampling, as
    pytorch-grad-cam's (``smooth=False``), draws the hot area with straight, square edges."""
    resize = upsample if smooth else _bilinear
    return np.stack([_unit(resize(_unit(cam), width, height)) for cam in cams]).astype(np.float32)


def _bilinear(cam: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(cam, (width, height))


def upsample(cam: np.ndarray, width: int, height: int) -> np.ndarray:
    """A coarse map resized smoothly (bicubic; the overshoot below 0 is cut)."""
    return np.maximum(cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC), 0.0)


def _unit(cam: np.ndarray) -> np.ndarray:
    shifted = cam - cam.min()
    return shifted / (1e-7 + shifted.max())


def map_to_image(
    cam: np.ndarray, image_shape: tuple[int, int], spec: PreprocessSpec, content: Box | None = None
) -> np.ndarray:
    """Undo the preprocessing geometry: an input-sized map -> a map over the original image (zero on the edge
    bands the preprocessing cropped: ``content`` is its ``border_box``)."""
    box = input_box(image_shape, spec, content)
    inside = cam[box.top : box.top + box.height, box.left : box.left + box.width]
    y0, x0, y1, x1 = box.crop
    h, w = image_shape
    full = np.zeros((h, w), dtype=np.float32)
    full[y0:y1, x0:x1] = cv2.resize(inside, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return full
