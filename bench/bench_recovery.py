"""Break-glass recovery: how long from `start recover` until every node serves its new certificate.

Each round starts a lab whose CA and every leaf expired 12 hours ago (core.lab's `issued_at`
and `ca_lifetime`), so every verify-full client is refused, then times the operator's two
commands as subprocesses: `certrotate start recover` and `certrotate advance --yes`. Every
node is then checked from the outside: it serves a certificate of the new CA. Run by hand:

    .venv/bin/python bench/bench_recovery.py [--nodes 3 12] [--repeat 3]

The lab's nodes share this machine's cores with certrotate; the load average at the start
of each round is printed beside its figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from core import pki
from core.lab import start_lab
from core.pki import bundle
from core.remote.probes import probe_sql

CERTROTATE = [sys.executable, "-m", "tui"]


def timed(*args: str, state: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run([*CERTROTATE, *args, "--state", str(state)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"certrotate {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return time.perf_counter() - started


def one_round(nodes: int) -> tuple[float, float]:
    now = pki.utcnow()
    with start_lab(None, nodes, issued_at=now - dt.timedelta(days=2), ca_lifetime=dt.timedelta(hours=36)) as lab:
        start = timed("start", "recover", state=lab.state_path)
        advance = timed("advance", "--yes", state=lab.state_path)
        new_ca = bundle.parse_bundle((lab.local_certs_dir / "ca.crt").read_bytes(), "ca.crt").entries[0].certificate
        for node in lab.nodes:
            probe_sql(node.sql_addr).leaf.verify_directly_issued_by(new_ca)
        return start, advance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 12])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'nodes':>5}  {'start recover':>13}  {'advance --yes':>13}  {'total':>7}  load (1 min)")
    for nodes in args.nodes:
        totals = []
        for _ in range(args.repeat):
            load = os.getloadavg()[0]
            start, advance = one_round(nodes)
            totals.append(start + advance)
            print(f"{nodes:>5}  {start:>12.2f}s  {advance:>12.2f}s  {start + advance:>6.2f}s  {load:.2f}")
        print(f"{nodes:>5}  median total {statistics.median(totals):.2f} s over {len(totals)} rounds")


if __name__ == "__main__":
    main()
