"""One scenario's hosts on the engine: network, host containers, agents, capture sidecars.

`ScenarioLab` is a context manager: whatever happens inside, every container
and the network it made are removed by label on the way out (at once, or by a
`Reaper` in the background while the next scenario starts). A run that may
reuse the lab (`keep`) instead has its hosts reset after a scenario that ended
well: if every one is pristine, only the sidecars go, and the network and hosts
wait for the next scenario of the same shape (`handed_to`; lab/reuse.py).
"""
from __future__ import annotations

import ipaddress
import random
import uuid
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Callable, Mapping, TypeVar

import docker
import docker.errors
import docker.types
from docker.models.networks import Network

from ..errors import LabRuntimeError
from ..model import Scenario
from ..result import AgentAnswer
from ..topology import HostSpec, Topology
from . import engine, pool
from .agent import AgentChannel
from .engine import engine_call
from .images import ImageSet
from .protocol import CaptureFile, Clock
from .sidecar import SIDECAR_CAPS, TCPDUMP_ARGS, CaptureStream, join

LAB_SUPERNET = ipaddress.ip_network("10.213.0.0/16")
READY_TIMEOUT = 20.0
CAPTURE_STOP_TIMEOUT = 10.0
EXIT_LANDS_TIMEOUT = 3   # s: from a container's output ending to the engine marking it exited
# s: no capture point has taken a packet for this long, so none is still on its way to one (a
# segment crosses the lab's bridge in microseconds; this allows for a receive deferred to ksoftirqd)
CAPTURES_STILL = 0.05
# s: Linux's TCP_DELACK_MAX. A host with a socket that may owe a delayed ACK (its timer is not in
# /proc/net/tcp) can still send this long after the last segment it received
DELAYED_ACK_MAX = 0.2
RESET_TIMEOUT = 15.0   # s: a host's reset between scenarios (a few commands in its namespace)


T = TypeVar("T")


def _all(work: Callable[[T], object], items: list[T]) -> None:
    """Run `work` on every item at once; the first error is raised once all have finished."""
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = [pool.submit(work, item) for item in items]
    for future in futures:
        future.result()


class ScenarioLab:
    """The containers and network of one scenario run, torn down by label on exit."""

    def __init__(self, client: docker.DockerClient, images: ImageSet, topology: Topology, run_id: str,
                 scenario: Scenario, reaper: engine.Reaper | None = None,
                 keep: Callable[[ScenarioLab], bool] | None = None, shape: str = "") -> None:
        """With `keep`, the hosts take a baseline as they start, and after a scenario that ended well the
        lab is reset and offered to `keep` (which says whether it took it) instead of being removed;
        `shape` (pool.shape_label) labels such a lab's hosts, for a later run to find it parked."""
        self.client = client
        self.api = client.api
        self.images = images
        self._full_topology = topology
        self.template = topology.for_hosts(scenario.hosts)   # no route through a host the scenario leaves out
        self.topology = self.template
        self.run_id = run_id
        self.scenario = scenario.id
        self.hosts = scenario.hosts
        self.capture_points = scenario.capture
        self.sysctls: Mapping[str, Mapping[str, str]] = scenario.sysctls
        self.reaper = reaper
        self.prefix = f"rstlab-{run_id}-{scenario.id}"
        self.lab_id = uuid.uuid4().hex[:12]
        self.labels = {**engine.labels(run_id, scenario.id), engine.LAB: self.lab_id}
        self._keep = keep
        self.shape = shape
        self.history: tuple[str, ...] = ()   # the scenarios that ran on these hosts before this one
        self.adopted = False                 # network and hosts are a finished scenario's (handed_to)
        self._completed = False              # every capture stopped as the scenario ended
        self._restarted = False              # a host was restarted: never reused
        self.not_kept: dict[str, str] = {}   # why a host was not pristine after the scenario, if it was not
        self.kept: bool | None = None if keep is None else False   # handed on to the next scenario (None: never)
        self.network: Network | None = None
        self.containers: dict[str, str] = {}
        self.sidecars: dict[str, str] = {}
        self.agents: dict[str, AgentChannel] = {}
        self.streams: dict[str, CaptureStream] = {}
        self._earlier: dict[str, CaptureFile] = {}
        self.prepared = False
        self._preparing: Future[None] | None = None
        self._starting: Future[None] | None = None
        self._stopped: set[str] = set()   # containers the lab itself stopped (captures, a restarting host)

    # -- life cycle ----------------------------------------------------------
    def __enter__(self) -> ScenarioLab:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.down(recycle=not exc or exc[0] is None)

    def handed_to(self, scenario: Scenario) -> ScenarioLab:
        """This lab's network and hosts (reset, pristine) for `scenario`, of the same shape; new sidecars."""
        lab = ScenarioLab(self.client, self.images, self._full_topology, self.run_id, scenario, self.reaper,
                          self._keep, self.shape)
        lab.lab_id, lab.labels = self.lab_id, {**lab.labels, engine.LAB: self.lab_id}
        lab.network, lab.topology = self.network, self.topology
        lab.containers, lab.agents = self.containers, self.agents
        lab.history = (*self.history, self.scenario)
        lab.adopted = True
        return lab

    def prepare(self) -> None:
        """The network and every container, created but not started: no namespace exists, nothing runs.

        A runner may do this ahead, while other scenarios wait on kernel timers; `up` then only starts.
        """
        if not self.adopted:
            self._create_network()
            _all(self._create_host, [self.topology.host(name) for name in self.hosts])
        _all(self._create_sidecar, [h for h in self.hosts if h in self.capture_points])
        self.prepared = True

    def prepare_ahead(self, pool: Executor) -> None:
        """`prepare` in the background; `up` waits for it (and raises what it raised). Once only."""
        if self._preparing is None and self._starting is None:
            self._preparing = pool.submit(self.prepare)

    def start_ahead(self, pool: Executor) -> None:
        """`up` in the background, before the runner enters the lab (entering waits for it). Once only."""
        if self._preparing is None and self._starting is None:
            self._starting = pool.submit(self._up)

    def up(self) -> None:
        """Every host at once, each with its sidecar as soon as the host runs (created first if need be)."""
        if self._starting is not None:
            self._starting.result()
        else:
            self._up()

    def _up(self) -> None:
        if self._preparing is not None:
            self._preparing.result()
        if self.adopted:   # the hosts run and their agents are ready: only the captures are new
            _all(self._capture, [h for h in self.hosts if h in self.capture_points])
        elif self.prepared:
            _all(self._boot, list(self.hosts))
        else:
            self._create_network()
            _all(self._bring_up, [self.topology.host(name) for name in self.hosts])

    def down(self, recycle: bool = False) -> None:
        """Remove every container and the network of this lab, by label (by the reaper if there is one).

        With `recycle` (the scenario ended well), a lab the run may reuse is reset and kept instead, if it can be.
        """
        if recycle and self._keep is not None and self._completed and not self._restarted and self._reset_and_keep():
            self._submit(self._remove_captures)
        else:
            self._submit(self._remove)

    def _submit(self, removal: Callable[[], list[engine.LabObject]]) -> None:
        if self.reaper is not None:
            self.reaper.submit(removal)
        else:
            removal()

    def _ask_all(self, call: str, args: Mapping[str, object], timeout: float) -> dict[str, AgentAnswer]:
        """One call on every host's agent at once; the answers by host."""
        calls = {host: channel.send(call, args) for host, channel in self.agents.items()}
        return {host: self.agents[host].result(call_id, timeout) for host, call_id in calls.items()}

    def _not_pristine(self, phases: tuple[str, ...]) -> dict[str, str]:
        """The agents' `reset` in these phases, each on every host at once; why a host is not pristine, by host."""
        for phase in phases:
            answers = self._ask_all("reset", {"phase": phase}, RESET_TIMEOUT)
        return {host: "; ".join(a["result"]["why"]) if a["ok"] else str(a["error"])
                for host, a in answers.items() if not (a["ok"] and a["result"]["pristine"])}

    def _reset_and_keep(self) -> bool:
        """Every host reset (here: the run's next scenario of this shape may be waiting for it): first each
        one's sockets aborted, on all at once, so that a peer's end is gone too; then each checked and put
        back as it started. Whether all are pristine and the run kept the lab (`kept`, `not_kept`)."""
        try:
            self.not_kept = self._not_pristine(("abort", "check"))
        except LabRuntimeError as exc:
            self.not_kept = {"lab": exc.line()}
            return False
        self.kept = not self.not_kept and self._keep is not None and self._keep(self)
        return self.kept

    def _remove_captures(self) -> list[engine.LabObject]:
        """This scenario's sidecars (the lab itself was kept for the next scenario)."""
        return engine.remove_until_gone(self.client, f"{engine.RUN}={self.run_id}", f"{engine.LAB}={self.lab_id}",
                                        f"{engine.SCENARIO}={self.scenario}", f"{engine.ROLE}=capture")

    def _remove(self) -> list[engine.LabObject]:
        """Containers and network first, our ends of their streams after.

        Closing an agent's stdin first would let its host exit on its own while
        it is being removed, and an exit racing a removal can leave Docker 20.10
        counting an endpoint on a network no container holds (moby#42119): that
        network can then never be removed. Removing a running container kills
        it within the one engine operation.
        """
        # by its lab alone: a lab taken warm from an earlier run carries the run that made it (lab/pool.py)
        left = engine.remove_until_gone(self.client, f"{engine.LAB}={self.lab_id}")
        for channel in [*self.agents.values(), *self.streams.values()]:
            channel.close()
        return left

    def _bring_up(self, spec: HostSpec) -> None:
        self._create_host(spec)
        self._boot(spec.name)

    def _boot(self, host: str) -> None:
        """Start a created host and, on its namespace, its capture; ready when both say so.

        The sidecar is created while the host starts and started as soon as the host runs.
        """
        with ThreadPoolExecutor(max_workers=1) as pool:
            creating = (pool.submit(self._create_sidecar, host)
                        if host in self.capture_points and host not in self.sidecars else None)
            self._start(host, self.containers[host], "host")
        if creating is not None:
            creating.result()
        sidecar = self.sidecars.get(host)
        if sidecar is not None:
            self._start_capture(host, sidecar)
        self.agents[host].wait_ready(READY_TIMEOUT)
        if sidecar is not None:
            self._wait_listening(host)

    def _capture(self, host: str) -> None:
        """A new capture on a running host (a lab handed to its next scenario)."""
        sidecar = self.sidecars.get(host) or self._create_sidecar(host)
        self._start_capture(host, sidecar)
        self._wait_listening(host)

    def _start_capture(self, host: str, sidecar: str) -> None:
        with engine_call(f"cannot attach to the capture of {host}"):
            self.streams[host] = CaptureStream(self.api, sidecar, host)
        self._start(host, sidecar, "the capture of")

    def _start(self, host: str, cid: str, what: str) -> None:
        with engine_call(f"cannot start {what} {host}"):
            self.api.start(cid)

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
            except engine.SDK_ERRORS as exc:
                last_error = engine.explanation(exc)
                if "overlap" in last_error.lower():
                    continue
                raise LabRuntimeError(f"cannot create the lab network: {last_error}") from None
            self.topology = self.template.relocated(str(subnet))
            return
        raise LabRuntimeError(f"no free /24 in {LAB_SUPERNET} for the lab network ({last_error})",
                              "remove leftover networks: python -m orchestrator clean")

    # -- hosts ---------------------------------------------------------------
    def _network_name(self) -> str:
        if self.network is None or self.network.name is None:
            raise LabRuntimeError(f"{self.scenario}: the lab network is not there")
        return self.network.name

    def _create_host(self, spec: HostSpec) -> None:
        """The host's container, its agent's channel attached before it starts."""
        api = self.api
        network = self._network_name()
        host_config = api.create_host_config(
            network_mode=network,
            cap_drop=["ALL"], cap_add=list(spec.cap_add),
            sysctls={**spec.sysctls, **self.sysctls.get(spec.name, {})} or None,
            read_only=spec.read_only,
            tmpfs=dict(t.partition(":")[::2] for t in spec.tmpfs) or None,   # PATH[:OPTIONS], as compose writes it
            pids_limit=spec.pids_limit, mem_limit=spec.mem_limit,
            init=spec.init,
            log_config=docker.types.LogConfig(type="none"),   # the agent's output comes over its attached channel
        )
        networking = api.create_networking_config(   # takes {network: endpoint} (types-docker says one endpoint)
            {network: api.create_endpoint_config(ipv4_address=spec.address, aliases=[spec.name])})  # type: ignore[arg-type]
        env = dict(spec.environment)
        env["RSTLAB_HOST"] = spec.name
        if self._keep is not None:
            env["RSTLAB_BASELINE"] = "1"   # the agent remembers the host as it starts, to reset it to that
        labels = {**engine.labels(self.run_id, self.scenario, spec.role), engine.LAB: self.lab_id}
        if self.shape:
            labels[engine.SHAPE] = self.shape
        with engine_call(f"cannot create host {spec.name}"):
            config = api.create_container_config(   # (no command: the image's entrypoint runs)
                self.images.host, None,  # type: ignore[arg-type]
                hostname=spec.name, environment=env, stdin_open=True,
                host_config=host_config, networking_config=networking, labels=labels)
            # the SDK closes stdin when the attaching client goes (StdinOnce), and the agent ends at EOF:
            # a lab that may wait for the next run (lab/pool.py) keeps it open instead
            config["StdinOnce"] = self._keep is None
            created = api.create_container_from_config(  # type: ignore[no-untyped-call]  # (types-docker)
                config, name=f"{self.prefix}-{spec.name}")
            self.containers[spec.name] = created["Id"]
            self.agents[spec.name] = AgentChannel(api, created["Id"], spec.name)

    # -- capture sidecars ----------------------------------------------------
    def _create_sidecar(self, host: str) -> str:
        """tcpdump sharing the host's network namespace (created before the host starts, started after)."""
        api = self.api
        host_config = api.create_host_config(
            network_mode=f"container:{self.containers[host]}", read_only=True,
            cap_drop=["ALL"], cap_add=SIDECAR_CAPS, pids_limit=16, mem_limit="64m",
            log_config=docker.types.LogConfig(type="none"))   # the pcap is streamed to us, not logged
        with engine_call(f"cannot create the capture of {host}"):
            created = api.create_container(
                self.images.base, name=f"{self.prefix}-capture-{host}", entrypoint=["tcpdump"],
                command=TCPDUMP_ARGS, host_config=host_config,
                labels={**engine.labels(self.run_id, self.scenario, "capture"), engine.LAB: self.lab_id})
        self.sidecars[host] = str(created["Id"])
        return self.sidecars[host]

    def _wait_listening(self, host: str) -> None:
        """Ready once tcpdump listens and has reported its counts so far (the baseline of its integrity check)."""
        stream = self.streams[host]
        try:
            stream.wait_listening(READY_TIMEOUT)
            with engine_call(f"cannot signal the capture of {host}"):
                self.api.kill(self.sidecars[host], signal="SIGUSR1")
            stream.wait_report(READY_TIMEOUT)
        except LabRuntimeError:
            if stream.closed:
                raise LabRuntimeError(f"tcpdump on {host} exited: {stream.stderr.strip()[-200:] or 'no message'}",
                                      "AppArmor or a missing NET_RAW capability can stop tcpdump in a container"
                                      ) from None
            raise

    def settle(self, seconds: float, clock: Clock) -> None:
        """Let the last segments reach every capture point: `seconds` (the scenario's settle) at most.

        Over sooner when nothing can still send and nothing sent is still on its way: no host has a
        socket timer that sends within `seconds` nor a process a step left running (each agent's
        `quiet`), no capture took a packet for CAPTURES_STILL s (DELAYED_ACK_MAX s where a socket
        may owe a delayed ACK), and every tcpdump, asked for its counts, has written all the kernel
        handed it. Otherwise the whole time, as a sleep.
        """
        if seconds <= 0:
            return
        start = clock.monotonic()
        still = self._hosts_quiet(seconds)
        if not (still is not None and self._captures_still(start, seconds, still, clock)
                and self._captures_drained(start + seconds - clock.monotonic())):
            clock.sleep(max(0.0, start + seconds - clock.monotonic()))

    def _hosts_quiet(self, within: float) -> float | None:
        """None if a host has anything that sends on its own within `within` s (a timer, a program left
        running); else how long the captures must stay still: long enough for a delayed ACK if one may be owed."""
        try:
            answers = list(self._ask_all("quiet", {"within": within}, READY_TIMEOUT).values())
        except LabRuntimeError:   # an agent gone (a step ended its host): no telling, so the whole time
            return None
        if not all(a["ok"] and not a["result"]["timers"] and not a["result"]["processes"] for a in answers):
            return None
        return DELAYED_ACK_MAX if any(a["result"]["may_owe_ack"] for a in answers) else CAPTURES_STILL

    def _captures_still(self, start: float, within: float, still: float, clock: Clock) -> bool:
        """Whether, before `start + within`, `still` s pass with no capture taking a packet."""
        while True:
            still_from = max([start, *(stream.last_packet for stream in self.streams.values())])
            now = clock.monotonic()
            if still_from + still > start + within:
                return False
            if now >= still_from + still:
                return True
            clock.sleep(still_from + still - now)

    def _captures_drained(self, within: float) -> bool:
        """Every tcpdump, asked for its counts (SIGUSR1), has written every packet it received."""
        if within <= 0 or any(stream.closed for stream in self.streams.values()):
            return False   # a capture that ended is a fault: stopping the captures says which
        before = {host: stream.reports() for host, stream in self.streams.items()}

        def ask(host: str) -> None:
            with engine_call(f"cannot signal the capture of {host}"):
                self.api.kill(self.sidecars[host], signal="SIGUSR1")
            self.streams[host].wait_report(within, after=before[host])
        try:
            _all(ask, list(self.streams))
        except LabRuntimeError:
            return False
        return all(stream.drained() for stream in self.streams.values())

    def stop_captures(self, hosts: tuple[str, ...] | None = None) -> dict[str, CaptureFile]:
        """SIGINT the sidecars and take each pcap and tcpdump's counts as it exits.

        A host restarted during the run has earlier parts: they come first in its file.
        """
        # in the scenario's order of capture points, whichever sidecar happened to start first
        chosen = [h for h in self.capture_points if h in self.sidecars and (hosts is None or h in hosts)]
        reports = {host: self.streams[host].reports() for host in chosen}
        _all(self._interrupt_capture, chosen)
        files: dict[str, CaptureFile] = {}
        for host in chosen:
            done = self.streams.pop(host).finish(CAPTURE_STOP_TIMEOUT, reports[host])
            files[host] = join(self._earlier.pop(host, None), done)
            del self.sidecars[host]
        self._completed = hosts is None
        return files

    def _interrupt_capture(self, host: str) -> None:
        """SIGINT: tcpdump writes what it holds, prints its counts and exits."""
        sidecar = self.sidecars[host]
        with engine_call(f"cannot stop the capture of {host}"):
            self.api.kill(sidecar, signal="SIGINT")
        self._stopped.add(sidecar)   # (only if it was running: one that was not is a fault)

    def restart(self, host: str) -> None:
        """Kill a host and start it again: a new network namespace with no memory of its connections.

        Its capture is stopped first (the sidecar lives in the old namespace) and
        a new one started after; the parts are joined in the host's pcap.
        """
        self._restarted = True
        if host in self.sidecars:
            old = self.sidecars[host]
            self._earlier[host] = self.stop_captures((host,))[host]
            with engine_call(f"cannot remove the old capture of {host}"):
                self.api.remove_container(old, force=True)
            self._stopped.discard(old)
        cid = self.containers[host]
        with engine_call(f"cannot restart host {host}"):
            # kill before closing the agent's channel: its EOF would end the agent (and the host) first
            self.api.kill(cid)
            self._stopped.add(cid)
            self.agents.pop(host).close()
            self.api.wait(cid, timeout=int(CAPTURE_STOP_TIMEOUT))
        with engine_call(f"cannot attach to host {host}"):
            self.agents[host] = AgentChannel(self.api, cid, host)
        self._stopped.discard(cid)
        self._boot(host)

    # -- between runs (lab/pool.py) ------------------------------------------
    def park(self) -> None:
        """Leave this lab, reset and pristine, running for a later run: its hosts renamed into the pool,
        our ends of their agents' channels dropped without an EOF."""
        for host, cid in self.containers.items():
            with engine_call(f"cannot park host {host}"):
                self.api.rename(cid, pool.parked_name(self.lab_id, host))
        for channel in self.agents.values():
            channel.detach()

    @classmethod
    def from_parked(cls, client: docker.DockerClient, images: ImageSet, topology: Topology, run_id: str,
                    scenario: Scenario, reaper: engine.Reaper | None, keep: Callable[[ScenarioLab], bool] | None,
                    parked: pool.ParkedLab) -> ScenarioLab | None:
        """A parked lab taken for `scenario`, of its shape; None if another run took it first.

        Raises LabRuntimeError if it cannot be used (a host gone, its network gone, a host not pristine):
        the caller removes it.
        """
        lab = cls(client, images, topology, run_id, scenario, reaper, keep, parked.shape)
        lab.lab_id, lab.labels = parked.lab_id, {**lab.labels, engine.LAB: parked.lab_id}
        first, *rest = sorted(parked.containers)
        try:   # the claim: a rename is atomic, so of two runs only one takes the lab
            client.api.rename(parked.containers[first], f"rstlab-{run_id}-{parked.lab_id}-{first}")
        except engine.SDK_ERRORS:
            return None
        for host in rest:
            with engine_call(f"cannot take the warm host {host}"):
                client.api.rename(parked.containers[host], f"rstlab-{run_id}-{parked.lab_id}-{host}")
        lab.containers = dict(parked.containers)
        with engine_call("cannot find a warm lab's network"):
            lab.network = client.networks.get(parked.network)
            subnet = str(lab.network.attrs["IPAM"]["Config"][0]["Subnet"])
        lab.topology = lab.template.relocated(subnet)
        with engine_call("cannot attach to a warm host"):
            lab.agents = {host: AgentChannel(client.api, cid, host) for host, cid in lab.containers.items()}
        for host, why in lab._not_pristine(("check",)).items():
            raise LabRuntimeError(f"a warm {host} is not as it started: {why}")
        lab.history = ("an earlier run",)
        lab.adopted = True
        return lab

    # -- agents --------------------------------------------------------------
    def agent(self, host: str) -> AgentChannel:
        channel = self.agents.get(host)
        if channel is None:
            raise LabRuntimeError(f"{host}: its peer agent is not connected")
        return channel

    @property
    def addresses(self) -> dict[str, str]:
        """Every topology host's address in this run's subnet."""
        return {name: spec.address for name, spec in self.topology.hosts.items()}

    # -- faults from outside -------------------------------------------------
    def fault(self) -> LabRuntimeError | None:
        """What happened to the lab from outside, if anything: the first of the network gone, a
        container removed, stopped or cut off from the network (the lab's own stops aside).

        One list call and one network inspection; an engine that does not answer is itself the fault.
        """
        try:
            return self._fault()
        except LabRuntimeError as exc:
            return exc

    def _fault(self) -> LabRuntimeError | None:
        if self.network is None or self.network.id is None:
            return None
        self._let_exits_land()
        with engine_call("the engine stopped answering"):
            try:
                network = self.api.inspect_network(self.network.id)
            except docker.errors.NotFound:
                return LabRuntimeError(f"{self.scenario}: the lab network was removed from outside")
            listed = self.api.containers(all=True, filters={"label": [f"{engine.LAB}={self.lab_id}"]})
        found = {c["Id"]: c for c in listed}
        attached = set((network.get("Containers") or {}).keys())
        roles = [(cid, f"host {host}") for host, cid in self.containers.items()]
        roles += [(cid, f"the capture of {host}") for host, cid in self.sidecars.items()]
        for cid, what in roles:
            container = found.get(cid)
            if container is None:
                return LabRuntimeError(f"{what}: its container was removed from outside")
            if container.get("State") != "running" and cid not in self._stopped:
                return LabRuntimeError(f"{what}: {_stopped_words(str(container.get('Status', '')))}")
        for host, cid in self.containers.items():
            if cid not in attached and cid not in self._stopped:
                # a killed container leaves the network a moment before the engine marks it exited
                code = self._exit_code(cid)
                if code is not None:
                    return LabRuntimeError(f"host {host}: {_stopped_words(f'Exited ({code})')}")
                return LabRuntimeError(f"host {host}: disconnected from the lab network from outside")
        return None

    def _exit_code(self, cid: str) -> int | None:
        """The container's exit status if it exits within a moment; None if it keeps running."""
        try:
            return int(self.api.wait(cid, timeout=EXIT_LANDS_TIMEOUT)["StatusCode"])
        except engine.SDK_ERRORS:
            return None

    def _let_exits_land(self) -> None:
        """A container whose output ended is exiting: wait (briefly) until the engine says so too."""
        ended = [self.containers[h] for h, channel in self.agents.items() if channel.closed]
        ended += [self.sidecars[h] for h, stream in self.streams.items() if stream.closed and h in self.sidecars]
        for cid in ended:
            if cid not in self._stopped:
                try:
                    self.api.wait(cid, timeout=EXIT_LANDS_TIMEOUT)
                except engine.SDK_ERRORS:
                    pass   # still running, or gone: the listing says which


def _stopped_words(status: str) -> str:
    """Docker's "Exited (137) 2 seconds ago" said as what happened to the container."""
    code = status.partition("(")[2].partition(")")[0]
    if code == "137":
        return "killed from outside (SIGKILL, exit 137)"
    if code:
        return f"stopped from outside (exit {code})"
    return f"not running ({status or 'no status'})"
