"""Explain the resets in any capture: which cause each RST matches, with the evidence.

A pure analysis package: packets in, dataclasses out (no rich, no Docker, no
printing). For every TCP connection of a capture that holds a RST it names
who sent the first RST and the cause it matches, with the packets that
decided it and one sentence for a developer (and the same for its later RST,
where the connection carried on past the first). Where the wire cannot decide
between causes it says `ambiguous` and lists the candidates with what would
tell them apart. Connections that failed without any RST (a SYN never
answered) are reported as `silent-drop`.

Layout: `facts` (connections and the facts of each reset), `carry_on` (a
connection that went on past its first RST: one part per reset incident), `context`
(capture-wide evidence), `origin` (where a RST came from: capture point,
TTL, IP ID), `causes/` (one module per cause and the REGISTRY that orders
them), `analysis` (runs the registry), `result` (what is returned).
"""
from __future__ import annotations

from .analysis import explain_capture, explain_file, explain_packets
from .causes import CAUSES
from .incidents import Incident, incidents
from .result import (
                     AMBIGUOUS,
                     HALF_OPEN,
                     SILENT_DROP,
                     UNKNOWN,
                     Candidate,
                     CaptureExplanation,
                     Evidence,
                     Explanation,
                     endpoint,
)

__all__ = [
    "AMBIGUOUS",
    "CAUSES",
    "HALF_OPEN",
    "SILENT_DROP",
    "UNKNOWN",
    "Candidate",
    "CaptureExplanation",
    "Evidence",
    "Explanation",
    "Incident",
    "endpoint",
    "explain_capture",
    "explain_file",
    "explain_packets",
    "incidents",
]
