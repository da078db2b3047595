"""The lab's topology as pure data, read from the mapping compose.yaml holds.

compose.yaml is the one description of hosts and network. A run moves it into
its own /24 (`Topology.relocated`) so parallel runs never share an address.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import BadInput

TEMPLATE_LABEL = "rstlab.role"
ROUTES_ENV = "RSTLAB_ROUTES"   # "PREFIX via GATEWAY; ...": the routes a host's entrypoint sets


@dataclass(frozen=True)
class HostSpec:
    """One lab host: its role, address and the privileges its role needs."""

    name: str
    role: str
    address: str
    image: str
    cap_add: tuple[str, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    read_only: bool = False
    tmpfs: tuple[str, ...] = ()
    pids_limit: int | None = None
    mem_limit: str | None = None
    init: bool = False


@dataclass(frozen=True)
class Topology:
    """The lab network and its hosts."""

    network: str
    subnet: str
    internal: bool
    hosts: Mapping[str, HostSpec]

    def host(self, name: str) -> HostSpec:
        return self.hosts[name]

    def names_by_address(self) -> dict[str, str]:
        return {h.address: h.name for h in self.hosts.values()}

    def for_hosts(self, names: tuple[str, ...] | list[str]) -> Topology:
        """The topology as one scenario's hosts see it: a route through a host the scenario leaves
        out (`RSTLAB_ROUTES`, "PREFIX via GATEWAY; ...") is dropped, so the others reach each other directly.
        """
        present = {self.hosts[n].address for n in names if n in self.hosts}

        def kept(routes: str) -> str:
            parts = [r.strip() for r in routes.split(";")]
            return "; ".join(r for r in parts if r and r.split(" via ")[-1].strip() in present)

        hosts = {
            name: replace(h, environment={k: (kept(v) if k == ROUTES_ENV else v) for k, v in h.environment.items()})
            for name, h in self.hosts.items()
        }
        return replace(self, hosts=hosts)

    def relocated(self, subnet: str) -> Topology:
        """The same topology moved into `subnet` (same prefix length), host parts kept."""
        old = ipaddress.ip_network(self.subnet)
        new = ipaddress.ip_network(subnet)
        if old.prefixlen != new.prefixlen:
            raise ValueError(f"cannot move a /{old.prefixlen} into {subnet}")

        def move(match: re.Match[str]) -> str:
            addr = ipaddress.ip_address(match.group(0))
            if addr not in old:
                return match.group(0)
            return str(ipaddress.ip_address(int(new.network_address) + int(addr) - int(old.network_address)))

        def move_text(text: str) -> str:
            return re.sub(r"\d+\.\d+\.\d+\.\d+", move, text)

        hosts = {
            name: replace(
                h,
                address=move_text(h.address),
                environment={k: move_text(v) for k, v in h.environment.items()},
            )
            for name, h in self.hosts.items()
        }
        return replace(self, subnet=str(new), hosts=hosts)


def topology_from_compose(doc: Any, source: str = "compose.yaml") -> Topology:
    """Build the topology from a parsed compose file.

    Lab hosts are the services with an `rstlab.role` label and their own place on
    the network; services that share another's namespace (`network_mode`, the
    by-hand capture sidecars) are not hosts: the orchestrator makes its own.
    """
    def fail(what: str) -> BadInput:
        return BadInput(f"{source}: {what}")

    if not isinstance(doc, Mapping):
        raise fail("not a compose mapping")
    networks = doc.get("networks") or {}
    if len(networks) != 1:
        raise fail("the lab expects exactly one network")
    (net_name, net), = networks.items()
    try:
        subnet = str(ipaddress.ip_network(net["ipam"]["config"][0]["subnet"]))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise fail(f"network {net_name} needs one ipam subnet ({exc})") from None
    hosts: dict[str, HostSpec] = {}
    for name, svc in (doc.get("services") or {}).items():
        labels = svc.get("labels") or {}
        role = labels.get(TEMPLATE_LABEL)
        if not role or svc.get("network_mode"):
            continue  # sidecars and helpers for use by hand
        try:
            address = svc["networks"][net_name]["ipv4_address"]
        except (KeyError, TypeError):
            raise fail(f"service {name} needs networks.{net_name}.ipv4_address") from None
        hosts[name] = HostSpec(
            name=name,
            role=role,
            address=str(address),
            image=str(svc.get("image", "")),
            cap_add=tuple(svc.get("cap_add") or ()),
            sysctls={str(k): str(v) for k, v in (svc.get("sysctls") or {}).items()},
            environment={str(k): str(v) for k, v in (svc.get("environment") or {}).items()},
            read_only=bool(svc.get("read_only", False)),
            tmpfs=tuple(svc.get("tmpfs") or ()),
            pids_limit=svc.get("pids_limit"),
            mem_limit=svc.get("mem_limit"),
            init=bool(svc.get("init", False)),
        )
    if not hosts:
        raise fail("no service carries an rstlab.role label")
    return Topology(network=net_name, subnet=subnet, internal=bool(net.get("internal")), hosts=hosts)
