"""The PyTorch side of the engine: the model on its device (a GPU, or the CPU for the ``torch`` backend and
bf16), its forward pass with the embedding the input guard reads, and Grad-CAM by gradients. Imported only
when PyTorch scores or explains (``inference.engine``): the base install has no PyTorch."""

from __future__ import annotations

import threading

import numpy as np
import torch

from cxr_desktop.core.architectures import cam_target_layer, forward_with_embedding, forward_with_features
from cxr_desktop.core.device import resolve_device
from cxr_desktop.core.explain import grad_cam
from cxr_desktop.core.preprocess import PreprocessSpec, normalize_input


class TorchModel:
    """One PyTorch model on one device; forward passes and Grad-CAM may come from different threads."""

    def __init__(self, model: torch.nn.Module, architecture: str, device: str, precision: str) -> None:
        self.device = resolve_device(device)
        self.precision = precision
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu" or precision == "bf16":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.architecture = architecture
        self._cam_layer = cam_target_layer(architecture, self.model)
        self._lock = threading.Lock()

    @property
    def device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"

    def _to_batch(self, inputs: list[np.ndarray], spec: PreprocessSpec) -> torch.Tensor:
        stacked = torch.from_numpy(np.stack(inputs)).to(self.device, non_blocking=True)
        return normalize_input(stacked, spec).contiguous(memory_format=torch.channels_last)

    def forward(
        self, inputs: list[np.ndarray], spec: PreprocessSpec, with_maps: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Probabilities (N, outputs), embeddings (N, features) and, ``with_maps``, the Grad-CAM layer's feature
        maps (N, features, h, w) of the same pass, for preprocessed uint8 model inputs."""
        batch = self._to_batch(inputs, spec)
        maps = None
        with self._lock, torch.inference_mode():
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                if with_maps:
                    logits, embedding, maps = forward_with_features(self.model, self.architecture, batch)
                else:
                    logits, embedding = forward_with_embedding(self.model, batch)
            probabilities, embeddings = torch.sigmoid(logits.float()).cpu().numpy(), embedding.float().cpu().numpy()
            return probabilities, embeddings, None if maps is None else maps.float().cpu().numpy()

    def grad_cam(self, model_input: np.ndarray, spec: PreprocessSpec, output_index: int) -> np.ndarray:
        """Grad-CAM (``core.explain``) of one preprocessed uint8 model input, at input resolution."""
        batch = self._to_batch([model_input], spec)
        with self._lock:
            return grad_cam(self.model, self._cam_layer, batch, output_index)[0]
