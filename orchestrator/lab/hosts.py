"""One scenario's hosts on the engine: network, host containers, agents, capture sidecars.

`ScenarioLab` is a context manager: whatever happens inside, every container
and the network it made are removed by label on the way out.
"""
from __future__ import annotations

import io
import ipaddress
import random
import re
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import docker
import docker.errors

from ..errors import LabRuntimeError
from ..topology import HostSpec, Topology
from . import engine
from .agent import AgentChannel
from .images import ImageSet

LAB_SUPERNET = ipaddress.ip_network("10.213.0.0/16")
READY_TIMEOUT = 20.0
CAPTURE_STOP_TIMEOUT = 10.0
# NET_RAW opens the packet socket; SETUID/SETGID/CHOWN let tcpdump hand the
# pcap to its own unprivileged user and drop to it right after opening.
SIDECAR_CAPS = ["NET_RAW", "SETUID", "SETGID", "CHOWN"]


@dataclass(frozen=True)
class CaptureFile:
    """A capture point's pcap and tcpdump's own closing counts."""

    host: str
    data: bytes
    captured: int | None
    received: int | None
    dropped: int | None


def _parse_tcpdump_counts(text: str) -> tuple[int | None, int | None, int | None]:
    """tcpdump's counts since it was ready: its last report minus the one it gave when ready.

    While libpcap sets up its filter it drains whatever reached the socket, and
    the kernel counts those frames as received; the report asked for (SIGUSR1)
    once tcpdump listens takes them out, so only what the run's capture lost remains.
    """
    def counts(what: str) -> list[int]:
        return [int(n) for n in re.findall(rf"(\d+) packets? {what}", text)]

    def since_ready(what: str) -> int | None:
        found = counts(what)
        if not found:
            return None
        return found[-1] - (found[0] if len(found) > 1 else 0)
    return since_ready("captured"), since_ready("received by filter"), since_ready("dropped by kernel")


def _all(work: Callable[[Any], None], items: list[Any]) -> None:
    """Run `work` on every item at once; the first error is raised once all have finished."""
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = [pool.submit(work, item) for item in items]
    for future in futures:
        future.result()


def _join(earlier: CaptureFile | None, later: CaptureFile) -> CaptureFile:
    """One pcap from two parts written by tcpdump with the same link type (header of the first kept)."""
    if earlier is None:
        return later
    def add(a: int | None, b: int | None) -> int | None:
        return None if a is None or b is None else a + b
    return CaptureFile(later.host, earlier.data + later.data[24:], add(earlier.captured, later.captured),
                       add(earlier.received, later.received), add(earlier.dropped, later.dropped))


class ScenarioLab:
    """The containers and network of one scenario run, torn down by label on exit."""

    def __init__(self, client: docker.DockerClient, images: ImageSet, topology: Topology,
                 run_id: str, scenario: str, hosts: tuple[str, ...], capture: tuple[str, ...],
                 sysctls: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.client = client
        self.api = client.api
        self.images = images
        self.template = topology
        self.topology = topology
        self.run_id = run_id
        self.scenario = scenario
        self.host_names = hosts
        self.capture_points = capture
        self.sysctls = sysctls or {}
        self.prefix = f"rstlab-{run_id}-{scenario}"
        self.labels = engine.labels(run_id, scenario)
        self.network: Any = None
        self.containers: dict[str, str] = {}
        self.sidecars: dict[str, str] = {}
        self.agents: dict[str, AgentChannel] = {}
        self._earlier: dict[str, CaptureFile] = {}

    # -- life cycle ----------------------------------------------------------
    def __enter__(self) -> "ScenarioLab":
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        """Network, then every host at once, then every sidecar at once (each waits for its own readiness)."""
        self._create_network()
        _all(self._start_host, [self.topology.host(name) for name in self.host_names])
        _all(self._start_sidecar, list(self.capture_points))

    def down(self) -> None:
        """Remove every container and the network of this scenario run, by label."""
        for agent in list(self.agents.values()):
            agent.close()
        engine.remove_until_gone(self.client, f"{engine.RUN}={self.run_id}", f"{engine.SCENARIO}={self.scenario}")

    # -- network -------------------------------------------------------------
    def _create_network(self) -> None:
        """A fresh internal network in a free /24 of the lab's range; the topology moves there."""
        template = ipaddress.ip_network(self.template.subnet)
        candidates = [n for n in LAB_SUPERNET.subnets(new_prefix=template.prefixlen) if n != template]
        random.shuffle(candidates)
        last_error = ""
        for subnet in candidates[:40]:
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet))])
            try:
                self.network = self.client.networks.create(
                    f"{self.prefix}-{self.template.network}", driver="bridge", internal=self.template.internal,
                    ipam=ipam, labels=self.labels, check_duplicate=True)
            except docker.errors.APIError as exc:
                last_error = str(exc.explanation or exc)
                if "overlap" in last_error.lower():
                    continue
                raise LabRuntimeError(f"cannot create the lab network: {last_error}") from None
            self.topology = self.template.relocated(str(subnet))
            return
        raise LabRuntimeError(f"no free /24 in {LAB_SUPERNET} for the lab network ({last_error})",
                              "remove leftover networks: python -m orchestrator clean")

    # -- hosts ---------------------------------------------------------------
    def _start_host(self, spec: HostSpec) -> None:
        api = self.api
        host_config = api.create_host_config(
            network_mode=self.network.name,
            cap_drop=["ALL"], cap_add=list(spec.cap_add),
            sysctls={**spec.sysctls, **self.sysctls.get(spec.name, {})} or None,
            read_only=spec.read_only,
            tmpfs={path: "" for path in spec.tmpfs} or None,
            pids_limit=spec.pids_limit, mem_limit=spec.mem_limit,
            init=spec.init,
        )
        networking = api.create_networking_config(
            {self.network.name: api.create_endpoint_config(ipv4_address=spec.address, aliases=[spec.name])})
        env = dict(spec.environment)
        env["RSTLAB_HOST"] = spec.name
        try:
            created = api.create_container(
                self.images.host, name=f"{self.prefix}-{spec.name}", hostname=spec.name,
                environment=env, stdin_open=True, host_config=host_config, networking_config=networking,
                labels=engine.labels(self.run_id, self.scenario, spec.role))
            cid = created["Id"]
            self.containers[spec.name] = cid
            agent = AgentChannel(api, cid, spec.name)
            self.agents[spec.name] = agent
            api.start(cid)
        except docker.errors.APIError as exc:
            raise LabRuntimeError(f"cannot start host {spec.name}: {exc.explanation or exc}") from None
        agent.wait_ready(READY_TIMEOUT)

    # -- capture sidecars ----------------------------------------------------
    def _start_sidecar(self, host: str) -> None:
        """tcpdump in the host's network namespace; ready once it says it is listening."""
        api = self.api
        host_config = api.create_host_config(
            network_mode=f"container:{self.containers[host]}",
            cap_drop=["ALL"], cap_add=SIDECAR_CAPS, pids_limit=16, mem_limit="64m")
        # --immediate-mode gives the ring fixed slots of the snap length: with the
        # default 256 KiB snap length a 2 MiB ring holds 8 packets and drops under
        # load. 8 KiB slots in a 16 MiB ring hold 2048; a larger (GSO) frame keeps
        # its headers and true length, only its payload is cut.
        # Only TCP and ICMP pass the filter: ARP probes and the like arrive at random
        # times, and one arriving while tcpdump stops is counted but never written,
        # which would fail the capture's integrity check for a packet nobody needs.
        cmd = ["-i", "any", "-n", "-U", "--immediate-mode", "-s", "8192", "-B", "16384",
               "-w", f"/tmp/{host}.pcap", "tcp or icmp"]
        try:
            created = api.create_container(
                self.images.base, name=f"{self.prefix}-capture-{host}", entrypoint=["tcpdump"], command=cmd,
                host_config=host_config, labels=engine.labels(self.run_id, self.scenario, "capture"))
            cid = created["Id"]
            self.sidecars[host] = cid
            api.start(cid)
        except docker.errors.APIError as exc:
            raise LabRuntimeError(f"cannot start the capture of {host}: {exc.explanation or exc}") from None
        deadline = time.monotonic() + READY_TIMEOUT
        asked = False
        while True:
            logs = api.logs(cid, stdout=False, stderr=True).decode(errors="replace")
            if "listening on" in logs and not asked:
                api.kill(cid, signal="SIGUSR1")   # tcpdump reports its counts so far: the baseline
                asked = True
            if asked and "dropped by kernel" in logs:
                return
            state = api.inspect_container(cid)["State"]
            if not state["Running"]:
                raise LabRuntimeError(f"tcpdump on {host} exited: {logs.strip()[-200:] or state['Status']}",
                                      "AppArmor or a missing NET_RAW capability can stop tcpdump in a container")
            if time.monotonic() > deadline:
                raise LabRuntimeError(f"tcpdump on {host} did not start listening within {READY_TIMEOUT:g} s")
            time.sleep(0.02)

    def stop_captures(self, hosts: tuple[str, ...] | None = None) -> dict[str, CaptureFile]:
        """SIGINT the sidecars, wait for them to flush and exit, fetch their pcaps and counts.

        A host restarted during the run has earlier parts: they come first in its file.
        """
        chosen = {h: cid for h, cid in self.sidecars.items() if hosts is None or h in hosts}
        for cid in chosen.values():
            self.api.kill(cid, signal="SIGINT")
        files: dict[str, CaptureFile] = {}
        _all(lambda item: files.update(self._fetch_capture(*item)), list(chosen.items()))
        return {h: files[h] for h in chosen}

    def _fetch_capture(self, host: str, cid: str) -> dict[str, CaptureFile]:
        """Wait for a SIGINTed sidecar to exit, then take its pcap and tcpdump's counts."""
        try:
            self.api.wait(cid, timeout=CAPTURE_STOP_TIMEOUT)
        except Exception as exc:  # requests' ReadTimeout or a connection error: the engine did not answer
            raise LabRuntimeError(f"tcpdump on {host} did not stop within {CAPTURE_STOP_TIMEOUT:g} s ({exc})") from None
        logs = self.api.logs(cid, stdout=False, stderr=True).decode(errors="replace")
        stream, _ = self.api.get_archive(cid, f"/tmp/{host}.pcap")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile(f"{host}.pcap")
            data = member.read() if member else b""
        joined = _join(self._earlier.pop(host, None), CaptureFile(host, data, *_parse_tcpdump_counts(logs)))
        self.api.remove_container(cid, force=True)
        del self.sidecars[host]
        return {host: joined}

    def restart(self, host: str) -> None:
        """Kill a host and start it again: a new network namespace with no memory of its connections.

        Its capture is stopped first (the sidecar lives in the old namespace) and
        a new one started after; the parts are joined in the host's pcap.
        """
        if host in self.sidecars:
            self._earlier[host] = self.stop_captures((host,))[host]
        cid = self.containers[host]
        try:
            # kill before closing the agent's channel: its EOF would end the agent (and the host) first
            self.api.kill(cid)
            self.agents.pop(host).close()
            self.api.wait(cid, timeout=CAPTURE_STOP_TIMEOUT)
            agent = AgentChannel(self.api, cid, host)
            self.agents[host] = agent
            self.api.start(cid)
        except docker.errors.APIError as exc:
            raise LabRuntimeError(f"cannot restart host {host}: {exc.explanation or exc}") from None
        agent.wait_ready(READY_TIMEOUT)
        if host in self.capture_points:
            self._start_sidecar(host)

    # -- agents --------------------------------------------------------------
    def agent(self, host: str) -> AgentChannel:
        return self.agents[host]

    def address(self, host: str) -> str:
        return self.topology.host(host).address
