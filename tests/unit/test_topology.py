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


# --- compose.yaml is one description for Compose and for the orchestrator ------------------------------------------

def _compose_config() -> dict:
    """Compose's own reading of compose.yaml (`config`: interpolated, anchors merged, defaults applied)."""
    import subprocess

    import yaml

    from tests.compose_cli import require_compose

    command = require_compose()
    out = subprocess.run([*command, "-f", str(catalog.COMPOSE_FILE), "-p", "rstlab-config-check", "config"],
                         check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{' '.join(command)} config refused compose.yaml: {out.stderr.strip()}"
    doc = yaml.safe_load(out.stdout)
    assert isinstance(doc, dict)
    return doc


def test_compose_accepts_the_file_and_sees_the_same_hosts() -> None:
    """Hosts, addresses, capabilities, sysctls, environment: Compose's view equals topology.py's."""
    config = _compose_config()
    topology = catalog.load_topology()
    (net_name, net), = config["networks"].items()
    assert net_name == topology.network and net.get("internal") is True and topology.internal
    assert net["ipam"]["config"][0]["subnet"] == topology.subnet
    hosts = {name: svc for name, svc in config["services"].items() if "network_mode" not in svc}
    assert set(hosts) == set(topology.hosts)
    for name, svc in hosts.items():
        spec = topology.host(name)
        assert svc["networks"][net_name]["ipv4_address"] == spec.address, name
        assert sorted(svc.get("cap_add", [])) == sorted(spec.cap_add), name
        assert svc.get("cap_drop") == ["ALL"], name
        assert {k: str(v) for k, v in (svc.get("sysctls") or {}).items()} == dict(spec.sysctls), name
        assert {k: str(v) for k, v in (svc.get("environment") or {}).items()} == dict(spec.environment), name
        assert svc["labels"]["rstlab.role"] == spec.role, name
        assert svc.get("read_only") is True and svc.get("image") == spec.image, name
    # the sidecars are not hosts, and capture only from a host's namespace
    sidecars = {name: svc for name, svc in config["services"].items() if "network_mode" in svc}
    assert {svc["network_mode"] for svc in sidecars.values()} == {f"service:{h}" for h in topology.hosts}
    for name, svc in {**hosts, **sidecars}.items():
        assert {"rstlab.run", "rstlab.role"} <= set(svc["labels"]), f"{name} lacks the lab's labels"
        assert not svc.get("privileged"), name


def test_compose_file_is_valid_compose_specification() -> None:
    """The Compose Specification's JSON schema (the `docker compose` plugin's format) accepts the file too."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                          str(catalog.COMPOSE_FILE)], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_top_level_name_would_be_refused_by_compose_1() -> None:
    """The file keeps to the subset both Composes accept: no `name:` or `version:` at the top."""
    import yaml

    doc = yaml.safe_load(catalog.COMPOSE_FILE.read_text())
    assert not {"name", "version"} & set(doc), "Debian's docker-compose 1.29 refuses `name:`; v2 warns on `version:`"


def test_sidecars_are_not_hosts() -> None:
    doc = {"networks": {"lab": {"ipam": {"config": [{"subnet": "10.0.0.0/24"}]}}},
           "services": {"a": {"labels": {"rstlab.role": "client"}, "networks": {"lab": {"ipv4_address": "10.0.0.2"}}},
                        "cap-a": {"labels": {"rstlab.role": "capture"}, "network_mode": "service:a"}}}
    assert list(topology_from_compose(doc).hosts) == ["a"]


def test_a_scenario_without_the_router_routes_directly() -> None:
    """Routes through a host the scenario leaves out are dropped; those through a present host stay."""
    t = catalog.load_topology()
    assert "via 10.213.0.200" in t.host("client").environment["RSTLAB_ROUTES"]
    without = t.for_hosts(["client", "server"])
    assert without.host("client").environment["RSTLAB_ROUTES"] == ""
    assert without.host("server").environment["RSTLAB_ROUTES"] == ""
    assert without.host("client").address == t.host("client").address
    with_router = t.for_hosts(["client", "router", "server"])
    assert with_router.host("client").environment["RSTLAB_ROUTES"] == t.host("client").environment["RSTLAB_ROUTES"]
    moved = without.relocated("10.213.9.0/24")
    assert moved.host("client").environment["RSTLAB_ROUTES"] == ""
