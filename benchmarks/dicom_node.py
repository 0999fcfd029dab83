"""The DICOM node under a modality's push: --count chest radiographs sent by dcmtk's storescu over --parallel
associations to ``cxr-triage listen`` (the shipped model), which sends its results to dcmtk's storescp playing
the PACS. Every figure is measured in this one run:

- all stored, all triaged, none lost: instances in the store, SRs at the PACS;
- received studies per second (first to last instance written to the store);
- p50 / p95 / max seconds from the end of a C-STORE (the stored file's mtime, written just before the success
  status) to that study's SR arriving at the PACS (the PACS file's mtime).

The films are the real NIH ChestX-ray14 images of ../shared/data/nih14-sample (384 px, 8-bit), each wrapped as a
DX instance with UIDs of its own (pydicom), so that no two are the same instance.

    .venv/bin/python benchmarks/dicom_node.py --count 500 --parallel 4
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import DigitalXRayImageStorageForPresentation

from cxr_desktop.core.card import read_card
from cxr_desktop.core.resources import default_model_dir
from cxr_desktop.network.results import result_uid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def dx_instance(png: Path, folder: Path, index: int) -> Path:
    pixels = np.asarray(Image.open(png).convert("L"))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName = f"BENCH{index:04d}", f"Bench^{index:04d}"
    ds.PatientBirthDate = ds.PatientSex = ds.StudyDate = ds.StudyTime = ds.ReferringPhysicianName = ""
    ds.AccessionNumber = ds.StudyID = ""
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
    ds.SeriesNumber = ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    path = folder / f"{index:04d}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def delivery_times(work: Path, fingerprint: str) -> tuple[dict[str, Path], list[float]]:
    """The stored instances by SOP Instance UID, and for each whose SR reached the PACS the seconds from the
    stored file's mtime (end of its C-STORE) to the SR file's at the PACS."""
    stored = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in (work / "store").glob("*.dcm")}
    arrived = list((work / "pacs").glob("SR*"))
    latencies = []
    for uid, path in stored.items():
        sr_uid = result_uid(uid, fingerprint, "sr")
        match = [p for p in arrived if sr_uid in p.name]
        if match:
            latencies.append(min(p.stat().st_mtime for p in match) - path.stat().st_mtime)
    return stored, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--interval", type=float, default=0.0, help="send one film every S seconds (0: a burst)")
    args = parser.parse_args()
    pngs = sorted((SHARED / "nih14-sample" / "images").glob("*.png"))[: args.count]
    work = Path(tempfile.mkdtemp(prefix="cxr-node-bench-"))
    films = work / "films"
    films.mkdir()
    paths = [dx_instance(png, films, i) for i, png in enumerate(pngs)]
    fingerprint = read_card(default_model_dir()).fingerprint
    node_port, pacs_port = free_port(), free_port()
    pacs = subprocess.Popen(["storescp", "-aet", "PACS", "-od", str(work / "pacs"), str(pacs_port)])
    (work / "pacs").mkdir()
    log = open(work / "node.log", "w")  # noqa: SIM115
    node = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cxr_desktop.cli",
            "listen",
            "--port",
            str(node_port),
            "--host",
            "127.0.0.1",
            "--store",
            str(work / "store"),
            "--send-results",
            f"PACS@127.0.0.1:{pacs_port}",
        ],
        stderr=log,
    )
    try:
        wait(lambda: "listening as" in (work / "node.log").read_text(), 600, "the node")
        start = time.time()
        storescu = ["storescu", "-aet", "MODALITY", "-aec", "CXRTRIAGE", "127.0.0.1", str(node_port)]
        if args.interval:  # one film at a time, as a modality sends them as they are taken
            senders = []
            for path in paths:
                senders.append(subprocess.Popen(storescu + [str(path)], stderr=subprocess.DEVNULL))
                time.sleep(args.interval)
        else:
            chunks = [paths[i :: args.parallel] for i in range(args.parallel)]
            senders = [subprocess.Popen(storescu + [*map(str, c)], stderr=subprocess.DEVNULL) for c in chunks]
        codes = [sender.wait() for sender in senders]
        sent_s = time.time() - start
        wait(lambda: len(list((work / "pacs").glob("SR*"))) >= len(paths), args.timeout, "every SR at the PACS")
        total_s = time.time() - start
    finally:
        node.terminate()
        node.wait(120)
        pacs.terminate()
        pacs.wait(30)
    stored, latencies = delivery_times(work, fingerprint)
    lat = np.array(latencies)
    times = sorted(p.stat().st_mtime for p in stored.values())
    received_rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    print(
        f"films {len(paths)}, storescu failures {sum(c != 0 for c in codes)}, sent in {sent_s:.1f} s, "
        f"all SRs in {total_s:.1f} s"
    )
    print(f"stored {len(stored)}, SRs at the PACS {len(latencies)}, captures {len(list((work / 'pacs').glob('SC*')))}")
    print(
        f"received {received_rate:.1f} studies/s (first to last stored); triaged and delivered end to end "
        f"{len(latencies) / total_s:.1f} studies/s"
    )
    print(
        f"end of C-STORE -> SR at the PACS: p50 {np.percentile(lat, 50):.2f} s, p95 {np.percentile(lat, 95):.2f} s, "
        f"max {lat.max():.2f} s"
    )
    print(f"work folder: {work}")
    return 0 if len(stored) == len(latencies) == len(paths) and not any(codes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
