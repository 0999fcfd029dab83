"""Shared fixtures: headless Qt, the real data beside the repository, the shipped demo studies, small synthetic
studies."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# the app's own settings (splitter, text size, reader) go to a file of this test run, not the user's
os.environ.setdefault("CXR_SETTINGS", os.path.join(tempfile.mkdtemp(prefix="cxr-settings-"), "settings.ini"))

# The base install (the app on the CPU) has no PyTorch and none of the trainer's packages; the README's test
# command installs [dev], which has them all. Where they are truly absent, a test module that imports them is
# reported as skipped (naming the extra), not as a collection error; with them installed nothing changes.
EXTRA_MODULES = {"torch": "cuda", "torchvision": "cuda", "yaml": "train", "sklearn": "train", "matplotlib": "train"}
MISSING_EXTRA_MODULES = {name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None}


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if not (MISSING_EXTRA_MODULES and report.failed and isinstance(collector, pytest.Module)):
        return
    text = str(report.longrepr)
    missing = [name for name in MISSING_EXTRA_MODULES if f"No module named '{name}'" in text]
    if missing:
        extra = EXTRA_MODULES[missing[0]]
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), 0, f"Skipped: needs {missing[0]} (the [{extra}] extra)")


REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CXR_SHARED_DATA", REPO.parent / "shared" / "data"))
DEMO = REPO / "resources" / "demo"


def shared_data_expected() -> bool:
    """Run on the real shared data (present, or required by CI) rather than on the shipped demo studies?"""
    return SHARED_DATA.exists() or os.environ.get("CXR_REQUIRE_SHARED_DATA") == "1"


def _require_or_skip(path: Path) -> Path:
    if path.exists():
        return path
    if os.environ.get("CXR_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"CXR_REQUIRE_SHARED_DATA=1 but {path} is missing")
    pytest.skip(f"real data not available at {path}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require_or_skip(SHARED_DATA)


@pytest.fixture(scope="session")
def dicom_dir(shared_data: Path) -> Path:
    return _require_or_skip(shared_data / "dicom")


@pytest.fixture(scope="session")
def nih_sample(shared_data: Path) -> Path:
    return _require_or_skip(shared_data / "nih14-sample")


@pytest.fixture(scope="session")
def nih_films(nih_sample: Path):
    """The first 24 real NIH films (uint8 gray) and the shipped model's preprocessing spec: what the pixel
    checks' tests change and look at."""
    import cv2

    from cxr_desktop.core.card import read_card
    from cxr_desktop.core.resources import default_model_dir

    sources = sorted((nih_sample / "images").glob("*.png"))[:24]
    return [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in sources], read_card(default_model_dir()).spec


def table_shows_session(window) -> bool:
    """Whether the window's worklist table shows the session's rows as they are now (it redraws at most every
    100 ms while scoring goes on, so a test waits for this before reading the table)."""

    def state(rows):
        return sorted((str(row.path), row.status, row.urgent, row.review.decision) for row in rows)

    return state(window.model.visible) == state(window.session.rows_in_arrival())


def validation_record(findings: list[str]) -> dict:
    """The card metrics ``cxr-train evaluate --validate`` would leave for ``findings`` passing (a stand-in:
    the test bundle's claim of validation needs its record, ``core.validation``)."""
    passing = {"n": 100, "positives": 10, "auroc": 0.9, "auroc_ci95": [0.8, 0.95]}
    record = {"how": "test stand-in", "findings": {f: passing for f in findings}, "overlap": {"training_copies": 0}}
    return {"validation_check": "test-record", "checks": {"test-record": record}}


def make_tiny_bundle(
    folder: Path,
    cardiomegaly_threshold: float = 0.5,
    arch: str = "resnet18",
    seed: int = 0,
    onnx: bool = False,
    trained_findings: list[str] | None = None,
    validated_findings: list[str] | None = None,
    thresholds: dict[str, float] | None = None,
) -> Path:
    """A random-weight bundle built through the core API (tests must not depend on the shipped model).
    ``trained_findings`` (default: all 14) and ``validated_findings`` (default: all trained ones, so that the
    bundle flags as a validated model does; without a record it would run in research mode) go to the card;
    ``thresholds`` adds other findings' thresholds to the default operating point."""
    torch = pytest.importorskip("torch", reason="test bundles are built with PyTorch (the [cuda] extra)")

    from cxr_desktop.core.architectures import create
    from cxr_desktop.core.bundle import ModelCard, save_bundle
    from cxr_desktop.core.preprocess import PreprocessSpec

    torch.manual_seed(seed)
    model = create(arch, 14)
    card = ModelCard(
        model_id="tiny-test-model",
        architecture=arch,
        preprocessing=PreprocessSpec(input_size=64).to_dict(),
        operating_points={"sensitivity_0.90": {**(thresholds or {}), "Cardiomegaly": cardiomegaly_threshold}},
        default_operating_point="sensitivity_0.90",
    )
    if trained_findings is not None:
        card.trained_findings = trained_findings
    card.validated_findings = list(validated_findings or card.trained_findings)
    card.metrics = validation_record(card.validated_findings)
    save_bundle(folder, model, card)
    if onnx:
        from cxr_desktop.core.onnx_model import export_onnx

        export_onnx(folder, model, card)
    return folder


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def _link_mixed(folder: Path, dicom_dir: Path, nih_sample: Path) -> Path:
    for path in sorted(dicom_dir.glob("*.dcm")):
        (folder / path.name).symlink_to(path)
    nested = folder / "nih"
    nested.mkdir()
    for path in sorted((nih_sample / "images").glob("*.png"))[:8]:
        (nested / path.name).symlink_to(path)
    return folder


@pytest.fixture(scope="session")
def mixed_folder(tmp_path_factory, dicom_dir: Path, nih_sample: Path) -> Path:
    """The shared DICOMs (CT included) and a few real NIH PNGs, linked into one folder."""
    return _link_mixed(tmp_path_factory.mktemp("studies"), dicom_dir, nih_sample)


@pytest.fixture(scope="session")
def gui_folder(tmp_path_factory) -> Path:
    """The GUI tests' studies: ``mixed_folder`` where the shared data are (CI requires them), otherwise the
    shipped demo studies (real NIH radiographs) and a generated CT slice that must be refused, so that a
    newcomer's test run opens the window too. Either way one file is ``not_chest_ct_abdomen.dcm``."""
    folder = tmp_path_factory.mktemp("gui-studies")
    if shared_data_expected():
        shared = _require_or_skip(SHARED_DATA)
        return _link_mixed(folder, _require_or_skip(shared / "dicom"), _require_or_skip(shared / "nih14-sample"))
    import numpy as np

    from cxr_desktop.studies.synthetic import write_dicom

    for path in sorted(DEMO.glob("*.dcm")):
        (folder / path.name).symlink_to(path)
    slab = np.random.default_rng(0).integers(-1000, 1000, (128, 128)).astype(np.int16)
    write_dicom(folder / "not_chest_ct_abdomen.dcm", slab, modality="CT", view_position="", body_part="ABDOMEN")
    return folder
