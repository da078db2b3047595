"""One annotated capture per scenario: every capture point merged into a pcapng that carries its own explanation.

Each capture point becomes a named interface (`client`, `router`, …) of one
pcapng, its frames merged in time order (all points share the kernel's clock).
Each RST and each packet that a check matched carries a packet comment: the
check it satisfies, the kernel's reason (when it was witnessed), and the cause
`explain` gives its connection. Wireshark shows the comments (Packet comments,
`frame.comment`); `tshark -r F -T fields -e frame.comment` prints them. Written
with dpkt's pcapng writer; the per-point .pcap files stay as they are.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dpkt  # type: ignore[import-untyped]
from dpkt import pcapng

from ..capture import Packet, parse_capture_bytes
from ..errors import CaptureError
from ..explain import Explanation, endpoint, explain_packets
from ..model import Scenario
from ..verify import match_sequence
from .journey import lifelines


@dataclass(frozen=True)
class Frame:
    """One frame of one capture point: its interface, time, bytes, and the comment it carries."""

    point: str
    t: float
    data: bytes
    comment: str | None


def check_comments(scenario: Scenario, packets: Mapping[str, Sequence[Packet]],
                   names: Mapping[str, str]) -> dict[str, dict[int, list[str]]]:
    """point -> packet index -> the checks it satisfies (`packets @client #2: server > client R. seq=0 ack=1`)."""
    out: dict[str, dict[int, list[str]]] = {}
    for exp in scenario.packets:
        mine = packets.get(exp.point, ())
        chosen, matched = match_sequence(exp.sequence, mine, names, exp.exact)
        if matched < len(exp.sequence):
            continue                    # a failed check matched nothing for certain
        for k, i in enumerate(chosen):
            out.setdefault(exp.point, {}).setdefault(mine[i].index, []).append(
                f"check packets @{exp.point} #{k + 1}: {exp.sequence[k].text}")
    return out


def cause_comments(packets: Sequence[Packet], local: Sequence[str] = ()) -> dict[int, str]:
    """packet index -> what `explain` says of the connection of each RST (`local`: the capture host's addresses)."""
    by_conn: dict[frozenset[str], Explanation] = {}
    for e in explain_packets(packets, local_addresses=local):
        by_conn[frozenset(e.endpoints)] = e
    out = {}
    for p in packets:
        if p.is_rst:
            found = by_conn.get(frozenset((endpoint(p.src, p.sport), endpoint(p.dst, p.dport))))
            if found is not None:
                out[p.index] = f"explain: {found.cause}: {' '.join(found.sentence.split())}"
    return out


def _rst_key(p: Packet) -> tuple[str, int, str, int, str, int]:
    return (p.src, p.sport, p.dst, p.dport, p.flags, p.seq)


def merged_frames(pcaps: Mapping[str, bytes], names: Mapping[str, str], scenario: Scenario | None = None,
                  reasons: Mapping[str, str] | None = None, kernel: Mapping[str, Mapping[int, str]] | None = None,
                  ) -> tuple[list[str], dict[str, int], list[Frame]]:
    """(interfaces in path order, their link types, every frame in time order with its comment).

    `kernel`: point -> packet index -> the witness's words on that RST; `reasons`: host -> its RSTs' reasons."""
    points = lifelines(list(pcaps))
    linktypes: dict[str, int] = {}
    raw: dict[str, list[tuple[float, bytes]]] = {}
    packets: dict[str, tuple[Packet, ...]] = {}
    causes: dict[str, dict[int, str]] = {}
    decided: dict[tuple[str, int, str, int, str, int], str] = {}     # a RST's cause where one point could decide it
    for point in points:
        reader = dpkt.pcap.Reader(io.BytesIO(pcaps[point]))
        linktypes[point] = reader.datalink()
        raw[point] = [(float(ts), bytes(frame)) for ts, frame in reader]
        packets[point] = parse_capture_bytes(pcaps[point], f"{point}.pcap").packets
        causes[point] = cause_comments(packets[point], [a for a, n in names.items() if n == point])
        for p in packets[point]:
            text = causes[point].get(p.index, "")
            if p.is_rst and text and not text.startswith("explain: ambiguous"):
                decided.setdefault(_rst_key(p), f"{text} (decided at {point})")
    checks = check_comments(scenario, packets, names) if scenario else {}
    frames: list[Frame] = []
    for point in points:
        mine, k = packets[point], 0
        for ts, frame in raw[point]:
            comment: list[str] = []
            if k < len(mine) and abs(mine[k].time - ts) < 1e-6:         # the k-th TCP packet is this frame
                p = mine[k]
                if p.is_rst:
                    sender = names.get(p.src, p.src)
                    comment.append(f"RST {p.flags} carrying {sender}'s address, seen at {point}")
                    said = (kernel or {}).get(point, {}).get(p.index)
                    if said:
                        comment.append(said)
                    elif reasons and sender in reasons:
                        comment.append(f"kernel: {reasons[sender]}")
                    own = causes[point].get(p.index, "")
                    better = decided.get(_rst_key(p), "")
                    comment.append(better if own.startswith("explain: ambiguous") and better else own)
                comment += checks.get(point, {}).get(p.index, [])
                k += 1
            text = "; ".join(c for c in comment if c)
            frames.append(Frame(point, ts, frame, text or None))
    frames.sort(key=lambda f: f.t)
    return points, linktypes, frames


def write_pcapng(points: Sequence[str], linktypes: Mapping[str, int], frames: Sequence[Frame]) -> bytes:
    """The merged capture as pcapng bytes: one interface block per point (if_name), comments as EPB options."""
    out = io.BytesIO()
    idbs = [pcapng.InterfaceDescriptionBlockLE(
        linktype=linktypes[p], snaplen=262144,
        opts=[pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_IF_NAME, data=p.encode()),
              pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_IF_DESCRIPTION, data=f"RST Lab capture point {p}".encode()),
              pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_IF_TSRESOL, data=b"\x06"),
              pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_ENDOFOPT)]) for p in points]
    shb = pcapng.SectionHeaderBlockLE(opts=[
        pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_SHB_USERAPPL, data=b"RST Lab"),
        pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_ENDOFOPT)])
    writer = pcapng.Writer(out, shb=shb, idb=idbs)
    index = {p: i for i, p in enumerate(points)}
    for f in frames:
        ts = round(f.t * 1e6)
        opts = ([pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_COMMENT, data=f.comment.encode()),
                 pcapng.PcapngOptionLE(code=pcapng.PCAPNG_OPT_ENDOFOPT)] if f.comment else [])
        epb = pcapng.EnhancedPacketBlockLE(iface_id=index[f.point], ts_high=ts >> 32, ts_low=ts & 0xFFFFFFFF,
                                           caplen=len(f.data), pkt_len=len(f.data), pkt_data=f.data, opts=opts)
        writer.writepkt(epb)
    return out.getvalue()


def annotated_capture(pcaps: Mapping[str, bytes], names: Mapping[str, str], scenario: Scenario | None = None,
                      reasons: Mapping[str, str] | None = None,
                      kernel: Mapping[str, Mapping[int, str]] | None = None) -> bytes:
    """Every capture point of a scenario as one commented pcapng (see the module's docstring).

    Raises CaptureError for a capture that cannot be read (e.g. cut short when its sidecar died)."""
    try:
        points, linktypes, frames = merged_frames({p: d for p, d in pcaps.items() if d}, names, scenario, reasons,
                                                  kernel)
    except (dpkt.Error, ValueError) as exc:
        raise CaptureError(f"cannot merge the captures: {exc}") from None
    return write_pcapng(points, linktypes, frames)
