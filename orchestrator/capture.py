"""Read tcpdump captures (pcap or pcapng) into plain TCP packet records.

A pure analysis module: no Docker, no output. Files are parsed with
`struct` straight from one buffer (no per-packet dpkt objects), which keeps
100,000 packets well under a second.

Supported: classic pcap (either byte order, micro- or nanosecond magic) and
pcapng (any section byte order, per-interface link type and timestamp
resolution); link types Ethernet (with VLAN tags), raw IP, Linux cooked SLL
and SLL2, BSD loopback; IPv4 and IPv6 (extension headers walked).

Relative sequence numbers follow one rule: a sender's ISN is the sequence
number of the SYN it sent for the connection. A SYN without ACK carrying a
new sequence number starts a new connection on that 4-tuple (the peer's ISN
is forgotten until its SYN/ACK). Packets of a sender that has sent no SYN so
far (e.g. the capture started mid-connection) get `rel_seq=None`.
"""
from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass
from typing import Mapping

from .errors import CaptureError

__all__ = [
    "Capture",
    "Packet",
    "connection_key",
    "format_packet",
    "parse_capture_bytes",
    "read_capture",
]

# --- TCP flags, tcpdump notation --------------------------------------------

_TH_FIN, _TH_SYN, _TH_RST, _TH_PSH, _TH_ACK, _TH_URG, _TH_ECE, _TH_CWR = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80)
# tcpdump's print order (print-tcp.c tcp_flag_values): F S R P . U E W
_FLAG_ORDER = ((_TH_FIN, "F"), (_TH_SYN, "S"), (_TH_RST, "R"), (_TH_PSH, "P"),
               (_TH_ACK, "."), (_TH_URG, "U"), (_TH_ECE, "E"), (_TH_CWR, "W"))
_FLAG_CHARS = frozenset(c for _, c in _FLAG_ORDER)
_FLAG_STR: tuple[str, ...] = tuple(
    "".join(c for bit, c in _FLAG_ORDER if v & bit) or "none" for v in range(256))

_MOD = 0xFFFFFFFF

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

# --- link types ---------------------------------------------------------------

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
_LT_RAW = frozenset((12, 101, 228, 229))   # 12 = DLT_RAW on some systems
_LT_LOOP = 108                              # OpenBSD loopback, network order
SUPPORTED_LINKTYPES = frozenset(
    (LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, _LT_LOOP)
) | _LT_RAW
_VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100))
_ETH_IP4, _ETH_IP6 = 0x0800, 0x86DD
_IP6_EXT = frozenset((0, 43, 60, 44, 51))   # hop-by-hop, routing, dstopts, fragment, AH
_BSD_AF_INET6 = frozenset((10, 24, 28, 30))   # Linux, NetBSD/OpenBSD, FreeBSD, macOS
# Linux packet types 0..4: to us, broadcast, multicast, to another host (a frame
# the bridge flooded to us: not addressed to this host), sent by us.
_DIRECTION = ("in", "in", "in", "other", "out")

_u16 = struct.Struct(">H").unpack_from
_ip4_hdr = struct.Struct(">xxHxxHxB").unpack_from   # total length, frag field, protocol
_tcp_hdr = struct.Struct(">HHIIHH").unpack_from     # ports, seq, ack, offset+flags, window
_sll2_hdr = struct.Struct(">HxxIxxB").unpack_from   # protocol, ifindex, packet type


@dataclass(frozen=True, slots=True)
class Packet:
    """One TCP segment as seen in the capture."""

    index: int            # position among the TCP packets returned (0-based)
    time: float           # epoch seconds
    src: str              # IP address text (IPv4 or IPv6)
    dst: str
    sport: int
    dport: int
    flags: str            # tcpdump notation: "S", "S.", "P.", "F.", "R", "R.", "none"...
    seq: int              # raw sequence number
    ack: int              # raw acknowledgment number (even when ACK is unset)
    length: int           # TCP payload length in bytes
    window: int
    rel_seq: int | None   # seq relative to the sender's ISN, None if unknown
    rel_ack: int | None   # ack relative to the peer's ISN, None if no ACK or unknown
    direction: str | None  # "in"/"out"/"other" from Linux cooked headers, else None
    ifindex: int | None   # SLL2 interface index, else None

    def has(self, flag: str) -> bool:
        """True when the tcpdump flag character is set ("S", "R", "." for ACK...)."""
        if flag not in _FLAG_CHARS:
            raise ValueError(f"unknown TCP flag {flag!r}; use one of F S R P . U E W")
        return flag in self.flags

    @property
    def is_syn(self) -> bool:
        return "S" in self.flags

    @property
    def is_rst(self) -> bool:
        return "R" in self.flags

    @property
    def is_fin(self) -> bool:
        return "F" in self.flags

    @property
    def is_psh(self) -> bool:
        return "P" in self.flags

    @property
    def has_ack(self) -> bool:
        return "." in self.flags


@dataclass(frozen=True, slots=True)
class Capture:
    """The TCP packets of one capture file."""

    path: str
    linktype: int                  # of the file (first interface for pcapng)
    packets: tuple[Packet, ...]    # TCP packets only, in file order
    other: int                     # frames skipped: not TCP, or unparsable
    truncated: bool                # the file ended mid-record


# --- public functions ---------------------------------------------------------


def read_capture(path: str | os.PathLike[str]) -> Capture:
    """Read a pcap or pcapng file; raise CaptureError if it is not a readable capture."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CaptureError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise CaptureError(f"{name}: is a directory, not a capture file") from None
    except PermissionError:
        raise CaptureError(f"{name}: permission denied") from None
    except OSError as e:
        raise CaptureError(f"{name}: cannot read ({e.strerror or e})") from None
    return parse_capture_bytes(data, name)


def parse_capture_bytes(data: bytes, name: str = "<bytes>") -> Capture:
    """Parse a whole capture held in memory (e.g. extracted from a container archive)."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if not data:
        raise CaptureError(f"{name}: empty file (0 bytes), not a capture")
    head = data[:4]
    if head in _PCAP_MAGIC:
        linktype, frames, truncated = _pcap_frames(data, name)
    elif head == _PCAPNG_SHB:
        linktype, frames, truncated = _pcapng_frames(data, name)
    elif len(data) < 4 and (any(m.startswith(data) for m in _PCAP_MAGIC)
                            or _PCAPNG_SHB.startswith(data)):
        raise CaptureError(f"{name}: truncated file header ({len(data)} bytes)")
    else:
        raise CaptureError(f"{name}: not a pcap or pcapng file (starts with {_describe(head)})")
    packets, other = _decode(data, frames)
    return Capture(name, linktype, packets, other, truncated)


def connection_key(p: Packet) -> tuple[tuple[str, int], tuple[str, int]]:
    """Order-independent key of a packet's 4-tuple: both endpoints, sorted."""
    a = (p.src, p.sport)
    b = (p.dst, p.dport)
    return (a, b) if a <= b else (b, a)


def format_packet(p: Packet, names: Mapping[str, str] | None = None,
                  t0: float | None = None) -> str:
    """One tcpdump-like line: `0.000000 client.40312 > server.7: Flags [S], seq 0, ...`.

    `names` maps IP address text to a host name; `t0` makes the time relative.
    Sequence numbers are relative where the ISN is known, raw otherwise.
    """
    names = names or {}
    t = p.time - t0 if t0 is not None else p.time
    src = names.get(p.src, p.src)
    dst = names.get(p.dst, p.dst)
    parts = [f"{t:.6f} {src}.{p.sport} > {dst}.{p.dport}: Flags [{p.flags}]"]
    seq = p.rel_seq if p.rel_seq is not None else p.seq
    if p.length:
        parts.append(f"seq {seq}:{(seq + p.length) & _MOD}")
    elif p.is_syn or p.is_fin or p.is_rst:
        parts.append(f"seq {seq}")
    if p.has_ack:
        parts.append(f"ack {p.rel_ack if p.rel_ack is not None else p.ack}")
    parts.append(f"win {p.window}")
    parts.append(f"length {p.length}")
    return ", ".join(parts)


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
        "(supported: Ethernet, raw IP, Linux cooked SLL/SLL2, BSD loopback)")


def _pcap_frames(data: bytes, name: str) -> tuple[int, list[Frame], bool]:
    """Frames of a classic pcap file."""
    order, div = _PCAP_MAGIC[data[:4]]
    n = len(data)
    if n < 24:
        raise CaptureError(f"{name}: truncated pcap file header ({n} of 24 bytes)")
    snaplen, linkfield = struct.unpack_from(order + "II", data, 16)
    linktype = linkfield & 0xFFFF   # upper bits may carry FCS information
    if linktype not in SUPPORTED_LINKTYPES:
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


def _pcapng_frames(data: bytes, name: str) -> tuple[int, list[Frame], bool]:
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
                if first_linktype not in SUPPORTED_LINKTYPES:
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


# --- per-packet decoding ------------------------------------------------------


def _decode(data: bytes, frames: list[Frame]) -> tuple[tuple[Packet, ...], int]:
    """Decode link, IP and TCP headers of every frame; keep the TCP ones."""
    packets: list[Packet] = []
    append = packets.append
    other = 0
    addrs: dict[bytes, tuple[str, str]] = {}   # 8 (IPv4) or 32 (IPv6) bytes -> texts
    isn: dict[tuple[str, int, str, int], int] = {}
    ntop = socket.inet_ntop
    AF_INET6 = socket.AF_INET6
    u16, ip4_hdr, tcp_hdr, sll2_hdr = _u16, _ip4_hdr, _tcp_hdr, _sll2_hdr
    flag_str = _FLAG_STR
    raw_types = _LT_RAW
    vlan_types = _VLAN_TYPES
    ip6_ext = _IP6_EXT
    direction_of = _DIRECTION

    for ts, lt, off, caplen in frames:
        end = off + caplen
        direction = ifindex = None
        # link layer -> (p, etype)
        if lt == 1:
            if caplen < 14:
                other += 1
                continue
            (etype,) = u16(data, off + 12)
            p = off + 14
            while etype in vlan_types:
                if p + 4 > end:
                    break
                (etype,) = u16(data, p + 2)
                p += 4
        elif lt == 276:
            if caplen < 20:
                other += 1
                continue
            etype, ifindex, ptype = sll2_hdr(data, off)
            direction = direction_of[ptype] if ptype < 5 else None
            p = off + 20
        elif lt == 113:
            if caplen < 16:
                other += 1
                continue
            (ptype,) = u16(data, off)
            (etype,) = u16(data, off + 14)
            direction = direction_of[ptype] if ptype < 5 else None
            p = off + 16
        elif lt in raw_types:
            if caplen < 1:
                other += 1
                continue
            p = off
            v = data[p] >> 4
            etype = _ETH_IP4 if v == 4 else _ETH_IP6 if v == 6 else 0
        elif lt == 0 or lt == 108:
            if caplen < 4:
                other += 1
                continue
            fam = data[off:off + 4]
            family = int.from_bytes(fam, "big") if lt == 108 else (
                int.from_bytes(fam, "little") if fam[0] else int.from_bytes(fam, "big"))
            etype = _ETH_IP4 if family == 2 else _ETH_IP6 if family in _BSD_AF_INET6 else 0
            p = off + 4
        else:
            other += 1
            continue

        # network layer -> (src, dst, t = TCP offset, l4end)
        if etype == 0x0800:
            if p + 20 > end:
                other += 1
                continue
            vihl = data[p]
            ihl = (vihl & 0x0F) << 2
            if vihl >> 4 != 4 or ihl < 20 or p + ihl > end:
                other += 1
                continue
            total, frag, proto = ip4_hdr(data, p)
            if proto != 6 or frag & 0x3FFF:   # not TCP, or a fragment
                other += 1
                continue
            key = data[p + 12:p + 20]          # source and destination together
            pair = addrs.get(key)
            if pair is None:
                pair = addrs[key] = ("%d.%d.%d.%d" % tuple(key[:4]),
                                     "%d.%d.%d.%d" % tuple(key[4:]))
            src, dst = pair
            t = p + ihl
            if total == 0:                     # TSO: length left out
                l4end = end
            elif total < ihl + 20:
                other += 1
                continue
            else:
                l4end = p + total
        elif etype == 0x86DD:
            if p + 40 > end or data[p] >> 4 != 6:
                other += 1
                continue
            (plen,) = u16(data, p + 4)
            nh = data[p + 6]
            key = data[p + 8:p + 40]
            pair = addrs.get(key)
            if pair is None:
                pair = addrs[key] = (ntop(AF_INET6, key[:16]), ntop(AF_INET6, key[16:]))
            src, dst = pair
            t = p + 40
            l4end = t + plen if plen else end
            while nh in ip6_ext:
                if t + 8 > end:
                    nh = -1
                    break
                if nh == 44:                   # fragment header
                    (fo,) = u16(data, t + 2)
                    if fo & 0xFFF9:            # offset or more-fragments: unparsable
                        nh = -1
                        break
                    nh = data[t]
                    t += 8
                elif nh == 51:                 # AH: length in 4-octet units
                    nh, t = data[t], t + ((data[t + 1] + 2) << 2)
                else:
                    nh, t = data[t], t + ((data[t + 1] + 1) << 3)
            if nh != 6:
                other += 1
                continue
        else:
            other += 1
            continue

        # transport layer
        if t + 20 > end:
            other += 1
            continue
        sport, dport, seq, ack, offflags, window = tcp_hdr(data, t)
        doff = (offflags >> 12) << 2
        if doff < 20:
            other += 1
            continue
        fl = offflags & 0xFF
        length = l4end - t - doff
        if length < 0:
            length = 0

        # relative sequence numbers
        k = (src, sport, dst, dport)
        rk = (dst, dport, src, sport)
        if fl & 0x02:
            if isn.get(k) != seq:
                isn[k] = seq
                if not fl & 0x10:      # a new SYN: a new connection on this 4-tuple
                    isn.pop(rk, None)
        base = isn.get(k)
        rel_seq = None if base is None else (seq - base) & 0xFFFFFFFF
        rel_ack = None
        if fl & 0x10:
            base = isn.get(rk)
            if base is not None:
                rel_ack = (ack - base) & 0xFFFFFFFF

        append(Packet(len(packets), ts, src, dst, sport, dport, flag_str[fl], seq, ack,
                      length, window, rel_seq, rel_ack, direction, ifindex))
    return tuple(packets), other
