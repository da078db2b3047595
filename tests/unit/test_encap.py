"""The capture reader's slow path: link types and encapsulations of mirror ports, ICMP errors.

Each frame is built by hand from the protocol's header layout; the TCP segment
inside must come out with its inner addresses, and nothing else may.
"""
from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from orchestrator.capture import parse_capture_bytes
from tests import oracles
from tests.unit.test_capture import ACK, RST, SYN, _eth, _ip4, _ip6, _pcap, _tcp

SEG = _tcp(40000, 80, 1000, 0, SYN)
INNER = _ip4("192.168.1.10", "192.168.1.20", SEG)
SNAP = b"\xaa\xaa\x03\x00\x00\x00"


def _one(frame: bytes, linktype: int = 1) -> tuple[str, str, int, str]:
    cap = parse_capture_bytes(_pcap([frame], linktype=linktype))
    assert len(cap.packets) == 1, cap
    p = cap.packets[0]
    return p.src, p.dst, p.sport, p.flags


def _gre(proto: int, payload: bytes, flags: int = 0) -> bytes:
    opts = b"\x00" * 4 * (bool(flags & 0x8000) + bool(flags & 0x2000) + bool(flags & 0x1000))
    return struct.pack(">HH", flags, proto) + opts + payload


def _outer(payload: bytes, proto: int) -> bytes:
    return _eth(_ip4("10.0.0.1", "10.0.0.2", payload, proto=proto))


def _wlan(l3: bytes, qos: bool = True) -> bytes:
    fc = struct.pack("BB", 0x88 if qos else 0x08, 0x01)             # data (QoS), to DS
    hdr = fc + b"\x00\x00" + b"\x01" * 18 + b"\x00\x00" + (b"\x00\x00" if qos else b"")
    return hdr + SNAP + b"\x08\x00" + l3


def _pktap(dlt: int, frame: bytes, flags: int = 0) -> bytes:
    """Apple's PKTAP header (little-endian: length, record type 1, link type, interface name, flags) and a frame."""
    head = struct.pack("<III", 108, 1, dlt) + b"en0".ljust(24, b"\0") + struct.pack("<I", flags)
    return head.ljust(108, b"\0") + frame


def _pflog(af: int, packet: bytes, length: int = 61) -> bytes:
    """A pf log header (its length, address family, action, reason, interface...), padded to 4 bytes."""
    head = struct.pack("BBBB", length, af, 0, 0) + b"pflog0".ljust(16, b"\0")
    return head.ljust((length + 3) & ~3, b"\0") + packet


def _erf(kind: int, payload: bytes, extensions: int = 0) -> bytes:
    """An ERF record: timestamp, type (top bit: extension headers follow), flags, record and wire lengths."""
    ext = b"".join(bytes([0x80 * (i < extensions - 1) | 3]) + b"\0" * 7 for i in range(extensions))
    return (struct.pack("<Q", 0) + struct.pack(">BBHHH", kind | 0x80 * bool(ext), 4, 16 + len(ext) + len(payload),
                                                 0, len(payload)) + ext + payload)


INNER6 = _ip6("2001:db8::1", "2001:db8::2", SEG)
INNER_ADDRS = ("192.168.1.10", "192.168.1.20", 40000, "S")

FRAMES = {
    "802.1Q": (_eth(INNER, vlans=1), 1),
    "QinQ": (_eth(INNER, vlans=2), 1),
    "MPLS": (_eth(struct.pack(">I", (16 << 12) | 0x100 | 64) + INNER, etype=0x8847), 1),
    "MPLS two labels": (_eth(struct.pack(">II", (16 << 12) | 64, (17 << 12) | 0x100 | 64) + INNER,
                             etype=0x8847), 1),
    "MPLS pseudowire": (_eth(struct.pack(">I", (16 << 12) | 0x100 | 64) + b"\x00" * 4 + _eth(INNER),
                             etype=0x8847), 1),
    "PPPoE": (_eth(b"\x11\x00\x00\x01" + struct.pack(">H", len(INNER) + 2) + b"\x00\x21" + INNER,
                   etype=0x8864), 1),
    "GRE": (_outer(_gre(0x0800, INNER), 47), 1),
    "GRE with key and sequence": (_outer(_gre(0x0800, INNER, flags=0x3000), 47), 1),
    "GRE bridged Ethernet": (_outer(_gre(0x6558, _eth(INNER)), 47), 1),
    "ERSPAN II": (_outer(_gre(0x88BE, b"\x10" + b"\x00" * 7 + _eth(INNER), flags=0x1000), 47), 1),
    "ERSPAN III": (_outer(_gre(0x22EB, b"\x20" + b"\x00" * 11 + _eth(INNER), flags=0x1000), 47), 1),
    "802.11 in GRE (Aruba)": (_outer(_gre(0x8200, _wlan(INNER)), 47), 1),
    "VXLAN": (_outer(struct.pack(">HHHH", 5555, 4789, 8 + 8 + 14 + len(INNER), 0)
                     + b"\x08\x00\x00\x00\x00\x00\x01\x00" + _eth(INNER), 17), 1),
    "IP in IP": (_outer(INNER, 4), 1),
    "FDDI": (b"\x50" + b"\x01" * 6 + b"\x02" * 6 + SNAP + b"\x08\x00" + INNER, 10),
    "PPP": (b"\xff\x03\x00\x21" + INNER, 9),
    "PPP compressed": (b"\x21" + INNER, 9),
    "Cisco HDLC": (b"\x0f\x00\x08\x00" + INNER, 104),
    "802.11": (_wlan(INNER, qos=False), 105),
    "radiotap": (struct.pack("<BBHI", 0, 0, 8, 0) + _wlan(INNER), 127),
    "NFLOG": (struct.pack("<BBH", 2, 0, 0) + struct.pack("<HH", 8, 1) + b"\x00" * 4
              + struct.pack("<HH", 4 + len(INNER), 9) + INNER, 239),
    "PKTAP, Ethernet": (_pktap(1, _eth(INNER)), 258),
    "PKTAP, loopback": (_pktap(0, struct.pack("<I", 2) + INNER), 258),
    "PKTAP, raw IP": (_pktap(12, INNER), 258),
    "pflog": (_pflog(2, INNER), 117),
    "PPI, 802.11": (struct.pack("<BBHI", 0, 0, 8, 105) + _wlan(INNER, qos=False), 192),
    "PPI, Ethernet": (struct.pack("<BBHI", 0, 0, 8, 1) + _eth(INNER), 192),
    "Prism": (struct.pack("<II", 0x41, 144) + b"wlan0".ljust(136, b"\0") + _wlan(INNER, qos=False), 119),
    "AVS": (struct.pack(">II", 0x80211001, 64) + b"\0" * 56 + _wlan(INNER, qos=False), 163),
    "AVS under the Prism link type": (struct.pack(">II", 0x80211001, 64) + b"\0" * 56 + _wlan(INNER, qos=False), 119),
    "Solaris ipnet": (struct.pack(">BBHIIIII", 1, 2, 0, len(INNER), 1, 0, 0, 0) + INNER, 226),
    "OpenBSD enc": (struct.pack("<III", 2, 0x1234, 0) + INNER, 109),
    "ERF, Ethernet": (_erf(2, b"\0\0" + _eth(INNER)), 197),
    "ERF, Ethernet after two extension headers": (_erf(2, b"\0\0" + _eth(INNER), extensions=2), 197),
    "ERF, colour Ethernet": (_erf(11, b"\0\0" + _eth(INNER)), 197),
    "ERF, IPv4": (_erf(22, INNER), 197),
    "ATM RFC 1483": (SNAP + b"\x08\x00" + INNER, 100),
}
FRAMES6 = {
    "pflog, OpenBSD's AF_INET6": (_pflog(24, INNER6), 117),
    "pflog, macOS's AF_INET6": (_pflog(30, INNER6), 117),
    "Solaris ipnet": (struct.pack(">BBHIIIII", 1, 26, 0, len(INNER6), 1, 0, 0, 0) + INNER6, 226),
    "ERF, IPv6": (_erf(23, INNER6), 197),
    "PKTAP, raw IPv6": (_pktap(12, INNER6), 258),
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_the_inner_segment_is_read(name: str) -> None:
    frame, linktype = FRAMES[name]
    assert _one(frame, linktype) == INNER_ADDRS


@pytest.mark.parametrize("name", sorted(FRAMES6))
def test_the_inner_ipv6_segment_is_read(name: str) -> None:
    frame, linktype = FRAMES6[name]
    assert _one(frame, linktype) == ("2001:db8::1", "2001:db8::2", 40000, "S")


@pytest.mark.parametrize("name", sorted(FRAMES) + sorted(FRAMES6))
def test_every_cut_of_a_frame_is_read_without_an_error(name: str) -> None:
    """A frame cut anywhere (a snap length, a corrupt length field) is a packet or counted as other, never an
    exception; a header length pointing past the frame is one too."""
    frame, linktype = {**FRAMES, **FRAMES6}[name]
    for cut in range(len(frame)):
        cap = parse_capture_bytes(_pcap([frame[:cut]], linktype=linktype))
        assert len(cap.packets) + cap.other == 1, (name, cut)
    cap = parse_capture_bytes(_pcap([frame[:4] + b"\xff" * 8 + frame[12:]], linktype=linktype))
    assert len(cap.packets) + cap.other == 1


def test_pktap_gives_the_direction_it_records() -> None:
    """PTH_FLAG_DIR_IN (1) is a packet the Mac received, PTH_FLAG_DIR_OUT (2) one it sent (Apple's libpcap writes
    them to pcapng as inbound and outbound)."""
    frames = [_pktap(1, _eth(INNER), flags) for flags in (1, 2, 0)]
    cap = parse_capture_bytes(_pcap(frames, linktype=258))
    assert [p.direction for p in cap.packets] == ["in", "out", None]


@pytest.mark.parametrize("name", sorted(FRAMES) + sorted(FRAMES6))
def test_tshark_reads_each_link_type_and_encapsulation_as_we_do(tmp_path: Path, name: str) -> None:
    """The segment tshark finds in each frame (addresses, ports, sequence number) is the one read here."""
    frame, linktype = {**FRAMES, **FRAMES6}[name]
    path = tmp_path / "frame.pcap"
    path.write_bytes(_pcap([frame], linktype=linktype))
    fields = ["ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.seq_raw"]
    cmd = ["-n", "-r", str(path), "-T", "fields", "-E", "separator=/t"]
    for f in fields:
        cmd += ["-e", f]
    row = dict(zip(fields, oracles.tshark(cmd, path).strip("\n").split("\t"), strict=True))
    (p,) = parse_capture_bytes(path.read_bytes()).packets
    # tshark lists every IP header's addresses, the tunnel's first: the segment's are the last
    src, dst = (row["ip.src"] or row["ipv6.src"]).split(",")[-1], (row["ip.dst"] or row["ipv6.dst"]).split(",")[-1]
    assert (src, dst, int(row["tcp.srcport"]), int(row["tcp.dstport"]), int(row["tcp.seq_raw"])) == (
        p.src, p.dst, p.sport, p.dport, p.seq)


def test_ipv6_in_ipv4() -> None:
    inner = _ip6("2001:db8::1", "2001:db8::2", SEG)
    assert _one(_outer(inner, 41)) == ("2001:db8::1", "2001:db8::2", 40000, "S")


def test_the_innermost_header_gives_ttl_and_ip_id() -> None:
    cap = parse_capture_bytes(_pcap([_outer(_gre(0x0800, INNER), 47)]))
    (p,) = cap.packets
    assert p.ttl == 64 and p.ip_id == 1


def test_gre_carrying_something_else_is_not_tcp() -> None:
    cap = parse_capture_bytes(_pcap([_outer(_gre(0x0806, b"\x00" * 28), 47)]))
    assert cap.packets == () and cap.other == 1


def test_tcp_quoted_in_an_icmp_error_is_reported_not_counted() -> None:
    rst = _ip4("10.0.0.2", "10.0.0.1", _tcp(80, 40000, 1, 1001, RST | ACK))
    icmp = struct.pack(">BBHI", 3, 13, 0, 0) + rst[:28]                   # admin prohibited
    frame = _eth(_ip4("10.0.0.254", "10.0.0.2", icmp, proto=1))
    cap = parse_capture_bytes(_pcap([frame]))
    assert cap.packets == ()
    (err,) = cap.icmp
    assert (err.sender, err.kind, err.src, err.sport, err.dst, err.dport) == (
        "10.0.0.254", "destination unreachable (administratively prohibited)",
        "10.0.0.2", 80, "10.0.0.1", 40000)


def test_icmpv6_error_quoting_tcp() -> None:
    seg6 = _ip6("2001:db8::1", "2001:db8::2", SEG)
    icmp = struct.pack(">BBHI", 1, 4, 0, 0) + seg6[:48]                   # port unreachable
    frame = _eth(_ip6("2001:db8::2", "2001:db8::1", icmp, nh=58), etype=0x86DD)
    cap = parse_capture_bytes(_pcap([frame]))
    assert cap.packets == () and cap.icmp[0].kind == "destination unreachable (port)"
    assert socket.inet_pton(socket.AF_INET6, cap.icmp[0].src)


def _as_pktap(sll2: bytes) -> bytes:
    """A Linux cooked (SLL2) classic pcap rewritten as a Mac's PKTAP one: each record's IP packet behind a PKTAP
    header (raw IP), its direction from the cooked packet type (4 sent: PTH_FLAG_DIR_OUT; 3 another host's: none;
    else received: PTH_FLAG_DIR_IN); timestamps untouched."""
    order = "<" if sll2[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    assert struct.unpack_from(order + "I", sll2, 20)[0] == 276
    out = [sll2[:20], struct.pack(order + "I", 258)]
    pos = 24
    while pos + 16 <= len(sll2):
        sec, frac, caplen, _ = struct.unpack_from(order + "IIII", sll2, pos)
        frame = sll2[pos + 16:pos + 16 + caplen]
        flags = {4: 2, 3: 0}.get(frame[10], 1)
        pktap = _pktap(12, frame[20:], flags)
        out.append(struct.pack(order + "IIII", sec, frac, len(pktap), len(pktap)) + pktap)
        pos += 16 + caplen
    return b"".join(out)


def test_a_macs_pktap_capture_is_explained_as_the_linux_cooked_one(tmp_path: Path) -> None:
    """Every lab capture (Linux cooked, with directions), rewritten as PKTAP with the same directions, gets the
    same verdicts: causes, sentences, evidence, notes, forged evidence and Zeek rows. Where a RST was made and
    whether a packet was forwarded read the direction PKTAP records as they read the cooked header's."""
    from orchestrator.explain import explain_file
    from tests.conftest import ROOT

    def seen(path: Path) -> list[tuple[object, ...]]:
        return [(e.cause, e.sentence, tuple(v.line for v in e.evidence), e.notes, e.rst_from, e.forged,
                 e.conn_state, e.history) for e in explain_file(path).explanations]

    captures = sorted((ROOT / "captures" / "reference").glob("*/*.pcap"))
    assert len(captures) > 40
    for path in captures:
        mac = tmp_path / "mac.pcap"
        mac.write_bytes(_as_pktap(path.read_bytes()))
        assert seen(mac) == seen(path), path
