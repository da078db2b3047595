"""The kernel's own word on each RST: tracefs lines in, attributed events and per-RST verdicts out.

Pure functions, no I/O (the tracefs instance that records the lines is
`orchestrator.lab.witness`). Three tracepoints are read, as the kernel prints
them in an instance's `trace` file (trace_clock `mono`, so timestamps are
CLOCK_MONOTONIC seconds, the clock of `time.monotonic()`):

- `tcp:tcp_send_reset`: a host's TCP sent a RST, with `reason`
  (enum sk_rst_reason, Linux >= 6.10) and the sending socket's `state`
  (`UNKNOWN` when no socket: the RST answers a segment nobody owns);
- `tcp:tcp_receive_reset`: a socket took a RST (tcp_reset());
- `sock:inet_sock_set_state`: the state that socket left as the RST closed it.

Each event is "local" to the host whose address is its own end: the sender
of a sent RST, the receiver of a taken one. A RST on the wire is matched to
the sender's event by its four-tuple, in order; none from the host whose
address it carries means that host's TCP stack did not send it (netfilter's
REJECT, a middlebox: forged on the path).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .capture import Packet

SEND, RECEIVE, STATE = "tcp_send_reset", "tcp_receive_reset", "inet_sock_set_state"
NO_STATE = "UNKNOWN"      # tcp_send_reset's state when the RST has no socket behind it
COPY_WINDOW = 0.005       # s: the same RST twice this close together at one point: one RST, forwarded

_LINE = re.compile(r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<cpu>\d+)\]\s+(?:\S+\s+)?"
                   r"(?P<time>\d+\.\d+): (?P<event>\w+): (?P<body>.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class KernelEvent:
    """One tracepoint hit. `local` is the host-side end (sender of a sent RST, receiver of a taken one)."""

    time: float            # CLOCK_MONOTONIC seconds
    event: str             # SEND, RECEIVE or STATE
    local: str
    local_port: int
    remote: str
    remote_port: int
    state: str | None = None      # SEND: the sending socket's state (NO_STATE: no socket)
    reason: str | None = None     # SEND: enum sk_rst_reason
    oldstate: str | None = None   # STATE
    newstate: str | None = None   # STATE

    @property
    def key(self) -> tuple[str, int, str, int]:
        return (self.local, self.local_port, self.remote, self.remote_port)


def _split(endpoint: str) -> tuple[str, int]:
    """`10.213.4.3:8080` (the kernel's %pISpc) -> ("10.213.4.3", 8080); IPv6 comes as `[addr]:port`."""
    addr, _, port = endpoint.rpartition(":")
    return addr.strip("[]"), int(port)


def parse_line(line: str) -> KernelEvent | None:
    """One line of a tracefs `trace` file; None for comments, other events and non-IPv4 sockets."""
    m = _LINE.match(line)
    if m is None or m["event"] not in (SEND, RECEIVE, STATE):
        return None
    f = dict(_FIELD.findall(m["body"]))
    t = float(m["time"])
    try:
        if m["event"] == SEND:
            (src, sport), (dst, dport) = _split(f["src"]), _split(f["dest"])
            return KernelEvent(t, SEND, src, sport, dst, dport, state=f["state"], reason=f["reason"])
        if f.get("family") != "AF_INET" or f.get("protocol", "IPPROTO_TCP") != "IPPROTO_TCP":
            return None
        common = (f["saddr"], int(f["sport"]), f["daddr"], int(f["dport"]))
        if m["event"] == RECEIVE:
            return KernelEvent(t, RECEIVE, *common)
        return KernelEvent(t, STATE, *common, oldstate=f["oldstate"], newstate=f["newstate"])
    except (KeyError, ValueError):
        return None


def parse_trace(text: str) -> list[KernelEvent]:
    """Every event of a `trace` file's text, in time order (a listener's RSTs given their connection)."""
    events = [e for e in map(parse_line, text.splitlines()) if e is not None]
    return _listener_resets_placed(sorted(events, key=lambda e: e.time))


UNBOUND = "0.0.0.0"
LISTENER_WINDOW = 1.0     # s: a listener's RST and the nearest tcp_receive_reset from its port this close are one
#                           RST (the peer takes it from the backlog queue's softirq, late on a loaded machine)


def _listener_resets_placed(events: list[KernelEvent]) -> list[KernelEvent]:
    """A RST a listener sends (tcp_check_req's embryonic_reset passes the listening socket) is traced
    with the listener's addresses: `src=0.0.0.0:PORT dest=0.0.0.0:0` (or its bound address), no
    connection to match on the wire and maybe no host to attribute it to. The
    socket that took it names the connection: the nearest tcp_receive_reset from PORT within LISTENER_WINDOW."""
    taken = [e for e in events if e.event == RECEIVE]
    used: set[int] = set()
    out = []
    for e in events:
        if e.event == SEND and e.remote == UNBOUND and e.remote_port == 0:
            near = [(abs(r.time - e.time), i) for i, r in enumerate(taken) if i not in used
                    and r.remote_port == e.local_port and e.local in (UNBOUND, r.remote)
                    and abs(r.time - e.time) <= LISTENER_WINDOW]
            match = min(near)[1] if near else None
            if match is not None:
                used.add(match)
                r = taken[match]
                e = KernelEvent(e.time, SEND, r.remote, r.remote_port, r.local, r.local_port,
                                state=e.state, reason=e.reason)
        out.append(e)
    return out


def events_of(events: Iterable[KernelEvent], addresses: Iterable[str],
              start: float | None = None, end: float | None = None) -> list[KernelEvent]:
    """The events local to one of `addresses` (a scenario's hosts) within [start, end] (monotonic s)."""
    mine = frozenset(addresses)
    return [e for e in events if e.local in mine
            and (start is None or e.time >= start) and (end is None or e.time <= end)]


def reasons_by_host(events: Iterable[KernelEvent], hosts: Mapping[str, str]) -> dict[str, list[str]]:
    """host -> the reasons of the RSTs its TCP sent, in order (`hosts` maps names to addresses)."""
    by_address = {addr: name for name, addr in hosts.items()}
    out: dict[str, list[str]] = {name: [] for name in hosts}
    for e in events:
        if e.event == SEND and e.local in by_address and e.reason is not None:
            out[by_address[e.local]].append(e.reason)
    return out


@dataclass(frozen=True)
class RstWitness:
    """What the kernel says about one RST on the wire."""

    sender: str                     # the host whose address the RST carries (or the address)
    reason: str | None              # None: that host's TCP sent no such RST
    state: str | None               # the sender's socket state (NO_STATE: no socket)
    receiver: str | None = None     # host that took it
    receiver_state: str | None = None   # the state its socket was in when the RST closed it
    translated: bool = False        # sent by `sender`'s TCP with other addresses (NAT on the path)

    @property
    def forged(self) -> bool:
        return self.reason is None

    def text(self) -> str:
        """`kernel: TCP_ABORT_ON_CLOSE (TCP_CLOSE)`, or why there is no kernel event."""
        taken = f"; {self.receiver} took it in {self.receiver_state}" if self.receiver_state else ""
        if self.reason is None:
            return f"kernel: not sent by {self.sender}'s TCP stack (forged on the path){taken}"
        state = "no socket" if self.state in (None, NO_STATE) else self.state
        nat = f", sent by {self.sender}'s TCP, addresses translated on the path" if self.translated else ""
        return f"kernel: {self.reason} ({state}){nat}{taken}"

    def note(self) -> str:
        """The short form a ladder writes beside the arrow: `kernel: TCP_STATE (TCP_CLOSE)`."""
        return self.text().partition(";")[0]

    def as_dict(self) -> dict[str, object]:
        return {"sender": self.sender, "reason": self.reason, "state": self.state,
                "sent_by_tcp_stack": not self.forged, "translated": self.translated, "receiver": self.receiver,
                "receiver_state": self.receiver_state, "text": self.text(), "note": self.note()}


def _receiver_states(events: Sequence[KernelEvent]) -> dict[tuple[str, int, str, int], list[str | None]]:
    """Per receiving socket's four-tuple, in order: the state each taken RST closed it from."""
    out: dict[tuple[str, int, str, int], list[str | None]] = {}
    for i, e in enumerate(events):
        if e.event != RECEIVE:
            continue
        closed = next((s for s in events[i + 1:] if s.event == STATE and s.key == e.key
                       and s.newstate == "TCP_CLOSE"), None)
        out.setdefault(e.key, []).append(closed.oldstate if closed else None)
    return out


def event_from_record(record: Mapping[str, Any]) -> KernelEvent:
    """A KernelEvent back from its result.json record (`report.document`)."""
    (local, local_port), (remote, remote_port) = _split(record["local"]), _split(record["remote"])
    return KernelEvent(float(record["t"]), str(record["event"]), local, local_port, remote, remote_port,
                       state=record.get("state"), reason=record.get("reason"),
                       oldstate=record.get("oldstate"), newstate=record.get("newstate"))


# Reasons given only by tcp_send_active_reset, which always sets ACK (TCPHDR_ACK | TCPHDR_RST): a bare
# RST on the wire was never one of them. Such a RST can also be traced and never reach the wire (dropped
# by its host's own OUTPUT chain, as challenge-ack's ss -K is), so the n-th RST is not always the n-th event.
ACTIVE_RESET_REASONS = frozenset({"TCP_ABORT_ON_CLOSE", "TCP_ABORT_ON_LINGER", "TCP_ABORT_ON_MEMORY", "TCP_STATE",
                                  "TCP_KEEPALIVE_TIMEOUT", "TCP_DISCONNECT_WITH_DATA"})


def _next_event(pending: list[KernelEvent], p: Packet) -> KernelEvent | None:
    """Take the first of a four-tuple's untaken send events that could have sent `p` (see ACTIVE_RESET_REASONS)."""
    for i, e in enumerate(pending):
        if p.has_ack or e.reason not in ACTIVE_RESET_REASONS:
            return pending.pop(i)
    return None


def witness_packets(packets: Sequence[Packet], events: Sequence[KernelEvent],
                    hosts: Mapping[str, str]) -> dict[int, RstWitness]:
    """Each RST of one capture point (by packet index) with the kernel's word on it.

    A capture point sees each RST once (a router's sees it in and out, maybe
    translated: the same seq, ack and flags within COPY_WINDOW is one RST), so
    the n-th RST of a four-tuple is the n-th tcp_send_reset of that four-tuple
    at its sender. One with no such event may have been translated on the path
    (NAT): an unclaimed event with its ports, or with its destination, is its.
    """
    names = {addr: name for name, addr in hosts.items()}
    sent: dict[tuple[str, int, str, int], list[KernelEvent]] = {}
    for e in events:
        if e.event == SEND:
            sent.setdefault(e.key, []).append(e)
    taken = _receiver_states(events)
    seen: Counter[tuple[str, int, str, int]] = Counter()
    out: dict[int, RstWitness] = {}
    claimed: set[int] = set()
    sent_here = {(p.src, p.sport, p.dst, p.dport) for p in packets if p.is_rst}
    recent: list[Packet] = []
    for p in packets:
        if not p.is_rst:
            continue
        key = (p.src, p.sport, p.dst, p.dport)
        before = next((b for b in reversed(recent) if p.time - b.time <= COPY_WINDOW
                       and (b.seq, b.ack, b.flags) == (p.seq, p.ack, p.flags)), None)
        recent.append(p)
        if before is not None:
            # the same RST again: a router's capture sees it in and out (translated, if NAT is there)
            out[p.index] = out[before.index]
            continue
        back = (p.dst, p.dport, p.src, p.sport)
        n = seen[key]
        seen[key] += 1
        event = _next_event(sent.get(key, []), p)
        translated = False
        if event is None:   # NAT on the path: the sender's event has other addresses or ports
            spare = [e for e in events if e.event == SEND and id(e) not in claimed and e.key not in sent_here]
            event = next((e for e in spare if (e.local_port, e.remote_port) == (p.sport, p.dport)),   # SNAT
                         next((e for e in spare if (e.remote, e.remote_port) == (p.dst, p.dport)), None))  # DNAT
            translated = event is not None
            if event is not None:
                claimed.add(id(event))
        states = taken.get(back, [])
        receiver_state = states[n] if n < len(states) else None
        out[p.index] = RstWitness(
            sender=names.get(event.local if translated and event else p.src, p.src),
            translated=translated,
            reason=event.reason if event else None,
            state=event.state if event else None,
            receiver=names.get(p.dst, p.dst) if receiver_state else None,
            receiver_state=receiver_state)
    return out




# Which `explain` causes each kernel reason allows: the documented mapping that scores explain
# against the kernel (tests/integration/test_explain_kernel.py). FORGED is a RST on the wire with
# no tcp_send_reset from the host whose address it carries.
FORGED = "(not sent by a TCP stack)"
EXPLAIN_CAUSES_BY_REASON: dict[str, frozenset[str]] = {
    # tcp_v4_rcv found no socket: a closed port, a SYN/ACK for a connect given up,
    # a host that lost its sockets (restart), or one whose socket timed out and went
    # (fin-wait2-timeout: the closer's FIN_WAIT2 timewait socket has expired and is gone)
    # (conntrack-invalid-unnat: a segment that skipped reverse NAT reaches a host with no socket for its
    # four-tuple, and the host's RST resets the backend, whose own next answer is NO_SOCKET too)
    # (timewait-overflow: the closer's socket freed at once, its timewait socket never allocated)
    # (syn-scan: the scanner's kernel has no socket for the SYN its raw socket wrote)
    "NO_SOCKET": frozenset({"closed-port", "connect-timeout", "peer-restart", "retransmission-timeout",
                            "fin-wait2-timeout", "conntrack-invalid-unnat", "timewait-overflow", "syn-scan"}),
    # tcp_check_req with the accept queue full and tcp_abort_on_overflow = 1 (embryonic_reset)
    "INVALID_SYN": frozenset({"accept-queue-overflow"}),
    # __tcp_close with unread data in the receive queue
    "TCP_ABORT_ON_CLOSE": frozenset({"unread-data-close"}),
    # tcp_disconnect on a synchronized socket: SO_LINGER {1, 0} close (an application's, or a
    # proxy's closing both legs of an idle flow), a listener closed with connections queued
    # (inet_child_forget); tcp_abort (ss -K, SOCK_DESTROY); and the client that aborts a
    # connection a full accept queue never delivered (tcp_abort_on_overflow = 0)
    "TCP_STATE": frozenset({"linger-abort", "listener-close-backlog", "accept-queue-overflow",
                            "socket-destroy", "lb-idle-reset"}),
    # data for a FIN_WAIT2 timewait socket (tcp_timewait_state_process: TCP_TW_RST)
    "TCP_TIMEWAIT_SOCKET": frozenset({"data-after-close"}),
    # data for a full socket that was shut down for reading (tcp_rcv_state_process)
    "TCP_ABORT_ON_DATA": frozenset({"data-after-close"}),
    # tcp_keepalive_timer: probes unanswered
    "TCP_KEEPALIVE_TIMEOUT": frozenset({"keepalive-timeout"}),
    # netfilter REJECT --reject-with tcp-reset, a middlebox
    # tcp_rcv_synsent_state_process: an ACK in SYN_SENT that does not acknowledge our SYN (a challenge ACK)
    "TCP_INVALID_ACK_SEQUENCE": frozenset({"challenge-ack"}),
    FORGED: frozenset({"firewall-reset"}),
}


def explain_agrees(reason: str | None, cause: str, candidates: Iterable[str]) -> bool:
    """Does explain's verdict fit the kernel's reason (None: forged)? An ambiguous verdict fits
    when one of its candidates is a cause the reason allows (the kernel then decides between them)."""
    allowed = EXPLAIN_CAUSES_BY_REASON.get(FORGED if reason is None else reason, frozenset())
    return cause in allowed or (cause == "ambiguous" and any(c in allowed for c in candidates))
