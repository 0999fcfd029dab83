"""The one device choice of the app and the trainer (cxr_desktop.core.device)."""

import pytest
import torch

from cxr_desktop.core import device as device_module
from cxr_desktop.core.device import DeviceError, is_device_name, resolve_device


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has ``n`` CUDA devices."""

    def pretend(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return pretend


def test_auto_takes_cuda_when_present_else_the_cpu(gpus):
    gpus(0)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("auto", cuda_index=1) == torch.device("cpu")
    gpus(2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("auto", cuda_index=1) == torch.device("cuda", 1)  # a torchrun process's GPU
    assert resolve_device("cuda:0", cuda_index=1) == torch.device("cuda", 0)  # a named GPU wins
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_gpu_this_machine_lacks_is_an_error_not_the_cpu(gpus, monkeypatch):
    gpus(0)
    with pytest.raises(DeviceError, match="no CUDA device"):
        resolve_device("cuda")
    gpus(1)
    with pytest.raises(DeviceError, match="has 1 CUDA device"):
        resolve_device("cuda:3")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no MPS device"):
        resolve_device("mps")


@pytest.mark.parametrize("name", ["gpu", "cuda0", "cuda:x", "CPU", ""])
def test_an_unknown_name_is_an_error(name):
    assert not is_device_name(name)
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device(name)


def test_the_error_is_caught_as_a_bad_value_and_as_the_apps_runtime_error(gpus):
    gpus(0)
    for caught in (ValueError, RuntimeError):
        with pytest.raises(caught):
            resolve_device("cuda")


def test_app_and_trainer_choose_with_the_same_function(gpus, monkeypatch):
    from cxr_desktop.inference import torch_backend  # the engine's PyTorch side
    from trainer import evaluate, fit

    assert torch_backend.resolve_device is evaluate.resolve_device is fit.resolve_device is device_module.resolve_device
    gpus(2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert fit.training_device("auto") == torch.device("cuda", 1)
    monkeypatch.delenv("LOCAL_RANK")
    assert fit.training_device("auto") == torch.device("cuda", 0)
