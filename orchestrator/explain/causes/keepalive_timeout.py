"""keepalive-timeout: the prober's keepalive probes went unanswered; its kernel gave up.

Wire signature: pure ACKs at snd_una - 1 (length 0, or 1 with a garbage
byte), after the last data, unanswered; then `R.` from the prober (or its
bare `R` to the peer's later segment once the connection is gone).

Apart from its neighbours: zero-window probes look alike but follow a zero
window from the peer; retransmission-timeout repeats a data segment at
snd_una, not an empty one at snd_una - 1.

References: net/ipv4/tcp_timer.c tcp_keepalive_timer, tcp_write_wakeup;
RFC 9293 §3.8.4; SCENARIOS.md keepalive-timeout.
"""
from __future__ import annotations

from ..context import Context
from ..facts import Facts, gaps
from ..verdict import Finding, secs

ID = "keepalive-timeout"
FAMILIES = frozenset({"no-socket", "abort"})
TELL = "the probes in a capture on the prober's side; nstat TcpExtTCPAbortOnTimeout"
ZEEK = "RSTO (the prober resets), history ShADadR with the probes counted as acks"


def check(f: Facts, ctx: Context) -> Finding | None:
    probes = f.probes
    if not probes:
        return None
    x, y = f.x_text, f.y_text
    last_data = max((p for p in f.before if p.length), key=lambda p: p.time, default=None)
    between = gaps(probes)
    idle = probes[0].time - (last_data.time if last_data is not None else probes[0].time)
    interval = f", {secs(sum(between) / len(between))} apart" if between else ""
    why = f"{len(probes)} keepalive probe(s){interval} after {secs(idle)} idle, none answered, then the RST"
    found = Finding(ID, why, TELL, decided=True)
    found.add(last_data, "the last data")
    for i, p in enumerate(probes):
        found.add(p, f"keepalive probe {i + 1} (seq = snd_una - 1, length {p.length})")
    answers = [p for p in f.ys if p.time > probes[0].time]
    if answers:
        found.notes.append(f"{y} did answer {len(answers)} probe(s) here, but the answers never reached {x}")
    if f.rst.has_ack:
        found.add(f.rst, f"{x} gives up: RST")
    else:
        found.add(f.answered, f"{y}'s later segment")
        found.add(f.rst, "RST without ACK: the connection was already gone on this side")
    found.sentence = (f"{x}'s keepalive probes went unanswered ({len(probes)}{interval}), so its kernel "
                      "declared the peer dead and reset the connection; its application gets ETIMEDOUT.")
    return found
