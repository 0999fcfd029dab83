"""The DICOM TLS files a node is given (on the command line or in the app's settings) and the two TLS contexts
they make: the node's own, for the associations it accepts, and the one for the associations it opens to send
results. One set of rules for ``cxr-triage listen`` and the app, so both refuse the same incomplete or unusable
settings, each reason naming the setting and the file in the words of the caller (``labels``)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cxr_desktop.network.node import client_tls_context, refuse_passphrase, tls_context

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
        """The TLS of the node's listener (None: plain DICOM); ``ValueError`` saying what is wrong."""
        if self.cert is None and self.key is None:
            if self.ca is not None:
                raise ValueError(f"{self._name('ca')} needs {self.labels['cert']} and {self.labels['key']}")
            return None
        self._check_pair()
        self._check_ca("ca")
        return tls_context(self.cert, self.key, self.ca)

    def sending_context(self, sends_results: bool) -> ssl.SSLContext | None:
        """The TLS for sending results (None: plain DICOM); ``ValueError`` saying what is wrong."""
        if self.send_ca is None:
            return None
        if not sends_results:
            raise ValueError(f"{self._name('send_ca')} needs {self.labels['destinations']}")
        if self.cert is not None or self.key is not None:
            self._check_pair()
        self._check_ca("send_ca")
        return client_tls_context(self.send_ca, self.cert, self.key)

    def _name(self, setting: str) -> str:
        return f"{self.labels[setting]} ({getattr(self, setting)})"

    def _check_file(self, setting: str) -> None:
        path = getattr(self, setting)
        if not path.is_file():
            raise ValueError(f"{self._name(setting)}: {'not a file' if path.exists() else 'no such file'}")

    def _check_pair(self) -> None:
        """The certificate and its key: both given, both files, readable as PEM, the key unencrypted and the
        certificate's."""
        if self.cert is None or self.key is None:
            raise ValueError(f"DICOM TLS needs both {self.labels['cert']} and {self.labels['key']}")
        self._check_file("cert")
        self._check_file("key")
        try:
            ssl.create_default_context().load_cert_chain(self.cert, self.key, password=refuse_passphrase)
        except ssl.SSLError as exc:
            if "KEY_VALUES_MISMATCH" in str(exc):
                raise ValueError(f"{self._name('key')} is not the key of {self._name('cert')}") from exc
            pair = f"{self._name('cert')} with {self._name('key')}"
            raise ValueError(f"cannot use {pair}: not a PEM certificate and its key ({exc})") from exc
        except OSError as exc:
            raise ValueError(f"cannot read {self._name('cert')} or {self._name('key')}: {exc}") from exc
        except ValueError as exc:  # refuse_passphrase: the key is encrypted
            raise ValueError(f"{self._name('key')}: {exc}") from exc

    def _check_ca(self, setting: str) -> None:
        if getattr(self, setting) is None:
            return
        self._check_file(setting)
        try:
            ssl.create_default_context(cafile=getattr(self, setting))
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"cannot use {self._name(setting)} as a CA (PEM certificates): {exc}") from exc
