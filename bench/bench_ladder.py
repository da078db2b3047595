"""How long the cross-point ladder and the merged, annotated pcapng take on a long scenario.

Synthetic but shaped like the lab's captures: N segments of one bulk transfer
client -> server, each seen at the client (out), the router (in, out) and the
server (in), 20 us apart; every 100th segment is a RST. Prints the time of
matching the journeys, building the ladder, and drawing it three ways.

    python bench/bench_ladder.py [N]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.report import html, pages
from orchestrator.report.console import ladder_lines
from orchestrator.report.journey import match_journeys
from orchestrator.report.ladder import build_ladder


def document(n: int) -> dict:
    points: dict[str, list[dict]] = {"client": [], "router": [], "server": []}
    for k in range(n):
        t = k * 0.001
        flags = "R" if k % 100 == 99 else "P."
        base = {"src": "client", "dst": "server", "sport": 40000, "dport": 80, "flags": flags,
                "seq": 1 + 100 * k, "ack": 1, "relative": True, "len": 0 if flags == "R" else 100}
        points["client"].append({**base, "t": t, "dir": "out"})
        points["router"] += [{**base, "t": t + 2e-5, "dir": "in"}, {**base, "t": t + 3e-5, "dir": "out"}]
        points["server"].append({**base, "t": t + 5e-5, "dir": "in"})
    hosts = {"client": {"address": "10.0.0.10"}, "router": {"address": "10.0.0.200"},
             "server": {"address": "10.0.0.70"}}
    return {"scenario": "bench", "hosts": hosts, "packets": points, "events": []}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    doc = document(n)
    records = sum(len(v) for v in doc["packets"].values())
    t0 = time.perf_counter()
    journeys = match_journeys(doc["packets"])
    t1 = time.perf_counter()
    ladder = build_ladder(doc)
    t2 = time.perf_counter()
    html.svg_ladder(ladder), pages.mermaid(ladder), ladder_lines(ladder, 120)
    t3 = time.perf_counter()
    assert len(journeys) == n
    print(f"{n} segments, {records} records at 3 points: journeys {t1 - t0:.2f} s "
          f"({records / (t1 - t0):,.0f} records/s), ladder {t2 - t1:.2f} s, three drawings {t3 - t2:.3f} s "
          f"({len(ladder.arrows)} arrows)")


if __name__ == "__main__":
    main()
