"""RST Lab peer agent: waiting for a kernel state instead of sleeping (issue 20).

Standard library only; imported by rstlab_peer.py when a scenario first waits.
A step that must happen after something waits for the kernel's own record of
it, read from this host's network namespace, never for a wall-clock margin:

  wait_socket     a socket in a state, bytes in its queues, a number of RTO
                  retransmissions, or no such socket any more (/proc/net/tcp)
  wait_counter    a kernel counter (nstat name) reaching a value (/proc/net/{snmp,netstat})
  wait_blocked    a thread of this agent blocked in a syscall on a socket
                  (/proc/self/task/*/syscall): a background recv or accept has begun
  wait_conntrack  a conntrack entry present in a state, or gone (/proc/net/nf_conntrack)

and, read once at the end of a scenario's steps (`quiet`), whether anything can
still send on its own: a socket timer that sends when it fires, a process left running.

Each polls every POLL seconds up to `timeout` and returns what it matched and
how long it waited; a state never reached is answered ok=false with what was
last seen, so the report can say why.
"""
from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

POLL = 0.002   # a read of /proc/net/tcp in a lab namespace takes ~20 us: polling costs nothing
DEFAULT_TIMEOUT = 10.0

# include/net/tcp_states.h, as /proc/net/tcp prints them (NEW_SYN_RECV shows as SYN_RECV)
TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
    12: "SYN_RECV",
}


class Failed(Exception):
    """The state was not reached: carries what was last seen."""

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result


def _addr(text: str) -> list:
    """'0100007F:1F40' (the kernel's __be32 printed as a host-order word) -> ['127.0.0.1', 8000]."""
    ip, port = text.split(":")
    return [socket.inet_ntoa(struct.pack("=I", int(ip, 16))), int(port, 16)]


def _rows(text: str) -> Iterator[tuple[list[str], dict]]:
    """Each row of /proc/net/tcp (or tcp6) split into its fields, with its ends and state name."""
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) < 10:
            continue
        ends = [_addr(a) if len(a) == 13 else a for a in f[1:3]]   # IPv6 rows as the kernel prints them
        yield f, {"local": ends[0], "remote": ends[1], "state": TCP_STATES.get(int(f[3], 16), f[3])}


def parse_proc_tcp(text: str) -> list[dict]:
    """The rows of /proc/net/tcp as dicts (state name, queues, RTO retransmissions, probes, inode)."""
    rows = []
    for f, row in _rows(text):
        tx, rx = (int(x, 16) for x in f[4].split(":"))
        rows.append({**row, "send_q": tx, "recv_q": rx, "retransmits": int(f[6], 16),
                     "probes": int(f[8]), "inode": int(f[9])})
    return rows


def _states(state: Any) -> set[str] | None:
    if state is None:
        return None
    names = {str(s).upper().replace("-", "_") for s in (state if isinstance(state, list) else [state])}
    unknown = names - set(TCP_STATES.values())
    if unknown:
        raise ValueError(f"unknown TCP state {min(unknown)!r}; known: "
                         f"{', '.join(sorted(set(TCP_STATES.values())))}")
    return names


def socket_filter(inode: int | None = None, local_port: int | None = None, remote_port: int | None = None,
                  state: Any = None, recv_q: int | None = None, send_q: int | None = None,
                  retransmits: int | None = None, probes: int | None = None) -> Callable[[dict], bool]:
    """A predicate over /proc/net/tcp rows; queue, retransmit and probe figures are minimums."""
    states = _states(state)

    def match(r: dict) -> bool:
        return ((inode is None or r["inode"] == inode)
                and (local_port is None or r["local"][1] == int(local_port))
                and (remote_port is None or r["remote"][1] == int(remote_port))
                and (states is None or r["state"] in states)
                and (recv_q is None or r["recv_q"] >= int(recv_q))
                and (send_q is None or r["send_q"] >= int(send_q))
                and (retransmits is None or r["retransmits"] >= int(retransmits))
                and (probes is None or r["probes"] >= int(probes)))
    return match


# /proc/net/tcp's `tr` (get_tcp4_sock): 1 retransmission, loss probe or RACK reordering timer, 2 the socket
# timer (keepalive; in FIN_WAIT2 tcp_fin_timeout, which ends in a RST), 4 zero-window probe: each sends
# when it fires. 3 (TIME_WAIT) and 0 (none) never send.
SENDING_TIMERS = {1: "retransmission", 2: "keepalive", 4: "zero-window probe"}


def due_timers(text: str, within: float, hz: int) -> list[dict]:
    """The sockets of /proc/net/tcp whose next timer sends a segment within `within` seconds.

    `tm->when` is in clock ticks (`hz` a second) until the timer fires, never below zero.
    """
    due = []
    for f, row in _rows(text):
        kind, _, when = f[5].partition(":")
        seconds = int(when, 16) / hz
        if int(kind, 16) in SENDING_TIMERS and seconds <= within:
            due.append({**row, "timer": SENDING_TIMERS[int(kind, 16)], "in": round(seconds, 3)})
    return due


# full sockets that may hold a delayed ACK (data or a FIN received, its ACK due within TCP_DELACK_MAX): the
# kernel's delayed-ACK timer is not among /proc/net/tcp's timers, so only the time since the last packet tells
MAY_OWE_ACK = ("ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT", "CLOSING", "LAST_ACK")


def may_owe_ack(text: str) -> list[dict]:
    """The sockets of /proc/net/tcp in a state that can receive data or a FIN and acknowledge it later."""
    return [row for _, row in _rows(text) if row["state"] in MAY_OWE_ACK]


def other_processes(me: int) -> list[str]:
    """Processes of this host other than its init (pid 1) and `me`, the agent (zombies left out)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, me):
            continue
        try:
            stat = _read(f"/proc/{entry}/stat")
        except OSError:   # ended meanwhile
            continue
        name, _, rest = stat.partition(" (")[2].rpartition(") ")
        if not rest.startswith("Z"):
            found.append(f"{entry} {name}")
    return found


def quiet(within: float) -> dict:
    """What could still put a segment on the wire within `within` seconds, with no step asking:
    a socket timer due by then, or a process other than the agent (a program a step left running);
    and the sockets that may owe a delayed ACK (`may_owe_ack`), which the caller waits out."""
    hz = os.sysconf("SC_CLK_TCK")
    tables = [_read(path) for path in ("/proc/net/tcp", "/proc/net/tcp6") if os.path.exists(path)]
    return {"timers": [t for text in tables for t in due_timers(text, within, hz)],
            "processes": other_processes(os.getpid()),
            "may_owe_ack": [s for text in tables for s in may_owe_ack(text)]}


def _poll(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float, what: str,
          clock: Callable[..., Any]) -> tuple[Any, float]:
    """Read until `done(value)`; returns (value, seconds waited) or raises Failed."""
    t0 = time.monotonic()
    deadline = t0 + float(timeout)
    while True:
        value = clock(read)
        if done(value):
            return value, round(time.monotonic() - t0, 4)
        if time.monotonic() >= deadline:
            raise Failed(f"{what} not reached within {float(timeout):g} s", value)
        time.sleep(POLL)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def wait_socket(clock: Callable[..., Any], sock_inode: int | None, *, local_port: int | None = None,
                remote_port: int | None = None, state: Any = None, recv_q: int | None = None,
                send_q: int | None = None, retransmits: int | None = None, probes: int | None = None,
                count: int = 1, gone: bool = False, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Wait until at least `count` sockets match (or, with gone, none does)."""
    who = socket_filter(sock_inode, local_port, remote_port)
    what = socket_filter(state=state, recv_q=recv_q, send_q=send_q, retransmits=retransmits, probes=probes)
    want = "no matching socket" if gone else f"{int(count)} matching socket(s)"

    def read() -> list[dict]:
        return [r for r in parse_proc_tcp(_read("/proc/net/tcp")) if who(r)]

    def done(rows: list[dict]) -> bool:
        hits = sum(1 for r in rows if what(r))
        return hits == 0 if gone else hits >= int(count)

    try:
        rows, waited = _poll(read, done, timeout, want, clock)
    except Failed as exc:   # say what the sockets it was about look like now
        raise Failed(f"{exc}; those sockets now: {_describe(exc.result) or 'none'}",
                     {"matched": [r for r in exc.result if what(r)], "seen": exc.result}) from None
    rows = [r for r in rows if what(r)]
    return {"matched": rows, "waited": waited}


def _describe(rows: Iterable[dict]) -> str:
    return ", ".join(f"{r['local'][1]}->{r['remote'][1]} {r['state']} recv_q={r['recv_q']} "
                     f"send_q={r['send_q']} retrans={r['retransmits']}" for r in rows)


def wait_counter(clock: Callable[..., Any], read_counters: Callable[[], dict], *, counter: str, value: int,
                 timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Wait until a counter of this namespace (from zero at its creation) is at least `value`."""
    first = read_counters()
    if counter not in first:
        raise ValueError(f"unknown counter {counter!r} (nstat names, e.g. TcpExtListenOverflows)")
    try:
        now, waited = _poll(lambda: read_counters()[counter], lambda v: v >= int(value), timeout,
                            f"{counter} >= {value}", clock)
    except Failed as exc:
        raise Failed(f"{exc}; it is {exc.result}", {"value": exc.result}) from None
    return {"value": now, "waited": waited}


def blocked_syscall(fd: int, me: int | None = None) -> int | None:
    """The syscall number a thread of this process is blocked in with `fd` as first argument."""
    for tid in os.listdir("/proc/self/task"):
        if me is not None and int(tid) == me:
            continue
        try:
            fields = _read(f"/proc/self/task/{tid}/syscall").split()
        except OSError:   # the thread ended meanwhile
            continue
        if len(fields) >= 2 and fields[0] not in ("running", "-1") and int(fields[1], 16) == fd:
            return int(fields[0])
    return None


def wait_blocked(clock: Callable[..., Any], fd: int, *, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Wait until another thread sits in a syscall on `fd` (a background recv or accept has begun)."""
    import threading
    me = threading.get_native_id()
    try:
        nr, waited = _poll(lambda: blocked_syscall(fd, me), lambda nr: nr is not None, timeout,
                           f"a thread blocked on fd {fd}", clock)
    except Failed as exc:
        raise Failed(str(exc), {"syscall": None}) from None
    return {"syscall": nr, "waited": waited}


def parse_conntrack(text: str) -> list[dict]:
    """TCP rows of /proc/net/nf_conntrack: the original direction's tuple and the TCP state."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 6 or f[2] != "tcp":
            continue
        keys: dict[str, str] = {}
        for item in f[6:]:
            k, sep, v = item.partition("=")
            if sep and k not in keys:   # the first of each is the original direction
                keys[k] = v
        rows.append({"state": f[5], "timeout": int(f[4]), "src": keys.get("src"), "dst": keys.get("dst"),
                     "sport": int(keys.get("sport", 0)), "dport": int(keys.get("dport", 0)),
                     "flags": [x.strip("[]") for x in f[6:] if x.startswith("[")]})
    return rows


def wait_conntrack(clock: Callable[..., Any], *, src: str | None = None, dst: str | None = None,
                   dport: int | None = None, sport: int | None = None, state: str | None = None,
                   gone: bool = False, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Wait until a TCP conntrack entry (original direction) is present, or with gone, absent."""
    def match(r: dict) -> bool:
        return ((src is None or r["src"] == src) and (dst is None or r["dst"] == dst)
                and (dport is None or r["dport"] == int(dport)) and (sport is None or r["sport"] == int(sport))
                and (state is None or r["state"] == str(state).upper()))

    def read() -> list[dict]:
        return [r for r in parse_conntrack(_read("/proc/net/nf_conntrack")) if match(r)]

    try:
        rows, waited = _poll(read, lambda rows: (not rows) if gone else bool(rows), timeout,
                             "no matching conntrack entry" if gone else "a matching conntrack entry", clock)
    except Failed as exc:
        raise Failed(f"{exc}; matching now: {len(exc.result)}", {"matched": exc.result}) from None
    return {"matched": rows, "waited": waited}
