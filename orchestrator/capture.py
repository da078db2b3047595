"""Read tcpdump captures (pcap or pcapng) into plain TCP packet records.

A pure analysis module: no Docker, no output. Files are read a chunk at a
time (`pcapfile.FrameReader`) and parsed with `struct` straight from the
chunk (no per-packet dpkt objects: about 1.5 us a packet; an IPv4 header
without options and its TCP header, the common case, in one unpack), so
`PacketReader` streams a file of any size in flat memory.

Supported: classic pcap (either byte order, micro- or nanosecond magic) and
pcapng (any section byte order, per-interface link type and timestamp
resolution); link types Ethernet (with VLAN tags), raw IP, Linux cooked SLL
and SLL2, BSD loopback, and those `encap.link_layer` reads; IPv4 and IPv6
(extension headers walked). A gzip, bzip2 or xz file is read as the capture
it holds (`open_capture`); a pipe is copied to be read again (`rereadable`).

Every packet keeps the IP-level facts that tell who sent it: TTL (hop limit
for IPv6), IP ID and DF (IPv4 only), and the TCP window. Relative sequence
numbers come from `connections.ConnectionTracker`, the one place that
decides which connection a segment belongs to.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import socket
import stat
import struct
import tempfile
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import repeat
from typing import BinaryIO, NamedTuple, cast

from .connections import SEQ_MOD, ConnectionTracker
from .encap import (
    BSD_AF_INET6,
    LT_LOOP,
    LT_NULL,
    LT_PKTAP,
    LT_RAW,
    IcmpError,
    icmp_error,
    link_layer,
    pktap_direction,
    unwrap_ethertype,
    unwrap_ip,
)
from .encap import LINKTYPES as _SLOW_LINKTYPES
from .errors import CaptureError
from .pcapfile import Frame, FrameReader

__all__ = [
    "FLAG_BITS",
    "FLAG_KIND",
    "KIND_ACK",
    "KIND_BARE_ACK",
    "KIND_BARE_RST",
    "KIND_CONN",
    "KIND_FIN",
    "KIND_FIRST_SYN",
    "KIND_NOT_FIRST_SYN",
    "KIND_NOT_SYN",
    "KIND_RST",
    "KIND_STEP_SHIFT",
    "KIND_SYN",
    "KIND_SYNACK",
    "Capture",
    "ConnectionLog",
    "Packet",
    "PacketReader",
    "capture_size",
    "format_packet",
    "open_capture",
    "parse_capture_bytes",
    "read_capture",
    "rereadable",
]

# --- TCP flags, tcpdump notation --------------------------------------------

_TH_FIN, _TH_SYN, _TH_RST, _TH_PSH, _TH_ACK, _TH_URG, _TH_ECE, _TH_CWR = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80)
# tcpdump's print order (print-tcp.c tcp_flag_values): F S R P . U E W
_FLAG_ORDER = ((_TH_FIN, "F"), (_TH_SYN, "S"), (_TH_RST, "R"), (_TH_PSH, "P"),
               (_TH_ACK, "."), (_TH_URG, "U"), (_TH_ECE, "E"), (_TH_CWR, "W"))
_FLAG_STR: tuple[str, ...] = tuple(
    "".join(c for bit, c in _FLAG_ORDER if v & bit) or "none" for v in range(256))
FLAG_BITS: Mapping[str, int] = {text: bits for bits, text in enumerate(_FLAG_STR)}

# --- link types ---------------------------------------------------------------

_LT_ETHERNET, _LT_LINUX_SLL, _LT_LINUX_SLL2 = 1, 113, 276
SUPPORTED_LINKTYPES = frozenset((LT_NULL, _LT_ETHERNET, _LT_LINUX_SLL, _LT_LINUX_SLL2, LT_LOOP)) | LT_RAW | _SLOW_LINKTYPES
_TUNNELS = frozenset((4, 41, 47, 17))          # IP-in-IP, IPv6-in-IPv4, GRE, UDP (VXLAN)
_VLAN_TYPES = frozenset((0x8100, 0x88A8, 0x9100))
_ETH_IP4, _ETH_IP6 = 0x0800, 0x86DD
_IP6_EXT = frozenset((0, 43, 60, 44, 51))   # hop-by-hop, routing, dstopts, fragment, AH
# Linux packet types 0..4: to us, broadcast, multicast, to another host (a frame
# the bridge flooded to us: not addressed to this host), sent by us.
_DIRECTION = ("in", "in", "in", "other", "out")

_u16 = struct.Struct(">H").unpack_from
_ip4_hdr = struct.Struct(">xxHHHBB").unpack_from   # total length, ID, frag field, TTL, protocol
_tcp_hdr = struct.Struct(">HHIIHH").unpack_from     # ports, seq, ack, offset+flags, window
# the common case in one call: an IPv4 header without options and the TCP header after it
_ip4_tcp = struct.Struct(">BxHHHBBxx8sHHIIHH").unpack_from
_sll2_hdr = struct.Struct(">HxxIxxB").unpack_from   # protocol, ifindex, packet type


class Packet(NamedTuple):
    """One TCP segment as seen in the capture (a named tuple: built millions of times, it must
    be cheap to make and small to keep)."""

    index: int  # type: ignore[assignment]  # position among the TCP packets (0-based); shadows tuple.index
    time: float           # epoch seconds
    src: str              # IP address text (IPv4 or IPv6)
    dst: str
    sport: int
    dport: int
    flags: str            # tcpdump notation: "S", "S.", "P.", "F.", "R", "R.", "none"...
    seq: int              # raw sequence number
    ack: int              # raw acknowledgment number (even when ACK is unset)
    length: int           # TCP payload length in bytes
    window: int           # the TCP header's window field (unscaled)
    rel_seq: int | None   # seq relative to the sender's ISN, None if unknown
    rel_ack: int | None   # ack relative to the peer's ISN, None if no ACK or unknown
    direction: str | None  # "in"/"out"/"other" from Linux cooked headers, else None
    ifindex: int | None   # SLL2 interface index, else None
    ttl: int | None = None     # IPv4 TTL or IPv6 hop limit as captured
    ip_id: int | None = None   # IPv4 identification (None for IPv6)
    df: bool | None = None     # IPv4 don't-fragment bit (None for IPv6)
    frame: int = 0             # the frame's number in the file (1-based, as tshark counts)

    @property
    def bits(self) -> int:
        """The TCP header's flag byte."""
        return FLAG_BITS[self.flags]

    @property
    def is_syn(self) -> bool:
        return "S" in self.flags

    @property
    def is_first_syn(self) -> bool:
        """A SYN without ACK: the client's opening segment."""
        return "S" in self.flags and "." not in self.flags

    @property
    def is_synack(self) -> bool:
        return "S" in self.flags and "." in self.flags

    @property
    def is_rst(self) -> bool:
        return "R" in self.flags

    @property
    def is_fin(self) -> bool:
        return "F" in self.flags

    @property
    def has_ack(self) -> bool:
        return "." in self.flags

    @property
    def is_bare_ack(self) -> bool:
        """Only ACK set (a pure acknowledgment, a keepalive or window probe)."""
        return self.flags == "."


# --- what a packet's flags say, as bits of one int: one look-up a packet ---------
# Built once from Packet's properties (flags are read through them) for every flags text. Bits 0-4 (KIND_CONN)
# are those a connection gathers by OR-ing its packets' kinds; bits 5-7 are never set, left for a reader's
# own per-connection bits beside them (survey's Survey.flags); from bit KIND_STEP_SHIFT on, the sequence
# numbers the packet's SYN and FIN take (0, 1 or 2).
KIND_RST = 1              # is_rst
KIND_NOT_FIRST_SYN = 2    # not is_first_syn: anything but a client's opening SYN
KIND_SYN = 4              # is_syn
KIND_NOT_SYN = 8          # not is_syn
KIND_FIRST_SYN = 16       # is_first_syn
KIND_CONN = 0x1F
KIND_SYNACK = 1 << 8      # is_synack
KIND_ACK = 1 << 9         # has_ack
KIND_FIN = 1 << 10        # is_fin
KIND_BARE_ACK = 1 << 11   # is_bare_ack
KIND_BARE_RST = 1 << 12   # is_rst with neither SYN nor ACK
KIND_STEP_SHIFT = 13


def _kind(flags: str) -> int:
    p = Packet(0, 0.0, "", "", 0, 0, flags, 0, 0, 0, 0, None, None, None, None)
    return ((KIND_RST if p.is_rst else 0) | (0 if p.is_first_syn else KIND_NOT_FIRST_SYN)
            | (KIND_SYN if p.is_syn else KIND_NOT_SYN) | (KIND_FIRST_SYN if p.is_first_syn else 0)
            | (KIND_SYNACK if p.is_synack else 0) | (KIND_ACK if p.has_ack else 0) | (KIND_FIN if p.is_fin else 0)
            | (KIND_BARE_ACK if p.is_bare_ack else 0)
            | (KIND_BARE_RST if p.is_rst and not p.is_syn and not p.has_ack else 0)
            | (p.is_syn + p.is_fin) << KIND_STEP_SHIFT)


FLAG_KIND: Mapping[str, int] = {flags: _kind(flags) for flags in FLAG_BITS}


@dataclass(frozen=True, slots=True)
class Capture:
    """The TCP packets of one capture file."""

    path: str
    linktype: int                  # of the file (first interface for pcapng)
    packets: tuple[Packet, ...]    # TCP packets only, in file order
    other: int                     # frames skipped: not TCP, or unparsable
    truncated: bool                # the file ended mid-record
    icmp: tuple[IcmpError, ...] = ()   # ICMP errors quoting a TCP segment (not counted as TCP)


# --- public functions ---------------------------------------------------------


def read_capture(path: str | os.PathLike[str], progress: Callable[[int, int], None] | None = None) -> Capture:
    """Read a pcap or pcapng file; raise CaptureError if it is not a readable capture. `progress(done, total)`:
    how many of the file's bytes are read, a chunk at a time, for a progress display."""
    name = os.fspath(path)
    with open_capture(name) as f:
        reader = PacketReader(f, name)
        if progress is not None:
            total = reader.frames.total
            reader.frames.on_chunk = lambda done: progress(done, total)
        packets = tuple(p for _conn, p in reader)
    return Capture(name, reader.linktype, packets, reader.other, reader.truncated, tuple(reader.icmp))


# compressed captures, read as the capture they hold (Wireshark and tshark open gzip as it is): magic -> opener
# (each stream is closed by open_capture's `with`); None: one Python's standard library cannot open
_COMPRESSED: tuple[tuple[bytes, str, Callable[[BinaryIO], io.BufferedIOBase] | None], ...] = (
    (b"\x1f\x8b", "gzip", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
    (b"BZh", "bzip2", lambda raw: bz2.BZ2File(raw)),
    (b"\xfd7zXZ\x00", "xz", lambda raw: lzma.LZMAFile(raw)),  # noqa: SIM115
    (b"\x28\xb5\x2f\xfd", "zstd", None),
    (b"\x04\x22\x4d\x18", "lz4", None),
)


class _Unpacked:
    """A compressed capture file as the bytes of the capture it holds, a chunk at a time. A stream cut short
    ends at the cut (the capture is then read as truncated, as a cut pcap is); corrupt data is a CaptureError.
    `fileno` and `position` are the file's own: its size and how far reading has come in it (the progress)."""

    def __init__(self, name: str, kind: str, raw: BinaryIO, stream: io.BufferedIOBase) -> None:
        self.name, self.kind, self.raw, self.stream = name, kind, raw, stream

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end), a piece at a time: a stream cut short raises EOFError at its
        end, and what a single `read` had gathered before that would be lost with it."""
        parts: list[bytes] = []
        got = 0
        try:
            while got < n:
                part = self.stream.read1(n - got)
                if not part:
                    break
                parts.append(part)
                got += len(part)
        except EOFError:                  # the compressed stream ended before its end marker: the cut
            pass
        except (OSError, zlib.error, lzma.LZMAError) as e:
            raise CaptureError(f"{self.name}: corrupt {self.kind} data ({e})") from None
        return b"".join(parts)

    def fileno(self) -> int:
        return self.raw.fileno()

    def position(self) -> int:
        return self.raw.tell()


@contextmanager
def open_capture(name: str) -> Iterator[BinaryIO]:
    """Open a capture file for reading, decompressed when it is a gzip, bzip2 or xz file; raise CaptureError
    (one line) when it cannot be (a zstd or lz4 file too: it says how to pipe it in)."""
    try:
        f = open(name, "rb")  # noqa: SIM115  # closed by the with below, after the errors are mapped
    except FileNotFoundError:
        raise CaptureError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise CaptureError(f"{name}: is a directory, not a capture file") from None
    except PermissionError:
        raise CaptureError(f"{name}: permission denied") from None
    except OSError as e:
        raise CaptureError(f"{name}: cannot read ({e.strerror or e})") from None
    with f:
        try:
            head = f.peek(6)[:6]
            for magic, kind, opener in _COMPRESSED:
                if head.startswith(magic):
                    if opener is None:
                        raise CaptureError(f"{name}: {kind}-compressed, which is not read here",
                                           f"decompress it first, or pipe it in: {kind} -dc {name} | "
                                           "python -m orchestrator explain -")
                    with opener(f) as stream:
                        yield cast(BinaryIO, _Unpacked(name, kind, f, stream))   # read as files are: read, fileno
                    return
            yield f
        except OSError as e:
            raise CaptureError(f"{name}: cannot read ({e.strerror or e})") from None


def _a_pipe(name: str) -> bool:
    """A pipe or a socket: what can be read only once (a file that cannot be looked at is not: opening it says
    why it cannot be read; nor is a device, which may never end)."""
    try:
        mode = os.stat(name).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


@contextmanager
def rereadable(name: str, stdin: BinaryIO | None = None,
               progress: Callable[[int], None] | None = None) -> Iterator[str]:
    """A path to read the capture `name` from as many times as needed: the file itself, or, for `-` (standard
    input, `stdin`) or a pipe (`<(zcat x.pcap.gz)`, /dev/stdin), a temporary copy of it, made a chunk at a time
    (`progress(bytes copied)` after each) and removed afterwards."""
    if name != "-" and not _a_pipe(name):
        yield name
        return
    with tempfile.TemporaryDirectory(prefix="rstlab-input-") as folder:
        copy = os.path.join(folder, "capture")
        try:
            with open(copy, "wb") as out, ExitStack() as opened:
                if name == "-":
                    assert stdin is not None, "`-` needs the standard input to read"
                    source = stdin
                else:
                    source = opened.enter_context(open(name, "rb"))
                copied = 0
                while chunk := source.read(1 << 20):
                    out.write(chunk)
                    copied += len(chunk)
                    if progress is not None:
                        progress(copied)
        except OSError as e:
            raise CaptureError(f"{name}: cannot read ({e.strerror or e})") from None
        yield copy


def capture_size(name: str) -> int:
    """A capture file's size in bytes (what reading it counts for progress), 0 when it cannot be read:
    opening it then says why."""
    try:
        return os.path.getsize(name)
    except OSError:
        return 0


def parse_capture_bytes(data: bytes, name: str = "<bytes>") -> Capture:
    """Parse a whole capture held in memory (e.g. extracted from a container archive)."""
    if not isinstance(data, bytes):
        data = bytes(data)
    reader = PacketReader(data, name)
    packets = tuple(p for _conn, p in reader)
    return Capture(name, reader.linktype, packets, reader.other, reader.truncated, tuple(reader.icmp))


def format_packet(p: Packet, names: Mapping[str, str] | None = None,
                  t0: float | None = None) -> str:
    """One tcpdump-like line: `0.000000 client.40312 > server.7: Flags [S], seq 0, ...`.

    `names` maps IP address text to a host name; `t0` makes the time relative.
    Sequence numbers are relative where the ISN is known, raw otherwise.
    """
    t = p.time - t0 if t0 is not None else p.time
    if names:
        src = names.get(p.src, p.src)
        dst = names.get(p.dst, p.dst)
    else:
        src, dst = p.src, p.dst
    flags = p.flags
    seq = p.rel_seq if p.rel_seq is not None else p.seq
    length = p.length
    if length:
        seqs = f", seq {seq}:{(seq + length) & SEQ_MOD}"
    elif "S" in flags or "F" in flags or "R" in flags:
        seqs = f", seq {seq}"
    else:
        seqs = ""
    if "." in flags:
        seqs += f", ack {p.rel_ack if p.rel_ack is not None else p.ack}"
    return f"{t:.6f} {src}.{p.sport} > {dst}.{p.dport}: Flags [{flags}]{seqs}, win {p.window}, length {length}"


# --- per-packet decoding ------------------------------------------------------


class ConnectionLog:
    """Each frame's connection number (-1: not TCP), as one reading of a file found them, in a
    temporary file a block at a time: a later reading of the same file (`PacketReader(known=)`)
    then decodes only the frames of the connections it wants, and tracks no other."""

    BLOCK = 1 << 16

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile(prefix="rstlab-conns-")  # noqa: SIM115  # closed by close()
        self.frames = 0

    def write(self, block: array[int], frames: int) -> None:
        """Append `block` (the numbers of the frames up to `frames`, padded with -1 to it)."""
        block.extend(repeat(-1, frames - self.frames - len(block)))
        block.tofile(self.file)
        self.frames = frames

    def __iter__(self) -> Iterator[int]:
        f = self.file
        f.flush()
        f.seek(0)
        while True:
            block = array("i")
            try:
                block.fromfile(f, self.BLOCK)
            except EOFError:          # the last, short block (its numbers are read all the same)
                yield from block
                return
            yield from block

    def close(self) -> None:
        self.file.close()


class PacketReader:
    """The TCP packets of one capture, decoded a frame at a time: iterating yields (connection
    number, packet) in file order; afterwards `other` counts the frames that were not TCP and
    `icmp` holds the ICMP errors about TCP segments. Memory stays flat whatever the file's size.
    Tunnels are unwrapped: a packet's addresses are the innermost ones.

    `log`: write each frame's connection number there. `known`: a log of the same file (an earlier
    reader's): its frames are not decoded unless `wanted`, and the connections are its own. `relative`
    False (with `known`): the packets' relative numbers are not worked out (None), for a reader that
    needs only what the wire carries."""

    def __init__(self, source: BinaryIO | bytes, name: str, wanted: bytearray | None = None,
                 log: ConnectionLog | None = None, known: ConnectionLog | None = None, relative: bool = True) -> None:
        assert relative or known is not None, "without a log, the connections are numbered by relative numbers"
        self.frames = FrameReader(source, name, SUPPORTED_LINKTYPES)
        self.wanted = wanted     # per connection number: 0 skips its packets (they are counted, not built)
        self.log = log
        self.known = known
        self.relative = relative
        self.other = 0
        self.icmp: list[IcmpError] = []

    @property
    def linktype(self) -> int:
        return self.frames.linktype

    @property
    def truncated(self) -> bool:
        return self.frames.truncated

    def __iter__(self) -> Iterator[tuple[int, Packet]]:
        return _decode(self.frames, self.icmp, self)


def _decode(frames: Iterable[Frame], icmp: list[IcmpError], counts: PacketReader) -> Iterator[tuple[int, Packet]]:
    """Decode link, IP and TCP headers of every frame; yield the TCP ones, keep the ICMP errors
    about TCP segments, count the others in `counts.other`."""
    n_packets = 0
    other = 0
    wanted = counts.wanted
    log = counts.log
    block = array("i")
    block_max = ConnectionLog.BLOCK
    known = iter(counts.known) if counts.known is not None else None
    known_conn = -1
    logged = 0                                        # frames whose numbers are in the log or the block
    addrs: dict[bytes, tuple[str, str]] = {}   # 8 (IPv4) or 32 (IPv6) bytes -> texts
    track = ConnectionTracker().segment if counts.relative else None
    rel_seq = rel_ack = None
    ntoa = socket.inet_ntoa
    u16, sll2_hdr, ip4_tcp = _u16, _sll2_hdr, _ip4_tcp
    flag_str = _FLAG_STR
    new_packet = tuple.__new__            # Packet(...) less its Python-level __new__: a third cheaper
    raw_types = LT_RAW
    loop_types = (LT_NULL, LT_LOOP)
    vlan_types = _VLAN_TYPES
    direction_of = _DIRECTION

    frame = 0
    for frame, (ts, lt, data, off, caplen) in enumerate(frames, 1):
        if known is not None:
            known_conn = next(known, -1)
            if known_conn < 0:
                continue
            if wanted is not None and not wanted[known_conn]:
                n_packets += 1
                continue
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
        elif lt in loop_types:
            if caplen < 4:
                other += 1
                continue
            fam = data[off:off + 4]
            family = int.from_bytes(fam, "big") if lt == LT_LOOP else (
                int.from_bytes(fam, "little") if fam[0] else int.from_bytes(fam, "big"))
            etype = _ETH_IP4 if family == 2 else _ETH_IP6 if family in BSD_AF_INET6 else 0
            p = off + 4
        else:
            p, etype = link_layer(data, off, end, lt)
            if lt == LT_PKTAP:
                direction = pktap_direction(data, off, end)
        if etype == 0x0800 and p + 40 <= end:
            # the fast path: IPv4 without options, not a fragment, TCP with a header of 20 bytes or more
            vihl, total, ip_id, frag, ttl, proto, key, sport, dport, seq, ack, offflags, window = ip4_tcp(data, p)
            slow = vihl != 0x45 or proto != 6 or frag & 0x3FFF or total < 40 or offflags < 0x5000
        else:
            slow = True
        if slow:
            head = _headers(data, p, end, etype, ts, icmp, addrs)
            if head is None:
                other += 1
                continue
            src, dst, sport, dport, seq, ack, fl, length, window, ttl, ip_id, df = head
        else:
            pair = addrs.get(key)
            if pair is None:
                pair = addrs[key] = (ntoa(key[:4]), ntoa(key[4:]))
            src, dst = pair
            df = frag & 0x4000 != 0
            fl = offflags & 0xFF
            length = total - 20 - ((offflags >> 12) << 2)
            if length < 0:
                length = 0

        if track is not None:
            conn, rel_seq, rel_ack = track(src, sport, dst, dport, fl, seq, ack)
        if known is not None:
            conn = known_conn        # the tracker saw only the wanted connections' packets
        elif wanted is not None and not wanted[conn]:
            n_packets += 1
            continue
        if log is not None:
            if frame - 1 != logged:                  # frames that were not TCP
                block.extend(repeat(-1, frame - 1 - logged))
            block.append(conn)
            logged = frame
            if len(block) >= block_max:
                log.write(block, frame)
                block = array("i")
        yield conn, new_packet(Packet, (n_packets, ts, src, dst, sport, dport, flag_str[fl], seq, ack, length,
                                        window, rel_seq, rel_ack, direction, ifindex, ttl, ip_id, df, frame))
        n_packets += 1
    counts.other = other
    if log is not None:
        log.write(block, frame)


_Headers = tuple[str, str, int, int, int, int, int, int, int, int, int | None, bool | None]


def _headers(data: bytes, p: int, end: int, etype: int, ts: float, icmp: list[IcmpError],
             addrs: dict[bytes, tuple[str, str]]) -> _Headers | None:
    """The general path, from the link layer's payload at p (of `etype`) to the TCP header:
    (src, dst, sport, dport, seq, ack, flag byte, payload length, window, TTL, IP ID, DF), or None
    for a frame that is not TCP (an ICMP error about a TCP segment is kept in `icmp`). Tunnels are
    unwrapped: the addresses are the innermost ones; `addrs` caches address texts."""
    ntoa = socket.inet_ntoa
    ip_id = df = None
    if etype != 0x0800 and etype != 0x86DD:
        p, etype = unwrap_ethertype(data, p, end, etype)

    # network layer -> (src, dst, t = TCP offset, l4end); tunnels loop back here
    tunnel = 0
    while etype == 0x0800:
        if p + 20 > end:
            return None
        vihl = data[p]
        ihl = (vihl & 0x0F) << 2
        if vihl >> 4 != 4 or ihl < 20 or p + ihl > end:
            return None
        total, ip_id, frag, ttl, proto = _ip4_hdr(data, p)
        if proto == 6 and not frag & 0x3FFF:
            break
        if frag & 0x3FFF or tunnel > 4:        # a fragment, or tunnels too deep
            return None
        if proto in _TUNNELS:
            tunnel += 1
            p, etype = unwrap_ip(data, p + ihl, min(end, p + total) if total else end, proto)
            continue
        if proto == 1:
            err = icmp_error(data, p + ihl, end, False, ts, ntoa(data[p + 12:p + 16]))
            if err is not None:
                icmp.append(err)
        return None
    if etype == 0x0800:
        key = data[p + 12:p + 20]          # source and destination together
        pair = addrs.get(key)
        if pair is None:
            pair = addrs[key] = (ntoa(key[:4]), ntoa(key[4:]))
        src, dst = pair
        df = frag & 0x4000 != 0
        t = p + ihl
        if total == 0:                     # TSO: length left out
            l4end = end
        elif total < ihl + 20:
            return None
        else:
            l4end = p + total
    elif etype == 0x86DD:
        if p + 40 > end or data[p] >> 4 != 6:
            return None
        (plen,) = _u16(data, p + 4)
        nh = data[p + 6]
        ttl = data[p + 7]
        key = data[p + 8:p + 40]
        pair = addrs.get(key)
        if pair is None:
            pair = addrs[key] = (socket.inet_ntop(socket.AF_INET6, key[:16]),
                                 socket.inet_ntop(socket.AF_INET6, key[16:]))
        src, dst = pair
        t = p + 40
        l4end = t + plen if plen else end
        while nh in _IP6_EXT:
            if t + 8 > end:
                return None
            if nh == 44:                   # fragment header
                (fo,) = _u16(data, t + 2)
                if fo & 0xFFF9:            # offset or more-fragments: unparsable
                    return None
                nh = data[t]
                t += 8
            elif nh == 51:                 # AH: length in 4-octet units
                nh, t = data[t], t + ((data[t + 1] + 2) << 2)
            else:
                nh, t = data[t], t + ((data[t + 1] + 1) << 3)
        if nh != 6:
            if nh == 58:
                err = icmp_error(data, t, end, True, ts, src)
                if err is not None:
                    icmp.append(err)
            return None
    else:
        return None

    # transport layer
    if t + 20 > end:
        return None
    sport, dport, seq, ack, offflags, window = _tcp_hdr(data, t)
    doff = (offflags >> 12) << 2
    if doff < 20:
        return None
    length = l4end - t - doff
    return src, dst, sport, dport, seq, ack, offflags & 0xFF, max(length, 0), window, ttl, ip_id, df
