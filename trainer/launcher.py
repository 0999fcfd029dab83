"""``cxr-train``'s entry point: the base install (the desktop app, no PyTorch) has none of the trainer's
dependencies, so say which extra brings them instead of failing on the first import."""

from __future__ import annotations

import importlib.util
import sys

TRAIN_MODULES = ("torch", "torchvision", "yaml", "sklearn", "matplotlib", "efficientnet_lite_pytorch", "onnx")


def main(argv: list[str] | None = None) -> int:
    missing = [name for name in TRAIN_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"cxr-train needs the [train] extra (missing: {', '.join(missing)}): pip install 'cxr-desktop[train]'",
            file=sys.stderr,
        )
        return 2
    from trainer.cli import main as cli_main

    return cli_main(argv)
