"""``cxr-triage listen``: the DICOM node on the command line. Runs until SIGTERM or Ctrl-C, then shuts down
cleanly: no new associations, the open ones finish, what was received is scored and its results are queued;
the outbox keeps what it has not sent for the next start."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from cxr_desktop.network.node import DicomNode, NodeConfig
from cxr_desktop.network.outbox import Destination, Outbox
from cxr_desktop.network.produce import LEDGER, ResultSink
from cxr_desktop.network.tls_files import CLI_LABELS, TlsFiles
from cxr_desktop.worklist.session import TriageSession

log = logging.getLogger(__name__)

OUTBOX = ".outbox"


def _ae_title(text: str) -> str:
    value = text.strip()
    if not 0 < len(value) <= 16 or "\\" in value or not value.isprintable():
        raise argparse.ArgumentTypeError(f"an AE title is 1-16 printable characters without '\\', got {text!r}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (0: any free port), got {value}")
    return value


def _destination(text: str) -> Destination:
    try:
        return Destination.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=_port, required=True, help="TCP port to listen on (104, 11112, ...)")
    parser.add_argument("--ae-title", type=_ae_title, default="CXRTRIAGE", help="this node's AE title")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")
    parser.add_argument("--store", type=Path, required=True, help="folder for the received instances")
    parser.add_argument(
        "--allow-ae",
        type=_ae_title,
        action="append",
        default=[],
        metavar="AE",
        help="accept associations only from this calling AE title (repeat for several)",
    )
    parser.add_argument(
        "--send-results",
        type=_destination,
        action="append",
        default=[],
        metavar="AE@HOST:PORT",
        help="send each study's SR (and an urgent study's heatmap capture) here by C-STORE (repeat for several)",
    )
    parser.add_argument("--results", type=Path, default=None, help="also write the result objects into this folder")
    parser.add_argument(
        "--outbox", type=Path, default=None, help=f"the results waiting to be sent (default: STORE/{OUTBOX})"
    )
    parser.add_argument("--tls-cert", type=Path, default=None, help="DICOM TLS: this node's certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, default=None, help="DICOM TLS: its private key (PEM, unencrypted)")
    parser.add_argument(
        "--tls-ca", type=Path, default=None, help="DICOM TLS: accept only peers with a certificate signed by this CA"
    )
    parser.add_argument(
        "--send-tls-ca",
        type=Path,
        default=None,
        metavar="PEM",
        help="send results over DICOM TLS: each destination must present a certificate signed by this CA for its "
        "host; --tls-cert/--tls-key, when given, are presented to it (mutual TLS)",
    )
    parser.add_argument(
        "--max-associations",
        type=int,
        default=10,
        metavar="N",
        help="associations served at once; one more is rejected as transient, the sender retries (default 10)",
    )


def tls_files(args: argparse.Namespace) -> TlsFiles:
    """The TLS files the options give, their errors worded with the options' names."""
    return TlsFiles(args.tls_cert, args.tls_key, args.tls_ca, args.send_tls_ca, labels=CLI_LABELS)


def serve(session: TriageSession, args: argparse.Namespace) -> int:
    """Run the node until SIGTERM or SIGINT (call from the main thread)."""
    try:
        files = tls_files(args)
        tls, send_tls = files.node_context(), files.sending_context(bool(args.send_results))
        if args.max_associations < 1:
            raise ValueError(f"--max-associations must be at least 1, got {args.max_associations}")
    except ValueError as exc:
        print(f"cxr-triage listen: {exc}", file=sys.stderr)
        return 2
    outbox = None
    if args.send_results:
        outbox = Outbox(args.outbox or args.store / OUTBOX, args.send_results, args.ae_title, tls=send_tls)
    config = NodeConfig(
        args.ae_title, args.port, args.store, args.host, args.allow_ae, tls=tls, max_associations=args.max_associations
    )
    sink = ResultSink(args.results, outbox, args.store / LEDGER)
    counts_lock = threading.Lock()

    def on_scored(row) -> None:
        with counts_lock:
            names = sink.deliver(session, row)
        print(
            f"cxr-triage: {row.path.name}: {row.priority or row.error} -> {', '.join(names) or 'no results'}",
            file=sys.stderr,
            flush=True,
        )

    node = DicomNode(config, session, on_scored)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        backlog = sink.undelivered(node.store.instances())
        if backlog:
            print(f"cxr-triage: {len(backlog)} received instances still need results: triaging them", file=sys.stderr)
        node.start(backlog)
        if outbox is not None:
            outbox.start()
        allowed = ", ".join(args.allow_ae) or "any calling AE"
        secure = "DICOM TLS" if tls else "plain DICOM"
        if outbox is not None:
            secure += "; results sent over " + ("DICOM TLS" if send_tls else "plain DICOM")
        print(
            f"cxr-triage: listening as {args.ae_title}@{args.host}:{node.port} ({allowed}; {secure}); "
            f"storing into {args.store}",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
        print("cxr-triage: stopping: open associations finish, received studies are scored", file=sys.stderr)
        node.stop()
    finally:
        if outbox is not None:
            outbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    counts = node.counts
    print(
        f"cxr-triage: stopped: {counts.received} received ({counts.resent} resent, {counts.refused} refused), "
        f"{counts.scored} triaged, {sink.written} result objects",
        file=sys.stderr,
    )
    return 0
