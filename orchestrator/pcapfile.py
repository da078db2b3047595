"""Capture files: classic pcap and pcapng, read as a stream of frames (slices of a chunk, no copies).

Classic pcap: either byte order, micro- or nanosecond magic. pcapng: any
section byte order, per-interface link type and timestamp resolution,
enhanced, simple and obsolete packet blocks.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO

from .errors import CaptureError

__all__ = ["CHUNK", "Frame", "FrameReader", "pcap_byte_order"]

# --- file formats -------------------------------------------------------------

_PCAP_MAGIC = {  # first 4 bytes -> (byte order, fraction divisor)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


def pcap_byte_order(head: bytes) -> str | None:
    """The struct byte order ("<" or ">") of a classic pcap file by its first 4 bytes; None if not one."""
    found = _PCAP_MAGIC.get(head[:4])
    return None if found is None else found[0]
_PCAPNG_BOM = 0x1A2B3C4D
_BT_IDB, _BT_OPB, _BT_SPB, _BT_EPB = 1, 2, 3, 6
_MAX_RECORD = 0x4000000  # 64 MiB: a larger record length means a corrupt file

# --- file readers -------------------------------------------------------------
# A frame is (time, linktype, buffer, offset, caplen): a slice of the chunk the reader holds, no copy.

Frame = tuple[float, int, bytes, int, int]
CHUNK = 1 << 20        # bytes read at a time: memory stays flat whatever the file's size


def _describe(head: bytes) -> str:
    """The first bytes of a file, as text when printable, else as hex."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        return repr(text)
    return "bytes " + head.hex(" ")


def _unsupported(name: str, linktype: int) -> CaptureError:
    return CaptureError(
        f"{name}: unsupported link type {linktype} "
        "(supported: Ethernet, raw IP, Linux cooked SLL/SLL2, BSD loopback, FDDI, PPP, "
        "Cisco HDLC, 802.11, radiotap, Prism, AVS, PPI, NFLOG, pflog, enc, Apple PKTAP, Solaris ipnet, "
        "Endace ERF, ATM RFC 1483)")


class FrameReader:
    """The frames of one capture file (classic pcap or pcapng), read a chunk at a time.

    The constructor reads the file header and raises CaptureError for a file
    that is not a capture (or whose link type is not in `supported`); iterating
    yields frames; afterwards `truncated` says whether the file ended
    mid-record. `done` is how many bytes the frames so far came from (of
    `total`), for a progress display: `on_chunk`, when set, is called with it
    each time a chunk is read (nothing is done per frame for it).
    """

    def __init__(self, source: BinaryIO | bytes, name: str, supported: frozenset[int]) -> None:
        self.name = name
        self.supported = supported
        if isinstance(source, bytes):
            self._file: BinaryIO | None = None
            self._buf = source
            self.total = len(source)
        else:
            self._file = source
            self._buf = source.read(CHUNK)
            try:
                self.total = os.fstat(source.fileno()).st_size
            except (OSError, AttributeError, ValueError):
                self.total = 0
        self.done = 0                   # bytes before the current chunk
        # how far into the file reading has come, where the file is not the capture's bytes (a compressed one)
        self._position: Callable[[], int] | None = getattr(source, "position", None)
        self.on_chunk: Callable[[int], None] | None = None
        self.truncated = False
        self.linktype = -1              # of the file (pcapng: of its first interface, once read)
        data = self._buf
        if not data:
            raise CaptureError(f"{name}: empty file (0 bytes), not a capture")
        head = data[:4]
        if len(data) < 4 and (any(m.startswith(data) for m in _PCAP_MAGIC) or _PCAPNG_SHB.startswith(data)):
            raise CaptureError(f"{name}: truncated file header ({len(data)} bytes)")
        if head in _PCAP_MAGIC:
            if len(data) < 24:
                raise CaptureError(f"{name}: truncated pcap file header ({len(data)} of 24 bytes)")
            order, div = _PCAP_MAGIC[head]
            snaplen, linkfield = struct.unpack_from(order + "II", data, 16)
            self.linktype = linkfield & 0xFFFF   # upper bits may carry FCS information
            if self.linktype not in supported:
                raise _unsupported(name, self.linktype)
            self._frames = self._pcap_frames(order, div, max(snaplen, _MAX_RECORD))
        elif head == _PCAPNG_SHB:
            if len(data) < 12:
                raise CaptureError(f"{name}: truncated pcapng section header ({len(data)} bytes)")
            self._frames = self._pcapng_frames()
        else:
            raise CaptureError(f"{name}: not a pcap or pcapng file (starts with {_describe(head)})")

    def __iter__(self) -> Iterator[Frame]:
        return self._frames

    def _more(self, buf: bytes, pos: int, need: int) -> tuple[bytes, int]:
        """The buffer from `pos` on, with at least `need` bytes when the file has them."""
        if self._file is None:
            return buf, pos
        self.done += pos
        rest = buf[pos:]
        while len(rest) < need:
            more = self._file.read(max(CHUNK, need - len(rest)))
            if not more:
                break
            rest += more
        self._buf = rest
        if self.on_chunk is not None:
            self.on_chunk(self.done if self._position is None else self._position())
        return rest, 0

    def _pcap_frames(self, order: str, div: int, limit: int) -> Iterator[Frame]:
        """Frames of a classic pcap file."""
        lt = self.linktype
        rec = struct.Struct(order + "IIII").unpack_from
        buf, pos = self._buf, 24
        n = len(buf)
        while True:
            if pos + 16 > n:
                buf, pos = self._more(buf, pos, 16)
                n = len(buf)
                if pos + 16 > n:
                    self.truncated = pos < n
                    return
            sec, frac, caplen, _origlen = rec(buf, pos)
            if caplen > limit:
                raise CaptureError(
                    f"{self.name}: corrupt record at byte {self.done + pos} (claims {caplen} bytes)")
            end = pos + 16 + caplen
            if end > n:
                buf, pos = self._more(buf, pos, 16 + caplen)
                n = len(buf)
                end = pos + 16 + caplen
                if end > n:
                    self.truncated = True
                    return
            yield (sec * div + frac) / div, lt, buf, pos + 16, caplen
            pos = end

    def _pcapng_frames(self) -> Iterator[Frame]:
        """Frames of a pcapng file (all sections, all interfaces)."""
        name = self.name
        first_linktype: int | None = None
        order = "<"
        ifaces: list[tuple[int, int, int, int]] = []   # linktype, divisor, offset (s), snaplen
        buf, pos = self._buf, 0
        n = len(buf)
        u32 = struct.Struct("<I").unpack_from
        epb = struct.Struct("<IIIII").unpack_from
        while True:
            if pos + 12 > n:
                buf, pos = self._more(buf, pos, 12)
                n = len(buf)
                if pos + 12 > n:
                    self.truncated = pos < n
                    break
            at = self.done + pos                       # the block's byte in the file
            if buf[pos:pos + 4] == _PCAPNG_SHB:
                (bom,) = struct.unpack_from("<I", buf, pos + 8)
                if bom == _PCAPNG_BOM:
                    order = "<"
                elif bom == 0x4D3C2B1A:
                    order = ">"
                else:
                    raise CaptureError(f"{name}: corrupt pcapng section header at byte {at}")
                u32 = struct.Struct(order + "I").unpack_from
                epb = struct.Struct(order + "IIIII").unpack_from
                ifaces = []
                btype = 0x0A0D0D0A
            else:
                (btype,) = u32(buf, pos)
            (blen,) = u32(buf, pos + 4)
            if blen < 12 or blen % 4 or blen > _MAX_RECORD:
                raise CaptureError(f"{name}: corrupt pcapng block at byte {at} (length {blen})")
            if pos + blen > n:
                buf, pos = self._more(buf, pos, blen)
                n = len(buf)
                if pos + blen > n:
                    self.truncated = True
                    break
            body = pos + 8
            end = pos + blen - 4
            if btype in (_BT_EPB, _BT_OPB):
                if end - body < 20:
                    raise CaptureError(f"{name}: corrupt packet block at byte {at}")
                ifid, hi, lo, caplen, _origlen = epb(buf, body)
                if btype == _BT_OPB:
                    ifid = struct.unpack_from(order + "H", buf, body)[0]
                if ifid >= len(ifaces) or body + 20 + caplen > end:
                    raise CaptureError(f"{name}: corrupt packet block at byte {at}")
                lt, div, off, _snap = ifaces[ifid]
                yield (((hi << 32) | lo) + off * div) / div, lt, buf, body + 20, caplen
            elif btype == _BT_IDB:
                iface = _pcapng_interface(buf, body, end, order)
                if iface is None:
                    raise CaptureError(f"{name}: corrupt interface block at byte {at}")
                if first_linktype is None:
                    first_linktype = self.linktype = iface[0]
                    if first_linktype not in self.supported:
                        raise _unsupported(name, first_linktype)
                ifaces.append(iface)
            elif btype == _BT_SPB:
                if not ifaces or end - body < 4:
                    raise CaptureError(f"{name}: corrupt simple packet block at byte {at}")
                lt, _div, _off, snap = ifaces[0]
                (origlen,) = u32(buf, body)
                caplen = min(origlen, end - body - 4, snap or _MAX_RECORD)
                yield 0.0, lt, buf, body + 4, caplen   # SPB has no timestamp
            pos += blen
        if first_linktype is None:
            if self.truncated:
                raise CaptureError(f"{name}: truncated before its first interface block")
            raise CaptureError(f"{name}: pcapng file without an interface block")


def _pcapng_interface(data: bytes, body: int, end: int,
                      order: str) -> tuple[int, int, int, int] | None:
    """(linktype, timestamp divisor, timestamp offset in s, snaplen) of an IDB."""
    if end - body < 8:
        return None
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", data, body)
    div, offset = 1_000_000, 0
    pos = body + 8
    opt = struct.Struct(order + "HH").unpack_from
    while pos + 4 <= end:
        code, olen = opt(data, pos)
        pos += 4
        if code == 0 or pos + olen > end:
            break
        if code == 9 and olen >= 1:        # if_tsresol
            r = data[pos]
            div = 2 ** (r & 0x7F) if r & 0x80 else 10 ** r
        elif code == 14 and olen >= 8:     # if_tsoffset
            (offset,) = struct.unpack_from(order + "q", data, pos)
        pos += (olen + 3) & ~3
    return linktype, div, offset, snaplen
