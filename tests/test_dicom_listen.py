"""``cxr-triage listen`` as a hospital runs it, a process of its own: clean shutdown on SIGTERM with the
outbox kept, results delivered after a restart once the PACS is back (each once), and kill -9 in the middle
of an association leaving no partial instance, the sender's retry succeeding after the restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import make_tiny_bundle
from dicom_peers import free_port, require_tool, storescp, storescu, wait_for
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import DigitalXRayImageStorageForPresentation

FILM = "nih_dx_chest_uncompressed.dcm"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("listen-bundle") / "tiny", cardiomegaly_threshold=1e-6)


class Node:
    """``cxr-triage listen`` in a subprocess; its stderr goes to a file the test reads."""

    def __init__(self, folder: Path, bundle: Path, *extra: str) -> None:
        self.folder, self.port = folder, free_port()
        self.log = folder / f"node-{time.monotonic_ns()}.log"
        command = [
            sys.executable,
            "-m",
            "cxr_desktop.cli",
            "listen",
            "--port",
            str(self.port),
            "--host",
            "127.0.0.1",
            "--store",
            str(folder / "store"),
            "--model",
            str(bundle),
            "--device",
            "cpu",
            *extra,
        ]
        with open(self.log, "w") as handle:
            self.process = subprocess.Popen(command, stderr=handle, stdout=subprocess.DEVNULL)
        wait_for(lambda: "listening as" in self.text() or self.process.poll() is not None, 180, "the node to listen")
        assert self.process.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text()

    def terminate(self, timeout_s: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no handler, no cleanup
        self.process.wait(30)


def instances(folder: Path) -> list[Path]:
    return sorted((folder / "store").glob("*.dcm"))


@pytest.mark.slow
def test_sigterm_keeps_the_outbox_and_a_restart_delivers_each_result_once(tmp_path, bundle, dicom_dir):
    require_tool("storescp")
    pacs_port = free_port()
    destination = f"PACS@127.0.0.1:{pacs_port}"
    node = Node(tmp_path, bundle, "--send-results", destination, "--allow-ae", "MODALITY")
    try:
        assert storescu(node.port, dicom_dir / FILM).returncode == 0
        queued = tmp_path / "store" / ".outbox" / f"PACS_127.0.0.1_{pacs_port}"
        wait_for(lambda: len(list(queued.glob("*.dcm"))) == 2, 120, "an SR and a capture in the outbox")
    finally:
        assert node.terminate() == 0, node.text()
    assert "stopped: 1 received" in node.text()
    assert len(list(queued.glob("*.dcm"))) == 2  # kept for the next start
    with storescp(tmp_path / "pacs", pacs_port):
        again = Node(tmp_path, bundle, "--send-results", destination)
        try:
            wait_for(lambda: not list(queued.glob("*.dcm")), 120, "the outbox emptied after the restart")
        finally:
            assert again.terminate() == 0, again.text()
    received = sorted(p.name[:2] for p in (tmp_path / "pacs").iterdir())
    assert received == ["SC", "SR"]  # each once (the PACS keeps a resend as a file of its own)
    assert "still need results" not in again.text()  # the study was not triaged twice
    assert len(instances(tmp_path)) == 1


def big_film(path: Path, source: Path, side: int = 3000) -> Path:
    """A chest film of ``side`` x ``side`` 16-bit pixels (18 MB at 3000), so that sending it takes a while."""
    ds = pydicom.dcmread(source)
    rng = np.random.default_rng(0)
    base = np.kron(ds.pixel_array.astype(np.uint16) * 16, np.ones((3, 3), np.uint16))[:side, :side]
    pixels = np.zeros((side, side), np.uint16)
    pixels[: base.shape[0], : base.shape[1]] = base
    pixels += rng.integers(0, 16, pixels.shape, dtype=np.uint16)
    ds.Rows, ds.Columns = side, side
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def send_in_background(port: int, path: Path) -> threading.Thread:
    def send() -> None:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", port, ae_title="CXRTRIAGE")
        if assoc.is_established:
            assoc.send_c_store(path)  # the node dies under it: no status, an aborted association
            assoc.release()

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_kill_9_during_an_association_leaves_no_partial_instance_and_the_retry_succeeds(tmp_path, bundle, dicom_dir):
    require_tool("storescu")
    film = big_film(tmp_path / "big.dcm", dicom_dir / FILM)
    node = Node(tmp_path, bundle)
    sender = send_in_background(node.port, film)
    time.sleep(1.0)  # the association is open and the film on its way
    node.kill()
    sender.join(60)
    for path in instances(tmp_path):  # what the node stored before it died is whole
        assert pydicom.dcmread(path).pixel_array.shape == (3000, 3000)
    partial = list((tmp_path / "store" / ".incoming").glob("*.part"))
    again = Node(tmp_path, bundle, "--results", str(tmp_path / "results"))
    try:
        assert not any(p.exists() for p in partial)  # removed at the start
        retry = storescu(again.port, film)
        assert retry.returncode == 0, retry.stderr
        wait_for(lambda: list((tmp_path / "results").glob("SR_*.dcm")), 180, "the retried film's SR")
    finally:
        assert again.terminate() == 0, again.text()
    stored = instances(tmp_path)
    assert len(stored) == 1 and pydicom.dcmread(stored[0]).pixel_array.shape == (3000, 3000)
    assert os.listdir(tmp_path / "store" / ".incoming") == []
