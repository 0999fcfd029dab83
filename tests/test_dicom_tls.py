"""DICOM TLS: the node with its certificate and a CA; dcmtk's echoscu and storescu with a client certificate
signed by that CA get through, a plain (non-TLS) association and a certificate of another CA do not. Results
sent over TLS reach a PACS (dcmtk's storescp) whose certificate the hospital CA signed for its address, and wait
in the outbox at one whose certificate it did not sign. The certificates are made with openssl (dicom_peers)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from dicom_peers import make_ca, make_cert, openssl, require_tool, storescp, wait_for

from cxr_desktop.network.node import DicomNode, NodeConfig
from cxr_desktop.network.outbox import Destination, Outbox, encode
from cxr_desktop.network.tls_files import CLI_LABELS, TlsFiles
from cxr_desktop.studies.synthetic import build_dataset, synthetic_chest
from cxr_desktop.worklist.session import TriageSession


@pytest.fixture
def tls_node(tmp_path):
    ca = make_ca(tmp_path, "hospital")
    server_key, server_cert = make_cert(tmp_path, "cxr-node", ca)
    config = NodeConfig(
        "CXRTRIAGE", 0, tmp_path / "store", "127.0.0.1", tls=TlsFiles(server_cert, server_key, ca[1]).node_context()
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


def _queued_result(outbox: Outbox) -> None:
    """One secondary capture queued for every destination, as the node queues a heatmap capture."""
    outbox.put("SC-tls-test.dcm", encode(build_dataset(synthetic_chest(64), modality="OT")))


@pytest.mark.parametrize("signed_by_the_hospital", [True, False])
def test_results_go_over_tls_only_to_a_pacs_whose_certificate_the_ca_signed(tmp_path, signed_by_the_hospital):
    ca = make_ca(tmp_path, "hospital")
    signer = ca if signed_by_the_hospital else make_ca(tmp_path, "elsewhere")
    pacs_key, pacs_cert = make_cert(tmp_path, "pacs", signer, address="127.0.0.1")
    node_key, node_cert = make_cert(tmp_path, "cxr-node", ca)
    pacs_tls = ("+tls", str(pacs_key), str(pacs_cert), "+cf", str(ca[1]))  # the PACS checks the node's, too
    with storescp(tmp_path / "pacs", tls=pacs_tls) as port:
        destination = Destination("PACS", "127.0.0.1", port)
        outbox = Outbox(
            tmp_path / "outbox",
            [destination],
            "CXRTRIAGE",
            min_delay_s=0.2,
            max_delay_s=0.5,
            tls=TlsFiles(node_cert, node_key, send_ca=ca[1]).sending_context(True),
        )
        _queued_result(outbox)
        outbox.start()
        try:
            if signed_by_the_hospital:
                wait_for(lambda: not outbox.pending(destination), 30, "the result sent over TLS")
                assert [p.name[:2] for p in (tmp_path / "pacs").iterdir()] == ["SC"]
            else:
                wait_for(lambda: outbox.tries_failed >= 2, 30, "two refused tries")
                assert outbox.pending(destination) and not any((tmp_path / "pacs").iterdir())
        finally:
            outbox.stop()


def test_incomplete_or_unusable_tls_files_are_refused_naming_the_setting_and_file(tmp_path):
    """One set of rules for `cxr-triage listen --tls-*` and the app's settings (network.tls_files), each reason
    in the caller's words; an encrypted key is refused, not asked for on the terminal (which blocks the node)."""
    ca = make_ca(tmp_path, "hospital")
    key, cert = make_cert(tmp_path, "cxr-node", ca)
    other_key, _ = make_cert(tmp_path, "other", ca)
    encrypted = tmp_path / "encrypted.key"
    openssl("pkey", "-in", str(key), "-aes256", "-passout", "pass:secret", "-out", str(encrypted))
    assert TlsFiles().node_context() is None and TlsFiles().sending_context(True) is None
    assert TlsFiles(cert, key, ca[1]).node_context() is not None
    assert TlsFiles(send_ca=ca[1]).sending_context(True) is not None  # the node need not present its own
    refused = {
        "the peers' CA .* needs the TLS certificate and its private key": TlsFiles(ca=ca[1]),
        "--tls-ca .* needs --tls-cert and --tls-key": TlsFiles(ca=ca[1], labels=CLI_LABELS),
        "DICOM TLS needs both the TLS certificate and its private key": TlsFiles(cert=cert),
        r"its private key \(.*absent.key\): no such file": TlsFiles(cert, tmp_path / "absent.key"),
        r"the TLS certificate \(.*\): not a file": TlsFiles(tmp_path, key),
        "encrypted.key.*is encrypted": TlsFiles(cert, encrypted),
        "other.key.* is not the key of the TLS certificate": TlsFiles(cert, other_key),
        "cannot use the peers' CA .* as a CA": TlsFiles(cert, key, key),
    }
    for reason, files in refused.items():
        with pytest.raises(ValueError, match=reason):
            files.node_context()
    with pytest.raises(ValueError, match="--send-tls-ca .* needs --send-results"):
        TlsFiles(send_ca=ca[1], labels=CLI_LABELS).sending_context(False)
    with pytest.raises(ValueError, match="cannot use the destinations' CA"):
        TlsFiles(send_ca=key).sending_context(True)
