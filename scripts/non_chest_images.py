"""Write images that are not chest radiographs, as 8-bit gray PNGs, for measuring the input guard
(``cxr-train guard --non-chest OUT``): scikit-image's and matplotlib's sample data (photographs, microscopy,
astronomy, an MRI slice, a CT phantom, text, terrain) and the pixels of the shared abdominal CT.

    .venv/bin/python scripts/non_chest_images.py OUT [--shared ../shared/data]

scikit-image is a development dependency (``.[dev]``); images its sample data would download are skipped.
"""

from __future__ import annotations

import argparse
import gzip
import logging
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger("non_chest_images")

SKIMAGE_NAMES = (
    "astronaut camera coffee chelsea coins moon page text rocket horse clock brick grass gravel hubble_deep_field "
    "immunohistochemistry retina shepp_logan_phantom cat logo colorwheel checkerboard binary_blobs cell "
    "microaneurysms eagle brain lily kidney skin human_mitosis nickel_solidification protein_transport "
    "palisades_of_vogt vortex cells3d"
).split()


def gray8(array: np.ndarray) -> np.ndarray:
    """Any 2-D/3-D/colour array as an 8-bit gray image, stretched between its 0.5 and 99.5 percentiles."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3].astype(np.float32).mean(axis=-1)
    while a.ndim > 2:
        a = a[a.shape[0] // 2]
    a = a.astype(np.float32)
    low, high = np.percentile(a, [0.5, 99.5])
    return np.clip((a - low) / max(float(high - low), 1e-6) * 255.0, 0, 255).astype(np.uint8)


def sample_images(shared: Path) -> Iterator[tuple[str, np.ndarray]]:
    import matplotlib
    import pydicom
    import skimage.data

    for name in SKIMAGE_NAMES:
        try:
            yield f"skimage-{name}", gray8(getattr(skimage.data, name)())
        except Exception as exc:  # noqa: BLE001 - a sample that needs a download: skipped, and said
            log.warning("skipped skimage %s (%s)", name, type(exc).__name__)
    base = Path(matplotlib.get_data_path()) / "sample_data"
    for name in ("grace_hopper.jpg", "logo2.png", "Minduka_Present_Blue_Pack.png"):
        yield f"matplotlib-{Path(name).stem}", gray8(cv2.imread(str(base / name), cv2.IMREAD_COLOR))
    raw = gzip.decompress((base / "s1045.ima.gz").read_bytes())
    yield "matplotlib-s1045-mri", gray8(np.frombuffer(raw, np.uint16).reshape(256, 256))
    for name in ("topobathy.npz", "jacksboro_fault_dem.npz"):
        with np.load(base / name) as data:
            yield f"matplotlib-{Path(name).stem}", gray8(data[data.files[0]])
    ct = shared / "dicom" / "not_chest_ct_abdomen.dcm"
    if ct.is_file():
        yield "shared-ct-abdomen", gray8(pydicom.dcmread(ct).pixel_array)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, gray in sample_images(args.shared):
        cv2.imwrite(str(args.out / f"{name}.png"), gray)
        count += 1
    log.info("wrote %d images to %s", count, args.out)


if __name__ == "__main__":
    main()
