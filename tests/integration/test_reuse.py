"""Reused hosts observe what new ones observe (issue 19), on the real engine and kernel.

`all` hands a finished scenario's hosts, reset and found pristine, to the next
scenario of the same shape (lab/reuse.py, images/host/rstlab_pristine.py). The
session's catalogue run does so; here every scenario that ran on reused hosts
there runs again on new hosts (`--fresh`), and the two must agree on the
packets at every capture point (relative sequence numbers), the application's
results, the kernel counter deltas, the kernel's reasons and every check.
A reset that left anything behind (a rule, a cached route, a socket, a
neighbour entry that spares an ARP the new hosts make) would show here.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import docker
import pytest
from rich.console import Console

from orchestrator.lab import engine
from tests.integration.conftest import SESSION

# Scenarios whose observations vary from run to run on new hosts as well, so that no comparison of two
# runs can hold: a real HTTP client's connection pool decides by its own timers how many connections
# it opens and reuses (its checks bound what matters). None of them is reusable today anyway: it leaves
# TIME_WAIT sockets behind.
VARIES = {"keepalive-pool-race"}
# at least this many of the catalogue's scenarios run on reused hosts (22 of 23 have a shape another
# has; those that leave a TIME_WAIT or restart a host hand nothing on)
AT_LEAST_REUSED = 8


def documents(out: Path) -> dict[str, dict[str, Any]]:
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("*/result.json")}


def observed(doc: dict[str, Any]) -> dict[str, Any]:
    """What a run of a scenario observed, without what differs between any two runs: times, ports,
    absolute sequence numbers (a segment of no known connection), the order of calls made at once."""
    packets = {point: [(p["src"], p["dst"], p["flags"], p["seq"] if p["relative"] else None,
                        p["ack"] if p["relative"] else None, p["len"], p.get("dir")) for p in ps]
               for point, ps in doc["packets"].items()}
    events = sorted((e["host"], e["call"], str(e.get("sock")), e["ok"], str(e["errno"])) for e in doc["events"])
    return {"packets": packets, "events": events, "counters": doc["counters"],
            "reasons": doc["kernel_witness"]["reasons"],
            "checks": [(c["kind"], c["subject"], c["passed"]) for c in doc["checks"]]}


def test_the_catalogue_run_reused_hosts(catalogue_run: tuple[int, Path, str]) -> None:
    _, out, _ = catalogue_run
    docs = documents(out)
    reused = sorted(name for name, doc in docs.items() if doc["lab"]["ran_after"])
    assert len(reused) >= AT_LEAST_REUSED, {name: doc["lab"] for name, doc in docs.items()}
    for name in reused:   # a lab goes only to a scenario of its shape
        before = docs[docs[name]["lab"]["ran_after"][-1]]
        assert sorted(before["hosts"]) == sorted(docs[name]["hosts"])
        assert before["hosts"] == docs[name]["hosts"]    # the same hosts: the same addresses


def test_scenarios_on_reused_hosts_observe_what_they_observe_on_new_ones(
        catalogue_run: tuple[int, Path, str], tmp_path: Path, docker_client: docker.DockerClient) -> None:
    from orchestrator.cli import main

    _, out, _ = catalogue_run
    reused = {name: doc for name, doc in documents(out).items() if doc["lab"]["ran_after"] and name not in VARIES}
    assert len(reused) >= AT_LEAST_REUSED - len(VARIES)
    status = main(["run", *sorted(reused), "--fresh", "--out", str(tmp_path)],
                  console=Console(file=io.StringIO(), width=160))
    fresh = documents(tmp_path)
    assert status == 0 and set(fresh) == set(reused)
    assert not any(doc["lab"]["ran_after"] for doc in fresh.values())
    differ = {name: [part for part, value in observed(doc).items() if observed(fresh[name])[part] != value]
              for name, doc in reused.items()}
    assert not any(differ.values()), {name: (parts, reused[name]["lab"]["ran_after"])
                                      for name, parts in differ.items() if parts}
    assert not engine.lab_objects(docker_client, f"{engine.SESSION}={SESSION}"), "the runs left objects behind"


def test_a_host_a_scenario_left_a_rule_on_is_put_back_and_one_with_a_socket_left_is_not_reused(
        catalogue_run: tuple[int, Path, str]) -> None:
    """The catalogue's routers keep their scenario's iptables rules (middlebox-injection, firewall-reset):
    their labs went on all the same, their rules put back. keepalive-pool-race leaves TIME_WAIT sockets:
    its hosts were not handed on, and its result says why."""
    _, out, _ = catalogue_run
    docs = documents(out)
    for name in ("middlebox-injection", "firewall-reset"):
        lab = docs[name]["lab"]
        assert lab["not_kept"] == {}, lab
    race = docs["keepalive-pool-race"]["lab"]
    assert race["kept"] is False and "TIME_WAIT" in " ".join(race["not_kept"].values()), race
    assert docs["silent-drop"]["lab"]["kept"] is None   # the only scenario of its shape: nothing to hand on to
    assert docs["peer-restart"]["lab"]["kept"] is False   # a restarted host is never handed on


DIRTY = """id: dirty
hosts: [client, server]
capture: [client, server]
steps:
  - {host: server, call: listen, sock: l, port: 8080}
  - {host: client, call: connect, sock: c, to: "server:8080"}
  - {host: server, call: accept, sock: l, as: s}
  - {host: server, call: shell, cmd: "%s"}
expect:
  app:
    client:
      - {call: connect, sock: c, errno: ok}
"""
# port 7 is closed on the server: a SYN to it is answered with RST, unless a rule left behind drops it
NEXT = """id: next
hosts: [client, server]
capture: [client, server]
steps:
  - {host: client, call: connect, sock: c, to: "server:7"}
expect:
  packets:
    client:
      exact: true
      sequence:
        - client > server S
        - server > client R. seq=0 ack=1
  app:
    client:
      - {call: connect, sock: c, errno: ECONNREFUSED}
"""


@pytest.mark.parametrize(("dirt", "kept", "why"), [
    # put back: the rule that would drop the next scenario's SYN goes, and the connection left open is aborted
    ("iptables -A INPUT -p tcp --dport 7 -j DROP", True, ""),
    # and a table made with nft itself, which iptables-save does not show
    ("nft add table ip t && nft add chain ip t in '{ type filter hook input priority 0; }' && "
     "nft add rule ip t in tcp dport 7 drop", True, ""),
    # not put back: a route (so the next scenario gets new hosts, and the result says why)
    ("ip route add 10.99.0.0/24 dev eth0", False, "ip changed: + 10.99.0.0/24 dev eth0"),
])
def test_what_a_scenario_left_is_put_back_or_its_hosts_are_not_handed_on(
        image_set: Any, tmp_path: Path, docker_client: docker.DockerClient, dirt: str, kept: bool, why: str) -> None:
    from orchestrator.cli import main

    (tmp_path / "dirty.yaml").write_text(DIRTY % dirt)
    (tmp_path / "next.yaml").write_text(NEXT)
    status = main(["run", str(tmp_path / "dirty.yaml"), str(tmp_path / "next.yaml"), "--out", str(tmp_path / "out")],
                  console=Console(file=io.StringIO(), width=160))
    docs = documents(tmp_path / "out")
    assert status == 0, {name: [c for c in doc["checks"] if not c["passed"]] for name, doc in docs.items()}
    assert docs["dirty"]["lab"]["kept"] is kept, docs["dirty"]["lab"]
    assert docs["next"]["lab"]["ran_after"] == (["dirty"] if kept else [])
    assert why in " ".join(docs["dirty"]["lab"]["not_kept"].values())
    assert not engine.lab_objects(docker_client, f"{engine.SESSION}={SESSION}"), "the run left objects behind"
