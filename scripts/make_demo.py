"""Build the demo worklist in ``resources/demo/``: real NIH ChestX-ray14 radiographs as DICOM.

    .venv/bin/python scripts/make_demo.py [--data ../shared/data] [--out resources/demo]

The images come from ``nih14-sample/images`` (384 px, 8-bit), chosen by their NIH labels only (never by a
model's score), one image per patient, PA views, in a fixed order given by a hash of the file name:

- cardiomegaly: "Cardiomegaly" as the only label (a label not mixed with other findings);
- no finding: "No Finding", adults aged 20 to 75;
- other findings: one finding that is not cardiomegaly (effusion, nodule, pneumothorax), to show that the
  list is not ordered by "anything abnormal".

Each becomes a DX DICOM (MONOCHROME2, 8-bit, JPEG-LS lossless) with tags from ``Data_Entry_2017_v2020``
(age, sex, view position), patients named ``DEMO^01``…, UIDs derived from the NIH file name (rerunning the
script writes the same files) and one study date. ``manifest.csv`` lists each file's NIH image and labels.
The data are NIH ChestX-ray14 (Wang et al., CVPR 2017; NIH Clinical Center): see NOTICE.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
from pathlib import Path

import cv2
from pydicom.uid import JPEGLSLossless, generate_uid

from cxr_desktop.studies.nih import NihRecord, read_nih_table
from cxr_desktop.studies.synthetic import build_dataset

log = logging.getLogger("make_demo")

REPO = Path(__file__).resolve().parents[1]
COUNTS = {"cardiomegaly": 5, "no finding": 7, "other": 3}
OTHER_FINDINGS = ("Effusion", "Nodule", "Pneumothorax")
STUDY_DATE = "20250303"
SOURCE = "NIH ChestX-ray14 (Wang et al., CVPR 2017; NIH Clinical Center), public data"
MANIFEST_COLUMNS = ["file", "nih_image", "finding_labels", "patient_age", "patient_sex", "view_position", "group"]


def _order(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def group_of(record: NihRecord) -> str:
    """The demo group an NIH record belongs to, or "" when it does not qualify."""
    labels = record.labels.split("|")
    if record.view_position != "PA":
        return ""
    if labels == ["Cardiomegaly"]:
        return "cardiomegaly"
    if labels == ["No Finding"] and record.age.isdigit() and 20 <= int(record.age) <= 75:
        return "no finding"
    if len(labels) == 1 and labels[0] in OTHER_FINDINGS:
        return "other"
    return ""


def choose(records: list[NihRecord]) -> list[tuple[NihRecord, str]]:
    """``COUNTS`` records per group, one per patient (and one per finding for "other"), in hash order."""
    chosen: list[tuple[NihRecord, str]] = []
    patients: set[str] = set()
    others: set[str] = set()
    for record in sorted(records, key=lambda r: _order(r.image)):
        group = group_of(record)
        if not group or record.patient_id in patients or sum(g == group for _, g in chosen) >= COUNTS[group]:
            continue
        if group == "other":
            if record.labels in others:
                continue
            others.add(record.labels)
        patients.add(record.patient_id)
        chosen.append((record, group))
    missing = {g: n - sum(c == g for _, c in chosen) for g, n in COUNTS.items()}
    if any(missing.values()):
        raise SystemExit(f"not enough qualifying images: {missing}")
    return sorted(chosen, key=lambda item: _order("order:" + item[0].image))  # arrival order mixes the groups


def write_study(image: Path, record: NihRecord, number: int, out: Path) -> Path:
    pixels = cv2.imread(str(image), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        raise SystemExit(f"cannot read {image}")

    def uid(kind: str) -> str:
        return generate_uid(entropy_srcs=["cxr-desktop demo", record.image, kind])

    tag = f"{number:02d}"
    ds = build_dataset(
        pixels,
        patient_name=f"DEMO^{tag}",
        patient_id=f"DEMO-{tag}",
        view_position=record.view_position,
        extra={
            "PatientAge": f"{int(record.age):03d}Y" if record.age.isdigit() else "",
            "PatientSex": record.sex if record.sex in ("M", "F") else "O",
            "StudyDate": STUDY_DATE,
            "StudyTime": f"{8 + number // 6:02d}{(number % 6) * 10:02d}00",
            "AccessionNumber": f"DEMO{tag}",
            "StudyID": tag,
            "StudyDescription": "XR CHEST",
            "SeriesDescription": "DEMO: public NIH ChestX-ray14 image",
            "SeriesNumber": 1,
            "InstanceNumber": 1,
            "ImageComments": f"{SOURCE}; image {record.image}",
            "StudyInstanceUID": uid("study"),
            "SeriesInstanceUID": uid("series"),
            "SOPInstanceUID": uid("instance"),
        },
    )
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.compress(JPEGLSLossless, pixels)
    path = out / f"demo_{tag}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--out", type=Path, default=REPO / "resources" / "demo")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    images = args.data / "nih14-sample" / "images"
    table = read_nih_table(args.data / "Data_Entry_2017_v2020.csv.gz")
    present = [table[p.name] for p in sorted(images.glob("*.png")) if p.name in table]
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("demo_*.dcm"):
        old.unlink()
    rows = []
    for number, (record, group) in enumerate(choose(present), start=1):
        path = write_study(images / record.image, record, number, args.out)
        rows.append([path.name, record.image, record.labels, record.age, record.sex, record.view_position, group])
        log.info("%s  %s  %s", path.name, record.image, record.labels)
    with open(args.out / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows)
    size = sum(p.stat().st_size for p in args.out.iterdir())
    log.info("wrote %d studies to %s (%.2f MB)", len(rows), args.out, size / 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
