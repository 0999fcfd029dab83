"""The node against a real PACS: Orthanc (Debian package orthanc) holds the chest films, pushes them to the node
(a C-STORE from Orthanc's own DICOM client), and receives the node's results, which it files in the source's
study as new series."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError

from dicom_peers import free_port, require_tool, wait_for
from test_dicom_node import Running, engine, urgent_bundle  # noqa: F401 - the node and its fixtures

from cxr_desktop.network.outbox import Destination

FILMS = ["nih_dx_chest_uncompressed.dcm", "siim_cr_chest_pa_jpeg_baseline.dcm"]


class OrthancServer:
    def __init__(self, http_port: int, dicom_port: int) -> None:
        self.base, self.dicom_port = f"http://127.0.0.1:{http_port}", dicom_port

    def get(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, body: bytes, content_type: str = "application/json"):
        request = urllib.request.Request(self.base + path, data=body, headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def answers(self) -> bool:
        try:
            self.get("/system")
        except (URLError, ConnectionError):
            return False
        return True


@contextmanager
def orthanc(folder: Path, node_port: int) -> Iterator[OrthancServer]:
    """Orthanc on 127.0.0.1 (HTTP and DICOM on free ports, storage in ``folder``), knowing the node as ``cxr``."""
    binary = require_tool("Orthanc")
    server = OrthancServer(free_port(), free_port())
    config = {
        "Name": "test-pacs",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": int(server.base.rsplit(":", 1)[1]),
        "DicomPort": server.dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": {"cxr": ["CXRTRIAGE", "127.0.0.1", node_port]},
        "Plugins": [],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orthanc.json").write_text(json.dumps(config))
    with open(folder / "orthanc.log", "w") as log:
        process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: server.answers() or process.poll() is not None, 60, "Orthanc to start")
            assert process.poll() is None, (folder / "orthanc.log").read_text()
            yield server
        finally:
            process.terminate()
            process.wait(30)


def test_orthanc_pushes_films_and_files_the_results_in_their_studies(tmp_path, engine, dicom_dir):  # noqa: F811
    node_port = free_port()
    with orthanc(tmp_path / "orthanc", node_port) as pacs:
        destination = Destination("ORTHANC", "127.0.0.1", pacs.dicom_port)
        with Running(tmp_path / "node", engine, ["ORTHANC"], [destination], port=node_port) as running:
            sources = [pacs.post("/instances", (dicom_dir / name).read_bytes(), "application/dicom") for name in FILMS]
            ids = [source["ID"] for source in sources]
            job = pacs.post("/modalities/cxr/store", json.dumps({"Resources": ids, "Synchronous": True}).encode())
            assert job.get("FailedInstancesCount", 0) == 0, job
            wait_for(lambda: running.node.counts.scored == len(FILMS), 120, "both films triaged")
            wait_for(lambda: len(pacs.get("/instances")) == 2 * len(FILMS) + len(FILMS), 120, "SR + capture each")
            for source in sources:
                study = pacs.get(f"/instances/{source['ID']}/study")
                series = [pacs.get(f"/series/{s}")["MainDicomTags"] for s in study["Series"]]
                modalities = sorted(s.get("Modality", "") for s in series)
                assert len(series) == 3 and "SR" in modalities, modalities
                assert any("not for diagnosis" in s.get("SeriesDescription", "") for s in series)
