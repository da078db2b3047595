"""Checking observations against a scenario's expectations: pure functions, no I/O.

Each expectation yields one `Check` with what was expected and what was
observed, in words a person reads in the report.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .capture import Packet, format_packet
from .model import (
    AppExpectation,
    CaptureExpectation,
    CounterExpectation,
    PacketPattern,
    ReasonExpectation,
    Scenario,
)
from .result import Check, holds, tally

__all__ = ["Check", "check_app", "check_capture", "check_capture_integrity", "check_counters", "check_reasons",
           "check_scenario", "holds", "mark", "match_sequence", "packet_matches", "tally"]


def mark(check: Mapping[str, Any], good: str = "✅", bad: str = "❌") -> str:
    """A check record's mark in a table: passed, failed, or not witnessed."""
    return "not witnessed" if not check.get("witnessed", True) else good if check["passed"] else bad


def _host(address: str, names: Mapping[str, str]) -> str:
    return names.get(address, address)


def packet_matches(pattern: PacketPattern, p: Packet, names: Mapping[str, str]) -> bool:
    """Does a packet fit a pattern's addresses, flags, numbers and direction (not its timing)?"""
    if pattern.src != "*" and _host(p.src, names) != pattern.src:
        return False
    if pattern.dst != "*" and _host(p.dst, names) != pattern.dst:
        return False
    if pattern.flags != "*" and p.flags != pattern.flags:
        return False
    if pattern.seq is not None and (p.rel_seq if p.rel_seq is not None else p.seq) != pattern.seq:
        return False
    if pattern.ack is not None and (p.rel_ack if p.rel_ack is not None else p.ack) != pattern.ack:
        return False
    if pattern.length is not None and p.length not in pattern.length:
        return False
    if pattern.direction is not None and p.direction != pattern.direction:
        return False
    if pattern.port is not None and pattern.port not in (p.sport, p.dport):
        return False
    if pattern.ttl is not None and p.ttl != pattern.ttl:
        return False
    if pattern.ip_id is not None and p.ip_id != pattern.ip_id:
        return False
    if pattern.df is not None and p.df != pattern.df:
        return False
    return True


def match_sequence(patterns: Sequence[PacketPattern], packets: Sequence[Packet],
                   names: Mapping[str, str], exact: bool) -> tuple[list[int], int]:
    """Find packets for the patterns in order (timing included, backtracking where needed).

    Returns (indexes of matched packets, number of patterns matched): a full
    match has len(patterns) entries; otherwise the longest prefix found.
    """
    t0 = packets[0].time if packets else 0.0
    best: list[int] = []

    def fits(i: int, k: int, prev: int | None) -> bool:
        pat, p = patterns[k], packets[i]
        if not packet_matches(pat, p, names):
            return False
        if pat.at is not None and (p.time - t0) not in pat.at:
            return False
        if pat.gap is not None and (prev is None or (p.time - packets[prev].time) not in pat.gap):
            return False
        return True

    def search(k: int, start: int, chosen: list[int]) -> list[int] | None:
        nonlocal best
        if len(chosen) > len(best):
            best = list(chosen)
        if k == len(patterns):
            return chosen if not exact or len(chosen) == len(packets) else None
        candidates = [start] if exact else range(start, len(packets))
        for i in candidates:
            if i < len(packets) and fits(i, k, chosen[-1] if chosen else None):
                found = search(k + 1, i + 1, chosen + [i])
                if found is not None:
                    return found
        return None

    found = search(0, 0, [])
    return (found, len(patterns)) if found is not None else (best, len(best))


def check_capture(exp: CaptureExpectation, packets: Sequence[Packet], names: Mapping[str, str]) -> list[Check]:
    """The sequence check and one check per forbidden pattern at one capture point."""
    checks = []
    t0 = packets[0].time if packets else None
    if exp.sequence:
        expected = "; ".join(p.text for p in exp.sequence) + (" (and nothing else)" if exp.exact else "")
        matched, count = match_sequence(exp.sequence, packets, names, exp.exact)
        ok = count == len(exp.sequence) and (not exp.exact or len(packets) == len(exp.sequence))
        if ok:
            observed = "; ".join(format_packet(packets[i], names, t0) for i in matched)
        else:
            missing = exp.sequence[count].text if count < len(exp.sequence) else "nothing more"
            observed = (f"matched {count} of {len(exp.sequence)}, then no packet for {missing!r}; "
                        f"{len(packets)} packets: " + "; ".join(format_packet(p, names, t0) for p in packets[:12])
                        + (" …" if len(packets) > 12 else ""))
        checks.append(Check("packets", exp.point, expected, observed, ok))
    for pat in exp.absent:
        hits = [p for p in packets if packet_matches(pat, p, names)]
        observed = "none" if not hits else "; ".join(format_packet(p, names, t0) for p in hits[:5])
        checks.append(Check("absent", exp.point, f"no {pat.text}", observed, not hits))
    return checks


def _result_matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and _result_matches(v, actual[k]) for k, v in expected.items())
    return bool(expected == actual)


def _describe_event(e: Mapping[str, Any]) -> str:
    outcome = e.get("errno") or ("ok" if e.get("ok") else str(e.get("error") or e.get("result")))
    took = float(e.get("end", 0)) - float(e.get("start", 0))
    return f"{e.get('call')} {e.get('sock') or ''} -> {outcome} after {took:.3f} s".replace("  ", " ")


def app_event_matches(exp: AppExpectation, e: Mapping[str, Any]) -> bool:
    if e.get("call") != exp.call or (exp.sock is not None and e.get("sock") != exp.sock):
        return False
    if exp.errno == "ok" and not e.get("ok"):
        return False
    if exp.errno not in (None, "ok") and e.get("errno") != exp.errno:
        return False
    if exp.result is not None and not _result_matches(exp.result, e.get("result")):
        return False
    if exp.elapsed is not None and (float(e["end"]) - float(e["start"])) not in exp.elapsed:
        return False
    for stream, match in (("stdout", exp.stdout), ("stderr", exp.stderr)):
        if match is not None and not match.matches(_output(e, stream)):
            return False
    return True


def _output(e: Mapping[str, Any], stream: str) -> str:
    """What a program (exec, shell) wrote on stdout or stderr; empty for a socket call."""
    result = e.get("result")
    return str(result.get(stream) or "") if isinstance(result, Mapping) else ""


def describe_app_expectation(exp: AppExpectation) -> str:
    parts = [exp.call]
    if exp.sock:
        parts.append(exp.sock)
    parts.append(f"-> {exp.errno or 'any outcome'}")
    if exp.result is not None:
        parts.append(f"result {exp.result}")
    if exp.elapsed is not None:
        parts.append(f"in {exp.elapsed} s")
    for stream, match in (("stdout", exp.stdout), ("stderr", exp.stderr)):
        if match is not None:
            parts.append(f"{stream} {match}")
    return " ".join(parts)


def check_app(expectations: Sequence[AppExpectation], events: Sequence[Mapping[str, Any]]) -> list[Check]:
    """Each host's expected calls, in order, among the calls its application made."""
    checks = []
    position: dict[str, int] = {}
    for exp in expectations:
        mine = [e for e in events if e.get("host") == exp.host]
        start = position.get(exp.host, 0)
        hit = next((i for i in range(start, len(mine)) if app_event_matches(exp, mine[i])), None)
        if hit is None:
            same = [e for e in mine[start:] if e.get("call") == exp.call]
            streams = [s for s, m in (("stdout", exp.stdout), ("stderr", exp.stderr)) if m is not None]
            observed = "; ".join(_describe_event(e) + "".join(f", {s} {_output(e, s)!r}" for s in streams)
                                 for e in same) or f"no {exp.call} call"
            checks.append(Check("app", exp.host, describe_app_expectation(exp), observed, False))
        else:
            position[exp.host] = hit + 1
            checks.append(Check("app", exp.host, describe_app_expectation(exp), _describe_event(mine[hit]), True))
    return checks


def check_counters(expectations: Sequence[CounterExpectation],
                   deltas: Mapping[str, Mapping[str, int]]) -> list[Check]:
    checks = []
    for exp in expectations:
        value = deltas.get(exp.host, {}).get(exp.counter)
        observed = "not reported" if value is None else f"{value:+d}"
        ok = value is not None and value in exp.value
        checks.append(Check("counter", exp.host, f"{exp.counter} {exp.value}", observed, ok))
    return checks


def check_reasons(expectations: Sequence[ReasonExpectation], sent: Mapping[str, Sequence[str]] | None,
                  unavailable: str = "") -> list[Check]:
    """Each host's RST reasons (tcp:tcp_send_reset) against the exact multiset expected.

    `sent` None: the kernel was not watched (`unavailable` says why); the checks are not witnessed.
    """
    checks = []
    for exp in expectations:
        expected = ", ".join(exp.reasons) or "no RST sent by its TCP"
        if sent is None:
            checks.append(Check("reasons", exp.host, expected, f"not witnessed: {unavailable or 'no tracefs'}",
                                False, witnessed=False))
            continue
        got = sorted(sent.get(exp.host, ()))
        observed = ", ".join(got) or "no RST sent by its TCP"
        checks.append(Check("reasons", exp.host, expected, observed, tuple(got) == exp.reasons))
    return checks


def check_capture_integrity(host: str, captured: int | None, received: int | None,
                            dropped: int | None) -> Check:
    """tcpdump's closing counts: a capture that lost packets cannot be trusted."""
    observed = f"{captured} captured, {received} received by filter, {dropped} dropped by kernel"
    ok = captured is not None and dropped == 0 and (received is None or captured == received)
    return Check("capture", host, "every packet written (captured == received by filter, 0 dropped)", observed, ok)


def check_waits(events: Sequence[Mapping[str, Any]]) -> list[Check]:
    """Every wait for a kernel state (wait_socket, wait_counter, ...) must have seen that state.

    A step gated on a state that never came ran in the wrong world: fail
    there, with what the kernel showed instead, not three checks later.
    """
    checks = []
    for e in events:
        call = str(e.get("call") or "")
        if not call.startswith("wait_"):
            continue
        args = {k: v for k, v in (e.get("args") or {}).items() if k != "timeout"}
        expected = f"{call} " + " ".join(f"{k}={v}" for k, v in args.items())
        raw = e.get("result")
        result: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        observed = (f"reached after {result.get('waited', float(e['end']) - float(e['start'])):.3f} s"
                    if e.get("ok") else str(e.get("error")))
        checks.append(Check("wait", str(e.get("host")), expected, observed, bool(e.get("ok"))))
    return checks


def check_scenario(scenario: Scenario, packets: Mapping[str, Sequence[Packet]], names: Mapping[str, str],
                   events: Sequence[Mapping[str, Any]], deltas: Mapping[str, Mapping[str, int]],
                   reasons: Mapping[str, Sequence[str]] | None = None, unavailable: str = "") -> list[Check]:
    """Every check of a scenario from what was observed (`reasons` None: the kernel was not watched)."""
    checks: list[Check] = []
    for exp in scenario.packets:
        checks += check_capture(exp, packets.get(exp.point, ()), names)
    checks += check_app(scenario.app, events)
    checks += check_waits(events)
    checks += check_counters(scenario.counters, deltas)
    checks += check_reasons(scenario.reasons, reasons, unavailable)
    return checks
