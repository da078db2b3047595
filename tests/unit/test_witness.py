"""The kernel witness: a real tracefs record read, attributed by address, matched to the wire's RSTs."""
from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import pytest

from orchestrator.capture import Packet, read_capture
from orchestrator.lab import witness as tracefs
from orchestrator.witness import (
    EXPLAIN_CAUSES_BY_REASON,
    NO_STATE,
    RECEIVE,
    SEND,
    STATE,
    KernelEvent,
    event_from_record,
    events_of,
    explain_agrees,
    parse_line,
    parse_trace,
    reasons_by_host,
    witness_packets,
)

DATA = Path(__file__).resolve().parent.parent / "fixtures" / "witness"
TRACE = parse_trace((DATA / "trace.txt").read_text())
HOSTS: dict[str, dict[str, str]] = json.loads((DATA / "hosts.json").read_text())

# What the kernel said for each catalogue scenario in that run (DESIGN.md's table, confirmed by hand).
REASONS = {
    "closed-port": {"server": ["NO_SOCKET"]},
    "connect-timeout": {"client": ["NO_SOCKET"]},
    "data-after-close": {"server": ["TCP_TIMEWAIT_SOCKET"]},
    "firewall-reset": {},
    "keepalive-timeout": {"client": ["TCP_KEEPALIVE_TIMEOUT"]},
    "linger-abort": {"server": ["TCP_STATE"]},
    "listener-close-backlog": {"server": ["TCP_STATE"]},
    "peer-restart": {"server": ["NO_SOCKET", "NO_SOCKET"]},
    "reset-vs-broken-pipe": {"server": ["TCP_TIMEWAIT_SOCKET", "TCP_ABORT_ON_CLOSE", "TCP_ABORT_ON_CLOSE"]},
    "retransmission-timeout": {"client": ["NO_SOCKET"]},
    "silent-drop": {},
    "sndtimeo-connect": {"client": ["NO_SOCKET"], "server": ["TCP_STATE"]},
    "unread-data-close": {"server": ["TCP_ABORT_ON_CLOSE"]},
}


def test_a_send_line_parses() -> None:
    line = ("python3-27145   [000] ..s1.   763.873481: tcp_send_reset: skbaddr=000000009a54b3e0 "
            "skaddr=000000008deee709 src=10.213.154.70:8000 dest=10.213.154.10:59424 state=TCP_TIME_WAIT "
            "reason=TCP_TIMEWAIT_SOCKET")
    e = parse_line(line)
    assert e is not None and e.event == SEND and e.time == 763.873481
    assert e.key == ("10.213.154.70", 8000, "10.213.154.10", 59424)
    assert (e.state, e.reason) == ("TCP_TIME_WAIT", "TCP_TIMEWAIT_SOCKET")


def test_other_lines_are_skipped() -> None:
    assert parse_line("# tracer: nop") is None
    assert parse_line("  <idle>-0  [001] d.s2.  1.000000: kfree_skb: skbaddr=0 reason=NOT_SPECIFIED") is None
    assert parse_line("x-1 [000] ..... 1.0: tcp_receive_reset: family=AF_INET6 sport=1 dport=2 saddr=0.0.0.0 "
                      "daddr=0.0.0.0 saddrv6=::1 daddrv6=::1 sock_cookie=1") is None


def test_the_whole_record_parses_in_time_order() -> None:
    text = (DATA / "trace.txt").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert len(TRACE) == len(lines) == 94
    assert [e.time for e in TRACE] == sorted(e.time for e in TRACE)
    assert {e.event for e in TRACE} == {SEND, RECEIVE, STATE}


@pytest.mark.parametrize("scenario", sorted(REASONS))
def test_each_scenario_gets_exactly_its_own_hosts_reasons(scenario: str) -> None:
    hosts = HOSTS[scenario]
    got = {h: r for h, r in reasons_by_host(events_of(TRACE, hosts.values()), hosts).items() if r}
    assert got == REASONS[scenario]


def test_other_runs_and_loopback_are_not_attributed() -> None:
    ours = {a for hosts in HOSTS.values() for a in hosts.values()}
    strangers = [e for e in TRACE if e.local not in ours]
    assert any(e.local == "127.0.0.1" for e in strangers)
    assert any(e.local.startswith("10.213.") for e in strangers)   # another run's /24


def test_events_outside_the_window_are_left_out() -> None:
    hosts = HOSTS["unread-data-close"]
    (sent,) = [e for e in events_of(TRACE, hosts.values()) if e.event == SEND]
    assert events_of(TRACE, hosts.values(), start=sent.time + 1) == []
    assert sent in events_of(TRACE, hosts.values(), start=sent.time - 1, end=sent.time)


def _witnessed(scenario: str) -> list[tuple[int, str]]:
    hosts = HOSTS[scenario]
    packets = read_capture(DATA / f"{scenario}_client.pcap").packets
    found = witness_packets(packets, events_of(TRACE, hosts.values()), hosts)
    return [(i, w.text()) for i, w in sorted(found.items())]


def test_the_wire_rst_gets_the_senders_reason_and_the_receivers_state() -> None:
    (only,) = _witnessed("unread-data-close")
    assert only[1] == "kernel: TCP_ABORT_ON_CLOSE (TCP_CLOSE); client took it in TCP_ESTABLISHED"
    (only,) = _witnessed("data-after-close")
    assert only[1] == "kernel: TCP_TIMEWAIT_SOCKET (TCP_TIME_WAIT); client took it in TCP_CLOSE_WAIT"


def test_a_forged_rst_is_not_sent_by_the_hosts_tcp_stack() -> None:
    hosts = HOSTS["firewall-reset"]
    packets = read_capture(DATA / "firewall-reset_client.pcap").packets
    (w,) = witness_packets(packets, events_of(TRACE, hosts.values()), hosts).values()
    assert w.forged and w.sender == "server" and w.reason is None
    assert w.text() == "kernel: not sent by server's TCP stack (forged on the path); client took it in TCP_SYN_SENT"
    assert w.as_dict()["sent_by_tcp_stack"] is False
    assert w.note() == "kernel: not sent by server's TCP stack (forged on the path)"


def test_no_socket_reads_as_such() -> None:
    hosts = HOSTS["closed-port"]
    sent = [e for e in events_of(TRACE, hosts.values()) if e.event == SEND]
    assert [(e.state, e.reason) for e in sent] == [(NO_STATE, "NO_SOCKET")]


# --- the tracefs side (no tracefs needed) -------------------------------------------------------


def _holds(expression: str, address: str) -> bool:
    """Evaluate one of our filter expressions the way the kernel does, on a 4-byte address field."""
    value = int.from_bytes(ipaddress.ip_address(address).packed, "little")
    terms = re.findall(r"(!?)\(?saddr & (0x[0-9a-f]+)\)?", expression)
    return all(bool(value & int(mask, 16)) != bool(neg) for neg, mask in terms)


@pytest.mark.parametrize("address, inside", [
    ("10.213.0.10", True), ("10.213.154.70", True), ("10.213.255.255", True),
    ("10.212.154.70", False), ("10.214.0.1", False), ("11.213.0.1", False), ("127.0.0.1", False),
    ("0.0.0.0", False), ("255.255.255.255", False), ("10.245.0.1", False),
])
def test_the_kernel_filter_keeps_exactly_the_lab_range(address: str, inside: bool) -> None:
    expression = tracefs.prefix_filter("saddr", tracefs.LAB_RANGE)
    assert _holds(expression, address) is inside
    assert _holds(expression, address) is (ipaddress.ip_address(address) in tracefs.LAB_RANGE)


LOCAL = {"KernelVersion": "6.18.44", "OperatingSystem": "Debian GNU/Linux 12"}


def _tracefs(tmp_path: Path) -> Path:
    (tmp_path / "instances").mkdir(parents=True)
    (tmp_path / "events" / "tcp" / "tcp_send_reset").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("change, says", [
    ({"euid": 1000}, "not root"),
    ({"docker_host": "tcp://build-box:2376"}, "DOCKER_HOST is tcp://build-box:2376"),
    ({"info": {"KernelVersion": "6.10.14-linuxkit", "OperatingSystem": "Docker Desktop"}}, "Docker Desktop"),
    ({"platform_name": "darwin"}, "not this darwin machine's"),
    ({"release": "6.6.1", "info": {"KernelVersion": "6.6.1"}}, "older than 6.10"),
    ({"info": {"KernelVersion": "5.15.0"}}, "the engine runs kernel 5.15.0"),
])
def test_why_the_witness_is_unavailable(tmp_path: Path, change: dict[str, object], says: str) -> None:
    args: dict[str, object] = {"release": "6.18.44", "euid": 0, "docker_host": "", "platform_name": "linux"}
    info = change.pop("info", LOCAL)
    args.update(change)
    why = tracefs.unavailable(info, _tracefs(tmp_path), **args)  # type: ignore[arg-type]
    assert why is not None and says in why and "\n" not in why


def test_available_here_and_a_local_socket_is_fine(tmp_path: Path) -> None:
    root = _tracefs(tmp_path)
    assert tracefs.unavailable(LOCAL, root, release="6.18.44", euid=0, docker_host="unix:///var/run/docker.sock",
                               platform_name="linux") is None


def test_tracefs_not_mounted_is_mounted_or_said(tmp_path: Path) -> None:
    tried: list[Path] = []

    def cannot(root: Path) -> str | None:
        tried.append(root)
        return "mount: permission denied"

    why = tracefs.unavailable(LOCAL, tmp_path, release="6.18.44", euid=0, docker_host="", platform_name="linux",
                              mount=cannot)
    assert tried == [tmp_path] and why is not None and "cannot be (mount: permission denied)" in why

    def mounts(root: Path) -> str | None:
        _tracefs(root)
        return None

    assert tracefs.unavailable(LOCAL, tmp_path / "t", release="6.18.44", euid=0, docker_host="",
                               platform_name="linux", mount=mounts) is None


def test_sweep_removes_only_old_instances_of_runs_with_no_objects(tmp_path: Path) -> None:
    root = _tracefs(tmp_path)
    for name in ("rstlab-dead0001", "rstlab-live0002", "rstlab-young003", "someone-elses"):
        (root / "instances" / name).mkdir()
    now = (root / "instances" / "rstlab-dead0001").stat().st_ctime
    asked: list[str] = []

    def live(run_id: str) -> bool:
        asked.append(run_id)
        return run_id == "live0002"

    assert tracefs.sweep_instances(live, root, grace=60, now=lambda: now + 61) == ["dead0001", "young003"]
    assert sorted(p.name for p in (root / "instances").iterdir()) == ["rstlab-live0002", "someone-elses"]
    (root / "instances" / "rstlab-young004").mkdir()
    assert tracefs.sweep_instances(lambda _: False, root, grace=60, now=lambda: now + 1) == []
    assert "someone-elses" not in " ".join(asked)


def test_a_run_without_the_witness_says_why_and_records_nothing(tmp_path: Path) -> None:
    with tracefs.RunWitness("r1", LOCAL, tmp_path, check=lambda info, root: "not root: tracefs needs root") as w:
        assert w.unavailable == "not root: tracefs needs root" and w.instance is None
        assert w.events(["10.213.0.10"], 0.0, 1e9) is None
    assert list(tmp_path.iterdir()) == []


def test_an_instance_the_kernel_refuses_is_said_not_raised(tmp_path: Path) -> None:
    w = tracefs.RunWitness("r2", LOCAL, tmp_path / "nowhere", check=lambda info, root: None)
    assert w.instance is None and w.unavailable is not None
    assert w.unavailable.startswith("cannot make the tracing instance") and "\n" not in w.unavailable


def test_a_forwarded_copy_is_the_same_rst_and_a_record_reads_back() -> None:
    hosts = HOSTS["unread-data-close"]
    packets = read_capture(DATA / "unread-data-close_client.pcap").packets
    (rst,) = [p for p in packets if p.is_rst]
    copy = rst._replace(index=len(packets), time=rst.time + 0.0001)
    later = rst._replace(index=len(packets) + 1, time=rst.time + 1.0)
    found = witness_packets([*packets, copy, later], events_of(TRACE, hosts.values()), hosts)
    assert found[copy.index] == found[rst.index] and not found[rst.index].forged
    assert found[later.index].forged          # a second RST the kernel never sent
    for e in events_of(TRACE, hosts.values()):
        record = {"t": e.time, "event": e.event, "local": f"{e.local}:{e.local_port}",
                  "remote": f"{e.remote}:{e.remote_port}", "state": e.state, "reason": e.reason,
                  "oldstate": e.oldstate, "newstate": e.newstate}
        assert event_from_record(record) == e


@pytest.mark.parametrize("reason, cause, candidates, agrees", [
    ("TCP_ABORT_ON_CLOSE", "unread-data-close", [], True),
    ("TCP_STATE", "linger-abort", [], True),
    ("TCP_STATE", "unread-data-close", [], False),          # the kernel rules it out
    ("NO_SOCKET", "firewall-reset", [], False),             # a host's TCP sent it: not forged
    (None, "firewall-reset", [], True),                     # no TCP stack sent it
    (None, "closed-port", [], False),
    ("TCP_ABORT_ON_CLOSE", "ambiguous", ["unread-data-close", "linger-abort"], True),
    ("TCP_KEEPALIVE_TIMEOUT", "ambiguous", ["unread-data-close", "linger-abort"], False),
    ("TCP_TIMEWAIT_SOCKET", "unknown", [], False),
    ("NOT_SPECIFIED", "closed-port", [], False),            # a reason the mapping does not know allows nothing
])
def test_explain_is_scored_by_the_documented_mapping(reason: str | None, cause: str, candidates: list[str],
                                                      agrees: bool) -> None:
    assert explain_agrees(reason, cause, candidates) is agrees


def test_the_mapping_names_only_explain_causes() -> None:
    from orchestrator.explain import CAUSES
    assert set().union(*EXPLAIN_CAUSES_BY_REASON.values()) <= set(CAUSES)


def test_a_listeners_rst_is_given_the_connection_the_peer_took_it_on() -> None:
    """tcp_check_req (abort_on_overflow) resets with the listener: the tracepoint has only 0.0.0.0:PORT."""
    text = "\n".join([
        "  python3-1 [000] ..... 4018.100000: tcp_receive_reset: family=AF_INET sport=40011 dport=8000 "
        "saddr=10.213.209.10 daddr=10.213.209.70 saddrv6=::1 daddrv6=::1 sock_cookie=2",   # farther: not it
        "  python3-1 [000] ..s1. 4018.700430: tcp_send_reset: skbaddr=00000000ab skaddr=00000000cd "
        "src=0.0.0.0:8000 dest=0.0.0.0:0 state=TCP_LISTEN reason=INVALID_SYN",
        "  python3-1 [000] ..... 4018.700435: tcp_receive_reset: family=AF_INET sport=40013 dport=8000 "
        "saddr=10.213.209.10 daddr=10.213.209.80 saddrv6=::1 daddrv6=::1 sock_cookie=1",
        "  python3-1 [000] ..s1. 4021.900000: tcp_send_reset: skbaddr=00000000ab skaddr=00000000cd "
        "src=0.0.0.0:8000 dest=0.0.0.0:0 state=TCP_LISTEN reason=INVALID_SYN",   # nobody took this one
    ])
    _, first, _, lost = parse_trace(text)
    assert first.key == ("10.213.209.80", 8000, "10.213.209.10", 40013) and first.reason == "INVALID_SYN"
    assert first.state == "TCP_LISTEN"
    assert lost.local == "0.0.0.0"
    assert reasons_by_host([first, lost], {"winhost": "10.213.209.80", "client": "10.213.209.10"}) == {
        "winhost": ["INVALID_SYN"], "client": []}


def test_a_rst_translated_on_the_path_is_still_its_senders() -> None:
    """The server's NO_SOCKET RST reaches the client from the router's VIP (reverse DNAT): not a forgery."""
    hosts = {"client": "10.213.75.10", "server": "10.213.75.70", "router": "10.213.75.200"}
    sent = KernelEvent(5.0, SEND, "10.213.75.70", 8000, "10.213.75.10", 40300, state=NO_STATE, reason="NO_SOCKET")
    p = Packet(index=0, time=100.0, src="10.213.75.200", dst="10.213.75.10", sport=80, dport=40300, flags="R",
               seq=1, ack=0, length=0, window=0, rel_seq=1, rel_ack=None, direction="in", ifindex=None)
    (w,) = witness_packets([p], [sent], hosts).values()
    assert (w.sender, w.reason, w.translated, w.forged) == ("server", "NO_SOCKET", True, False)
    assert w.text() == "kernel: NO_SOCKET (no socket), sent by server's TCP, addresses translated on the path"
    (w,) = witness_packets([p], [], hosts).values()
    assert w.forged and w.sender == "router"


def test_a_listener_bound_to_its_address_is_matched_to_the_wire_too() -> None:
    text = "\n".join([
        "  tcpdump-7037 [001] .Ns1. 5628.364234: tcp_send_reset: skbaddr=000000009618d23b skaddr=00000000ca917179 "
        "src=10.213.158.80:8000 dest=0.0.0.0:0 state=TCP_LISTEN reason=INVALID_SYN",
        "  tcpdump-7037 [001] .Ns2. 5628.364258: tcp_receive_reset: family=AF_INET sport=40013 dport=8000 "
        "saddr=10.213.158.10 daddr=10.213.158.80 saddrv6=::1 daddrv6=::1 sock_cookie=1",
    ])
    sent, _ = parse_trace(text)
    assert sent.key == ("10.213.158.80", 8000, "10.213.158.10", 40013)
