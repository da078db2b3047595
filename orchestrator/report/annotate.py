"""`explain --annotate OUT.pcapng`: the capture written back with a comment on each RST.

The comment (a pcapng packet comment, `opt_comment`, which Wireshark shows
in the packet's tree and as `frame.comment`) names the cause and its
evidence in one line; the other packets are copied as they were. Written
with dpkt's pcapng writer, one interface per link type of the input.
"""
from __future__ import annotations

import os

import dpkt  # type: ignore[import-untyped]  # dpkt ships no type information

from ..capture import open_capture
from ..explain import AMBIGUOUS, CaptureExplanation
from ..pcapfile import FrameReader

ANY_LINKTYPE = frozenset(range(0x10000))

__all__ = ["annotate", "comments"]


def comments(result: CaptureExplanation) -> dict[int, str]:
    """Frame number -> comment, for the first RST (or the last SYN of a silent drop) of each
    explained connection and the other RSTs of the same connection."""
    out: dict[int, str] = {}
    for e in result.explanations:
        cause = e.cause if e.cause != AMBIGUOUS else "ambiguous: " + " or ".join(c.cause for c in e.candidates)
        why = "; ".join(c.why for c in e.candidates[:1]) or e.sentence
        first = next((ev.packet for ev in e.evidence if ev.packet.is_rst), None)
        if first is None and e.evidence:
            first = e.evidence[-1].packet
        if first is None:
            continue
        text = f"RST Lab: {cause}: {why}"
        extra = [f for f in e.forged if f not in why]
        if extra:
            text += " [also: " + "; ".join(extra) + "]"
        out[first.frame] = " ".join(text.split())
    return out


def annotate(result: CaptureExplanation, source: str, target: str | os.PathLike[str]) -> int:
    """Write `source` to `target` as pcapng with the comments; returns how many were written.
    The source is read twice, a chunk at a time (its link types first), never whole."""
    notes = comments(result)
    order: dict[int, int] = {}                  # link type -> interface id
    with open_capture(source) as f:
        for _ts, lt, _buf, _off, _caplen in FrameReader(f, source, ANY_LINKTYPE):
            order.setdefault(lt, len(order))
    idbs = [dpkt.pcapng.InterfaceDescriptionBlockLE(snaplen=0x40000, linktype=lt) for lt in order] or [
        dpkt.pcapng.InterfaceDescriptionBlockLE(snaplen=0x40000, linktype=1)]
    written = 0
    with open(target, "wb") as out, open_capture(source) as f:
        writer = dpkt.pcapng.Writer(out, idb=idbs)
        for number, (ts, lt, data, off, caplen) in enumerate(FrameReader(f, source, ANY_LINKTYPE), 1):
            opts = []
            if number in notes:
                opts = [dpkt.pcapng.PcapngOptionLE(code=dpkt.pcapng.PCAPNG_OPT_COMMENT,
                                                   text=notes[number].encode()),
                        dpkt.pcapng.PcapngOptionLE(code=dpkt.pcapng.PCAPNG_OPT_ENDOFOPT)]
                written += 1
            block = dpkt.pcapng.EnhancedPacketBlockLE(iface_id=order[lt], pkt_data=data[off:off + caplen],
                                                      opts=opts)
            writer.writepkt(block, ts=ts)
    return written
