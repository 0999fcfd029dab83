"""Real DICOM peers for the node's tests: dcmtk's echoscu / storescu (the modality) / storescp (the PACS), and
dicom3tools' dciodvfy. A test that needs one skips, naming the Debian package, when it is absent; with
CXR_REQUIRE_DICOM_TOOLS=1 (CI) it fails instead. Servers listen on 127.0.0.1 on a free port and are stopped
by the test that started them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PACKAGES = {
    "echoscu": "dcmtk",
    "storescu": "dcmtk",
    "storescp": "dcmtk",
    "dsrdump": "dcmtk",
    "dciodvfy": "dicom3tools",
    "Orthanc": "orthanc",
    "openssl": "openssl",
}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    message = f"needs {name} (Debian package {PACKAGES.get(name, name)}: apt-get install -y {PACKAGES.get(name, name)})"
    if os.environ.get("CXR_REQUIRE_DICOM_TOOLS") == "1":
        pytest.fail(f"CXR_REQUIRE_DICOM_TOOLS=1 but the test {message}")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout_s: float = 60.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def storescu(
    port: int,
    *files: Path,
    calling: str = "MODALITY",
    called: str = "CXRTRIAGE",
    jpeg: bool = False,
    tls: tuple[str, ...] = (),
):
    """Send ``files`` as the modality; the completed process (its return code and stderr). ``tls``: storescu's
    TLS options (``+tls KEY CERT +cf CA``)."""
    args = [require_tool("storescu"), "-v", "-aet", calling, "-aec", called, *tls]
    if jpeg:
        args.append("-xy")  # propose JPEG baseline, as a CR that compresses its films
    args += ["127.0.0.1", str(port), *map(str, files)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def echoscu(
    port: int, calling: str = "MODALITY", called: str = "CXRTRIAGE", tls: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    args = [require_tool("echoscu"), "-aet", calling, "-aec", called, *tls, "127.0.0.1", str(port)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@contextmanager
def storescp(folder: Path, port: int | None = None, ae_title: str = "PACS", tls: tuple[str, ...] = ()) -> Iterator[int]:
    """A PACS (dcmtk's storescp) that stores what it is sent into ``folder``, each object in a file of its own
    (a resend makes a second file); yields its port. ``tls``: storescp's TLS options (``+tls KEY CERT ...``)."""
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    args = [require_tool("storescp"), "-aet", ae_title, *tls, "-od", str(folder), "+uf", str(port)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _listening(port) or process.poll() is not None, 30, "storescp to listen")
        if process.poll() is not None:
            raise AssertionError(f"storescp did not start: {process.stderr.read().decode()}")
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's error lines for one file ([] when it conforms)."""
    result = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def dsrdump(path: Path) -> str:
    result = subprocess.run(
        [require_tool("dsrdump"), "+Pl", "+Pu", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"dsrdump cannot parse {path.name}: {result.stderr}"
    return result.stdout


def openssl(*args: str) -> None:
    subprocess.run([require_tool("openssl"), *args], check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}-ca.key", folder / f"{name}-ca.crt"
    openssl(
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


def make_cert(folder: Path, name: str, ca: tuple[Path, Path], address: str | None = None) -> tuple[Path, Path]:
    """A key and a certificate signed by ``ca``; with ``address``, valid for that IP address (a server's)."""
    key, request, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.crt"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(request))
    extensions = []
    if address:
        (folder / f"{name}.ext").write_text(f"subjectAltName=IP:{address}\n")
        extensions = ["-extfile", str(folder / f"{name}.ext")]
    openssl(
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
        *extensions,
    )
    return key, cert
