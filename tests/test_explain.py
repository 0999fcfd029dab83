"""Grad-CAM computed in core/explain.py gives the maps of pytorch-grad-cam's GradCAM (the library it replaced in
the scoring path, to spare its seconds-long import before the first heatmap)."""

import numpy as np
import pytest
import torch

from cxr_desktop.core.architectures import cam_target_layer, create
from cxr_desktop.core.explain import grad_cam


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0", "densenet121"])
def test_grad_cam_matches_pytorch_grad_cam(arch):
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    model = create(arch, 14, init="scratch").eval()
    layer = cam_target_layer(arch, model)
    inputs = torch.randn(2, 3, 96, 96)
    ours = grad_cam(model, layer, inputs, 1, smooth=False)  # the library's bilinear upsampling
    with GradCAM(model=model, target_layers=[layer]) as cam:
        theirs = cam(input_tensor=inputs.clone().requires_grad_(True), targets=[ClassifierOutputTarget(1)] * 2)
    assert ours.shape == theirs.shape == (2, 96, 96) and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() < 1e-4
