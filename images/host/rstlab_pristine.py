"""RST Lab peer agent: whether this host is as a fresh one, so that the next scenario may run on it.

Standard library only; imported by rstlab_peer.py. A run reuses a finished
scenario's hosts for the next scenario of the same shape only where nothing
the first one did can show in the second (issue 19):

  baseline()  taken at start, before the agent says it is ready (only when the
              orchestrator asks for it: RSTLAB_BASELINE=1): the namespace's
              configuration, the files in its tmpfs folders, its ICMP count.
  abort(...)  at the end of a scenario, on every host of the lab at once (its
              captures stopped): closes every socket of the agent's table, an open
              connection with a RST, so that no FIN leaves a TIME_WAIT behind.
  reset(...)  then: empties the caches a fresh namespace starts without
              (neighbours, TCP metrics, conntrack), removes the files the
              scenario left, puts back the packet filter as it was, and says whether the
              host is pristine, or why not.

A host is pristine when no socket is left but the engine's (not one in TIME_WAIT), no
program a step started is running, no command of the agent is still going,
it sent no ICMP message since it started (the kernel's per-peer ICMP rate limit
would remember it), and its configuration (iptables, routes, rules, addresses,
links, qdiscs, cached route exceptions) reads as it did at start. Sysctls need
no check: /proc/sys is read-only in a lab container.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from typing import Any, Iterable

# tmpfs folders a scenario writes to (gates, the files it brings): what was not there at start goes
TMPFS = ("/tmp", "/run")
# one `ip` for every table that a step with NET_ADMIN could change, and the route exceptions
# (PMTU, redirects) the kernel caches, which `ip route flush cache` cannot clear (/proc/sys is read-only)
IP_SHOW = "route show table all\nroute show cache\nrule show\naddr show\nlink show\n"
IP_FLUSH = "neigh flush all\ntcp_metrics flush all\n"
TCP_LISTEN, TCP_CLOSE = 10, 7
TCP_STATE_NAMES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
                   6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
                   12: "SYN_RECV"}
THREADS_SETTLE = 0.5   # s: a command's thread ends a moment after its answer was written


def _run(argv: list[str], stdin: str = "") -> str:
    done = subprocess.run(argv, input=stdin.encode(), capture_output=True, timeout=10, check=False)
    return done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")


def normal_iptables(text: str) -> list[str]:
    """iptables-save without its comment lines and packet counters, which change with any traffic, and
    without tables that hold no rule and only accept: iptables makes a table when a rule is first added
    and leaves it when the rule goes, but an empty table that accepts everything changes nothing."""
    lines = [re.sub(r"\s*\[\d+:\d+\]$", "", line) for line in text.splitlines()
             if line.strip() and not line.startswith("#")]
    out: list[str] = []
    table: list[str] = []
    for line in lines:
        table.append(line)
        if line == "COMMIT":
            if any(not (t.startswith("*") or t == "COMMIT" or (t.startswith(":") and t.endswith(" ACCEPT")))
                   for t in table):
                out += table
            table = []
    return out + table


IPTABLES_TABLES = {"filter", "nat", "mangle", "raw", "security"}   # iptables-nft's, which iptables-save shows


def normal_nft(text: str) -> list[str]:
    """`nft list ruleset` without its counters' numbers, and without iptables' own tables (compared as
    iptables-save shows them: nft shows the base chains iptables-restore makes, which change nothing)."""
    out: list[str] = []
    keep = True
    for line in text.splitlines():
        if line.startswith("table "):
            words = line.split()
            keep = not (len(words) > 2 and words[1] == "ip" and words[2] in IPTABLES_TABLES)
        if keep and line.strip():
            out.append(re.sub(r"counter packets \d+ bytes \d+", "counter", line.rstrip()))
    return out


def configuration(saved: str | None = None) -> dict[str, list[str]]:
    """What a step with NET_ADMIN could change in this namespace, as text to compare (`saved`: iptables-save's).
    nft's view holds what iptables-save does not show: tables a step made with `nft` itself."""
    return {"iptables": normal_iptables(_run(["iptables-save"]) if saved is None else saved),
            "nft": normal_nft(_run(["nft", "list", "ruleset"])),
            "ip": [line.rstrip() for line in _run(["ip", "-o", "-4", "-batch", "-"], IP_SHOW).splitlines()],
            "tc": [line.rstrip() for line in _run(["tc", "qdisc", "show"]).splitlines()]}


def files(roots: Iterable[str] = TMPFS) -> list[str]:
    """Every path under the tmpfs folders."""
    found = []
    for root in roots:
        for folder, dirs, names in os.walk(root):
            found += [os.path.join(folder, n) for n in dirs + names]
    return sorted(found)


# conntrack's per-namespace statistics that count trouble: no flush resets them, and a scenario may read
# them (`conntrack -S`: invalid), so a host where any moved is not handed on
CONNTRACK_TROUBLE = ("invalid", "insert_failed", "drop", "early_drop", "icmp_error")


def conntrack_trouble(path: str = "/proc/net/stat/nf_conntrack") -> dict[str, int]:
    """CONNTRACK_TROUBLE summed over the CPUs ({} where conntrack is not loaded)."""
    try:
        with open(path) as f:
            header, *rows = [line.split() for line in f if line.strip()]
    except (OSError, ValueError):
        return {}
    return {name: sum(int(row[i], 16) for row in rows) for i, name in enumerate(header) if name in CONNTRACK_TROUBLE}


def icmp_out() -> int:
    """ICMP messages this namespace sent (Icmp OutMsgs of /proc/net/snmp)."""
    with open("/proc/net/snmp") as f:
        rows = [line.split() for line in f if line.startswith("Icmp:")]
    return int(dict(zip(rows[0][1:], rows[1][1:]))["OutMsgs"])


def baseline() -> dict[str, Any]:
    """The host as it starts. Its sockets are the engine's own (Docker's DNS listens on 127.0.0.11)."""
    saved = _run(["iptables-save"])
    config = configuration(saved)
    return {"configuration": config, "iptables": saved, "files": files(), "icmp_out": icmp_out(),
            "sockets": other_sockets(_tcp_tables()), "conntrack": conntrack_trouble()}


def differences(before: dict[str, list[str]], now: dict[str, list[str]]) -> list[str]:
    """What reads differently now, a line each: the first line that differs in each part."""
    out = []
    for part in sorted(set(before) | set(now)):
        old, new = before.get(part, []), now.get(part, [])
        if old != new:
            added = [line for line in new if line not in old]
            gone = [line for line in old if line not in new]
            what = f"+ {added[0]}" if added else f"- {gone[0]}" if gone else "reordered"
            out.append(f"{part} changed: {what.strip()[:160]}")
    return out


def other_sockets(tables: Iterable[str]) -> list[str]:
    """Rows of /proc/net/tcp{,6} as 'ADDRESS:PORT > ADDRESS:PORT STATE' (in the kernel's hex)."""
    out = []
    for text in tables:
        for line in text.splitlines()[1:]:
            f = line.split()
            if len(f) > 3:
                out.append(f"{f[1]} > {f[2]} {TCP_STATE_NAMES.get(int(f[3], 16), f[3])}")
    return out


def _tcp_tables() -> list[str]:
    texts = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(path):
            with open(path) as f:
                texts.append(f.read())
    return texts


def _quiet_threads() -> bool:
    """No command of the agent but this one is still going (its reader, this thread)."""
    deadline = time.monotonic() + THREADS_SETTLE
    while threading.active_count() > 2:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def abort(table: Any) -> dict[str, Any]:
    """First phase, on every host of the lab at once: close every socket of the agent's table, a
    connection with a RST (SO_LINGER {1, 0}: no FIN, no TIME_WAIT), so that the peers' sockets end too.
    Not while a command still runs on one (closing a descriptor a blocked call holds does nothing)."""
    if not _quiet_threads():
        return {"aborted": 0, "busy": threading.active_count() - 2}
    return {"aborted": table.close_all(abort=True), "busy": 0}


def restore_rules(saved: str) -> None:
    """The packet filter as it was at start: every table emptied, nft's own ones (a step may add one with
    `nft`) and iptables' alike, then iptables' put back from what iptables-save said at start."""
    _run(["nft", "flush", "ruleset"])
    _run(["iptables-restore"], saved)


def reset(start: dict[str, Any] | None, processes: list[str]) -> dict[str, Any]:
    """Second phase, after `abort` on every host: make this host as it was at `start`, or say why it
    cannot be (`why`, a line each)."""
    if start is None:
        return {"pristine": False, "why": ["no baseline was taken at start (RSTLAB_BASELINE)"]}
    why = []
    if not _quiet_threads():
        why.append(f"{threading.active_count() - 2} command(s) of the agent still going")
    if processes:
        why.append(f"a program is still running: {processes[0]}")
    if icmp_out() != start["icmp_out"]:
        why.append("it sent ICMP (the kernel's per-peer rate limit would remember)")
    trouble = {k: v - start["conntrack"].get(k, 0) for k, v in conntrack_trouble().items()
               if v != start["conntrack"].get(k, 0)}
    if trouble:
        why.append("conntrack counted " + ", ".join(f"{v} {k}" for k, v in trouble.items())
                   + " (its statistics cannot be reset, and a scenario may read them)")
    left = [row for row in other_sockets(_tcp_tables()) if row not in start["sockets"]]
    if left:
        why.append(f"socket(s) the kernel still holds: {', '.join(left[:3])}")
    if why:
        return {"pristine": False, "why": why}
    _run(["ip", "-batch", "-"], IP_FLUSH)
    _run(["conntrack", "-F"])
    kept = set(start["files"])
    for path in sorted(set(files()) - kept, key=len):   # the folders a scenario made before what is in them
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
    now = configuration()
    rules = ("iptables", "nft")
    if any(now[part] != start["configuration"][part] for part in rules):   # a step's rules: put back what was
        restore_rules(start["iptables"])
        now = configuration()
    why = differences(start["configuration"], now)
    gone = sorted(kept - set(files()))
    if gone:
        why.append(f"file gone since start: {gone[0]}")
    return {"pristine": not why, "why": why}
