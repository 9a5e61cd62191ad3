"""Scale-out figures of issue 18 (docs/scale-out.md), one run, medians.

    python3 bench/scaleout.py [--messages N] [--reps R] [--users U]

delivery   LMTP, 10 KB messages over 16 connections (bench/scenarios.py
           lmtp_delivery), durable (fsync on everywhere, PostgreSQL with
           fsync = on and synchronous_commit = on; --standby: with a
           synchronous standby, pg_basebackup -R, as in production), into
             sqlite       the embedded backend (one node)
             pg-file      [store] backend = postgres, blobs = file
             pg-s3        backend = postgres, blobs = s3 (s3rver from npm
                          behind tests/lib/s3env.py's checking proxy)
             pg-s3 x2     two loftd nodes on the same database and bucket,
                          8 connections to each
             dovecot      Dovecot with Maildir (no open peer scales out)
           figures: messages/s, p50 and p99 latency per message.
per-message  on pg-s3, N messages with 1 and with 5 recipients:
           PostgreSQL bytes (tables + indexes, and WAL) per message and
           S3 requests and bytes per message.

push       (--push N: only this) cross-node push: N IMAP sessions in IDLE
           on node A (spread over the users), one LMTP delivery per user
           on node B, one after the other; the delay from B's LMTP reply
           to the EXISTS on each of A's sessions, p50/p99/max (scenarios
           idle_connections with its IMAP port on A and LMTP on B), two
           loftd on one PostgreSQL, blobs = file.

failover   (--failover ROUNDS: only this) kill -9 of the PostgreSQL primary
           to the first acknowledged APPEND after it, with a synchronous
           standby promoted by `pg_ctl promote`, p50 and max over the
           rounds: tests/system/test_failover.py with
           LOFT_FAILOVER_ROUNDS (under IMAP APPEND and LMTP load; every
           acknowledged message checked after each round).

Everything runs on loopback with private instances in temp dirs; the
machine is shared, so compare within one run.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# bench/ first: its clients.py, not tests/lib's
sys.path.append(os.path.join(os.path.dirname(HERE), "tests", "lib"))

from pgenv import Postgres  # noqa: E402
from s3env import S3  # noqa: E402
from scenarios import lmtp_delivery  # noqa: E402
from targets import DovecotTarget, LoftTarget, bench_users  # noqa: E402


class TwoNodes:
    """Two LoftTargets on one database: port() alternates between them so
    lmtp_delivery's connections are split evenly."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.host = a.host
        self._n = 0

    def port(self, proto):
        self._n += 1
        return (self.a if self._n % 2 else self.b).port(proto)

    def user_names(self):
        return self.a.user_names()


def pg_bytes(pg, db):
    out = pg.psql("SELECT pg_database_size(current_database()),"
                  " pg_current_wal_lsn() - '0/0'::pg_lsn", db=db)
    size, wal = out.strip().split("|")
    return int(size), int(float(wal))


class CrossNodes:
    """IMAP on node a, LMTP on node b (and a's memory figures)."""

    def __init__(self, a, b):
        self.a, self.b = a, b
        self.host = a.host

    def port(self, proto):
        return (self.b if proto == "lmtp" else self.a).port(proto)

    def user_names(self):
        return self.a.user_names()

    def password(self, user):
        return self.a.password(user)

    def memory(self):
        return self.a.memory()


def push(sessions, users):
    """--push: cross-node IDLE push with sessions IDLE sessions."""
    from scenarios import idle_connections
    pg = Postgres(settings={"fsync": "on", "full_page_writes": "on"})
    spool = tempfile.mkdtemp(prefix="loft-bench-blobs-")
    a = b = None
    try:
        more = {"store": {"backend": "postgres",
                          "postgres": pg.conninfo_for("postgres"),
                          "blob_dir": spool}}
        a = LoftTarget(users, more=more)
        b = LoftTarget(users, more=more)
        r = asyncio.run(idle_connections(CrossNodes(a, b), sessions, False))
        print("cross-node push, %d IDLE sessions on node A over %d users,"
              " LMTP on node B: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
              % (sessions, len(users), r["push_p50_ms"], r["push_p99_ms"],
                 r["push_max_ms"]))
    finally:
        for t in (a, b):
            if t is not None:
                t.close()
        pg.close()
        shutil.rmtree(spool, True)
    return 0


def run_delivery(target, n):
    return asyncio.run(lmtp_delivery(target, 16, n, size=10_000))


def failover(rounds):
    """tests/system/test_failover.py with rounds rounds; prints its figure
    line (and any failure)."""
    import subprocess
    root = os.path.dirname(HERE)
    build = os.environ.get("LOFT_BUILD", os.path.join(root, "build"))
    env = dict(os.environ)
    env.update({"LOFTD": os.path.join(build, "loftd"),
                "LOFTCTL": os.path.join(build, "loftctl"),
                "LOFT_SRC": root, "LOFT_BUILD": build,
                "PYTHONPATH": os.path.join(root, "tests", "lib"),
                "LOFT_FAILOVER_ROUNDS": str(rounds)})
    p = subprocess.run([sys.executable, os.path.join(
        root, "tests", "system", "test_failover.py")], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout.splitlines():
        if line.startswith(("failover:", "FAIL")) or " passed, " in line:
            print(line)
    return p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--no-dovecot", action="store_true")
    ap.add_argument("--failover", type=int, metavar="ROUNDS",
                    help="only the failover figure, over ROUNDS rounds")
    ap.add_argument("--push", type=int, metavar="SESSIONS",
                    help="only the cross-node push figure")
    ap.add_argument("--standby", action="store_true",
                    help="PostgreSQL with a synchronous standby")
    args = ap.parse_args()
    if args.failover:
        return failover(args.failover)
    users = bench_users(args.users)
    if args.push:
        return push(args.push, users)
    pg = Postgres(settings={"fsync": "on", "full_page_writes": "on"})
    standby = None
    if args.standby:
        standby = pg.standby("bench_standby")
        pg.sync_to("bench_standby")
    s3 = S3()
    objstore = s3
    spool = tempfile.mkdtemp(prefix="loft-bench-spool-")
    results = {}
    try:
        def pg_store(db, blobs, store=None):
            store = store or objstore
            st = {"backend": "postgres", "postgres": pg.conninfo_for(db),
                  "blob_dir": os.path.join(spool, db)}
            more = {"store": st}
            if blobs == "s3":
                st["blobs"] = "s3"
                more["s3"] = {"endpoint": store.endpoint, "bucket": "bench-"
                              + db.replace("_", "-"),
                              "access_key": store.access_key,
                              "secret_key_file": store.secret_file}
            return more

        def make(kind, rep):
            db = "b_%s_%d" % (kind.replace("-", "_").replace(" ", ""), rep)
            if kind == "sqlite":
                return LoftTarget(users), []
            if kind == "dovecot":
                return DovecotTarget(users), []
            pg.psql("CREATE DATABASE %s" % db, db="postgres")
            blobs = "s3" if "s3" in kind else "file"
            a = LoftTarget(users, more=pg_store(db, blobs))
            if kind.endswith("x2"):
                b = LoftTarget(users, more=pg_store(db, blobs))
                return TwoNodes(a, b), [a, b]
            return a, [a]

        kinds = ["sqlite", "pg-file", "pg-s3", "pg-s3 x2"]
        if not args.no_dovecot:
            kinds.append("dovecot")
        for rep in range(args.reps):
            for kind in kinds:
                t, parts = make(kind, rep)
                try:
                    r = run_delivery(t, args.messages)
                finally:
                    for p in parts or [t]:
                        p.close()
                results.setdefault(kind, []).append(r)
                print("%-9s rep %d: %.0f msg/s, p50 %.1f ms, p99 %.1f ms"
                      % (kind, rep, r["msgs_per_s"], r["p50_ms"],
                         r["p99_ms"]), flush=True)
        print("\nLMTP delivery, 10 KB, 16 connections, median of %d runs"
              " (%d messages each; PostgreSQL %s; S3: s3rver)"
              % (args.reps, args.messages, "with a synchronous standby"
                 if standby is not None else "without a standby"))
        print("| store | msg/s | p50 ms | p99 ms |\n|---|---|---|---|")
        for kind in kinds:
            rs = results[kind]
            print("| %s | %.0f | %.1f | %.1f |" % (
                kind, statistics.median(x["msgs_per_s"] for x in rs),
                statistics.median(x["p50_ms"] for x in rs),
                statistics.median(x["p99_ms"] for x in rs)))

        # ---- per message: PostgreSQL and S3 ------------------------------
        print("\nPer message on pg-s3 (10 KB body)")
        print("| recipients | PG bytes (db) | PG WAL bytes | S3 requests |"
              " S3 bytes |\n|---|---|---|---|---|")
        for rcpts in (1, 5):
            db = "b_per_%d" % rcpts
            pg.psql("CREATE DATABASE %s" % db, db="postgres")
            # s3rver's proxy counts the requests
            t = LoftTarget(users, more=pg_store(db, "s3", s3))
            try:
                # warm: accounts made, schema there
                asyncio.run(lmtp_delivery(t, 4, 50, size=10_000,
                                          rcpts_max=1))
                size0, wal0 = pg_bytes(pg, db)
                req0 = sum(s3.requests.values())
                bytes0 = s3.bytes_in
                n = args.messages // 2
                asyncio.run(per_message(t, n, rcpts))
                size1, wal1 = pg_bytes(pg, db)
                req1 = sum(s3.requests.values())
                print("| %d | %.0f | %.0f | %.2f | %.0f |" % (
                    rcpts, (size1 - size0) / n, (wal1 - wal0) / n,
                    (req1 - req0) / n, (s3.bytes_in - bytes0) / n))
            finally:
                t.close()
    finally:
        s3.close()
        if standby is not None:
            standby.close()
        pg.close()
        shutil.rmtree(spool, True)


async def per_message(target, n, rcpts):
    """n messages, each to exactly rcpts recipients, over 8 connections."""
    import corpus
    from clients import Lmtp
    users = target.user_names()
    queue = list(range(n))

    async def worker():
        c = await Lmtp.connect(target.host, target.port("lmtp"))
        try:
            while queue:
                i = queue.pop()
                to = [users[(i + k) % len(users)] for k in range(rcpts)]
                await c.deliver("sender@example.org", to,
                                corpus.message(3, i, 10_000))
        finally:
            await c.close()
    await asyncio.gather(*(worker() for _ in range(8)))


if __name__ == "__main__":
    sys.exit(main())
