"""The path scenarios (NAT, conntrack, load balancer, middlebox), re-read by tshark: what the router did to addresses,
who sent each RST, and the forged RSTs' IP header."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import oracles

FIELDS = ("ip.src", "ip.dst", "ip.ttl", "ip.id", "ip.flags.df", "tcp.srcport", "tcp.dstport", "tcp.flags.reset",
          "tcp.len")


def packets(pcap: Path) -> list[dict[str, str]]:
    """Each TCP packet's addresses, IP header fields, ports, RST flag and payload length, as tshark reads them."""
    cmd = ["-r", str(pcap), "-Y", "tcp", "-T", "fields", "-E", "separator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = oracles.tshark(cmd, pcap)   # installed here, or in the tools container (tests/oracles.py)
    return [dict(zip(FIELDS, line.split(","), strict=True)) for line in out.splitlines() if line]


def addresses(out: Path, scenario: str) -> dict[str, str]:
    hosts = json.loads((out / scenario / "result.json").read_text())["hosts"]
    return {name: h["address"] for name, h in hosts.items()}


def check_middlebox_fingerprint(out: Path) -> None:
    """At each end, the RSTs the router forged in the other end's name arrive one hop 'closer' (TTL 64, not 63)."""
    a = addresses(out, "middlebox-injection")
    at_client = [p for p in packets(out / "middlebox-injection" / "client.pcap") if p["ip.src"] == a["server"]]
    forged = [p for p in at_client if p["tcp.flags.reset"] == "1"]
    real = [p for p in at_client if p["tcp.flags.reset"] != "1"]
    assert len(forged) == 2, forged
    assert {(p["ip.ttl"], int(p["ip.id"], 16), p["ip.flags.df"]) for p in forged} == {("64", 0, "1")}, forged
    assert real and {p["ip.ttl"] for p in real} == {"63"}, real
    rsts_at_server = [p for p in packets(out / "middlebox-injection" / "server.pcap")
                      if p["ip.src"] == a["client"] and p["tcp.flags.reset"] == "1"]
    assert sorted(p["ip.ttl"] for p in rsts_at_server) == ["63", "64"], "one forged, one the client kernel's own"
    assert {int(p["ip.id"], 16) for p in rsts_at_server} == {0}, "IP ID 0 on both: no sign of forgery on Linux"


def check_unnat(out: Path) -> None:
    """The segment conntrack called INVALID reaches the client from the server's real address; the client RSTs it."""
    a = addresses(out, "conntrack-invalid-unnat")
    at_client = packets(out / "conntrack-invalid-unnat" / "client.pcap")
    stray = [p for p in at_client if p["ip.src"] == a["server"]]
    assert [(p["tcp.srcport"], p["tcp.len"]) for p in stray] == [("8000", "100")], stray
    answer = [p for p in at_client if p["ip.dst"] == a["server"]]
    assert [(p["tcp.dstport"], p["tcp.flags.reset"] == "1") for p in answer] == [("8000", True)]
    assert all(p["ip.src"] == a["router"] for p in at_client if p["ip.dst"] == a["client"] and p not in stray)


def check_masquerade(out: Path) -> None:
    """Behind the masquerading router the server only ever sees the router's address."""
    a = addresses(out, "nat-idle-expiry")
    at_server = packets(out / "nat-idle-expiry" / "server.pcap")
    assert at_server and {p["ip.src"] for p in at_server if p["ip.dst"] == a["server"]} == {a["router"]}


def check_lb_resets(out: Path) -> None:
    """The balancer's two RSTs leave the router, one on each leg, and are the only RSTs in the run."""
    a = addresses(out, "lb-idle-reset")
    rsts = [p for p in packets(out / "lb-idle-reset" / "router.pcap") if p["tcp.flags.reset"] == "1"]
    assert sorted((p["ip.src"], p["ip.dst"]) for p in rsts) == sorted(
        [(a["router"], a["client"]), (a["router"], a["server"])]), rsts


@pytest.mark.parametrize("check", [check_middlebox_fingerprint, check_unnat, check_masquerade, check_lb_resets])
def test_path_scenario_captures(catalogue_run: tuple[int, Path, str], check: Callable[[Path], None]) -> None:
    _, out, _ = catalogue_run
    check(out)
