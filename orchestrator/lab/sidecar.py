"""The capture sidecar: tcpdump in a host's network namespace, its pcap streamed to us.

tcpdump writes the pcap to its stdout (`-w -`, flushed after every packet by
`-U`), which we read from the attached socket as it comes: nothing is written
inside the container (its root is read-only), and the capture is complete the
moment tcpdump exits. Its stderr says when it listens and, at the end, its
counts, the capture's integrity check.
"""
from __future__ import annotations

import re
import struct
import time
from typing import Any

from ..pcapfile import pcap_byte_order
from .attach import AttachedStream
from .protocol import CaptureFile

# NET_RAW opens the packet socket; SETUID/SETGID let tcpdump drop to its own
# unprivileged user right after opening it.
SIDECAR_CAPS = ["NET_RAW", "SETUID", "SETGID"]

# --immediate-mode gives the ring fixed slots of the snap length: with the
# default 256 KiB snap length a 2 MiB ring holds 8 packets and drops under
# load. 8 KiB slots in a 16 MiB ring hold 2048; a larger (GSO) frame keeps
# its headers and true length, only its payload is cut.
# Only TCP and ICMP pass the filter: ARP probes and the like arrive at random
# times, and one arriving while tcpdump stops is counted but never written,
# which would fail the capture's integrity check for a packet nobody needs.
TCPDUMP_ARGS = ["-i", "any", "-n", "-U", "--immediate-mode", "-s", "8192", "-B", "16384", "-w", "-", "tcp or icmp"]


def parse_tcpdump_counts(text: str) -> tuple[int | None, int | None, int | None]:
    """tcpdump's counts since it was ready: its last report minus the one it gave when ready.

    While libpcap sets up its filter it drains whatever reached the socket, and
    the kernel counts those frames as received; the report asked for (SIGUSR1)
    once tcpdump listens takes them out, so only what the run's capture lost remains.
    """
    def counts(what: str) -> list[int]:
        return [int(n) for n in re.findall(rf"(\d+) packets? {what}", text)]

    def since_ready(what: str) -> int | None:
        found = counts(what)
        if not found:
            return None
        return found[-1] - (found[0] if len(found) > 1 else 0)
    return since_ready("captured"), since_ready("received by filter"), since_ready("dropped by kernel")


def join(earlier: CaptureFile | None, later: CaptureFile) -> CaptureFile:
    """One pcap from two parts written by tcpdump with the same link type (header of the first kept)."""
    if earlier is None:
        return later
    def add(a: int | None, b: int | None) -> int | None:
        return None if a is None or b is None else a + b
    return CaptureFile(later.host, earlier.data + later.data[24:], add(earlier.captured, later.captured),
                       add(earlier.received, later.received), add(earlier.dropped, later.dropped))


class CaptureStream(AttachedStream):
    """A sidecar's attached output: the pcap on stdout, tcpdump's messages on stderr."""

    what = "tcpdump"

    def __init__(self, api: Any, container_id: str, host: str) -> None:
        self._parts: list[bytes] = []
        self.last_packet = 0.0   # time.monotonic() when pcap bytes last came (0: none yet)
        self._unread = b""       # the pcap bytes after the last whole record
        self._records = 0        # whole records come so far
        self._byte_order = ""
        super().__init__(api, container_id, host)

    def _on_stdout(self, data: bytes) -> None:
        self._parts.append(data)
        self.last_packet = time.monotonic()
        self._count_records(data)

    def _count_records(self, data: bytes) -> None:
        """Whole pcap records so far: 16-byte headers (incl_len at 8) after the 24-byte file header."""
        unread = self._unread + data
        if not self._byte_order:
            if len(unread) < 24:
                self._unread = unread
                return
            self._byte_order = pcap_byte_order(unread) or ">"
            unread = unread[24:]
        at = 0
        while len(unread) - at >= 16:
            size = 16 + struct.unpack_from(self._byte_order + "I", unread, at + 8)[0]
            if len(unread) - at < size:
                break
            at += size
            self._records += 1
        self._unread = unread[at:]

    def wait_listening(self, timeout: float) -> None:
        self._wait(lambda: True if "listening on" in self.stderr else None, timeout, "to start listening")

    def reports(self) -> int:
        """How many times tcpdump has printed its counts so far (the condition is reentrant: callable in a wait)."""
        with self._cond:
            return self.stderr.count("dropped by kernel")

    def wait_report(self, timeout: float, after: int = 0) -> None:
        """Until tcpdump printed its counts (at SIGUSR1, and as it exits) more than `after` times."""
        self._wait(lambda: True if self.reports() > after else None, timeout, "to report its counts")

    def drained(self) -> bool:
        """By its last report, tcpdump has written every packet the kernel handed it since it was ready."""
        with self._cond:
            captured, received, _ = parse_tcpdump_counts(self.stderr)
        return captured is not None and captured == received

    def finish(self, timeout: float, reports: int | None = None) -> CaptureFile:
        """After SIGINT: the whole pcap and tcpdump's counts.

        Complete once tcpdump has exited, or (given how many `reports` it had printed before the
        SIGINT) once it has printed its closing counts and as many whole records as it says it captured
        have come: each was on its way before the counts were (-U flushes every packet).
        """
        def complete() -> bool | None:
            if self._closed:
                return True
            if reports is None or self.reports() <= reports:
                return None
            captured = re.findall(r"(\d+) packets? captured", self.stderr)
            return True if captured and self._records == int(captured[-1]) else None
        self._wait(complete, timeout, "to stop")
        with self._cond:
            return CaptureFile(self.host, b"".join(self._parts), *parse_tcpdump_counts(self.stderr))
