"""The login flood of issue 10, Loft beside Dovecot: 200 loopback addresses
(127.0.0.11-210), 5 connections each, guess passwords for alice, bob and
made-up accounts, while alice's own device logs in from 127.0.0.250 every
50 ms. Reported per server: attempts answered and how, the owner's login
latency (p50, p99, max: from sending LOGIN to its OK), and how long the
server takes to stop (SIGTERM) right after the flood, with the guessers
still connected.

    python3 bench/login_flood.py [--seconds 60] [--attempts 20000]
                                 [--loft-hash production|cheap]

The flood ends after --attempts answers or --seconds, whichever comes
first, the same for both. Loft runs with its production argon2id cost and
default throttle (3 s cap, ban after 10 failures, one hash thread per two
cores), or with --loft-hash cheap the tests' argon2id cost (64 KiB, one
pass: about what Dovecot's {PLAIN} costs); Dovecot from Debian with its defaults (auth_failure_delay 2 s,
auth penalty per address), passwd-file users with {PLAIN} passwords (its
checks cost nothing). Loopback only; everything stops by itself.
"""

import argparse
import json
import os
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))
sys.path.append(HERE)

from flood import flood  # noqa: E402
from targets import DovecotTarget, LoftTarget  # noqa: E402

OWNER_SRC = "127.0.0.250"
ALICE = "alice@example.test"
USERS = {ALICE: "tea-party-rabbit-hole", "bob@example.test": "can-we-fix-it-yes"}


def owner_login(port, pw):
    s = socket.create_connection(("127.0.0.1", port), timeout=60,
                                 source_address=(OWNER_SRC, 0))
    f = s.makefile("rb")
    f.readline()
    s.sendall(b'a LOGIN %s "%s"\r\n' % (ALICE.encode(), pw.encode()))
    ok = f.readline().startswith(b"a OK")
    s.close()
    return ok


def run(target, args):
    port = target.port("imap")
    if not owner_login(port, USERS[ALICE]):
        raise RuntimeError("%s: the owner cannot log in" % target.name)
    proc = target.env.proc
    stopped = {}

    def stop_now():
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)
        stopped["seconds"] = time.monotonic() - t0

    res = flood(port, attempts=args.attempts, addresses=200,
                conns_per_address=5,
                targets=[ALICE, "bob@example.test", "nobody@example.test",
                         "admin@example.test"],
                legit=(OWNER_SRC, ALICE, USERS[ALICE]), limit=args.seconds,
                on_end=stop_now)
    res["stop_seconds"] = stopped.get("seconds")
    res["server"] = target.name + (" (%s)" % args.loft_hash
                                   if target.name == "loft" else "")
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--attempts", type=int, default=20000)
    ap.add_argument("--loft-hash", choices=("production", "cheap"),
                    default="production")
    args = ap.parse_args()
    rows = []
    cheap = {"argon2_t_cost": "1", "argon2_m_cost": "64"}
    for make in (LoftTarget, DovecotTarget):
        if make is LoftTarget:
            target = make(dict(USERS), 3000,
                          auth=cheap if args.loft_hash == "cheap" else None)
        else:
            target = make(dict(USERS), 3000)
        try:
            rows.append(run(target, args))
        finally:
            try:
                target.env._reap()
            except Exception:
                pass
            target.close()
    print("%-18s %9s %7s %6s %9s %7s %8s %8s %8s %7s" % (
        "server", "answered", "secs", "NO", "refused", "closed",
        "p50 ms", "p99 ms", "max ms", "stop s"))
    for r in rows:
        print("%-18s %9d %7.1f %6d %9d %7d %8.1f %8.1f %8.1f %7.2f" % (
            r["server"], r["answered"], r["seconds"], r["no"],
            r["refused_at_connect"], r["closed"], r["p50_ms"] or -1,
            r["p99_ms"] or -1, r["max_ms"] or -1, r["stop_seconds"] or -1))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
