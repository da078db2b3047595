"""Capture files: classic pcap and pcapng, read as frames (slices of one buffer, no copies).

Classic pcap: either byte order, micro- or nanosecond magic. pcapng: any
section byte order, per-interface link type and timestamp resolution,
enhanced, simple and obsolete packet blocks.
"""
from __future__ import annotations

import struct

from .errors import CaptureError

__all__ = ["Frame", "read_frames"]

# --- file formats -------------------------------------------------------------

_PCAP_MAGIC = {  # first 4 bytes -> (byte order, fraction divisor)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_BOM = 0x1A2B3C4D
_BT_IDB, _BT_OPB, _BT_SPB, _BT_EPB = 1, 2, 3, 6
_MAX_RECORD = 0x4000000  # 64 MiB: a larger record length means a corrupt file

# --- file readers -------------------------------------------------------------
# A frame is (time, linktype, offset, caplen): a slice of the file buffer, no copies.

Frame = tuple[float, int, int, int]


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
        "Cisco HDLC, 802.11, radiotap, NFLOG)")


def _pcap_frames(data: bytes, name: str, supported: frozenset[int]) -> tuple[int, list[Frame], bool]:
    """Frames of a classic pcap file."""
    order, div = _PCAP_MAGIC[data[:4]]
    n = len(data)
    if n < 24:
        raise CaptureError(f"{name}: truncated pcap file header ({n} of 24 bytes)")
    snaplen, linkfield = struct.unpack_from(order + "II", data, 16)
    linktype = linkfield & 0xFFFF   # upper bits may carry FCS information
    if linktype not in supported:
        raise _unsupported(name, linktype)
    limit = max(snaplen, _MAX_RECORD)
    rec = struct.Struct(order + "IIII").unpack_from
    frames: list[Frame] = []
    append = frames.append
    pos = 24
    truncated = False
    while pos < n:
        if pos + 16 > n:
            truncated = True
            break
        sec, frac, caplen, _origlen = rec(data, pos)
        pos += 16
        if caplen > limit:
            raise CaptureError(
                f"{name}: corrupt record at byte {pos - 16} (claims {caplen} bytes)")
        if pos + caplen > n:
            truncated = True
            break
        append(((sec * div + frac) / div, linktype, pos, caplen))
        pos += caplen
    return linktype, frames, truncated


def _pcapng_frames(data: bytes, name: str, supported: frozenset[int]) -> tuple[int, list[Frame], bool]:
    """Frames of a pcapng file (all sections, all interfaces)."""
    n = len(data)
    if n < 12:
        raise CaptureError(f"{name}: truncated pcapng section header ({n} bytes)")
    first_linktype: int | None = None
    order = "<"
    ifaces: list[tuple[int, int, int, int]] = []   # linktype, divisor, offset (s), snaplen
    frames: list[Frame] = []
    append = frames.append
    pos = 0
    truncated = False
    u32 = struct.Struct("<I").unpack_from
    epb = struct.Struct("<IIIII").unpack_from
    while pos < n:
        if pos + 12 > n:
            truncated = True
            break
        if data[pos:pos + 4] == _PCAPNG_SHB:
            (bom,) = struct.unpack_from("<I", data, pos + 8)
            if bom == _PCAPNG_BOM:
                order = "<"
            elif bom == 0x4D3C2B1A:
                order = ">"
            else:
                raise CaptureError(f"{name}: corrupt pcapng section header at byte {pos}")
            u32 = struct.Struct(order + "I").unpack_from
            epb = struct.Struct(order + "IIIII").unpack_from
            ifaces = []
            btype = 0x0A0D0D0A
        else:
            (btype,) = u32(data, pos)
        (blen,) = u32(data, pos + 4)
        if blen < 12 or blen % 4 or blen > _MAX_RECORD:
            raise CaptureError(f"{name}: corrupt pcapng block at byte {pos} (length {blen})")
        if pos + blen > n:
            truncated = True
            break
        body = pos + 8
        end = pos + blen - 4
        if btype == _BT_EPB:
            if end - body < 20:
                raise CaptureError(f"{name}: corrupt packet block at byte {pos}")
            ifid, hi, lo, caplen, _origlen = epb(data, body)
            if ifid >= len(ifaces) or body + 20 + caplen > end:
                raise CaptureError(f"{name}: corrupt packet block at byte {pos}")
            lt, div, off, _snap = ifaces[ifid]
            append(((((hi << 32) | lo) + off * div) / div, lt, body + 20, caplen))
        elif btype == _BT_IDB:
            iface = _pcapng_interface(data, body, end, order)
            if iface is None:
                raise CaptureError(f"{name}: corrupt interface block at byte {pos}")
            if first_linktype is None:
                first_linktype = iface[0]
                if first_linktype not in supported:
                    raise _unsupported(name, first_linktype)
            ifaces.append(iface)
        elif btype == _BT_SPB:
            if not ifaces or end - body < 4:
                raise CaptureError(f"{name}: corrupt simple packet block at byte {pos}")
            lt, _div, _off, snap = ifaces[0]
            (origlen,) = u32(data, body)
            caplen = min(origlen, end - body - 4, snap or _MAX_RECORD)
            append((0.0, lt, body + 4, caplen))   # SPB has no timestamp
        elif btype == _BT_OPB:
            if end - body < 20:
                raise CaptureError(f"{name}: corrupt packet block at byte {pos}")
            ifid = struct.unpack_from(order + "H", data, body)[0]
            _, hi, lo, caplen, _origlen = epb(data, body)
            if ifid >= len(ifaces) or body + 20 + caplen > end:
                raise CaptureError(f"{name}: corrupt packet block at byte {pos}")
            lt, div, off, _snap = ifaces[ifid]
            append(((((hi << 32) | lo) + off * div) / div, lt, body + 20, caplen))
        pos += blen
    if first_linktype is None:
        if truncated:
            raise CaptureError(f"{name}: truncated before its first interface block")
        raise CaptureError(f"{name}: pcapng file without an interface block")
    return first_linktype, frames, truncated


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


def read_frames(data: bytes, name: str, supported: frozenset[int]) -> tuple[int, list[Frame], bool]:
    """(link type of the file, its frames, whether it ended mid-record); raise CaptureError for
    a file that is not a capture or whose first link type is not in `supported`."""
    if not data:
        raise CaptureError(f"{name}: empty file (0 bytes), not a capture")
    head = data[:4]
    if head in _PCAP_MAGIC:
        return _pcap_frames(data, name, supported)
    if head == _PCAPNG_SHB:
        return _pcapng_frames(data, name, supported)
    if len(data) < 4 and (any(m.startswith(data) for m in _PCAP_MAGIC) or _PCAPNG_SHB.startswith(data)):
        raise CaptureError(f"{name}: truncated file header ({len(data)} bytes)")
    raise CaptureError(f"{name}: not a pcap or pcapng file (starts with {_describe(head)})")
