"""Where a RST came from: the capture point and the IP-level fingerprint of its sender.

A RST is forged on the path when the capture point shows the capture host
sent it in another host's name, or when its IP header does not fit the
packets its claimed sender sent otherwise:

* TTL: a middlebox is a different number of hops from the capture point than
  the host whose address it uses (iptables REJECT writes its own default TTL).
* IP ID: IP ID counters never go backwards; a RST whose ID lies behind the run
  of its sender's own packets on the connection, or that continues the run of
  RSTs "from" another address, came from another box's counter.
* DF and window are printed beside that evidence but never decide alone:
  genuine stacks differ in both (Linux sends a no-socket RST with DF and
  window 0, FreeBSD without DF).

A genuine RST is never called forged: where the claimed sender sent nothing
else, the TTL cannot be compared and that is said instead.
"""
from __future__ import annotations

from itertools import pairwise

from ..connections import TH_ACK
from .context import Context, Profile
from .facts import Facts

__all__ = ["forged_evidence", "later_forged", "sent_by_endpoint", "uncomparable"]

ID_RUN_GAP = 64           # a counter's consecutive packets are at most this far apart


def _ids_behind(new: int, old: int) -> bool:
    """A 16-bit counter value `new` lies behind `old` (it went backwards)."""
    return 0 < ((old - new) & 0xFFFF) < 0x8000


def forged_evidence(f: Facts, ctx: Context) -> list[str]:
    """Why a middlebox, not the claimed sender, sent this RST ([] when nothing says so)."""
    why = _capture_point(f, ctx)
    if why:
        return [why]
    rst = f.rst
    prof = ctx.profile(f.x[0], rst.direction)
    found: list[str] = []
    if rst.ttl is not None and prof.ttls and rst.ttl not in prof.ttls:
        seen = ", ".join(str(t) for t in sorted(prof.ttls))
        found.append(f"the RST arrived with TTL {rst.ttl}, while {f.x[0]}'s {prof.packets} other "
                     f"packet{'s' if prof.packets != 1 else ''} arrive with TTL {seen}: it was sent "
                     "from a different number of hops away")
    found.extend(_ip_id_evidence(f, ctx))
    if found:
        found.extend(_supporting(f, prof))
    return found


def _capture_point(f: Facts, ctx: Context) -> str:
    """Evidence from where the capture was taken: the capture host sent it in another's name."""
    if f.origin != "here":
        return ""
    if f.conn.forwarded:
        return ("this capture host forwarded the connection's other packets but sent the "
                f"RST itself, with {f.x[0]} as its source")
    _own, transit = ctx.addresses()
    if f.x[0] in transit:
        return (f"this capture host routes traffic for {f.x[0]} (it forwarded its packets) "
                "but sent the RST itself, in its name")
    if ctx.user_local and f.x[0] not in ctx.user_local:
        return (f"the RST left the capture host, whose addresses are "
                f"{', '.join(sorted(ctx.user_local))}, with {f.x[0]} as its source")
    return ""


def _ip_id_evidence(f: Facts, ctx: Context) -> list[str]:
    rst = f.rst
    if not rst.ip_id:
        return []              # 0: Linux's no-socket RSTs and iptables' alike; nothing to compare
    found: list[str] = []
    own = [p.ip_id for p in f.xs if p.ip_id]
    run = len(own) >= 2 and all(0 < (b - a) & 0xFFFF <= ID_RUN_GAP for a, b in pairwise(own))
    if run and rst.bits & TH_ACK and _ids_behind(rst.ip_id, own[-1]):
        found.append(f"its IP ID {rst.ip_id:#06x} lies behind the run of {f.x[0]}'s own packets on "
                     f"this connection (last {own[-1]:#06x}): a counter does not go backwards")
    other = ctx.shared_counter(rst)
    if other is not None:
        found.append(f"its IP ID {rst.ip_id:#06x} continues the run of a RST 'from' {other.src} "
                     f"(IP ID {other.ip_id or 0:#06x}): one box's counter sent both")
    return found


def _supporting(f: Facts, prof: Profile) -> list[str]:
    """DF and window differences, worth printing once something else shows a forgery."""
    rst = f.rst
    out: list[str] = []
    if rst.df is not None and prof.df and rst.df not in prof.df:
        out.append(f"DF is {'set' if rst.df else 'clear'} on the RST and "
                   f"{'clear' if rst.df else 'set'} on {f.x[0]}'s other packets")
    return out


def sent_by_endpoint(f: Facts, ctx: Context) -> str:
    """Evidence that the endpoint itself (not a middlebox) sent the RST, or ''."""
    if f.origin == "here":
        if f.x[0] in ctx.user_local:
            return f"the capture was taken on {f.x[0]} and the RST left it"
        own, _ = ctx.addresses()
        if f.x[0] in own:
            return (f"the RST left the capture host, which also sends {f.x[0]}'s ordinary packets: "
                    f"the capture was taken on {f.x[0]} itself")
    ttl = f.rst.ttl
    if ttl is not None and ttl in ctx.profile(f.x[0], f.rst.direction).ttls:
        return f"the RST's TTL ({ttl}) matches {f.x[0]}'s other packets"
    return ""


def uncomparable(f: Facts, ctx: Context) -> str:
    """A note when the RST's TTL has nothing to be compared with, or ''."""
    if f.rst.ttl is None or f.origin == "here" or ctx.profile(f.x[0], f.rst.direction).packets:
        return ""
    return (f"{f.x[0]} sent no other packet of a connection this capture saw both ways, so the "
            f"RST's TTL ({f.rst.ttl}) cannot be compared with its own stack's")


def later_forged(f: Facts) -> list[str]:
    """The RSTs after the first whose TTL does not fit the packets of the end they name: sent in its name
    by a box on the path (a stateful firewall answering for a flow it saw closed). Only an end whose other
    packets all arrive with one TTL is judged, and the first RST's sender only when that RST fits it."""
    pk = f.conn.pk
    gone = f.conn.gone()        # a flood's repeats let go (facts.Elided): counted by TTL
    notes: list[str] = []
    for end in (f.x, f.y):
        mine = [p for p in pk if (p.src, p.sport) == end]
        ttls = {p.ttl for p in mine if not p.is_rst}
        if len(ttls) != 1 or None in ttls or (end == f.x and f.rst.ttl not in ttls):
            continue
        (ttl,) = ttls
        odd = [p for p in mine if p.is_rst and p is not f.rst and p.ttl is not None and p.ttl != ttl]
        unseen = {t: n for g in gone for t, n in g.rst_ttls.get(end, {}).items() if t is not None and t != ttl}
        if odd or unseen:
            ids = ", ".join(f"0x{p.ip_id:04x}" for p in odd[:4] if p.ip_id is not None)
            theirs = ", ".join(str(t) for t in sorted({p.ttl for p in odd if p.ttl is not None} | set(unseen)))
            n = len(odd) + sum(unseen.values())
            notes.append(f"{n} later RST{'s' if n > 1 else ''} in {end[0]}'s name arrived with TTL {theirs}"
                         + (f" (IP ID {ids})" if ids else "") + f", while its other packets arrive with TTL {ttl}: "
                         f"sent in its name by a box on the path")
    return notes
