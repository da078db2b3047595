"""The scenario model: pure data, validated as it is built.

A scenario says which hosts take part, the steps they take (peer-agent calls,
waits, restarts) and what must be seen: packets at each capture point, what
the applications saw, and kernel counter deltas. Nothing here knows Docker,
files or rich; `scenario_from_mapping` turns an already parsed document into
a `Scenario` or raises `ScenarioFileError` naming the field.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from .errors import ScenarioFileError
from .programs import BuildSource, HostFile, ReadFile, _list, _mapping, parse_builds, parse_files

# The peer agent's calls (images/host/rstlab_peer.py CALLS; a unit test holds the two
# together): those a scenario's steps may make, and those only the runner makes.
AGENT_CALLS = frozenset({
    "socket", "setsockopt", "bind", "listen", "accept", "connect", "send", "recv",
    "shutdown", "close", "shell", "exec", "sleep",
    "wait_socket", "wait_counter", "wait_blocked", "wait_conntrack",
})
RUNNER_CALLS = frozenset({"counters", "put_file", "quiet", "reset", "sockets"})
STEP_KEYS = frozenset({"host", "call", "background", "label", "note"})
FLAG_PATTERN = re.compile(r"^(none|\*|[FSRPUEW]*\.?)$")
DEFAULT_SETTLE = 0.3
DEFAULT_TIMEOUT = 60.0   # seconds a scenario's steps may take in all; a single call at most 30
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True)
class Range:
    """A closed interval of numbers; `lo`/`hi` None means unbounded."""

    lo: float | None
    hi: float | None

    def __contains__(self, value: float) -> bool:
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)

    def __str__(self) -> str:
        if self.lo == self.hi:
            return f"{self.lo:g}"
        lo = "" if self.lo is None else f"{self.lo:g}"
        hi = "" if self.hi is None else f"{self.hi:g}"
        return f"{lo}..{hi}"

    @classmethod
    def parse(cls, text: Any) -> Range:
        """`1`, `0.8..1.3`, `..0.1`, `2..`, `<0.1`, `>=2`."""
        s = str(text).strip()
        try:
            if ".." in s:
                lo, hi = s.split("..", 1)
                return cls(float(lo) if lo else None, float(hi) if hi else None)
            if s.startswith(("<=", "<")):
                return cls(None, float(s.lstrip("<=")))
            if s.startswith((">=", ">")):
                return cls(float(s.lstrip(">=")), None)
            v = float(s)
            return cls(v, v)
        except ValueError:
            raise ValueError(f"{s!r} is not a number or range like 0.8..1.3") from None


@dataclass(frozen=True)
class PacketPattern:
    """One expected segment: `SRC > DST FLAGS key=value…`, e.g. `server > client R. seq=0 ack=1`."""

    text: str
    src: str
    dst: str
    flags: str
    seq: int | None = None
    ack: int | None = None
    length: Range | None = None
    gap: Range | None = None
    at: Range | None = None
    direction: str | None = None
    port: int | None = None        # either end's TCP port: tells apart connections between the same hosts
    ttl: int | None = None         # the IP header as captured: TTL, IP ID, don't-fragment bit
    ip_id: int | None = None
    df: bool | None = None

    @classmethod
    def parse(cls, text: str, hosts: Sequence[str]) -> PacketPattern:
        parts = str(text).split()
        if len(parts) < 4 or parts[1] != ">":
            raise ValueError(f"{text!r}: expected 'SRC > DST FLAGS [key=value…]'")
        src, _, dst, flags, *rest = parts
        for who in (src, dst):
            if who != "*" and who not in hosts:
                raise ValueError(f"{text!r}: unknown host {who!r} (hosts: {', '.join(hosts)})")
        if not FLAG_PATTERN.match(flags):
            raise ValueError(f"{text!r}: flags {flags!r} are not tcpdump flags like S, S., P., F., R, R.")
        values: dict[str, Any] = {}
        for item in rest:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"{text!r}: {item!r} is not key=value")
            try:
                if key in ("seq", "ack", "port", "ttl"):
                    values[key] = int(value)
                elif key == "ipid":
                    values["ip_id"] = int(value, 0)
                elif key == "df":
                    if value not in ("0", "1"):
                        raise ValueError("df is 0 or 1")
                    values["df"] = value == "1"
                elif key in ("len", "gap", "at"):
                    values["length" if key == "len" else key] = Range.parse(value)
                elif key == "dir":
                    if value not in ("in", "out"):
                        raise ValueError("dir is in or out")
                    values["direction"] = value
                else:
                    raise ValueError(f"unknown key {key!r} (seq, ack, len, gap, at, dir, port, ttl, ipid, df)")
            except ValueError as exc:
                raise ValueError(f"{text!r}: {exc}") from None
        return cls(text=str(text), src=src, dst=dst, flags=flags, **values)


@dataclass(frozen=True)
class CaptureExpectation:
    """What one capture point must show: an ordered sequence, maybe exact, and what must be absent."""

    point: str
    sequence: tuple[PacketPattern, ...] = ()
    exact: bool = False
    absent: tuple[PacketPattern, ...] = ()


@dataclass(frozen=True)
class TextMatch:
    """What a program's output must hold: `contains` a text, match a `regex` (search), or `equals` it (stripped)."""

    how: str
    text: str

    HOWS = ("contains", "regex", "equals")

    def matches(self, actual: str) -> bool:
        if self.how == "contains":
            return self.text in actual
        if self.how == "regex":
            return re.search(self.text, actual, re.MULTILINE) is not None
        return actual.strip() == self.text.strip()

    def __str__(self) -> str:
        return f"{self.how} {self.text!r}"

    @classmethod
    def parse(cls, where: str, raw: Any) -> TextMatch:
        """`{contains: TEXT}`, `{regex: PATTERN}` or `{equals: TEXT}`."""
        if not isinstance(raw, Mapping) or len(raw) != 1 or next(iter(raw)) not in cls.HOWS:
            raise ValueError(f"{where}: expected one of {{contains: TEXT}}, {{regex: PATTERN}}, {{equals: TEXT}}")
        how, text = next(iter(raw.items()))
        if how == "regex":
            try:
                re.compile(str(text))
            except re.error as exc:
                raise ValueError(f"{where}.regex: {exc}") from None
        return cls(str(how), str(text))


@dataclass(frozen=True)
class AppExpectation:
    """One socket call a host's application must have seen, in order among that host's calls."""

    host: str
    call: str
    sock: str | None = None
    errno: str | None = None       # an errno name, or "ok" for success
    result: Any = None             # a value the call's result must equal (or contain, for mappings)
    elapsed: Range | None = None   # seconds the call took
    stdout: TextMatch | None = None   # a program's output (exec, shell)
    stderr: TextMatch | None = None


@dataclass(frozen=True)
class CounterExpectation:
    """A kernel counter delta (nstat name) on a host over the scenario."""

    host: str
    counter: str
    value: Range


# enum sk_rst_reason (include/net/rstreason.h; this list is 6.18's), as tcp:tcp_send_reset prints it
RST_REASONS = frozenset({
    "NOT_SPECIFIED", "NO_SOCKET", "TCP_INVALID_ACK_SEQUENCE", "TCP_RFC7323_PAWS",
    "TCP_TOO_OLD_ACK", "TCP_ACK_UNSENT_DATA", "TCP_FLAGS", "TCP_OLD_ACK",
    "TCP_ABORT_ON_DATA", "TCP_TIMEWAIT_SOCKET", "INVALID_SYN", "TCP_ABORT_ON_CLOSE", "TCP_ABORT_ON_LINGER",
    "TCP_ABORT_ON_MEMORY", "TCP_STATE", "TCP_KEEPALIVE_TIMEOUT", "TCP_DISCONNECT_WITH_DATA",
    "MPTCP_RST_EUNSPEC", "MPTCP_RST_EMPTCP", "MPTCP_RST_ERESOURCE", "MPTCP_RST_EPROHIBIT",
    "MPTCP_RST_EWQ2BIG", "MPTCP_RST_EBADPERF", "MPTCP_RST_EMIDDLEBOX", "ERROR",
})


@dataclass(frozen=True)
class ReasonExpectation:
    """The exact multiset of reasons (tcp:tcp_send_reset) for the RSTs one host's TCP sends."""

    host: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class CallStep:
    """A peer-agent call on a host; in the background it is awaited at a `wait` step or at the end."""

    host: str
    call: str
    args: Mapping[str, Any] = field(default_factory=dict)
    background: bool = False
    label: str | None = None
    kind: Literal["call"] = field(default="call", init=False)


@dataclass(frozen=True)
class SleepStep:
    """A pause of the whole scenario."""

    seconds: float
    kind: Literal["sleep"] = field(default="sleep", init=False)


@dataclass(frozen=True)
class WaitStep:
    """Wait for the background calls labelled `label` (None: every one still going)."""

    label: str | None = None
    kind: Literal["wait"] = field(default="wait", init=False)


@dataclass(frozen=True)
class RestartStep:
    """Kill a host and start it again: a fresh network namespace, same address."""

    host: str
    kind: Literal["restart"] = field(default="restart", init=False)


Step = CallStep | SleepStep | WaitStep | RestartStep
"""One thing the lab does, told apart by its class (or its `kind`)."""


@dataclass(frozen=True)
class Scenario:
    """A reset case: who takes part, what they do, and what must be observed."""

    id: str
    title: str
    claim: str
    explanation: str
    hosts: tuple[str, ...]
    capture: tuple[str, ...]
    steps: tuple[Step, ...]
    packets: tuple[CaptureExpectation, ...] = ()
    app: tuple[AppExpectation, ...] = ()
    counters: tuple[CounterExpectation, ...] = ()
    reasons: tuple[ReasonExpectation, ...] = ()
    article_holds: bool = True
    observed: str = ""
    fix: str = ""                  # what fixes it: the remedy, in words (pages show it)
    settle: float = DEFAULT_SETTLE
    timeout: float = DEFAULT_TIMEOUT
    sysctls: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    files: tuple[HostFile, ...] = ()
    builds: tuple[BuildSource, ...] = ()
    source: str = ""


TOP_KEYS = frozenset({
    "id", "title", "claim", "explanation", "hosts", "capture", "steps", "expect",
    "article_holds", "observed", "fix", "settle", "timeout", "sysctls", "files", "build",
})
EXPECT_KEYS = frozenset({"packets", "app", "counters", "reasons"})
CAPTURE_KEYS = frozenset({"sequence", "exact", "absent"})
APP_KEYS = frozenset({"call", "sock", "errno", "result", "elapsed", "stdout", "stderr"})


def _check_keys(where: str, data: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _step(where: str, raw: Any, hosts: Sequence[str]) -> Step:
    raw = _mapping(where, raw)
    if set(raw) == {"sleep"}:
        return SleepStep(seconds=float(raw["sleep"]))
    if set(raw) == {"restart"}:
        if raw["restart"] not in hosts:
            raise ValueError(f"{where}.restart: unknown host {raw['restart']!r} (hosts: {', '.join(hosts)})")
        return RestartStep(host=str(raw["restart"]))
    if set(raw) == {"wait"}:
        return WaitStep(label=None if raw["wait"] in (None, "all") else str(raw["wait"]))
    if "host" not in raw or "call" not in raw:
        raise ValueError(f"{where}: a step needs host and call (or is {{sleep: S}}, {{wait: LABEL}} or {{restart: HOST}})")
    if raw["host"] not in hosts:
        raise ValueError(f"{where}.host: unknown host {raw['host']!r} (hosts: {', '.join(hosts)})")
    if raw["call"] not in AGENT_CALLS:
        raise ValueError(f"{where}.call: unknown call {raw['call']!r} (calls: {', '.join(sorted(AGENT_CALLS))})")
    args = {k: v for k, v in raw.items() if k not in STEP_KEYS}
    if "to" in args:
        target, _, port = str(args.pop("to")).rpartition(":")
        if target not in hosts or not port.isdigit():
            raise ValueError(f"{where}.to: expected HOST:PORT with a scenario host, got {raw['to']!r}")
        args["host"], args["port"] = target, int(port)
    return CallStep(host=str(raw["host"]), call=str(raw["call"]), args=args,
                background=bool(raw.get("background", False)),
                label=str(raw["label"]) if raw.get("label") is not None else None)


def _packets(where: str, raw: Any, hosts: Sequence[str], capture: Sequence[str]) -> list[CaptureExpectation]:
    out = []
    for point, spec in _mapping(where, raw).items():
        here = f"{where}.{point}"
        if point not in capture:
            raise ValueError(f"{here}: {point!r} is not a capture point (capture: {', '.join(capture)})")
        if isinstance(spec, list):
            spec = {"sequence": spec}
        spec = _mapping(here, spec)
        _check_keys(here, spec, CAPTURE_KEYS)
        seq = [PacketPattern.parse(p, hosts) for p in _list(f"{here}.sequence", spec.get("sequence", []))]
        absent = [PacketPattern.parse(p, hosts) for p in _list(f"{here}.absent", spec.get("absent", []))]
        out.append(CaptureExpectation(point, tuple(seq), bool(spec.get("exact", False)), tuple(absent)))
    return out


def _app(where: str, raw: Any, hosts: Sequence[str]) -> list[AppExpectation]:
    out = []
    for host, calls in _mapping(where, raw).items():
        if host not in hosts:
            raise ValueError(f"{where}.{host}: unknown host {host!r} (hosts: {', '.join(hosts)})")
        for i, item in enumerate(_list(f"{where}.{host}", calls)):
            here = f"{where}.{host}[{i}]"
            item = _mapping(here, item)
            _check_keys(here, item, APP_KEYS)
            if "call" not in item:
                raise ValueError(f"{here}: missing field 'call'")
            out.append(AppExpectation(
                host=host, call=str(item["call"]),
                sock=None if item.get("sock") is None else str(item["sock"]),
                errno=None if item.get("errno") is None else str(item["errno"]),
                result=item.get("result"),
                elapsed=None if item.get("elapsed") is None else Range.parse(item["elapsed"]),
                stdout=None if item.get("stdout") is None else TextMatch.parse(f"{here}.stdout", item["stdout"]),
                stderr=None if item.get("stderr") is None else TextMatch.parse(f"{here}.stderr", item["stderr"]),
            ))
    return out


def _counters(where: str, raw: Any, hosts: Sequence[str]) -> list[CounterExpectation]:
    out = []
    for host, counters in _mapping(where, raw).items():
        if host not in hosts:
            raise ValueError(f"{where}.{host}: unknown host {host!r} (hosts: {', '.join(hosts)})")
        for name, value in _mapping(f"{where}.{host}", counters).items():
            out.append(CounterExpectation(host, str(name), Range.parse(value)))
    return out


def id_from_source(source: str) -> str:
    """A scenario's id when its file gives none: the file's name (its folder's for `scenario.yaml`), as a slug."""
    parts = re.split(r"[\\/]", source)
    stem = re.sub(r"\.ya?ml$", "", parts[-1])
    if stem == "scenario" and len(parts) > 1 and parts[-2] not in ("", "."):
        stem = parts[-2]
    return re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-") or "scenario"


def _reasons(where: str, raw: Any, hosts: Sequence[str]) -> list[ReasonExpectation]:
    out = []
    for host, reasons in _mapping(where, raw).items():
        if host not in hosts:
            raise ValueError(f"{where}.{host}: unknown host {host!r} (hosts: {', '.join(hosts)})")
        names = [str(r) for r in _list(f"{where}.{host}", reasons if reasons is not None else [])]
        for name in names:
            if name not in RST_REASONS:
                raise ValueError(f"{where}.{host}: {name!r} is not a kernel RST reason (enum sk_rst_reason: "
                                 "NO_SOCKET, TCP_ABORT_ON_CLOSE, TCP_STATE, TCP_TIMEWAIT_SOCKET, ...)")
        out.append(ReasonExpectation(str(host), tuple(sorted(names))))
    return out


def scenario_from_mapping(doc: Any, source: str, known_hosts: Sequence[str],
                          read_file: ReadFile | None = None) -> Scenario:
    """Validate a parsed scenario document against the topology's host names.

    `read_file` fetches a file named under `files:` (relative to the scenario file).
    """
    try:
        doc = _mapping("scenario", doc)
        _check_keys("scenario", doc, TOP_KEYS)
        for key in ("hosts", "steps"):
            if key not in doc:
                raise ValueError(f"missing field {key!r}")
        scenario_id = str(doc["id"]) if "id" in doc else id_from_source(source)
        if not ID_PATTERN.fullmatch(scenario_id):
            raise ValueError(f"id: {scenario_id!r} must be lowercase letters, digits and dashes")
        hosts = [str(h) for h in _list("hosts", doc["hosts"])]
        for h in hosts:
            if h not in known_hosts:
                raise ValueError(f"hosts: unknown host {h!r} (the topology has {', '.join(known_hosts)})")
        capture = [str(h) for h in _list("capture", doc.get("capture", hosts))]
        for h in capture:
            if h not in hosts:
                raise ValueError(f"capture: {h!r} is not one of the scenario's hosts")
        steps = [_step(f"steps[{i}]", s, hosts) for i, s in enumerate(_list("steps", doc["steps"]))]
        sysctls = {}
        for host, values in _mapping("sysctls", doc.get("sysctls", {})).items():
            if host not in hosts:
                raise ValueError(f"sysctls.{host}: {host!r} is not one of the scenario's hosts")
            sysctls[host] = {str(k): str(v) for k, v in _mapping(f"sysctls.{host}", values).items()}
        files = parse_files(doc.get("files", {}), hosts, read_file)
        builds = parse_builds(doc.get("build", {}), hosts, read_file)
        expect = _mapping("expect", doc.get("expect", {}))
        _check_keys("expect", expect, EXPECT_KEYS)
        return Scenario(
            id=scenario_id,
            title=str(doc.get("title") or scenario_id),
            claim=str(doc.get("claim") or "").strip(),
            explanation=str(doc.get("explanation", "")).strip(),
            hosts=tuple(hosts),
            capture=tuple(capture),
            steps=tuple(steps),
            packets=tuple(_packets("expect.packets", expect.get("packets", {}), hosts, capture)),
            app=tuple(_app("expect.app", expect.get("app", {}), hosts)),
            counters=tuple(_counters("expect.counters", expect.get("counters", {}), hosts)),
            reasons=tuple(_reasons("expect.reasons", expect.get("reasons", {}), hosts)),
            article_holds=bool(doc.get("article_holds", True)),
            observed=str(doc.get("observed", "")).strip(),
            fix=str(doc.get("fix", "")).strip(),
            settle=float(doc.get("settle", DEFAULT_SETTLE)),
            timeout=float(doc.get("timeout", DEFAULT_TIMEOUT)),
            sysctls=sysctls,
            files=tuple(files),
            builds=tuple(builds),
            source=source,
        )
    except ValueError as exc:
        raise ScenarioFileError(f"{source}: {exc}") from None
