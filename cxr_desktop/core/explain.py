"""Grad-CAM for one finding, mapped back onto the original image geometry.

Shared by the app (viewer heatmaps) and the trainer (report galleries). The hook is released when the map is
made; gradients are switched on even if the caller runs under inference mode.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cxr_desktop.core.cam import map_to_image, scaled_maps

__all__ = ["grad_cam", "map_to_image"]


def grad_cam(
    model: nn.Module, target_layer: nn.Module, inputs: torch.Tensor, output_index: int, smooth: bool = True
) -> np.ndarray:
    """Grad-CAM maps (Selvaraju et al., ICCV 2017) in [0, 1] at input resolution, one per item of ``inputs``
    (N, C, H, W): the target layer's activations weighted by the spatial mean of the gradient of output
    ``output_index``, summed over channels, ReLU, scaled to [0, 1], resized, scaled again. The same steps as
    pytorch-grad-cam's ``GradCAM`` (tests/test_explain.py compares them, ``smooth=False``), without its import
    (seconds: it pulls in scikit-learn), so that the first heatmap a user asks for does not wait for it; with
    ``smooth`` the coarse map is upsampled bicubically (``core.cam.scaled_maps``)."""
    activations: list[torch.Tensor] = []
    gradients: list[torch.Tensor] = []

    def capture(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        # the gradient of the layer's output as it left the layer (a later in-place op, e.g. DenseNet's final
        # ReLU, must not change it), the activations as the network then used them
        activations.append(output)
        output.register_hook(gradients.append)

    handle = target_layer.register_forward_hook(capture)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            batch = inputs.detach().clone().requires_grad_(True)
            torch.autograd.grad(model(batch)[:, output_index].sum(), batch)
            weights = gradients[-1].float().mean(dim=(2, 3), keepdim=True)
            cams = torch.relu((weights * activations[-1].detach().float()).sum(dim=1)).cpu().numpy()
    finally:
        handle.remove()
        model.train(was_training)
    height, width = inputs.shape[-2:]
    return scaled_maps(cams, height, width, smooth)
