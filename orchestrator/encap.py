"""The slow path of the capture reader: link types and encapsulations met on mirror ports.

capture.py decodes Ethernet, Linux cooked, raw IP and loopback frames itself
(the fast path); everything else comes here and is unwrapped down to an IP
header: FDDI, PPP (and PPP in HDLC framing, PPPoE), Cisco HDLC, 802.11 (with
or without radiotap), NFLOG, MPLS (with a pseudowire control word), GRE
(with ERSPAN II/III, transparent Ethernet bridging and Aruba's 802.11),
VXLAN, IP-in-IP and IPv6-in-IPv4. Each function returns (offset, ethertype)
of what it found, ethertype 0 when it found nothing it can read.

ICMP errors quote the header of the segment that caused them; `icmp_error`
reads that quote so that the reader can report the ICMP without counting the
quoted segment as a TCP packet.
"""
from __future__ import annotations

import socket
import struct
from typing import NamedTuple

__all__ = ["BSD_AF_INET6", "LINKTYPES", "LT_LOOP", "LT_NULL", "LT_PKTAP", "LT_RAW", "IcmpError", "icmp_error",
           "link_layer", "pktap_direction", "unwrap_ethertype", "unwrap_ip"]

ETH_IP4, ETH_IP6 = 0x0800, 0x86DD
_u16 = struct.Struct(">H").unpack_from
_u32 = struct.Struct(">I").unpack_from

# link types (tcpdump.org/linktypes.html) read here
LT_PPP, LT_FDDI, LT_PPP_HDLC, LT_C_HDLC, LT_IEEE802_11, LT_RADIOTAP, LT_NFLOG = 9, 10, 50, 104, 105, 127, 239
LT_PPP_ETHER = 51
LT_NULL, LT_LOOP = 0, 108                       # BSD loopback: the address family, host or network order
LT_RAW = frozenset((12, 101, 228, 229))         # raw IP (12 is DLT_RAW on some systems)
LT_ATM_RFC1483, LT_ENC, LT_PFLOG, LT_PRISM, LT_AVS, LT_PPI, LT_ERF, LT_IPNET, LT_PKTAP = (
    100, 109, 117, 119, 163, 192, 197, 226, 258)
LINKTYPES = frozenset((LT_PPP, LT_FDDI, LT_PPP_HDLC, LT_PPP_ETHER, LT_C_HDLC, LT_IEEE802_11,
                       LT_RADIOTAP, LT_NFLOG, LT_ATM_RFC1483, LT_ENC, LT_PFLOG, LT_PRISM, LT_AVS, LT_PPI,
                       LT_ERF, LT_IPNET, LT_PKTAP))

_PPP_PROTO = {0x0021: ETH_IP4, 0x0057: ETH_IP6}
_VLAN = frozenset((0x8100, 0x88A8, 0x9100))
_MPLS = frozenset((0x8847, 0x8848))
_ERSPAN2, _ERSPAN3, _TEB, _ARUBA_WLAN, _PPPOE = 0x88BE, 0x22EB, 0x6558, 0x8200, 0x8864
VXLAN_PORT = 4789


def _ethernet(data: bytes, p: int, end: int) -> tuple[int, int]:
    """An Ethernet header (VLAN tags walked) at p."""
    if p + 14 > end:
        return p, 0
    (etype,) = _u16(data, p + 12)
    p += 14
    while etype in _VLAN and p + 4 <= end:
        (etype,) = _u16(data, p + 2)
        p += 4
    return p, etype


def _llc_snap(data: bytes, p: int, end: int) -> tuple[int, int]:
    """802.2 LLC with SNAP (AA AA 03, OUI, ethertype), as FDDI and 802.11 carry IP."""
    if p + 8 <= end and data[p] == 0xAA and data[p + 1] == 0xAA and data[p + 2] == 0x03:
        return p + 8, _u16(data, p + 6)[0]
    return p, 0


def _ieee80211(data: bytes, p: int, end: int) -> tuple[int, int]:
    """An 802.11 data frame: its header (addr4 when to and from DS, QoS field) then LLC/SNAP."""
    if p + 24 > end:
        return p, 0
    fc0, fc1 = data[p], data[p + 1]
    if (fc0 >> 2) & 0x3 != 2 or fc1 & 0x40:      # not a data frame, or protected
        return p, 0
    hdr = 24
    if fc1 & 0x03 == 0x03:
        hdr += 6                                   # four addresses
    if fc0 & 0x80:
        hdr += 2                                   # QoS control
        if fc1 & 0x80:
            hdr += 4                               # HT control (order bit)
    return _llc_snap(data, p + hdr, end)


def _ppp(data: bytes, p: int, end: int) -> tuple[int, int]:
    if p + 2 <= end and data[p] == 0xFF and data[p + 1] == 0x03:
        p += 2                                     # HDLC address and control
    if p + 2 > end:
        return p, 0
    if data[p] & 1:                                # protocol field compressed to one byte
        return p + 1, _PPP_PROTO.get(data[p], 0)
    return p + 2, _PPP_PROTO.get(_u16(data, p)[0], 0)


def _nflog(data: bytes, p: int, end: int) -> tuple[int, int]:
    """NFLOG: a 4-byte header (family, version, resource id) then TLVs; type 9 is the payload."""
    if p + 4 > end:
        return p, 0
    family = data[p]
    q = p + 4
    while q + 4 <= end:
        tlen, ttype = struct.unpack_from("<HH", data, q)   # host byte order: little-endian captures
        if tlen < 4:
            break
        if ttype & 0x7FFF == 9:
            return q + 4, ETH_IP4 if family == 2 else ETH_IP6 if family == 10 else 0
        q += (tlen + 3) & ~3
    return p, 0


def _by_version(data: bytes, p: int, end: int) -> tuple[int, int]:
    """An IP packet at p, IPv4 or IPv6 as its first nibble says."""
    if p >= end:
        return p, 0
    v = data[p] >> 4
    return p, ETH_IP4 if v == 4 else ETH_IP6 if v == 6 else 0


BSD_AF_INET6 = frozenset((10, 24, 28, 30))      # AF_INET6 of Linux, NetBSD/OpenBSD, FreeBSD, macOS
_IPNET_FAMILY = {2: ETH_IP4, 26: ETH_IP6}       # Solaris ipnet's IPH_AF_INET, IPH_AF_INET6
_ERF_ETHERNET = frozenset((2, 11, 16, 20))      # ERF record types of Ethernet: ETH, COLOR_ETH, DSM_COLOR_ETH,
_ERF_IP = {22: ETH_IP4, 23: ETH_IP6}            # COLOR_HASH_ETH (two bytes of padding first); IPV4, IPV6
_PTH_TYPE_PACKET, _PTH_DIR_IN, _PTH_DIR_OUT = 1, 0x1, 0x2


def _carried(data: bytes, p: int, end: int, dlt: int) -> tuple[int, int]:
    """A frame of link type `dlt` at p: what PKTAP and PPI headers wrap (Ethernet, BSD loopback, raw IP, or
    another link type read here)."""
    if dlt == 1:
        return _ethernet(data, p, end)
    if dlt in (LT_NULL, LT_LOOP):                  # the address family in 4 bytes of either order: the IP
        return _by_version(data, p + 4, end)       # version decides
    if dlt in LT_RAW:
        return _by_version(data, p, end)
    if dlt in LINKTYPES and dlt not in (LT_PKTAP, LT_PPI):     # not a wrapper in a wrapper
        return link_layer(data, p, end, dlt)
    return p, 0


def _pktap(data: bytes, p: int, end: int) -> tuple[int, int]:
    """Apple's PKTAP (`tcpdump -i pktap` on macOS): a little-endian header (its length, record type, the link type
    of the frame after it), then that frame."""
    if p + 40 > end:
        return p, 0
    length, kind, dlt = struct.unpack_from("<III", data, p)
    if kind != _PTH_TYPE_PACKET or length < 40:
        return p, 0
    return _carried(data, p + length, end, dlt)


def pktap_direction(data: bytes, p: int, end: int) -> str | None:
    """The direction a PKTAP header at p records (its flags: PTH_FLAG_DIR_IN, _OUT), as Linux cooked headers say it."""
    if p + 40 > end:
        return None
    (flags,) = struct.unpack_from("<I", data, p + 36)
    return "in" if flags & _PTH_DIR_IN else "out" if flags & _PTH_DIR_OUT else None


def _pflog(data: bytes, p: int, end: int) -> tuple[int, int]:
    """A BSD pf log record (`tcpdump -i pflog0`): the header's length in its first byte (padded to 4 bytes), the
    address family in its second, then the packet."""
    if p + 2 > end:
        return p, 0
    length, af = data[p], data[p + 1]
    q = p + ((length + 3) & ~3)
    return (q, ETH_IP4) if af == 2 else (q, ETH_IP6) if af in BSD_AF_INET6 else (q, 0)


def _erf(data: bytes, p: int, end: int) -> tuple[int, int]:
    """An Endace ERF record: 16 bytes of header, extension headers of 8 bytes while the type's top bit says so,
    then an Ethernet frame (two bytes of padding first) or an IP packet."""
    if p + 16 > end:
        return p, 0
    kind = data[p + 8]
    q = p + 16
    more = kind & 0x80
    while more and q + 8 <= end:
        more = data[q] & 0x80
        q += 8
    kind &= 0x7F
    if kind in _ERF_ETHERNET:
        return _ethernet(data, q + 2, end)
    return (q, _ERF_IP[kind]) if kind in _ERF_IP else (q, 0)


def _prism(data: bytes, p: int, end: int) -> tuple[int, int]:
    """802.11 after a Prism monitor header (its length little-endian at 4), or after an AVS header (big-endian
    magic 0x8021100x, its length at 4), as drivers write either under the Prism link type."""
    if p + 8 > end:
        return p, 0
    if _u32(data, p)[0] & 0xFFFFFFF0 == 0x80211000:
        return _ieee80211(data, p + _u32(data, p + 4)[0], end)
    return _ieee80211(data, p + struct.unpack_from("<I", data, p + 4)[0], end)


def link_layer(data: bytes, off: int, end: int, lt: int) -> tuple[int, int]:
    """(offset, ethertype) of what a frame of a slow-path link type carries."""
    if lt == LT_FDDI:
        return _llc_snap(data, off + 13, end)
    if lt in (LT_PPP, LT_PPP_HDLC):
        return _ppp(data, off, end)
    if lt == LT_PPP_ETHER:
        return _pppoe(data, off, end)
    if lt == LT_C_HDLC:
        return (off + 4, _u16(data, off + 2)[0]) if off + 4 <= end else (off, 0)
    if lt == LT_IEEE802_11:
        return _ieee80211(data, off, end)
    if lt == LT_RADIOTAP:
        if off + 4 > end:
            return off, 0
        (rlen,) = struct.unpack_from("<H", data, off + 2)
        return _ieee80211(data, off + rlen, end)
    if lt == LT_NFLOG:
        return _nflog(data, off, end)
    if lt == LT_PKTAP:
        return _pktap(data, off, end)
    if lt == LT_PFLOG:
        return _pflog(data, off, end)
    if lt == LT_ERF:
        return _erf(data, off, end)
    if lt == LT_PPI:                               # version, flags, length (LE), then the link type (LE)
        if off + 8 > end:
            return off, 0
        length, dlt = struct.unpack_from("<HI", data, off + 2)
        return _carried(data, off + length, end, dlt) if length >= 8 else (off, 0)
    if lt in (LT_PRISM, LT_AVS):
        return _prism(data, off, end)
    if lt == LT_IPNET:                             # Solaris ipnet: 24 bytes, the address family second
        return (off + 24, _IPNET_FAMILY.get(data[off + 1], 0)) if off + 24 <= end else (off, 0)
    if lt == LT_ENC:                               # OpenBSD enc: family (host order), SPI, flags; then IP
        return _by_version(data, off + 12, end)
    if lt == LT_ATM_RFC1483:
        return _llc_snap(data, off, end)
    return off, 0


def _pppoe(data: bytes, p: int, end: int) -> tuple[int, int]:
    """A PPPoE session header (6 bytes) then PPP."""
    return _ppp(data, p + 6, end) if p + 8 <= end else (p, 0)


def unwrap_ethertype(data: bytes, p: int, end: int, etype: int) -> tuple[int, int]:
    """Unwrap MPLS, PPPoE, VLAN, bridged Ethernet, ERSPAN and Aruba 802.11 down to IP."""
    for _ in range(8):                             # nested at most this deep
        if etype in (ETH_IP4, ETH_IP6) or etype == 0:
            return p, etype
        if etype in _MPLS:
            while p + 4 <= end and not data[p + 2] & 0x01:
                p += 4
            p += 4                                 # the bottom-of-stack label
            if p >= end:
                return p, 0
            nibble = data[p] >> 4
            if nibble == 4:
                etype = ETH_IP4
            elif nibble == 6:
                etype = ETH_IP6
            elif nibble == 0:                      # pseudowire control word, then Ethernet
                p, etype = _ethernet(data, p + 4, end)
            else:
                return p, 0
        elif etype in _VLAN:
            if p + 4 > end:
                return p, 0
            etype, p = _u16(data, p + 2)[0], p + 4
        elif etype == _PPPOE:
            p, etype = _pppoe(data, p, end)
        elif etype == _TEB:
            p, etype = _ethernet(data, p, end)
        elif etype == _ERSPAN2:
            p, etype = _ethernet(data, p + 8, end)
        elif etype == _ERSPAN3:
            if p + 12 > end:
                return p, 0
            extra = 8 if data[p + 11] & 0x01 else 0   # optional platform-specific subheader
            p, etype = _ethernet(data, p + 12 + extra, end)
        elif etype == _ARUBA_WLAN:
            p, etype = _ieee80211(data, p, end)
        else:
            return p, 0
    return p, 0


def unwrap_ip(data: bytes, p: int, end: int, proto: int) -> tuple[int, int]:
    """What an IP packet with protocol `proto` at p carries: IP-in-IP, IPv6-in-IPv4, GRE, VXLAN."""
    if proto == 4:
        return p, ETH_IP4
    if proto == 41:
        return p, ETH_IP6
    if proto == 47:                                # GRE: flags, version, protocol, options
        if p + 4 > end:
            return p, 0
        flags, gproto = _u16(data, p)[0], _u16(data, p + 2)[0]
        q = p + 4 + 4 * (bool(flags & 0x8000) + bool(flags & 0x2000) + bool(flags & 0x1000))
        if flags & 0x7 == 1:                       # version 1: PPTP's enhanced GRE
            q = p + 8 + 4 * (bool(flags & 0x1000) + bool(flags & 0x0080))
            return _ppp(data, q, end)
        return unwrap_ethertype(data, q, end, gproto)
    if proto == 17 and p + 8 <= end and _u16(data, p + 2)[0] == VXLAN_PORT:
        return _ethernet(data, p + 16, end)        # UDP header, VXLAN header
    return p, 0


class IcmpError(NamedTuple):
    """An ICMP error about a TCP segment: who sent it, what it says, which segment it quotes."""

    time: float
    sender: str           # the router or host that sent the ICMP
    kind: str             # "unreachable (port)", "time exceeded"...
    src: str              # the quoted segment's 4-tuple
    sport: int
    dst: str
    dport: int


_ICMP4 = {3: "destination unreachable", 11: "time exceeded", 12: "parameter problem", 4: "source quench"}
_UNREACH4 = {0: "network", 1: "host", 2: "protocol", 3: "port", 9: "network prohibited",
             10: "host prohibited", 13: "administratively prohibited"}
_ICMP6 = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded", 4: "parameter problem"}
_UNREACH6 = {0: "no route", 1: "administratively prohibited", 3: "address", 4: "port"}


def icmp_error(data: bytes, p: int, end: int, v6: bool, time: float, sender: str) -> IcmpError | None:
    """The ICMP (v6 when `v6`) message at p, when it is an error quoting a TCP segment."""
    if p + 8 > end:
        return None
    typ, code = data[p], data[p + 1]
    names, codes = (_ICMP6, _UNREACH6) if v6 else (_ICMP4, _UNREACH4)
    if typ not in names:
        return None
    kind = names[typ] + (f" ({codes.get(code, code)})" if typ == (1 if v6 else 3) else "")
    q = p + 8
    if not v6:
        if q + 20 > end or data[q] >> 4 != 4:
            return None
        ihl = (data[q] & 0x0F) << 2
        if data[q + 9] != 6 or q + ihl + 4 > end:
            return None
        src, dst = socket.inet_ntoa(data[q + 12:q + 16]), socket.inet_ntoa(data[q + 16:q + 20])
        t = q + ihl
    else:
        if q + 44 > end or data[q + 6] != 6:
            return None
        src = socket.inet_ntop(socket.AF_INET6, data[q + 8:q + 24])
        dst = socket.inet_ntop(socket.AF_INET6, data[q + 24:q + 40])
        t = q + 40
    sport, dport = _u16(data, t)[0], _u16(data, t + 2)[0]
    return IcmpError(time, sender, kind, src, sport, dst, dport)
