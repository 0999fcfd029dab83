"""Where the app's shipped resources (the default model, the demo studies) live, installed or frozen."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# the integrity record (``bundle_sha256`` in its card) of the default model this version ships: an edited
# default bundle is refused (``core.bundle.load_bundle``). Update it whenever resources/models/default changes.
DEFAULT_MODEL_SHA256 = "f8f6eb997a958d3b1d78b59c3e76d3181eebfceb891d6ca6dc0ea807bb98e2e1"


def resources_dir() -> Path:
    """``resources/`` beside the package, inside a PyInstaller bundle, or as ``CXR_RESOURCES`` says."""
    override = os.environ.get("CXR_RESOURCES")
    if override:
        return Path(override)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def default_model_dir() -> Path:
    return resources_dir() / "models" / "default"


def demo_dir() -> Path:
    """The demo studies: real NIH ChestX-ray14 radiographs as DICOM (``scripts/make_demo.py``; see NOTICE)."""
    return resources_dir() / "demo"
