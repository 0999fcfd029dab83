"""Where the app's shipped resources (the default model, the demo studies) live, installed or frozen."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# the integrity record (``bundle_sha256`` in its card) of the default model this version ships: an edited
# default bundle is refused (``core.bundle.load_bundle``). Update it whenever resources/models/default changes.
DEFAULT_MODEL_SHA256 = "fb9d6c2105aaaaea81e4b6011eae696d4d4960c1da6944291f30218ce9501021"


def resources_dir() -> Path:
    """``resources/`` beside the package (a checkout or an editable install), inside a PyInstaller bundle,
    under ``<prefix>/share/cxr-desktop`` (a wheel install, pyproject's data-files), or as ``CXR_RESOURCES``
    says."""
    override = os.environ.get("CXR_RESOURCES")
    if override:
        return Path(override)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    beside = Path(__file__).resolve().parents[2] / "resources"
    installed = Path(sys.prefix) / "share" / "cxr-desktop" / "resources"
    return installed if not beside.is_dir() and installed.is_dir() else beside


def default_model_dir() -> Path:
    return resources_dir() / "models" / "default"


def demo_dir() -> Path:
    """The demo studies: real NIH ChestX-ray14 radiographs as DICOM (``scripts/make_demo.py``; see NOTICE)."""
    return resources_dir() / "demo"
