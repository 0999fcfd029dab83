"""The DICOM node in this process, against real peers: dcmtk's echoscu and storescu as the modality, storescp
as the PACS that receives the results. The model is a random-weight test bundle whose threshold flags every
film (so every study is urgent and gets its heatmap capture too)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pydicom
import pytest
from conftest import make_tiny_bundle
from dicom_peers import echoscu, free_port, require_tool, storescp, storescu, wait_for
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom import _config as pynetdicom_config
from pynetdicom.sop_class import DigitalXRayImageStorageForPresentation

from cxr_desktop.inference.engine import Engine
from cxr_desktop.network import store as store_module
from cxr_desktop.network.node import DicomNode, NodeConfig
from cxr_desktop.network.outbox import Destination, Outbox
from cxr_desktop.network.produce import LEDGER, ResultSink
from cxr_desktop.network.store import BadInstance, InstanceStore
from cxr_desktop.worklist.session import TriageSession

CHEST = ["nih_dx_chest_uncompressed.dcm", "cr_mono1_10bit_chest_no_meta.dcm"]
JPEG = "siim_cr_chest_pa_jpeg_baseline.dcm"


@pytest.fixture(scope="module")
def urgent_bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("node-bundle") / "tiny", cardiomegaly_threshold=1e-6)


@pytest.fixture(scope="module")
def engine(urgent_bundle) -> Engine:
    return Engine.from_path(urgent_bundle, device="cpu")


class Running:
    """A node on a free port of 127.0.0.1, its store, the results it wrote, and its outbox."""

    def __init__(
        self, folder: Path, engine: Engine, allowed: list[str], destinations: list[Destination], port: int = 0
    ) -> None:
        self.session = TriageSession(engine)
        self.outbox = Outbox(folder / "outbox", destinations, "CXRTRIAGE", min_delay_s=0.2, max_delay_s=1.0)
        self.sink = ResultSink(folder / "results", self.outbox if destinations else None, folder / "store" / LEDGER)
        config = NodeConfig("CXRTRIAGE", port, folder / "store", "127.0.0.1", allowed)
        self.node = DicomNode(config, self.session, lambda row: self.sink.deliver(self.session, row))

    def __enter__(self) -> Running:
        self.node.start()
        self.outbox.start()
        return self

    def __exit__(self, *exc) -> None:
        self.node.stop(grace_s=5)
        self.outbox.stop()

    @property
    def port(self) -> int:
        return self.node.port


@pytest.fixture
def node(tmp_path, engine):
    with Running(tmp_path, engine, ["MODALITY"], []) as running:
        yield running


def test_echo_answers_and_an_unknown_calling_ae_is_refused(node):
    assert echoscu(node.port).returncode == 0
    refused = echoscu(node.port, calling="INTRUDER")
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stderr


def test_received_chest_films_are_stored_triaged_and_get_results(node, dicom_dir):
    sent = storescu(node.port, *(dicom_dir / name for name in CHEST))
    assert sent.returncode == 0, sent.stderr
    jpeg = storescu(node.port, dicom_dir / JPEG, jpeg=True)
    assert jpeg.returncode == 0, jpeg.stderr
    wait_for(lambda: node.node.counts.scored == 3, what="three studies triaged")
    stored = node.node.store.instances()
    assert len(stored) == 3
    rows = node.session.rows_in_arrival()
    assert sorted(row.path for row in rows) == stored
    assert all(row.status == "done" and row.urgent for row in rows), [(r.path.name, r.error) for r in rows]
    results = sorted(p.name[:2] for p in (node.sink.folder).glob("*.dcm"))
    assert results == ["SC"] * 3 + ["SR"] * 3
    jpeg_source = pydicom.dcmread(dicom_dir / JPEG, stop_before_pixels=True)
    stored_jpeg = [p for p in stored if p.name.startswith(jpeg_source.SOPInstanceUID + "_")]
    assert pydicom.dcmread(stored_jpeg[0]).file_meta.TransferSyntaxUID == jpeg_source.file_meta.TransferSyntaxUID


def test_a_resent_instance_is_stored_and_triaged_once(node, dicom_dir):
    film = dicom_dir / CHEST[0]
    for _ in range(3):
        assert storescu(node.port, film).returncode == 0
    wait_for(lambda: node.node.counts.scored >= 1, what="the study triaged")
    assert len(node.node.store.instances()) == 1
    assert (node.node.counts.received, node.node.counts.resent) == (1, 2)
    assert len(node.session.rows_in_arrival()) == 1


def test_a_ct_is_not_accepted(node, dicom_dir):
    sent = storescu(node.port, dicom_dir / "not_chest_ct_abdomen.dcm")
    assert sent.returncode != 0 and "No presentation context" in sent.stderr
    assert node.node.store.instances() == []


def _send_raw(port: int, folder: Path, dataset_bytes: bytes, monkeypatch) -> int:
    """A C-STORE whose data set is ``dataset_bytes`` as they are (a broken encoding no toolkit would write):
    pynetdicom's SCU sends a file's data set without decoding it; the status the node answered."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.6.7"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    encoded = DicomBytesIO()
    encoded.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(encoded, meta)
    path = folder / "broken.dcm"
    path.write_bytes(encoded.getvalue() + dataset_bytes)
    monkeypatch.setattr(pynetdicom_config, "STORE_SEND_CHUNKED_DATASET", True)
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="CXRTRIAGE")
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(path).Status)
    finally:
        assoc.release()


@pytest.mark.parametrize(
    "garbage, expected",
    [
        # a sequence that never ends: pydicom cannot decode it
        (b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff\xfe\xff\x00\xe0\x10\x00\x00\x00", 0xC210),
        (b"\x08\x00\x16\x00ZZ\x04\x001.2\x00", 0xC210),  # a value representation that does not exist
        (b"this is not a DICOM data set at all, just text", 0xA900),  # decodes to nothing: no SOP instance
    ],
)
def test_a_malformed_data_set_gets_a_failure_status_and_the_node_keeps_serving(
    node, dicom_dir, tmp_path, monkeypatch, garbage, expected
):
    assert _send_raw(node.port, tmp_path, garbage, monkeypatch) == expected
    assert node.node.counts.refused == 1
    assert node.node.store.instances() == []
    monkeypatch.undo()
    assert storescu(node.port, dicom_dir / CHEST[0]).returncode == 0
    wait_for(lambda: node.node.counts.scored == 1, what="the next study triaged")


def test_a_full_disk_answers_out_of_resources_and_leaves_nothing(node, dicom_dir, monkeypatch):
    def no_room(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store_module.os, "fsync", no_room)
    sent = storescu(node.port, dicom_dir / CHEST[0])
    assert sent.returncode != 0
    assert "Refused: OutOfResources" in sent.stderr, sent.stderr  # dcmtk names status 0xA700 so
    assert node.node.store.instances() == []
    assert list(node.node.store.incoming.iterdir()) == []
    monkeypatch.undo()
    assert storescu(node.port, dicom_dir / CHEST[0]).returncode == 0  # the sender's retry, once there is room
    assert len(node.node.store.instances()) == 1


def test_results_reach_the_pacs_and_wait_while_it_is_down(tmp_path, engine, dicom_dir):
    require_tool("storescp")
    pacs_port = free_port()
    destination = Destination("PACS", "127.0.0.1", pacs_port)
    with Running(tmp_path / "node", engine, [], [destination]) as running:
        assert storescu(running.port, dicom_dir / CHEST[0]).returncode == 0
        wait_for(lambda: running.outbox.pending(destination), what="results queued while the PACS is down")
        with storescp(tmp_path / "pacs", pacs_port):
            wait_for(lambda: not running.outbox.pending(destination), what="the outbox emptied")
    received = sorted(p.name[:2] for p in (tmp_path / "pacs").iterdir())
    assert received == ["SC", "SR"]


def test_store_names_refuse_bad_uids_and_keep_patients_apart(tmp_path):
    store = InstanceStore(tmp_path)
    for uid in ["../../etc/passwd", "1.2..3", "", "1" * 65, "1.2.3/4"]:
        with pytest.raises(BadInstance):
            store.path_for(uid, "P1")
    assert store.path_for("1.2.3", "P1") != store.path_for("1.2.3", "P2")
    assert store.store("1.2.3", "P1", b"x").new and not store.store("1.2.3", "P1", b"y").new
    assert store.store("1.2.3", "P1", b"z").path.read_bytes() == b"x"


def test_partial_files_of_a_killed_node_are_removed_at_start(tmp_path):
    store = InstanceStore(tmp_path)
    (store.incoming / "1.2.3_abc.dcm.123.beef.part").write_bytes(b"DICM half")
    assert InstanceStore(tmp_path).clean_incoming() == 0  # the second start has already cleaned
    assert list(store.incoming.iterdir()) == [] and store.instances() == []


def test_destinations_parse_or_say_why():
    assert Destination.parse("PACS@10.0.0.5:104") == Destination("PACS", "10.0.0.5", 104)
    for bad in ["PACS", "PACS@host", "PACS@host:0", "A" * 17 + "@h:104", "@h:104", "PACS@h:70000"]:
        with pytest.raises(ValueError, match="AE@HOST:PORT"):
            Destination.parse(bad)


def test_associations_beyond_the_cap_are_rejected_as_transient_and_served_once_one_ends(tmp_path):
    config = NodeConfig("CXRTRIAGE", 0, tmp_path / "store", "127.0.0.1", max_associations=1)
    node = DicomNode(config, TriageSession())
    node.start()
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context("1.2.840.10008.1.1")  # Verification
    try:
        first = ae.associate("127.0.0.1", node.port, ae_title="CXRTRIAGE")
        assert first.is_established
        second = ae.associate("127.0.0.1", node.port, ae_title="CXRTRIAGE")
        assert second.is_rejected and not second.is_established
        first.release()

        def established():
            assoc = ae.associate("127.0.0.1", node.port, ae_title="CXRTRIAGE")
            return assoc if assoc.is_established else None

        third = wait_for(established, 10, "an association once the first has ended")
        assert third.send_c_echo().Status == 0
        third.release()
    finally:
        node.stop(grace_s=5)
