"""The DICOM TLS files a node is given (on the command line or in the app's settings) and the two TLS contexts
they make: the node's own, for the associations it accepts, and the one for the associations it opens to send
results. One set of rules for ``cxr-triage listen`` and the app, so both refuse the same incomplete settings
with the same reason."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from cxr_desktop.network.node import client_tls_context, tls_context


@dataclass(frozen=True)
class TlsFiles:
    cert: Path | None = None  # this node's certificate (PEM)
    key: Path | None = None  # its private key (PEM, unencrypted)
    ca: Path | None = None  # accept only peers presenting a certificate signed by this CA (mutual TLS)
    send_ca: Path | None = None  # send results over TLS: each destination must present one signed by this CA

    def node_context(self) -> ssl.SSLContext | None:
        """The TLS of the node's listener (None: plain DICOM); ``ValueError`` saying what is wrong."""
        if self.cert is None and self.key is None:
            if self.ca is not None:
                raise ValueError("a CA for the calling peers needs the node's TLS certificate and key")
            return None
        self._check_pair()
        try:
            return tls_context(self.cert, self.key, self.ca)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot use the TLS certificate, key or CA: {exc}") from exc

    def sending_context(self, sends_results: bool) -> ssl.SSLContext | None:
        """The TLS for sending results (None: plain DICOM); ``ValueError`` saying what is wrong."""
        if self.send_ca is None:
            return None
        if not sends_results:
            raise ValueError("a CA for the result destinations needs somewhere to send results")
        if (self.cert is None) != (self.key is None):
            self._check_pair()
        try:
            return client_tls_context(self.send_ca, self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot use the destinations' CA or the node's certificate for sending: {exc}") from exc

    def _check_pair(self) -> None:
        if self.cert is None or self.key is None:
            raise ValueError("DICOM TLS needs both the node's certificate and its private key")
