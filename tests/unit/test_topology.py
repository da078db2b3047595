"""compose.yaml is the one topology; a run moves it to its own subnet."""
from __future__ import annotations

import pytest

from orchestrator import catalog
from orchestrator.errors import BadInput
from orchestrator.topology import topology_from_compose


def test_compose_hosts_and_roles() -> None:
    t = catalog.load_topology()
    assert t.internal and t.subnet == "10.213.0.0/24"
    assert {h.role for h in t.hosts.values()} == {"client", "server", "winhost", "router"}
    assert t.host("winhost").environment["RSTLAB_FIREWALL"] == "drop-closed"
    assert t.host("router").sysctls["net.ipv4.ip_forward"] == "1"
    for h in t.hosts.values():
        assert h.cap_add == ("NET_ADMIN",), f"{h.name} gets only NET_ADMIN"


def test_relocation_keeps_host_parts_and_moves_routes() -> None:
    t = catalog.load_topology().relocated("10.213.77.0/24")
    assert t.host("client").address == "10.213.77.10"
    assert t.host("server").address == "10.213.77.70"
    assert t.host("client").environment["RSTLAB_ROUTES"] == "10.213.77.64/26 via 10.213.77.200"
    assert t.names_by_address()["10.213.77.200"] == "router"


@pytest.mark.parametrize("doc, message", [
    ([], "not a compose mapping"),
    ({"networks": {}}, "exactly one network"),
    ({"networks": {"lab": {}}}, "needs one ipam subnet"),
    ({"networks": {"lab": {"ipam": {"config": [{"subnet": "10.0.0.0/24"}]}}},
      "services": {"a": {"labels": {"rstlab.role": "client"}}}}, "needs networks.lab.ipv4_address"),
])
def test_bad_compose(doc: object, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        topology_from_compose(doc)
