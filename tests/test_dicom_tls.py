"""DICOM TLS: the node with its certificate and a CA; dcmtk's echoscu and storescu with a client certificate
signed by that CA get through, a plain (non-TLS) association and a certificate of another CA do not. The
certificates are made here with openssl."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from dicom_peers import require_tool, wait_for

from cxr_desktop.network.node import DicomNode, NodeConfig, tls_context
from cxr_desktop.worklist.session import TriageSession


def _openssl(*args: str) -> None:
    subprocess.run([require_tool("openssl"), *args], check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}-ca.key", folder / f"{name}-ca.crt"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name} CA",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    )
    return key, cert


def make_cert(folder: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    key, request, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(request))
    _openssl(
        "x509",
        "-req",
        "-in",
        str(request),
        "-CA",
        str(ca[1]),
        "-CAkey",
        str(ca[0]),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        str(cert),
    )
    return key, cert


@pytest.fixture
def tls_node(tmp_path):
    ca = make_ca(tmp_path, "hospital")
    server_key, server_cert = make_cert(tmp_path, "cxr-node", ca)
    config = NodeConfig(
        "CXRTRIAGE", 0, tmp_path / "store", "127.0.0.1", tls=tls_context(server_cert, server_key, ca[1])
    )
    node = DicomNode(config, TriageSession())
    node.start()
    try:
        yield node, tmp_path, ca
    finally:
        node.stop(grace_s=5)


def _dcmtk(tool: str, port: int, *tls: str, files: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    args = [require_tool(tool), "-aet", "MODALITY", "-aec", "CXRTRIAGE", *tls, "127.0.0.1", str(port), *map(str, files)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_a_peer_with_a_certificate_of_the_hospital_ca_gets_through(tls_node, dicom_dir):
    node, folder, ca = tls_node
    key, cert = make_cert(folder, "modality", ca)
    tls = ("+tls", str(key), str(cert), "+cf", str(ca[1]))
    echo = _dcmtk("echoscu", node.port, *tls)
    assert echo.returncode == 0, echo.stderr
    sent = _dcmtk("storescu", node.port, *tls, files=(dicom_dir / "nih_dx_chest_uncompressed.dcm",))
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: node.counts.received == 1, 30, "the film stored")


def test_plain_dicom_and_a_foreign_certificate_are_refused(tls_node):
    node, folder, _ = tls_node
    assert _dcmtk("echoscu", node.port).returncode != 0
    foreign_ca = make_ca(folder, "elsewhere")
    key, cert = make_cert(folder, "stranger", foreign_ca)
    refused = _dcmtk("echoscu", node.port, "+tls", str(key), str(cert), "-ic")
    assert refused.returncode != 0
    assert node.store.instances() == []
