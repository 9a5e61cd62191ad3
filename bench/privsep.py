#!/usr/bin/env python3
"""The cost of privilege separation (issue 10): LMTP delivery rate and
memory per IDLE connection of this build's loftd (parent + auth + mail
processes), of a loftd built before privilege separation, and of Dovecot,
in one run, alternating, medians.

    LOFT_BASE_BUILD=/path/to/old/build python3 bench/privsep.py [--quick]
        [--only lmtp,idle-plain,idle-tls]

The base build is any Loft build directory (loftd and loftctl in it),
e.g. a worktree of the commit before privsep built with `make build`.
Memory is PSS summed over every process of the server (bench/targets.py).
Prints one row per figure: privsep, base, Dovecot.
"""

import argparse
import asyncio
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import scenarios as sc  # noqa: E402
from run import loadavg, raise_limits  # noqa: E402
from targets import DovecotTarget, LoftTarget, bench_users  # noqa: E402


class BaseLoftTarget(LoftTarget):
    """A loftd (and loftctl) from another build directory."""
    name = "base"

    def __init__(self, users, build):
        self.binaries = (os.path.join(build, "loftd"),
                         os.path.join(build, "loftctl"))
        super().__init__(users)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="lmtp,idle-plain,idle-tls",
                    help="rows to run (comma-separated)")
    args = ap.parse_args()
    only = args.only.split(",")
    base = os.environ.get("LOFT_BASE_BUILD")
    if not base:
        sys.exit("set LOFT_BASE_BUILD to a build directory without privsep")
    n_lmtp = 300 if args.quick else 3000
    n_idle = 200 if args.quick else 1000
    users = bench_users(20 if args.quick else 100)
    raise_limits()
    print("bench: load average %s, %d cores" % (loadavg(), os.cpu_count()),
          flush=True)
    targets = [LoftTarget(users), BaseLoftTarget(users, base),
               DovecotTarget(users)]
    rows = []

    def add(name, runs):
        keys = sorted({k for rs in runs.values() for r in rs
                       for k, v in r.items() if isinstance(v, (int, float))})
        for k in keys:
            vals = [sc.median_of(runs[t.name], k) for t in targets]
            rows.append((name, k, vals))
            print("%-24s %-22s %12s %12s %12s" % ((name, k) + tuple(
                "%.4g" % v if v is not None else "-" for v in vals)),
                flush=True)

    print("%-24s %-22s %12s %12s %12s" % ("scenario", "figure", "privsep",
                                          "base", "dovecot"))
    t0 = time.time()
    try:
        for conns in (4, 16) if "lmtp" in only else ():
            runs = {t.name: [] for t in targets}
            for _ in range(args.reps):
                for t in targets:
                    runs[t.name].append(asyncio.run(sc.lmtp_delivery(
                        t, conns, n_lmtp, size=10_000)))
            add("lmtp 10KB x%d" % conns, runs)
        for tls in [t for t in (False, True)
                    if ("idle-tls" if t else "idle-plain") in only]:
            runs = {t.name: [] for t in targets}
            for t in targets:
                t.restart()
                runs[t.name].append(asyncio.run(sc.idle_connections(
                    t, n_idle, tls)))
            add("idle %s x%d" % ("tls" if tls else "plain", n_idle), runs)
    finally:
        for t in targets:
            t.close()
    print("bench: %d s, load average %s" % (time.time() - t0, loadavg()))


if __name__ == "__main__":
    main()
