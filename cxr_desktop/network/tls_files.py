"""The DICOM TLS files a node is given (on the command line or in the app's settings) and the two TLS contexts
they make (each file loaded once, its error named): the node's own, for the associations it accepts, and the one
for the associations it opens to send results. One set of rules for ``cxr-triage listen`` and the app, so both
refuse the same incomplete or unusable settings, each reason naming the setting and the file in the words of the
caller (``labels``)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

# what each setting is called where it is given: the app's dialog, and cxr-triage listen's options
APP_LABELS = {
    "cert": "the TLS certificate",
    "key": "its private key",
    "ca": "the peers' CA",
    "send_ca": "the destinations' CA",
    "destinations": "result destinations",
}
CLI_LABELS = {
    "cert": "--tls-cert",
    "key": "--tls-key",
    "ca": "--tls-ca",
    "send_ca": "--send-tls-ca",
    "destinations": "--send-results",
}


@dataclass(frozen=True)
class TlsFiles:
    cert: Path | None = None  # this node's certificate (PEM)
    key: Path | None = None  # its private key (PEM, unencrypted)
    ca: Path | None = None  # accept only peers presenting a certificate signed by this CA (mutual TLS)
    send_ca: Path | None = None  # send results over TLS: each destination must present one signed by this CA
    labels: Mapping[str, str] = field(default_factory=lambda: APP_LABELS, compare=False)

    def node_context(self) -> ssl.SSLContext | None:
        """The node's TLS, for the associations it accepts (None: plain DICOM): its certificate and key; with
        ``ca``, only peers presenting a certificate signed by it may connect (mutual TLS, as the BCP 195
        profiles expect). TLS 1.2 at least. ``ValueError`` saying what is wrong."""
        if self.cert is None and self.key is None:
            if self.ca is not None:
                raise ValueError(f"{self._name('ca')} needs {self.labels['cert']} and {self.labels['key']}")
            return None
        self._check_pair()
        context = self._context(ssl.Purpose.CLIENT_AUTH, "ca")
        self._load_pair(context)
        if self.ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def sending_context(self, sends_results: bool) -> ssl.SSLContext | None:
        """TLS for the associations the node opens to send results (None: plain DICOM): each destination must
        present a certificate signed by ``send_ca`` for the host name or address it is reached at; the node
        presents its own when it has one (mutual TLS). TLS 1.2 at least. ``ValueError`` saying what is wrong."""
        if self.send_ca is None:
            return None
        if not sends_results:
            raise ValueError(f"{self._name('send_ca')} needs {self.labels['destinations']}")
        presents_own = self.cert is not None or self.key is not None
        if presents_own:
            self._check_pair()
        context = self._context(ssl.Purpose.SERVER_AUTH, "send_ca")
        if presents_own:
            self._load_pair(context)
        return context

    def _name(self, setting: str) -> str:
        return f"{self.labels[setting]} ({getattr(self, setting)})"

    def _check_file(self, setting: str) -> None:
        path = getattr(self, setting)
        if not path.is_file():
            raise ValueError(f"{self._name(setting)}: {'not a file' if path.exists() else 'no such file'}")

    def _check_pair(self) -> None:
        """The certificate and its key: both given, both files."""
        if self.cert is None or self.key is None:
            raise ValueError(f"DICOM TLS needs both {self.labels['cert']} and {self.labels['key']}")
        self._check_file("cert")
        self._check_file("key")

    def _context(self, purpose: ssl.Purpose, ca_setting: str) -> ssl.SSLContext:
        """A TLS 1.2+ context trusting the CA of ``ca_setting`` (the system's when that setting is empty)."""
        ca = getattr(self, ca_setting)
        if ca is not None:
            self._check_file(ca_setting)
        try:
            context = ssl.create_default_context(purpose, cafile=ca)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"cannot use {self._name(ca_setting)} as a CA (PEM certificates): {exc}") from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _load_pair(self, context: ssl.SSLContext) -> None:
        """The certificate and its key into ``context``: readable as PEM, the key unencrypted and the
        certificate's."""
        try:
            context.load_cert_chain(self.cert, self.key, password=_refuse_passphrase)
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                raise ValueError(f"{self._name('key')} is not the key of {self._name('cert')}") from exc
            pair = f"{self._name('cert')} with {self._name('key')}"
            raise ValueError(f"cannot use {pair}: not a PEM certificate and its key ({exc})") from exc
        except OSError as exc:
            raise ValueError(f"cannot read {self._name('cert')} or {self._name('key')}: {exc}") from exc
        except ValueError as exc:  # _refuse_passphrase: the key is encrypted
            raise ValueError(f"{self._name('key')}: {exc}") from exc


def _refuse_passphrase() -> str:
    """The password callback of ``load_cert_chain``: without one, OpenSSL asks for an encrypted key's passphrase
    on the terminal, which blocks a node (or the app) started from one."""
    raise ValueError("the private key is encrypted: give an unencrypted PEM key, readable only by the node's user")
