"""Tests of orchestrator.capture against real loopback captures (tests/fixtures).

The fixtures come from tests/fixtures/make_fixtures.py; each holds the same
five exchanges (closed port, normal exchange, SO_LINGER abort, stray ACK,
one UDP datagram). The tests find them by shape, not by port, so a
re-generated fixture set passes too.
"""
from __future__ import annotations

import io
import os
import socket
import struct
from pathlib import Path

import pytest

from orchestrator import capture as capture_mod
from orchestrator.capture import (
    FLAG_BITS,
    FLAG_KIND,
    Capture,
    Packet,
    format_packet,
    parse_capture_bytes,
    read_capture,
)
from orchestrator.connections import ConnectionTracker
from orchestrator.errors import BadInput, CaptureError, ExitStatus
from tests import oracles

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# fixture file -> link type
FIXTURE_LINKTYPES = {
    "lo_ipv4.pcap": 1,          # Linux lo: DLT_EN10MB, microseconds, little-endian
    "lo_ipv4.pcapng": 1,        # the same file converted by editcap
    "lo_ipv4_be.pcap": 1,       # the same file rewritten big-endian
    "lo_ipv4_raw.pcap": 101,    # the same file rewritten as LINKTYPE_RAW
    "lo_ipv6.pcap": 1,          # ::1
    "lo_nano.pcap": 1,          # --time-stamp-precision=nano
    "lo_nano.pcapng": 1,        # the same converted by editcap (if_tsresol 9)
    "any_sll2.pcap": 276,       # -i any (LINUX_SLL2)
    "any_sll.pcap": 113,        # -i any -y LINUX_SLL
}
ALL_FIXTURES = sorted(FIXTURE_LINKTYPES)
STRAY_ACK = 424242   # the ack number of the hand-made ACK in make_fixtures.py


def fixture(name: str) -> Capture:
    return read_capture(FIXTURES / name)


def conversations(cap: Capture) -> list[list[Packet]]:
    """Packets grouped by connection, in order of first appearance."""
    groups: dict[int, list[Packet]] = {}
    tracker = ConnectionTracker()
    for p in cap.packets:
        conn, _, _ = tracker.segment(p.src, p.sport, p.dst, p.dport, p.bits, p.seq, p.ack)
        groups.setdefault(conn, []).append(p)
    return list(groups.values())


def scenario(cap: Capture) -> dict[str, list[Packet]]:
    """The four TCP exchanges of a fixture, by name."""
    convs = conversations(cap)
    assert len(convs) == 4, [[p.flags for p in c] for c in convs]
    return dict(zip(("closed", "exchange", "abort", "stray"), convs, strict=False))


# --- every fixture ----------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_fixture_parses(name: str) -> None:
    cap = fixture(name)
    assert cap.path == str(FIXTURES / name)
    assert cap.linktype == FIXTURE_LINKTYPES[name]
    assert not cap.truncated
    assert cap.other == 1                      # the UDP datagram
    assert 15 <= len(cap.packets) <= 30       # delayed ACKs vary between runs
    assert [p.index for p in cap.packets] == list(range(len(cap.packets)))
    times = [p.time for p in cap.packets]
    assert times == sorted(times)
    assert 1.5e9 < times[0] < 4e9
    loop = "::1" if "ipv6" in name else "127.0.0.1"
    assert {p.src for p in cap.packets} == {p.dst for p in cap.packets} == {loop}


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_scenario_flags(name: str) -> None:
    s = scenario(fixture(name))
    assert [p.flags for p in s["closed"]] == ["S", "R."]
    ex = [p.flags for p in s["exchange"]]
    assert ex[:3] == ["S", "S.", "."]
    assert ex.count("P.") == 2 and ex.count("F.") == 2
    assert ex[-1] == "."
    assert set(ex) == {"S", "S.", ".", "P.", "F."}
    ab = [p.flags for p in s["abort"]]
    assert ab[:4] == ["S", "S.", ".", "P."] and ab[-1] == "R."
    assert [p.flags for p in s["stray"]] == [".", "R"]


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_closed_port_rst(name: str) -> None:
    syn, rst = scenario(fixture(name))["closed"]
    assert rst.flags == "R." and rst.is_rst and rst.has_ack and not rst.is_syn
    assert (rst.src, rst.sport, rst.dst, rst.dport) == (syn.dst, syn.dport, syn.src, syn.sport)
    assert rst.seq == 0
    assert rst.ack == (syn.seq + 1) % 2**32
    assert rst.rel_ack == 1
    assert rst.rel_seq is None       # the closed port never sent a SYN
    assert rst.length == 0 and rst.window == 0
    assert syn.rel_seq == 0 and syn.rel_ack is None


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_exchange_relative_numbers(name: str) -> None:
    conv = scenario(fixture(name))["exchange"]
    syn, synack, ack = conv[:3]
    client, server = (syn.src, syn.sport), (syn.dst, syn.dport)
    assert (syn.rel_seq, syn.rel_ack) == (0, None)
    assert (synack.rel_seq, synack.rel_ack) == (0, 1)
    assert synack.ack == (syn.seq + 1) % 2**32
    assert (ack.rel_seq, ack.rel_ack, ack.length) == (1, 1, 0)
    data = [p for p in conv if p.flags == "P."]
    c_data = next(p for p in data if (p.src, p.sport) == client)
    s_data = next(p for p in data if (p.src, p.sport) == server)
    assert (c_data.rel_seq, c_data.rel_ack, c_data.length) == (1, 1, 100)
    assert (s_data.rel_seq, s_data.rel_ack, s_data.length) == (1, 101, 100)
    fins = [p for p in conv if p.is_fin]
    assert [(p.src, p.sport) for p in fins] == [client, server]
    assert (fins[0].rel_seq, fins[0].rel_ack) == (101, 101)
    assert (fins[1].rel_seq, fins[1].rel_ack) == (101, 102)
    last = conv[-1]
    assert (last.src, last.sport) == client
    assert (last.rel_seq, last.rel_ack) == (102, 102)
    for p in conv:   # raw and relative agree with each other
        isn = syn.seq if (p.src, p.sport) == client else synack.seq
        assert p.rel_seq == (p.seq - isn) % 2**32


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_abort_and_bare_rst(name: str) -> None:
    s = scenario(fixture(name))
    syn, rst = s["abort"][0], s["abort"][-1]
    assert (rst.src, rst.sport) == (syn.src, syn.sport)    # the client aborted
    assert (rst.flags, rst.rel_seq, rst.rel_ack, rst.length) == ("R.", 51, 1, 0)
    stray, reset = s["stray"]
    assert stray.flags == "." and stray.ack == STRAY_ACK
    assert stray.rel_seq is None and stray.rel_ack is None   # no SYN in that "connection"
    assert reset.flags == "R" and reset.is_rst and not reset.has_ack
    assert reset.seq == STRAY_ACK                              # RFC 793: seq = SEG.ACK
    assert reset.rel_seq is None and reset.rel_ack is None


# --- link layers, address families, formats ----------------------------------------


def test_direction_and_ifindex() -> None:
    for p in fixture("any_sll2.pcap").packets:
        assert p.direction == "in"       # libpcap drops the outgoing copy on lo
        assert p.ifindex == 1            # lo
    for p in fixture("any_sll.pcap").packets:
        assert p.direction == "in" and p.ifindex is None
    for name in ("lo_ipv4.pcap", "lo_ipv4_raw.pcap", "lo_ipv6.pcap"):
        assert all(p.direction is None and p.ifindex is None for p in fixture(name).packets)


def test_ipv6_addresses() -> None:
    cap = fixture("lo_ipv6.pcap")
    assert {p.src for p in cap.packets} == {"::1"}
    syn, rst = scenario(cap)["closed"]
    assert (syn.flags, rst.flags, rst.rel_ack) == ("S", "R.", 1)


@pytest.mark.parametrize("a, b", [
    ("lo_ipv4.pcap", "lo_ipv4.pcapng"),
    ("lo_nano.pcap", "lo_nano.pcapng"),
    ("lo_ipv4.pcap", "lo_ipv4_be.pcap"),
    ("lo_ipv4.pcap", "lo_ipv4_raw.pcap"),
])
def test_same_traffic_same_packets(a: str, b: str) -> None:
    ca, cb = fixture(a), fixture(b)
    assert ca.packets == cb.packets
    assert ca.other == cb.other


def test_nanosecond_timestamps_match_an_independent_reader() -> None:
    dpkt = pytest.importorskip("dpkt")
    data = (FIXTURES / "lo_nano.pcap").read_bytes()
    assert data[:4] == b"\x4d\x3c\xb2\xa1"     # nanosecond magic
    raw = [struct.unpack_from("<II", data, off) for off in _pcap_record_offsets(data)]
    ours = [p.time for p in parse_capture_bytes(data).packets]
    with open(FIXTURES / "lo_nano.pcap", "rb") as f:
        theirs = {float(ts) for ts, _ in dpkt.pcap.Reader(f)}   # dpkt: exact Decimal
    assert len(ours) == len(theirs) - 1                         # minus the UDP frame
    assert all(t in theirs for t in ours)                       # both correctly rounded
    # sub-microsecond digits survive: nanosecond values are not all multiples of 1000
    assert any(ns % 1000 for _, ns in raw)


def test_parse_bytes_equals_read_file() -> None:
    data = (FIXTURES / "any_sll2.pcap").read_bytes()
    a = parse_capture_bytes(data, name="archive:any_sll2.pcap")
    b = fixture("any_sll2.pcap")
    assert a.path == "archive:any_sll2.pcap"
    assert a.packets == b.packets
    assert parse_capture_bytes(bytearray(data)).packets == b.packets
    assert parse_capture_bytes(memoryview(data)).packets == b.packets  # type: ignore[arg-type]


# --- truncated files ----------------------------------------------------------------


def _pcap_record_offsets(data: bytes) -> list[int]:
    """Offsets of the record headers of a little-endian classic pcap."""
    offs, pos = [], 24
    while pos + 16 <= len(data):
        offs.append(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return offs


def _pcapng_block_offsets(data: bytes) -> list[tuple[int, int]]:
    """(offset, type) of every block of a little-endian pcapng."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        btype, blen = struct.unpack_from("<II", data, pos)
        out.append((pos, btype))
        pos += blen
    return out


@pytest.mark.parametrize("name", ["lo_ipv4.pcap", "any_sll2.pcap", "lo_ipv6.pcap"])
@pytest.mark.parametrize("where", ["mid_data", "mid_header"])
def test_truncated_pcap(tmp_path: Path, name: str, where: str) -> None:
    data = (FIXTURES / name).read_bytes()
    full = read_capture(FIXTURES / name)
    offs = _pcap_record_offsets(data)
    cut_record = 6
    cut = offs[cut_record] + (40 if where == "mid_data" else 9)
    path = tmp_path / name
    path.write_bytes(data[:cut])
    cap = read_capture(path)
    assert cap.truncated
    assert cap.packets == full.packets[:cut_record]   # records 0..5 are all TCP


def test_truncated_pcapng(tmp_path: Path) -> None:
    data = (FIXTURES / "lo_ipv4.pcapng").read_bytes()
    full = read_capture(FIXTURES / "lo_ipv4.pcapng")
    epbs = [off for off, btype in _pcapng_block_offsets(data) if btype == 6]
    for cut in (epbs[4] + 30, epbs[4] + 5, epbs[4] + 10):
        cap = parse_capture_bytes(data[:cut])
        assert cap.truncated and cap.packets == full.packets[:4]
    # a cut exactly on a block boundary is not a truncation
    cap = parse_capture_bytes(data[:epbs[4]])
    assert not cap.truncated and cap.packets == full.packets[:4]


def test_cut_on_record_boundary_is_not_truncated() -> None:
    data = (FIXTURES / "lo_ipv4.pcap").read_bytes()
    offs = _pcap_record_offsets(data)
    cap = parse_capture_bytes(data[:offs[3]])
    assert not cap.truncated and len(cap.packets) == 3
    header_only = parse_capture_bytes(data[:24])
    assert header_only.packets == () and not header_only.truncated and header_only.linktype == 1


def test_every_cut_point_is_safe() -> None:
    """No prefix of a capture raises anything but CaptureError."""
    for name in ("any_sll.pcap", "lo_nano.pcapng"):
        data = (FIXTURES / name).read_bytes()
        n_full = len(read_capture(FIXTURES / name).packets)
        for cut in range(len(data) + 1):
            try:
                cap = parse_capture_bytes(data[:cut])
            except CaptureError:
                assert cut < 200    # only a missing/cut file header may fail
                continue
            assert len(cap.packets) <= n_full


# --- not a capture --------------------------------------------------------------------


def _error(path: Path | str) -> str:
    with pytest.raises(CaptureError) as exc:
        read_capture(path)
    msg = exc.value.line()
    assert "\n" not in msg
    assert exc.value.__cause__ is None or not isinstance(exc.value.__cause__, OSError)
    return msg


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_text("hello, this is not a capture\n")
    assert _error(path) == f"{path}: not a pcap or pcapng file (starts with 'hell')"


def test_binary_junk(tmp_path: Path) -> None:
    path = tmp_path / "junk.pcapng"
    path.write_bytes(bytes(range(64)))
    assert _error(path) == f"{path}: not a pcap or pcapng file (starts with bytes 00 01 02 03)"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    msg = _error(path)
    assert msg.startswith(f"{path}: ") and "empty" in msg


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pcap"
    assert _error(path) == f"{path}: no such file"
    assert _error(str(path)) == f"{path}: no such file"


def test_directory(tmp_path: Path) -> None:
    msg = _error(tmp_path)
    assert msg.startswith(f"{tmp_path}: ") and "directory" in msg


def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.pcap"
    path.write_bytes((FIXTURES / "lo_ipv4.pcap").read_bytes())
    if os.geteuid() != 0:
        path.chmod(0)
    else:   # root reads any file but a write-only sysctl: the kernel refuses that even to root
        path = Path("/proc/sys/vm/drop_caches")
        assert path.exists()
    assert _error(path) == f"{path}: permission denied"


def test_file_header_cut(tmp_path: Path) -> None:
    data = (FIXTURES / "lo_ipv4.pcap").read_bytes()
    for n in (2, 10, 23):
        path = tmp_path / f"cut{n}.pcap"
        path.write_bytes(data[:n])
        msg = _error(path)
        assert msg.startswith(f"{path}: ") and "truncated" in msg


def test_corrupt_record_length(tmp_path: Path) -> None:
    data = bytearray((FIXTURES / "lo_ipv4.pcap").read_bytes())
    off = _pcap_record_offsets(bytes(data))[2]
    struct.pack_into("<I", data, off + 8, 0xFFFFFFF0)
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(data))
    assert "corrupt" in _error(path)


def test_unsupported_linktype(tmp_path: Path) -> None:
    path = tmp_path / "wifi.pcap"
    path.write_bytes(_pcap([], linktype=147))
    assert "unsupported link type 147" in _error(path)


def test_capture_error_is_bad_input() -> None:
    with pytest.raises(BadInput) as exc:
        parse_capture_bytes(b"GET / HTTP/1.1\r\n")
    assert exc.value.status == ExitStatus.BAD_INPUT
    assert exc.value.line() == "<bytes>: not a pcap or pcapng file (starts with 'GET ')"


# --- hand-built frames: link types and IP corner cases not on loopback ------------------------


def _tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"",
         win: int = 1000) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, win, 0, 0) + payload


def _ip4(src: str, dst: str, payload: bytes, proto: int = 6, frag: int = 0x4000) -> bytes:
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, frag, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + payload


def _ip6(src: str, dst: str, payload: bytes, nh: int = 6) -> bytes:
    return struct.pack(">IHBB16s16s", 6 << 28, len(payload), nh, 64,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + payload


def _eth(l3: bytes, etype: int = 0x0800, vlans: int = 0) -> bytes:
    tags = b"".join(struct.pack(">HH", 0x8100, 10 + i) for i in range(vlans))
    return b"\x02" * 6 + b"\x04" * 6 + tags + struct.pack(">H", etype) + l3


def _sll2(l3: bytes, ptype: int, ifindex: int = 7, etype: int = 0x0800) -> bytes:
    return struct.pack(">HHIHBB8s", etype, 0, ifindex, 1, ptype, 6, b"\x02" * 6) + l3


def _sll(l3: bytes, ptype: int, etype: int = 0x0800) -> bytes:
    return struct.pack(">HHH8sH", ptype, 1, 6, b"\x02" * 6, etype) + l3


def _pcap(frames: list[bytes], linktype: int = 1, start: float = 1_700_000_000.0) -> bytes:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)]
    for i, f in enumerate(frames):
        t = round(start * 1e6) + i * 1000
        out.append(struct.pack("<IIII", t // 10**6, t % 10**6, len(f), len(f)) + f)
    return b"".join(out)


SYN, ACK, PSH, RST, FIN = 0x02, 0x10, 0x08, 0x04, 0x01


def test_vlan_fragments_and_non_tcp() -> None:
    seg = _tcp(1000, 80, 5, 0, SYN)
    frames = [
        _eth(_ip4("10.0.0.1", "10.0.0.2", seg), vlans=1),                  # 802.1Q
        _eth(_ip4("10.0.0.1", "10.0.0.2", seg), vlans=2),                  # QinQ
        _eth(_ip4("10.0.0.1", "10.0.0.2", seg, frag=0x2000)),              # first fragment (MF)
        _eth(_ip4("10.0.0.1", "10.0.0.2", b"x" * 16, frag=0x0003)),        # later fragment
        _eth(_ip4("10.0.0.1", "10.0.0.2", b"u" * 8, proto=17)),            # UDP
        _eth(b"\x00" * 28, etype=0x0806),                                  # ARP
        _eth(b"\x45"),                                                     # IPv4 cut short
        b"\x01\x02",                                                       # runt frame
    ]
    cap = parse_capture_bytes(_pcap(frames))
    assert len(cap.packets) == 2 and cap.other == 6
    assert all((p.src, p.dst, p.flags) == ("10.0.0.1", "10.0.0.2", "S") for p in cap.packets)


def test_ipv6_extension_headers_and_fragments() -> None:
    seg = _tcp(1000, 80, 5, 0, SYN)
    hop = bytes([6, 0]) + b"\x01\x04\x00\x00\x00\x00"        # hop-by-hop, next = TCP
    atomic = struct.pack(">BBHI", 6, 0, 0, 99)                  # fragment hdr, offset 0, M=0
    later = struct.pack(">BBHI", 6, 0, 8 << 3, 99)              # offset 8: unparsable
    frames = [
        _eth(_ip6("2001:db8::1", "2001:db8::2", hop + seg, nh=0), etype=0x86DD),
        _eth(_ip6("2001:db8::1", "2001:db8::2", atomic + seg, nh=44), etype=0x86DD),
        _eth(_ip6("2001:db8::1", "2001:db8::2", later + seg, nh=44), etype=0x86DD),
        _eth(_ip6("2001:db8::1", "2001:db8::2", b"\x80\x00" + b"\x00" * 6, nh=58),
             etype=0x86DD),                                     # ICMPv6
    ]
    cap = parse_capture_bytes(_pcap(frames))
    assert [p.src for p in cap.packets] == ["2001:db8::1", "2001:db8::1"]
    assert cap.other == 2


@pytest.mark.parametrize("linktype, wrap", [
    (101, lambda l3: l3), (12, lambda l3: l3), (228, lambda l3: l3),
    (0, lambda l3: struct.pack("<I", 2) + l3), (108, lambda l3: struct.pack(">I", 2) + l3),
])
def test_raw_and_loopback_linktypes(linktype: int, wrap) -> None:   # type: ignore[no-untyped-def]
    frame = wrap(_ip4("192.0.2.1", "192.0.2.2", _tcp(1, 2, 3, 4, RST | ACK)))
    cap = parse_capture_bytes(_pcap([frame], linktype=linktype))
    assert cap.linktype == linktype
    assert [(p.src, p.flags, p.seq, p.ack) for p in cap.packets] == [("192.0.2.1", "R.", 3, 4)]


def test_raw_ipv6_linktype_229() -> None:
    frame = _ip6("fe80::1", "fe80::2", _tcp(1, 2, 3, 4, ACK, b"abc"))
    (p,) = parse_capture_bytes(_pcap([frame], linktype=229)).packets
    assert (p.src, p.dst, p.flags, p.length) == ("fe80::1", "fe80::2", ".", 3)


def test_cooked_direction_out() -> None:
    seg = _ip4("10.1.1.1", "10.1.1.2", _tcp(5, 6, 7, 8, SYN | ACK))
    sll2 = parse_capture_bytes(_pcap([_sll2(seg, 4), _sll2(seg, 0), _sll2(seg, 3, 9)], 276))
    assert [(p.direction, p.ifindex) for p in sll2.packets] == [("out", 7), ("in", 7), ("other", 9)]
    sll = parse_capture_bytes(_pcap([_sll(seg, 4), _sll(seg, 1)], 113))
    assert [(p.direction, p.ifindex) for p in sll.packets] == [("out", None), ("in", None)]


def test_every_flag_and_order() -> None:
    frames = [_eth(_ip4("10.0.0.1", "10.0.0.2", _tcp(1, 2, 0, 0, f)))
              for f in (0, SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK, RST, RST | ACK,
                        FIN | PSH | ACK, 0xFF, SYN | 0x40 | 0x80)]
    flags = [p.flags for p in parse_capture_bytes(_pcap(frames)).packets]
    assert flags == ["none", "S", "S.", ".", "P.", "F.", "R", "R.", "FP.", "FSRP.UEW", "SEW"]


def test_flag_helpers() -> None:
    p = next(p for p in fixture("lo_ipv4.pcap").packets if p.flags == "F.")
    assert p.is_fin and p.has_ack and not p.is_syn and not p.is_rst
    assert not p.is_first_syn and not p.is_synack and p.bits == FIN | ACK
    with pytest.raises(AttributeError):
        p.flags = "R"   # type: ignore[misc]


def test_isn_wraps_and_new_syn_starts_a_new_connection() -> None:
    a, b = "10.0.0.1", "10.0.0.2"
    top = 2**32 - 10
    frames = [_eth(_ip4(x, y, t)) for x, y, t in [
        (b, a, _tcp(80, 1000, 77, 0, ACK)),                        # mid-connection: unknown
        (a, b, _tcp(1000, 80, top, 0, SYN)),
        (b, a, _tcp(80, 1000, 500, top + 1, SYN | ACK)),
        (a, b, _tcp(1000, 80, top + 1, 501, PSH | ACK, b"x" * 20)),
        (b, a, _tcp(80, 1000, 501, (top + 21) % 2**32, ACK)),
        (a, b, _tcp(1000, 80, 9000, 0, SYN)),                       # same 4-tuple, new SYN
        (b, a, _tcp(80, 1000, 501, 9001, ACK)),                     # server's old ISN forgotten
        (b, a, _tcp(80, 1000, 7000, 9001, SYN | ACK)),
    ]]
    ps = parse_capture_bytes(_pcap(frames)).packets
    got = [(p.rel_seq, p.rel_ack) for p in ps]
    assert got == [(None, None), (0, None), (0, 1), (1, 1), (1, 21), (0, None), (None, 1),
                   (0, 1)]


def test_ip_total_length_wins_over_ethernet_padding() -> None:
    frame = _eth(_ip4("10.0.0.1", "10.0.0.2", _tcp(1, 2, 3, 4, ACK))) + b"\x00" * 6
    (p,) = parse_capture_bytes(_pcap([frame])).packets
    assert p.length == 0


def test_ipv4_options_tso_and_tcp_options_decode_as_the_plain_headers_do() -> None:
    """Plain IPv4 and TCP headers take the fast path; options, a TSO length of 0, tunnels take the
    general one: every field must come out the same."""
    tcp_opts = struct.pack(">HHIIBBHHH", 1000, 80, 5, 9, 8 << 4, PSH | ACK, 512, 0, 0) + b"\x01" * 12 + b"d" * 30
    plain = _ip4("10.0.0.1", "10.0.0.2", tcp_opts)
    with_options = bytearray(_ip4("10.0.0.1", "10.0.0.2", b"\x01\x01\x01\x00" + tcp_opts))
    with_options[0] = 0x46                                                 # IHL 6: the 4 bytes are options
    tso = bytearray(plain)
    tso[2:4] = b"\x00\x00"                                                # total length left out
    in_ipip = _ip4("192.0.2.1", "192.0.2.2", plain, proto=4)
    frames = [_eth(plain), _eth(bytes(with_options)), _eth(bytes(tso)), _eth(in_ipip)]
    fields = [(p.src, p.dst, p.sport, p.dport, p.flags, p.seq, p.ack, p.length, p.window, p.ttl, p.ip_id, p.df)
              for p in parse_capture_bytes(_pcap(frames)).packets]
    assert fields == [("10.0.0.1", "10.0.0.2", 1000, 80, "P.", 5, 9, 30, 512, 64, 1, True)] * 4
    cooked = (parse_capture_bytes(_pcap([_sll2(plain, 4)], 276)).packets
              + parse_capture_bytes(_pcap([_sll(plain, 0)], 113)).packets)
    assert [(p.length, p.direction, p.ifindex, p.flags) for p in cooked] == [(30, "out", 7, "P."), (30, "in", None, "P.")]


def test_pcapng_written_by_dpkt() -> None:
    dpkt = pytest.importorskip("dpkt")
    buf = io.BytesIO()
    w = dpkt.pcapng.Writer(buf, snaplen=65535, linktype=276)
    seg = _ip4("10.1.1.1", "10.1.1.2", _tcp(5, 6, 7, 8, SYN))
    w.writepkt(_sll2(seg, 4, ifindex=3), ts=1_700_000_000.25)
    cap = parse_capture_bytes(buf.getvalue())
    (p,) = cap.packets
    assert cap.linktype == 276
    assert (p.direction, p.ifindex, p.flags) == ("out", 3, "S")
    assert abs(p.time - 1_700_000_000.25) < 1e-6


# --- helpers ------------------------------------------------------------------------


def test_the_tracker_keeps_both_directions_in_one_connection_and_splits_on_a_new_syn() -> None:
    t = ConnectionTracker()
    a, b = ("10.0.0.1", 1000), ("10.0.0.2", 80)
    seen = [t.segment(*a, *b, SYN, 100, 0), t.segment(*b, *a, SYN | ACK, 7, 101),
            t.segment(*a, *b, ACK, 101, 8), t.segment(*a, *b, SYN, 100, 0),   # a retransmitted SYN
            t.segment(*a, *b, SYN, 5000, 0), t.segment(*b, *a, ACK, 8, 5001)]  # a new ISN: a new connection
    assert seen == [(0, 0, None), (0, 0, 1), (0, 1, 1), (0, 0, None), (1, 0, None), (1, None, 1)]
    assert t.connections == 2


def test_ip_level_facts_are_recorded() -> None:
    frames = [_eth(_ip4("10.0.0.1", "10.0.0.2", _tcp(1, 2, 3, 4, ACK, win=777))),
              _eth(_ip4("10.0.0.1", "10.0.0.2", _tcp(1, 2, 3, 4, ACK), frag=0))]
    p, q = parse_capture_bytes(_pcap(frames)).packets
    assert (p.ttl, p.ip_id, p.df, p.window) == (64, 1, True, 777)
    assert q.df is False
    for p in fixture("lo_ipv6.pcap").packets:
        assert p.ttl == 64 and p.ip_id is None and p.df is None


def test_format_packet() -> None:
    s = scenario(fixture("lo_ipv4.pcap"))
    syn = s["exchange"][0]
    names = {"127.0.0.1": "lo"}
    assert format_packet(syn, names, t0=syn.time) == (
        f"0.000000 lo.{syn.sport} > lo.{syn.dport}: Flags [S], seq 0, win 65495, length 0")
    data = next(p for p in s["exchange"] if p.flags == "P.")
    assert format_packet(data, t0=syn.time).endswith(
        f"Flags [P.], seq 1:101, ack 1, win {data.window}, length 100")
    ack = s["exchange"][2]
    assert ", ack 1, win " in format_packet(ack) and "seq" not in format_packet(ack)
    rst = s["closed"][1]
    assert "Flags [R.], seq 0, ack 1, win 0, length 0" in format_packet(rst)
    bare = s["stray"][1]
    assert format_packet(bare).endswith(f"Flags [R], seq {STRAY_ACK}, win 0, length 0")
    assert format_packet(bare).startswith(f"{bare.time:.6f} 127.0.0.1.{bare.sport} > ")
    v6 = scenario(fixture("lo_ipv6.pcap"))["closed"][0]
    assert f" ::1.{v6.sport} > ::1.{v6.dport}: " in format_packet(v6)


# --- cross-check with tshark --------------------------------------------------------


TSHARK_FIELDS = ["frame.time_epoch", "tcp.flags", "tcp.seq_raw", "tcp.ack_raw", "tcp.seq",
                 "tcp.ack", "tcp.len", "tcp.srcport", "tcp.dstport", "tcp.window_size_value",
                 "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "sll.pkttype", "sll.ifindex"]


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_matches_tshark(name: str) -> None:
    """tshark installed here, or in the tools container (tests/oracles.py)."""
    cmd = ["-n", "-r", str(FIXTURES / name), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    out = oracles.tshark(cmd, FIXTURES / name)
    rows = [dict(zip(TSHARK_FIELDS, line.split("\t"), strict=False)) for line in out.splitlines()]
    tcp_rows = [r for r in rows if r["tcp.flags"]]
    cap = fixture(name)
    assert cap.other == len(rows) - len(tcp_rows)
    assert len(cap.packets) == len(tcp_rows)
    for p, r in zip(cap.packets, tcp_rows, strict=False):
        assert abs(p.time - float(r["frame.time_epoch"])) < 1e-6
        assert p.flags == _flags_text(int(r["tcp.flags"], 16))
        assert (p.seq, p.ack) == (int(r["tcp.seq_raw"]), int(r["tcp.ack_raw"]))
        assert (p.sport, p.dport) == (int(r["tcp.srcport"]), int(r["tcp.dstport"]))
        assert p.length == int(r["tcp.len"])
        assert p.window == int(r["tcp.window_size_value"])
        assert p.src == (r["ip.src"] or r["ipv6.src"])
        assert p.dst == (r["ip.dst"] or r["ipv6.dst"])
        if p.rel_seq is not None:   # tshark also relativizes SYN-less flows (to the first seq)
            assert p.rel_seq == int(r["tcp.seq"])
        if p.rel_ack is not None:
            assert p.rel_ack == int(r["tcp.ack"])
        if name.startswith("any_"):
            assert p.direction == {"4": "out", "3": "other"}.get(r["sll.pkttype"], "in")
            assert p.ifindex == (int(r["sll.ifindex"]) if r["sll.ifindex"] else None)


def _flags_text(bits: int) -> str:
    """tcpdump flag notation, computed independently of the module."""
    order = [(0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"),
             (0x40, "E"), (0x80, "W")]
    return "".join(c for bit, c in order if bits & bit) or "none"


def test_flag_kind_agrees_with_packet_properties() -> None:
    """Every bit of every FLAG_KIND entry says what Packet's property says of the same flags text (the one
    table survey, facts and zeek read a packet's flags from); bits 5-7 stay free for survey's own."""
    assert set(FLAG_KIND) == set(FLAG_BITS)
    for flags, kind in FLAG_KIND.items():
        p = Packet(0, 0.0, "", "", 0, 0, flags, 0, 0, 0, 0, None, None, None, None)
        said = {
            capture_mod.KIND_RST: p.is_rst,
            capture_mod.KIND_NOT_FIRST_SYN: not p.is_first_syn,
            capture_mod.KIND_SYN: p.is_syn,
            capture_mod.KIND_NOT_SYN: not p.is_syn,
            capture_mod.KIND_FIRST_SYN: p.is_first_syn,
            capture_mod.KIND_SYNACK: p.is_synack,
            capture_mod.KIND_ACK: p.has_ack,
            capture_mod.KIND_FIN: p.is_fin,
            capture_mod.KIND_BARE_ACK: p.is_bare_ack,
            capture_mod.KIND_BARE_RST: p.is_rst and not p.is_syn and not p.has_ack,
        }
        for bit, expected in said.items():
            assert bool(kind & bit) == expected, (flags, bit)
        assert kind >> capture_mod.KIND_STEP_SHIFT == p.is_syn + p.is_fin, flags
        named = 0
        for bit in said:
            assert bit & (bit - 1) == 0 and not bit & named, bit        # distinct single bits
            named |= bit
        assert not kind & ((1 << capture_mod.KIND_STEP_SHIFT) - 1) & ~named, flags      # no bit left unnamed
        assert not kind & 0xE0 and capture_mod.KIND_CONN & 0xE0 == 0, flags       # survey's own bits stay free
