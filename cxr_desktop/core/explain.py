"""Grad-CAM for one finding, mapped back onto the original image geometry.

Shared by the app (viewer heatmaps) and the trainer (report galleries). Hooks are released by the
``with GradCAM(...)`` block; gradients are switched on even if the caller runs under inference mode.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from cxr_desktop.core.preprocess import PreprocessSpec, input_box


def grad_cam(model: nn.Module, target_layer: nn.Module, inputs: torch.Tensor, output_index: int) -> np.ndarray:
    """Grad-CAM maps in [0, 1] at input resolution, one per item of ``inputs`` (N, C, H, W)."""
    from pytorch_grad_cam import GradCAM  # imported on first use: it pulls in scikit-learn (seconds)
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            batch = inputs.detach().clone().requires_grad_(True)
            with GradCAM(model=model, target_layers=[target_layer]) as cam:
                maps = cam(input_tensor=batch, targets=[ClassifierOutputTarget(output_index)] * len(batch))
    finally:
        model.train(was_training)
    return np.asarray(maps, dtype=np.float32)


def map_to_image(cam: np.ndarray, image_shape: tuple[int, int], spec: PreprocessSpec) -> np.ndarray:
    """Undo the preprocessing geometry: an input-sized map -> a map over the original image."""
    box = input_box(image_shape, spec)
    inside = cam[box.top : box.top + box.height, box.left : box.left + box.width]
    y0, x0, y1, x1 = box.crop
    h, w = image_shape
    full = np.zeros((h, w), dtype=np.float32)
    full[y0:y1, x0:x1] = cv2.resize(inside, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return full
