from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import torch

from cxr_desktop.core import architectures
from cxr_desktop.core.preprocess import IMAGENET_MEAN, IMAGENET_STD

REQUIRED = ["densenet121", "resnet18", "resnet50", "efficientnet_b0", "mobilenet_v3_large", "efficientnet_lite0"]


def test_required_architectures_are_registered():
    assert set(REQUIRED) <= set(architectures.available())


@pytest.mark.parametrize("name", REQUIRED)
def test_create_outputs_and_cam_layer(name):
    model = architectures.create(name, num_outputs=14).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 14)
    layer = architectures.cam_target_layer(name, model)
    assert any(layer is module for module in model.modules())


def test_unknown_architecture_names_the_choices():
    with pytest.raises(KeyError, match="densenet121"):
        architectures.create("vit_huge", 14)


def test_torchvision_imagenet_offline_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("CXR_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(architectures.WeightsUnavailableError) as info:
        architectures.create("resnet18", 14, init="imagenet")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message and "TORCH_HOME" in message and str(tmp_path) in message


def test_torchvision_imagenet_uses_a_placed_file(tmp_path, monkeypatch):
    """With the file in TORCH_HOME the weights API is used (no error, no download needed)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("CXR_ALLOW_DOWNLOAD", raising=False)
    target = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"placeholder")

    class FakeWeights:
        url = "https://download.pytorch.org/models/resnet18-f37072fd.pth"

        @staticmethod
        def get_state_dict(progress, check_hash):
            return {"marker": torch.ones(1)}

    assert "marker" in architectures._torchvision_state(FakeWeights)


def test_efficientnet_lite0_imagenet_weights_classify_a_natural_image():
    """Grace Hopper in uniform (matplotlib's sample image) -> ImageNet 'military uniform' (652) in top 5."""
    sample = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    rgb = cv2.cvtColor(cv2.imread(str(sample)), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    x = torch.from_numpy((rgb - IMAGENET_MEAN) / IMAGENET_STD).permute(2, 0, 1)[None].float()
    model = architectures.efficientnet_lite0_imagenet_classifier()
    with torch.no_grad():
        top5 = model(x).topk(5).indices[0].tolist()
    assert 652 in top5


def test_efficientnet_lite0_imagenet_backbone_differs_from_scratch():
    pretrained = architectures.create("efficientnet_lite0", 14, init="imagenet")
    imagenet = architectures.efficientnet_lite0_imagenet_state()
    assert torch.equal(pretrained.state_dict()["_conv_stem.weight"], imagenet["_conv_stem.weight"])
    assert pretrained._fc.out_features == 14


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilenet_v3_large"])
def test_from_scratch_uses_pytorch_batchnorm_momentum(name):
    """Momentum 0.01 (these models' own default) left them trained from scratch for ~130 steps with running
    statistics near their initial values: one constant output in eval mode (docs/experiments/architecture-cpu)."""
    model = architectures.create(name, 1, "scratch")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) > 30 and all(m.momentum == 0.1 for m in norms)
