#!/usr/bin/env python3
"""Loft beside Dovecot: every scenario against both, alternating, several
times; prints scenario, Loft median, Dovecot median and their ratio, and
writes bench/results/<time>.json and .md with the machine's core count and
kernel. `--quick` runs small sizes (under 5 minutes); the full run may take
up to an hour. `--only NAME[,NAME]` runs some scenarios (lmtp, idle, big,
pop3, mixed, stress, notify, login, acl, and the store's: syncs, newacct,
disk, append, bigidle, idleafter).

Ratios are "how many times better Loft is": for rates Loft/Dovecot, for
times and memory Dovecot/Loft. Medians, because the machine is shared.
"""

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import scenarios as sc  # noqa: E402
from targets import (APPEND_USER, BIG_USER, DISK_USERS,  # noqa: E402
                     DovecotTarget, LoftTarget, bench_users)

QUICK = {"reps": 3, "lmtp_count": 300, "idle": 200, "idle_loft": 1000,
         "big": 2000, "mixed_s": 5, "login_s": 3, "users": 20,
         "notify_folders": 1000, "notify_events": 50,
         "acl_owners": 10, "acl_events": 20,
         "sync_count": 300, "newacct": 100, "disk": 500, "append": 2000,
         "bigidle": 1000}
FULL = {"reps": 3, "lmtp_count": 3000, "idle": 1000, "idle_loft": 10000,
        "big": 100000, "mixed_s": 30, "login_s": 10, "users": 100,
        "notify_folders": 1000, "notify_events": 200,
        "sync_count": 300, "newacct": 100, "disk": 5000, "append": 100000,
        "bigidle": 10000, "acl_owners": 100, "acl_events": 100}

# For each figure: True if higher is better (rates), False if lower is.
HIGHER_BETTER = ("msgs_per_s", "indexed_msgs_per_s", "MB_per_s", "ops_per_s", "logins_per_s",
                 "retr_MB_per_s")
# Counts that check the run (same on both), not performance: no ratio.
COUNTS = ("connections", "messages", "search_body_hits", "qresync_fetches",
          "search_header_hits",
          "errors", "violations", "serverbugs", "supported",
          # bench/acl.py: counts, and a difference (no ratio)
          "shared_listed", "status_messages", "status_unseen",
          "lonely_listed", "lonely_listed_nosharing", "pushes",
          "unseen_reader", "unseen_owner", "sharing_adds_ms",
          "mail_bytes_per_msg", "p99_during_over_usual", "mail_bytes",
          # mixed, stress: how the run was driven and how busy the machine
          # was (the client's CPU says whether it was the bottleneck)
          "client_procs", "client_cpu_us_per_op", "load_1min")


def raise_limits():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Dovecot watches every mailbox it has open with inotify.
    try:
        with open("/proc/sys/fs/inotify/max_user_instances", "w") as f:
            f.write("65536")
        with open("/proc/sys/fs/inotify/max_user_watches", "w") as f:
            f.write("1048576")
    except OSError as e:
        print("bench: cannot raise inotify limits (%s)" % e, file=sys.stderr)
    return hard


def loadavg():
    """The 1/5/15-minute load averages: the machine is shared, so every
    result says how busy it was."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Results:
    def __init__(self):
        self.rows = []     # (scenario, figure, params, loft runs, dovecot runs)

    def add(self, scenario, params, loft_runs, dovecot_runs):
        keys = set()
        for r in loft_runs + dovecot_runs:
            keys.update(k for k, v in r.items() if isinstance(v, (int, float)))
        for k in sorted(keys):
            if k.startswith("v_"):
                # violations of one rule: a run without any has no key
                loft_runs = [dict(r, **{k: r.get(k, 0)}) for r in loft_runs]
                dovecot_runs = [dict(r, **{k: r.get(k, 0)}) for r in dovecot_runs]
            lm = sc.median_of(loft_runs, k) if loft_runs else None
            dm = sc.median_of(dovecot_runs, k) if dovecot_runs else None
            ratio = None
            if lm and dm and lm == lm and dm == dm and k not in COUNTS and \
                    not k.startswith("v_"):
                ratio = (lm / dm) if k in HIGHER_BETTER else (dm / lm)
            self.rows.append({"scenario": scenario, "figure": k,
                              "params": params, "loft": lm, "dovecot": dm,
                              "ratio": ratio,
                              "loft_runs": [r.get(k) for r in loft_runs],
                              "dovecot_runs": [r.get(k) for r in dovecot_runs]})
            self.print_row(self.rows[-1])

    @staticmethod
    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return "%.3g" % v if abs(v) < 100 else "%.0f" % v
        return str(v)

    def print_row(self, r):
        print("%-28s %-22s %10s %10s %8s   %s" % (
            r["scenario"], r["figure"], self.fmt(r["loft"]),
            self.fmt(r["dovecot"]),
            ("%.2fx" % r["ratio"]) if r["ratio"] else "-", r["params"]),
            flush=True)

    def markdown(self, meta):
        out = ["# Loft vs Dovecot — %s" % meta["date"], "",
               "Machine: %s cores, kernel %s. Mode: %s. Medians of %d runs; "
               "ratio > 1 means Loft is better. Load average at start %s, "
               "at end %s; %d s." % (
                   meta["cores"], meta["kernel"], meta["mode"], meta["reps"],
                   meta["load_start"], meta["load_end"], meta["elapsed_s"]),
               "", "Parameters: `%s`" % json.dumps(meta["params"]),
               "", "| scenario | figure | Loft | Dovecot | ratio | parameters |",
               "| --- | --- | --- | --- | --- | --- |"]
        for r in self.rows:
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                r["scenario"], r["figure"], self.fmt(r["loft"]),
                self.fmt(r["dovecot"]),
                ("%.2fx" % r["ratio"]) if r["ratio"] else "-", r["params"]))
        return "\n".join(out) + "\n"


def alternate(targets, reps, fn, fresh=False):
    """Runs fn(target) reps times on each target, alternating; returns
    {target name: [result dicts]}. fresh: restart the server before each
    run (for memory figures)."""
    runs = {t.name: [] for t in targets}
    for _ in range(reps):
        for t in targets:
            if fresh:
                t.restart()
            r = fn(t)
            # a scenario is a coroutine, or (bench/procsplit.py: its own
            # client processes) a function run outside any event loop
            runs[t.name].append(asyncio.run(r) if asyncio.iscoroutine(r)
                                else r)
    return runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--big", type=int, default=None,
                    help="messages in the big mailbox / maildrop")
    ap.add_argument("--idle", type=int, default=None,
                    help="idle connections side by side")
    ap.add_argument("--idle-loft", type=int, default=None,
                    help="idle connections on Loft alone (0: skip)")
    ap.add_argument("--users", type=int, default=None)
    ap.add_argument("--mixed-s", type=int, default=None,
                    help="seconds of the mixed and stress workloads")
    ap.add_argument("--client-procs", type=int, default=None,
                    help="client processes of the mixed and stress "
                    "workloads (default: cores + 1; stress: at most one "
                    "per account)")
    ap.add_argument("--notify-events", type=int, default=None,
                    help="appends watched in the notify scenario")
    ap.add_argument("--acl-owners", type=int, default=None,
                    help="owners sharing 10 folders each with one viewer")
    ap.add_argument("--acl-events", type=int, default=None,
                    help="appends / deliveries of the acl push figures")
    ap.add_argument("--disk", type=int, default=None,
                    help="messages of each disk account (corpus, plain)")
    ap.add_argument("--append", type=int, default=None,
                    help="messages filled by MULTIAPPEND")
    ap.add_argument("--bigidle", type=int, default=None,
                    help="idle sessions on the big mailbox (Loft alone)")
    ap.add_argument("--lmtp-count", type=int, default=None,
                    help="deliveries per LMTP case and rep")
    ap.add_argument("--newacct", type=int, default=None,
                    help="new accounts given their first message per run")
    ap.add_argument("--dovecot-fts", choices=("xapian",), default=None,
                    help="Dovecot with a search index built at delivery "
                    "(dovecot-fts-xapian), as Loft builds one")
    args = ap.parse_args()
    P = dict(QUICK if args.quick else FULL)
    for k in ("reps", "big", "idle", "idle_loft", "users", "mixed_s",
              "notify_events", "acl_owners", "acl_events", "disk", "append",
              "bigidle", "newacct", "lmtp_count"):
        if getattr(args, k) is not None:
            P[k] = getattr(args, k)
    only = set(filter(None, args.only.split(",")))
    want = (lambda s: not only or s in only)
    raise_limits()
    t_start = time.time()
    load_start = loadavg()
    print("bench: load average %s, %d cores" % (load_start, os.cpu_count()),
          flush=True)

    users = bench_users(P["users"])
    big_user = BIG_USER
    res = Results()
    # The acl scenario starts servers of its own (bench/acl.py).
    loft = dove = None
    if not only or only - {"acl"}:
        print("bench: starting Loft and Dovecot with %d users" % len(users),
              flush=True)
        loft = LoftTarget(users)
        try:
            dove = DovecotTarget(users, fts=args.dovecot_fts)
        except BaseException:
            loft.close()
            raise
    both = [loft, dove]
    print("%-28s %-22s %10s %10s %8s   %s" % ("scenario", "figure", "loft",
                                             "dovecot", "ratio", "params"))
    try:
        if want("lmtp"):
            for conns in (4, 16):
                runs = alternate(both, P["reps"], lambda t: sc.lmtp_delivery(
                    t, conns, P["lmtp_count"], size=10_000))
                res.add("lmtp 10KB x%d conns" % conns,
                        "%d msgs, 1 rcpt, fsync on" % P["lmtp_count"],
                        runs["loft"], runs["dovecot"])
            runs = alternate(both, P["reps"], lambda t: sc.lmtp_delivery(
                t, 16, P["lmtp_count"], size=None, rcpts_max=5))
            res.add("lmtp corpus x16 conns",
                    "%d msgs, 1-5 rcpts, long-tailed sizes" % P["lmtp_count"],
                    runs["loft"], runs["dovecot"])
        if want("syncs"):
            n = P["sync_count"]
            for name, conns, size, rmax in (
                    ("10KB x4 conns", 4, 10_000, 1),
                    ("10KB x16 conns", 16, 10_000, 1),
                    ("corpus x16 conns", 16, None, 5)):
                runs = {t.name: [sc.lmtp_syncs(t, conns, n, size, rmax)]
                        for t in both}
                res.add("lmtp syncs " + name,
                        "%d msgs under strace -f -c, not timed" % n,
                        runs["loft"], runs["dovecot"])
        big_filled = None     # (user, messages, bytes sent)
        if want("append"):
            runs = alternate(both, 1, lambda t: sc.multiappend_fill(
                t, APPEND_USER, P["append"]))
            res.add("MULTIAPPEND fill", "%d msgs, 50 per command, 1 conn"
                    % P["append"], runs["loft"], runs["dovecot"])
            big_filled = (APPEND_USER, P["append"],
                          runs["loft"][0]["mail_bytes"])
            runs = alternate(both, P["reps"], lambda t: sc.changedsince(
                t, APPEND_USER))
            res.add("CHANGEDSINCE", "%d msgs, 10 changes" % P["append"],
                    runs["loft"], runs["dovecot"])
        if big_filled is None and (want("big") or want("pop3") or
                                   want("bigidle")):
            # no MULTIAPPEND fill to use: the big mailbox over LMTP
            t0 = time.time()
            sent = asyncio.run(sc.fill_mailboxes(both, big_user, P["big"]))
            print("bench: filled %d messages on both in %.0f s"
                  % (P["big"], time.time() - t0), flush=True)
            big_filled = (big_user, P["big"], sent)
        if big_filled is not None and want("disk"):
            u, n, sent = big_filled
            runs = {t.name: [sc.disk_figures(t, u, n, sent)] for t in both}
            res.add("disk corpus (big mailbox)",
                    "%d msgs, bytes on disk per message" % n,
                    runs["loft"], runs["dovecot"])
        if want("newacct"):
            rep = iter(range(1000))
            runs = alternate(both, P["reps"], lambda t: sc.new_accounts(
                t, next(rep), P["newacct"]))
            res.add("new accounts' first delivery",
                    "%d new accounts beside 10KB x4 to existing ones"
                    % P["newacct"], runs["loft"], runs["dovecot"])
        if want("disk"):
            for kind, make in (("corpus", None), ("plain", sc.plain_message)):
                u = DISK_USERS[kind]
                sent = asyncio.run(sc.fill_mailboxes(both, u, P["disk"],
                                                     seed=17, make=make))
                runs = {t.name: [sc.disk_figures(t, u, P["disk"], sent)]
                        for t in both}
                res.add("disk %s" % kind, "%d msgs, bytes on disk per message"
                        % P["disk"], runs["loft"], runs["dovecot"])
        if want("idle"):
            for tls in (False, True):
                n = P["idle"]
                runs = alternate(both, 1, lambda t: sc.idle_connections(
                    t, n, tls), fresh=True)
                res.add("idle %s x%d" % ("tls" if tls else "plain", n),
                        "%d users, 1 delivery each" % (len(users) - 1),
                        runs["loft"], runs["dovecot"])
                n = P["idle_loft"]
                if not n:
                    continue
                loft.restart()
                r = asyncio.run(sc.idle_connections(loft, n, tls))
                res.add("idle %s x%d (loft only)" % ("tls" if tls else "plain",
                                                     n),
                        "%d users, 1 delivery each" % (len(users) - 1), [r], [])
        if want("big"):
            u, n, _ = big_filled
            runs = alternate(both, P["reps"],
                             lambda t: sc.big_mailbox(t, u, n))
            res.add("big mailbox", "%d msgs" % n, runs["loft"],
                    runs["dovecot"])
        if want("pop3"):
            u, n, _ = big_filled
            runs = alternate(both, P["reps"],
                             lambda t: sc.pop3_maildrop(t, u, n))
            res.add("pop3 maildrop", "%d msgs" % n, runs["loft"],
                    runs["dovecot"])
        if want("bigidle"):
            # every session on the big mailbox: the views share one UID
            # list (after big and pop3: its delivery adds a message)
            u, n, _ = big_filled
            loft.restart()
            r = asyncio.run(sc.idle_connections(loft, P["bigidle"], False,
                                                users=[u]))
            res.add("idle on the big mailbox (loft only)",
                    "%d sessions selected on %d msgs, 1 delivery"
                    % (P["bigidle"], n), [r], [])
        if want("mixed"):
            for style, every in (("long sessions", 0),
                                 ("login every 5 ops", 5)):
                runs = alternate(both, P["reps"], lambda t: sc.mixed_workload(
                    t, 50, P["mixed_s"], procs=args.client_procs,
                    logout_every=every))
                res.add("mixed 50 clients", "%s, %d s" % (style, P["mixed_s"]),
                        runs["loft"], runs["dovecot"])
        if want("stress"):
            for t in both:
                asyncio.run(sc.stress_seed(t))
            for style, every in (("long sessions", 0), ("login every 5 ops", 5)):
                runs = alternate(both, P["reps"], lambda t: sc.stress_workload(
                    t, 50, P["mixed_s"], every, procs=args.client_procs))
                res.add("stress 50 checking clients",
                        "%s, %d s, %d accounts" % (style, P["mixed_s"],
                                                   sc.STRESS_USERS),
                        runs["loft"], runs["dovecot"])
        if want("notify"):
            nuser = loft.user_names()[-1]
            for t in both:
                asyncio.run(sc.notify_seed(t, nuser, P["notify_folders"]))
            for idle in (False, True):
                runs = alternate(both, P["reps"], lambda t: sc.notify_latency(
                    t, nuser, P["notify_folders"], P["notify_events"], idle))
                res.add("NOTIFY push, 1 connection",
                        "%d folders watched, %d appends, %s"
                        % (P["notify_folders"], P["notify_events"],
                           "in IDLE" if idle else "no IDLE"),
                        runs["loft"], runs["dovecot"])
        if want("login"):
            runs = alternate(both, P["reps"], lambda t: sc.login_rate(
                t, P["login_s"]))
            res.add("login TLS+PLAIN", "%d s, 4 parallel" % P["login_s"],
                    runs["loft"], runs["dovecot"])
        if want("acl"):
            import acl
            acl.run(P, res, alternate)
        if want("idleafter"):
            # idle memory after the busy scenarios above, no restart
            # (memory they freed has to be handed back to count as free)
            for tls in (False, True):
                r = asyncio.run(sc.idle_connections(loft, P["idle_loft"],
                                                    tls))
                res.add("idle %s x%d after busy (loft only)"
                        % ("tls" if tls else "plain", P["idle_loft"]),
                        "no restart since the scenarios before", [r], [])
    finally:
        for t in both:
            if t is not None:
                t.close()

    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "cores": os.cpu_count(), "kernel": platform.release(),
            "load_start": load_start, "load_end": loadavg(),
            "elapsed_s": round(time.time() - t_start),
            "mode": "quick" if args.quick else "full", "reps": P["reps"],
            "params": P, "dovecot_fts": args.dovecot_fts}
    outdir = os.path.join(HERE, "results")
    os.makedirs(outdir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(outdir, stamp + ".json"), "w") as f:
        json.dump({"meta": meta, "rows": res.rows}, f, indent=1)
    with open(os.path.join(outdir, stamp + ".md"), "w") as f:
        f.write(res.markdown(meta))
    print("bench: results in bench/results/%s.{json,md}" % stamp)


if __name__ == "__main__":
    main()
