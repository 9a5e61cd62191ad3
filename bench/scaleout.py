"""Scale-out figures of issue 18 (docs/scale-out.md), one run, medians.

    python3 bench/scaleout.py [--messages N] [--reps R] [--users U]
                              [--no-standby] [--s3 [--radosgw]] [--no-dovecot]
    python3 bench/scaleout.py --push 1000
    python3 bench/scaleout.py --failover 20
    python3 bench/scaleout.py --growth 1000x1000 [--big 100000]
    python3 bench/scaleout.py --big 100000 --growth 0x0

delivery   LMTP, 10 KB messages over 16 connections (bench/scenarios.py
           lmtp_delivery), durable (fsync on everywhere, PostgreSQL with
           fsync = on and synchronous_commit = on, and a synchronous
           standby, pg_basebackup -R, as in production; --no-standby:
           without), into
             sqlite       the embedded backend (one node)
             pg-file      [store] backend = postgres, blobs = file
             pg-file x2   two loftd nodes on the same database and
                          blob_dir, 8 connections to each
             pg-s3, pg-s3 x2 (--s3) blobs = s3 (s3rver from npm behind
                          tests/lib/s3env.py's checking proxy; with
                          --radosgw Ceph's radosgw, tests/lib/cephenv.py,
                          behind the same proxy)
             dovecot      Dovecot with Maildir (no open peer scales out)
           figures: messages/s, p50 and p99 latency per message.
per-message  on pg-s3, N/2 messages with 1 and with 5 recipients: net
           PostgreSQL rows, table bytes (with TOAST), index bytes and WAL
           bytes per message, and S3 requests and bytes per message.

push       (--push N: only this) cross-node push: N IMAP sessions in IDLE
           on node A (spread over the users), one LMTP delivery per user
           on node B, one after the other; the delay from B's LMTP reply
           to the EXISTS on each of A's sessions, p50/p99/max (scenarios
           idle_connections with its IMAP port on A and LMTP on B), two
           loftd on one PostgreSQL (with a synchronous standby unless
           --no-standby), blobs = file.

failover   (--failover ROUNDS: only this) kill -9 of the PostgreSQL primary
           to the first acknowledged APPEND after it, with a synchronous
           standby promoted by `pg_ctl promote`, p50 and max over the
           rounds: tests/system/test_failover.py with
           LOFT_FAILOVER_ROUNDS (under IMAP APPEND and LMTP load; every
           acknowledged message checked after each round).

growth     (--growth UxM and/or --big N: only this) on the embedded backend
           and on postgres (blobs = file, no standby: reads; filled with
           [store] fsync = no on both), U users get M messages each over
           LMTP (the corpus, bodies capped at 16 KB,
           each message to 10 users at once), and one user gets N by
           MULTIAPPEND. Then, after the background work is done (Loft's
           search indexer; on postgres a VACUUM ANALYZE, what autovacuum
           does in time; on sqlite 20 s more, for the idle trim to
           checkpoint and close the accounts): bytes per message (index:
           the SQLite database files, or PostgreSQL's tables and indexes;
           bodies: the body files; WAL left: sqlite's -wal and -shm files
           still there, apart), and
           for 20 of the U users and (5 times) for the big one the
           milliseconds of SELECT INBOX, UID FETCH 1:* (FLAGS), UID SEARCH
           BODY (a word in 1 % of the messages) and STATUS (MESSAGES
           UNSEEN SIZE); for the big one also JMAP Mailbox/get and
           Email/query (INBOX, newest first, 50, with and without
           calculateTotal). Medians. Also the rate each fill ran at
           (deliveries/s of the users' fill, messages/s of the
           MULTIAPPEND) and the load then.
           --pg-fill-part K (postgres): 1/K of each account's mail
           delivered so, the rest copied in SQL within the account
           (pg_fill_copy says how), then `loftctl check` of four
           accounts; --pg-fill-gin rebuild makes the trigram indexes
           after the copy (SEARCH BODY is then timed after the other
           reads); the WAL per message is the delivered part's.

Everything runs on loopback with private instances in temp dirs; the
machine is shared, so compare within one run.
"""

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# bench/ first: its clients.py, not tests/lib's
sys.path.append(os.path.join(os.path.dirname(HERE), "tests", "lib"))

import corpus  # noqa: E402
from clients import Imap, Lmtp, ProtocolError  # noqa: E402
from pgenv import Postgres  # noqa: E402
from s3env import S3  # noqa: E402
from cephenv import Ceph  # noqa: E402
from scenarios import lmtp_delivery  # noqa: E402
from targets import (BIG_USER, DovecotTarget, LoftTarget,  # noqa: E402
                     bench_users, tree_bytes)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


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

    def cpu(self):
        return self.a.cpu() + self.b.cpu()

    def settle(self):
        return max(self.a.settle(), self.b.settle())


# Every table of the store's schemas (partitioned parents counted whole,
# partitions not again), with its rows now.
ROWS_SQL = (
    "SELECT n.nspname || '.' || c.relname, (xpath('/row/n/text()',"
    " query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname,"
    " c.relname), false, true, '')))[1]::text::bigint FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
    " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg_toast%'")
# table bytes (heap, FSM, VM and TOAST), index bytes, WAL position
SIZES_SQL = (
    "SELECT coalesce(sum(pg_table_size(c.oid)) FILTER (WHERE c.relkind"
    " IN ('r', 'm')), 0), coalesce(sum(pg_relation_size(c.oid)) FILTER"
    " (WHERE c.relkind = 'i'), 0), pg_current_wal_lsn() - '0/0'::pg_lsn"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg_toast%'")


def pg_rows(pg, db):
    out = {}
    for line in pg.psql(ROWS_SQL, db=db).strip().splitlines():
        name, n = line.split("|")
        out[name] = int(n)
    return out


def pg_sizes(pg, db):
    tables, indexes, wal = pg.psql(SIZES_SQL, db=db).strip().split("|")
    return int(tables), int(indexes), int(float(wal))


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


# What a PostgreSQL for mail gets beside the defaults: durable, and room
# for the hot rows and for WAL between checkpoints (pgenv's test instance
# has 32 MB of shared_buffers).
PG_SETTINGS = {"fsync": "on", "full_page_writes": "on",
               "synchronous_commit": "on", "shared_buffers": "512MB",
               "max_wal_size": "2GB"}


def postgres(standby):
    """A private PostgreSQL, durable, with a synchronous standby if asked:
    (primary, standby or None)."""
    pg = Postgres(settings=PG_SETTINGS)
    sb = None
    if standby:
        try:
            sb = pg.standby("bench_standby")
            pg.sync_to("bench_standby")
        except BaseException:
            if sb is not None:
                sb.close()
            pg.close()
            raise
    return pg, sb


def push_metrics(target):
    """From a node's /metrics: its loft_pg_view_syncs_total (src/store/pg/
    pg-delta.c: syncs that read, or that took another view's read) and
    its IMAP push latency histogram (from the change reaching the node's
    hub to the push written: the server's part of the push after the
    NOTIFY's trip), as {name: count}."""
    import re
    c = target.env.http(proto="metrics")
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    out = {"read": 0, "shared": 0, "sum": 0.0}
    for m in re.finditer(r'^loft_pg_view_syncs_total\{answer="(\w+)"\}'
                         r' (\S+)$', text, re.M):
        out[m.group(1)] = int(float(m.group(2)))
    for m in re.finditer(r'^loft_push_latency_seconds_(bucket|sum|count)'
                         r'\{proto="imap"(?:,le="([^"]+)")?\} (\S+)$',
                         text, re.M):
        key = {"bucket": "le" + (m.group(2) or ""), "sum": "sum",
               "count": "count"}[m.group(1)]
        out[key] = float(m.group(3))
    return out


def push_server_part(m0, m1):
    """The server's part of the pushes between two push_metrics: mean
    and the share under each bound, as text."""
    n = m1.get("count", 0) - m0.get("count", 0)
    if n <= 0:
        return "no pushes counted"
    parts = ["mean %.1f ms" % ((m1["sum"] - m0["sum"]) / n * 1000)]
    for le in ("0.01", "0.025", "0.05", "0.1"):
        k = "le" + le
        if k in m1:
            parts.append("%.0f %% <= %g ms" % (
                100 * (m1[k] - m0.get(k, 0)) / n, float(le) * 1000))
    return ", ".join(parts)


def push(sessions, users, standby):
    """--push: cross-node IDLE push with sessions IDLE sessions."""
    from scenarios import idle_connections
    pg, sb = postgres(standby)
    spool = tempfile.mkdtemp(prefix="loft-bench-blobs-")
    a = b = None
    try:
        more = {"store": {"backend": "postgres",
                          "postgres": pg.conninfo_for("postgres"),
                          "blob_dir": spool}}
        a = LoftTarget(users, more=more)
        b = LoftTarget(users, more=more)
        m0 = push_metrics(a)
        r = asyncio.run(idle_connections(CrossNodes(a, b), sessions, False))
        m1 = push_metrics(a)
        print("cross-node push, %d IDLE sessions on node A over %d users,"
              " LMTP on node B (PostgreSQL %s): p50 %.1f ms, p99 %.1f ms,"
              " max %.1f ms (load %s)"
              % (sessions, len(a.user_names()),
                 "with a synchronous standby" if sb else "alone",
                 r["push_p50_ms"], r["push_p99_ms"], r["push_max_ms"],
                 loadavg()))
        print("node A, from its hub to the push written"
              " (loft_push_latency_seconds): %s" % push_server_part(m0, m1))
        print("node A's view syncs meanwhile (loft_pg_view_syncs_total):"
              " %d read the changes, %d took a read shared with another"
              " view" % tuple(m1[k] - m0[k] for k in ("read", "shared")))
    finally:
        for t in (a, b):
            if t is not None:
                t.close()
        if sb is not None:
            sb.close()
        pg.close()
        shutil.rmtree(spool, True)
    return 0


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
    print("(load %s)" % loadavg())
    return p.returncode


# ---- delivery and per message ------------------------------------------------

def delivery(args, users):
    pg, standby = postgres(not args.no_standby)
    s3 = None
    if args.s3 or not args.no_per_message:
        s3 = Ceph() if args.radosgw else S3()
    spool = tempfile.mkdtemp(prefix="loft-bench-spool-")
    results = {}
    try:
        def pg_store(db, blobs):
            st = {"backend": "postgres", "postgres": pg.conninfo_for(db),
                  "blob_dir": os.path.join(spool, db)}
            more = {"store": st}
            if blobs == "s3":
                st["blobs"] = "s3"
                more["s3"] = {"endpoint": s3.endpoint, "bucket": "bench-"
                              + db.replace("_", "-"),
                              "access_key": s3.access_key,
                              "secret_key_file": s3.secret_file}
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

        kinds = ["sqlite", "pg-file", "pg-file x2"]
        if args.s3:
            kinds += ["pg-s3", "pg-s3 x2"]
        if not args.no_dovecot:
            kinds.append("dovecot")
        for rep in range(args.reps):
            for kind in kinds:
                t, parts = make(kind, rep)
                try:
                    r = asyncio.run(lmtp_delivery(t, 16, args.messages,
                                                  size=10_000))
                finally:
                    for p in parts or [t]:
                        p.close()
                results.setdefault(kind, []).append(r)
                print("%-10s rep %d: %.0f msg/s, p50 %.1f ms, p99 %.1f ms,"
                      " server cpu %.2f ms/msg (load %s)"
                      % (kind, rep, r["msgs_per_s"], r["p50_ms"],
                         r["p99_ms"], r["cpu_ms_per_msg"], loadavg()),
                      flush=True)
        print("\nLMTP delivery, 10 KB, 16 connections, median of %d runs"
              " (%d messages each; PostgreSQL %s, file blobs%s)"
              % (args.reps, args.messages, "with a synchronous standby"
                 if standby is not None else "without a standby",
                 ("; S3: radosgw" if args.radosgw else "; S3: s3rver")
                 if args.s3 else ""))
        print("| store | msg/s | p50 ms | p99 ms | server CPU ms/msg |\n"
              "|---|---|---|---|---|")
        for kind in kinds:
            rs = results[kind]
            print("| %s | %.0f | %.1f | %.1f | %.2f |" % (
                kind, statistics.median(x["msgs_per_s"] for x in rs),
                statistics.median(x["p50_ms"] for x in rs),
                statistics.median(x["p99_ms"] for x in rs),
                statistics.median(x["cpu_ms_per_msg"] for x in rs)))
        if not args.no_per_message:
            per_message_table(pg, s3, pg_store, users, args.messages // 2)
    finally:
        if s3 is not None:
            s3.close()
        if standby is not None:
            standby.close()
        pg.close()
        shutil.rmtree(spool, True)
    return 0


def per_message_table(pg, s3, pg_store, users, n):
    print("\nPer message on postgres + S3 (10 KB body, %d messages;"
          " rows: net rows added, every table)" % n)
    print("| recipients | rows | table bytes | index bytes | WAL bytes |"
          " S3 requests | S3 bytes |\n|---|---|---|---|---|---|---|")
    details = []
    for rcpts in (1, 5):
        db = "b_per_%d" % rcpts
        pg.psql("CREATE DATABASE %s" % db, db="postgres")
        t = LoftTarget(users, more=pg_store(db, "s3"))
        try:
            # warm: accounts made, schema there
            asyncio.run(per_message(t, len(t.user_names()), 1, seed=5))
            t.settle()
            rows0 = pg_rows(pg, db)
            tab0, idx0, wal0 = pg_sizes(pg, db)
            req0 = dict(s3.requests)
            bytes0 = s3.bytes_in
            asyncio.run(per_message(t, n, rcpts))
            t.settle()
            rows1 = pg_rows(pg, db)
            tab1, idx1, wal1 = pg_sizes(pg, db)
            req = {k: v - req0.get(k, 0) for k, v in s3.requests.items()
                   if v - req0.get(k, 0)}
            rows = {k: (v - rows0.get(k, 0)) / n for k, v in rows1.items()
                    if v != rows0.get(k, 0)}
            print("| %d | %.1f | %.0f | %.0f | %.0f | %.2f | %.0f |" % (
                rcpts, sum(rows.values()), (tab1 - tab0) / n,
                (idx1 - idx0) / n, (wal1 - wal0) / n,
                sum(req.values()) / n, (s3.bytes_in - bytes0) / n))
            details.append((rcpts, rows, req))
        finally:
            t.close()
    for rcpts, rows, req in details:
        print("%d recipient(s): rows per message %s; S3 requests per"
              " message %s" % (rcpts, ", ".join(
                  "%s %.2f" % kv for kv in sorted(rows.items())),
                  ", ".join("%s %.2f" % (k, v / n)
                            for k, v in sorted(req.items()))))


async def per_message(target, n, rcpts, seed=3):
    """n messages, each to exactly rcpts recipients, over 8 connections."""
    users = target.user_names()
    queue = list(range(n))

    async def worker():
        c = await Lmtp.connect(target.host, target.port("lmtp"))
        try:
            while queue:
                i = queue.pop()
                to = [users[(i + k) % len(users)] for k in range(rcpts)]
                await c.deliver("sender@example.org", to,
                                corpus.message(seed, i, 10_000))
        finally:
            await c.close()
    await asyncio.gather(*(worker() for _ in range(8)))


# ---- growth --------------------------------------------------------------------

GROWTH_RCPTS = 10
GROWTH_CAP = 16_000


async def growth_fill(target, users, per_user, conns=8, seed=31):
    """per_user messages to each of users, each message to GROWTH_RCPTS of
    them at once; returns the bytes delivered (all copies)."""
    n = len(users)
    if n % GROWTH_RCPTS:
        raise ValueError("users must be a multiple of %d" % GROWTH_RCPTS)
    total = n * per_user // GROWTH_RCPTS
    state = {"next": 0, "bytes": 0}
    t0 = time.time()

    async def worker():
        c = await Lmtp.connect(target.host, target.port("lmtp"))
        try:
            while state["next"] < total:
                t = state["next"]
                state["next"] += 1
                to = [users[(t * GROWTH_RCPTS + k) % n]
                      for k in range(GROWTH_RCPTS)]
                data = corpus.message(seed, t, cap=GROWTH_CAP)
                state["bytes"] += len(data) * GROWTH_RCPTS
                await c.deliver("fill@example.org", to, data)
                if t and t % max(1, total // 10) == 0:
                    print("  %d of %d deliveries (%.0f s, load %s)"
                          % (t, total, time.time() - t0, loadavg()),
                          flush=True)
        finally:
            await c.close()
    await asyncio.gather(*(worker() for _ in range(conns)))
    return state["bytes"]


async def big_fill(target, user, count, per_cmd=100, seed=13):
    """count corpus messages (capped) into user's INBOX by MULTIAPPEND."""
    c = await Imap.connect(target.host, target.port("imap"))
    await c.login(user, target.password(user))
    sent = 0
    t0 = time.time()
    for lo in range(0, count, per_cmd):
        msgs = [corpus.message(seed, i, cap=GROWTH_CAP)
                for i in range(lo, min(count, lo + per_cmd))]
        sent += sum(len(m) for m in msgs)
        c.tagn += 1
        tag = b"m%d" % c.tagn
        c.w.write(tag + b" APPEND INBOX" +
                  b"".join(b" {%d+}\r\n" % len(m) + m for m in msgs) +
                  b"\r\n")
        await c.read_until_tagged(tag)
        if lo and lo % max(per_cmd, count // 10 // per_cmd * per_cmd) == 0:
            print("  %d of %d appended (%.0f s, load %s)"
                  % (lo, count, time.time() - t0, loadavg()), flush=True)
    await c.close()
    return sent


async def imap_reads(target, user, reps, expect=None, search=True,
                     only_search=False):
    """{figure: [ms per rep]} of the reads on user's INBOX; expect: the
    messages UID FETCH 1:* must answer (checked); search: with SEARCH
    BODY; only_search: SELECT and SEARCH BODY, only the latter timed."""
    out = {k: [] for k in ("status_ms", "select_ms", "fetch_flags_ms",
                           "search_body_ms")}
    c = await Imap.connect(target.host, target.port("imap"))
    await c.login(user, target.password(user))
    hits = None
    for _ in range(reps):
        if only_search:
            await c.command("SELECT INBOX")
        else:
            t0 = time.perf_counter()
            await c.command("STATUS INBOX (MESSAGES UNSEEN SIZE)")
            out["status_ms"].append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            await c.command("SELECT INBOX")
            out["select_ms"].append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            n = await c.count_untagged("UID FETCH 1:* (FLAGS)")
            out["fetch_flags_ms"].append((time.perf_counter() - t0) * 1000)
            if expect is not None and n != expect:
                raise ProtocolError("%s: UID FETCH 1:* gave %d, not %d"
                                    % (user, n, expect))
        if search or only_search:
            t0 = time.perf_counter()
            u, _ = await c.command("UID SEARCH BODY " + corpus.SEARCH_WORD)
            out["search_body_ms"].append((time.perf_counter() - t0) * 1000)
            hits = sum(len(x.split()) - 2 for x in u
                       if x.startswith(b"* SEARCH"))
        await c.command("UNSELECT")
    await c.close()
    return {k: v for k, v in out.items() if v}, hits


class JmapServer:
    """What bench/jmap.py's Jmap client needs of a LoftTarget."""

    name = "loft"

    def __init__(self, target, user):
        rc, out, err = target.env.loftctl("token", "add", user)
        if rc != 0:
            raise RuntimeError("loftctl token add: %s" % err)
        self.host = target.host
        self.http_port = target.port("http")
        self.auth = "Bearer " + out.strip()


async def jmap_reads(target, user, reps):
    from jmap import Jmap, inbox_id, session
    server = JmapServer(target, user)
    await session(server)
    j = Jmap(server)
    inbox = await inbox_id(j)
    out = {k: [] for k in ("mailbox_get_ms", "email_query_total_ms",
                           "email_query_ms")}
    for _ in range(reps):
        for key, calls in (
                ("mailbox_get_ms", [["Mailbox/get", {
                    "accountId": j.account}, "m"]]),
                ("email_query_total_ms", [["Email/query", {
                    "accountId": j.account, "filter": {"inMailbox": inbox},
                    "sort": [{"property": "receivedAt",
                              "isAscending": False}],
                    "limit": 50, "calculateTotal": True}, "q"]]),
                ("email_query_ms", [["Email/query", {
                    "accountId": j.account, "filter": {"inMailbox": inbox},
                    "sort": [{"property": "receivedAt",
                              "isAscending": False}],
                    "limit": 50}, "q"]])):
            t0 = time.perf_counter()
            r = await j.call(calls)
            out[key].append((time.perf_counter() - t0) * 1000)
            if key == "email_query_ms" and len(r["q"]["ids"]) != 50:
                raise ProtocolError("Email/query: %d ids"
                                    % len(r["q"]["ids"]))
    j.close()
    return out


def sqlite_bytes(target):
    """(index bytes, body bytes, WAL bytes) of every account: the SQLite
    database files, the body files under data_dir/mail, and what is left
    in WAL and shared-memory files (each account's WAL grows to ~1,000
    pages, 4 MiB, before a checkpoint is asked for, and goes when the idle
    trim closes the account: counted apart, it does not pass for
    index)."""
    def kind(rel):
        name = os.path.basename(rel)
        if name.endswith(".db-wal") or name.endswith(".db-shm"):
            return "wal"
        return "index" if ".db" in name else "bodies"
    t = tree_bytes(os.path.join(target.env.data_dir, "mail"), kind)
    return (t.get("index", [0, 0])[0], t.get("bodies", [0, 0])[0],
            t.get("wal", [0, 0])[0])


# The reads as they were before schema step 9 and the paged scan, timed
# on the same database (EXPLAIN ANALYZE: the server's execution only):
# the IMAP counts of INBOX (SELECT, STATUS, every view sync), of every
# mailbox (JMAP Mailbox/get, LIST-STATUS), and the JMAP query's scan of
# the whole mailbox; then the same with the counts as columns.
OLD_COUNTS = (
    "SELECT (SELECT count(*) FROM msg x WHERE x.user_id = m.user_id"
    " AND x.mailbox = m.id), (SELECT count(*) FROM msg x WHERE"
    " x.user_id = m.user_id AND x.mailbox = m.id AND x.flags & 1 = 0),"
    " (SELECT count(*) FROM msg x WHERE x.user_id = m.user_id AND"
    " x.mailbox = m.id AND x.flags & 8 <> 0), (SELECT coalesce(sum(size),"
    " 0)::bigint FROM msg x WHERE x.user_id = m.user_id AND"
    " x.mailbox = m.id), (SELECT count(*) FROM msg x WHERE x.user_id ="
    " m.user_id AND x.mailbox = m.id AND x.uid >= m.recent_upto)"
    " FROM mailbox m WHERE m.user_id = %d")
NEW_COUNTS = ("SELECT m.messages, m.unseen, m.deleted, m.size FROM mailbox m"
              " WHERE m.user_id = %d")
OLD_SCAN = (
    "SELECT m.blob, b.thread, m.internaldate, b.sent_date, m.size,"
    " e.flags, e.keywords, e.attach FROM msg m JOIN jemail e ON"
    " e.user_id = m.user_id AND e.id = m.blob JOIN blob b ON"
    " b.user_id = m.user_id AND b.id = m.blob WHERE m.user_id = %d"
    " AND m.mailbox = %d AND (m.flags & 8) = 0"
    " ORDER BY m.internaldate DESC, m.uid DESC")


def pg_exec_ms(pg, db, sql, reps=5, before=""):
    """before: statements first, in the same transaction, rolled back."""
    import re
    times = []
    for _ in range(reps):
        out = pg.psql("BEGIN; %s EXPLAIN (ANALYZE, TIMING OFF) %s"
                      % (before, sql), db=db)
        times.append(float(re.search(r"Execution Time: ([0-9.]+) ms",
                                     out).group(1)))
    return statistics.median(times)


def pg_old_reads(pg, db):
    """Server ms of the reads before and after, on the biggest account."""
    uid, inbox = (int(x) for x in pg.psql(
        "SELECT a.user_id, m.id FROM account a JOIN mailbox m ON"
        " m.user_id = a.user_id AND m.name = 'INBOX'"
        " ORDER BY a.messages DESC LIMIT 1", db=db).strip().split("|"))
    # as before step 9: without its index of the unseen messages
    drop = "DROP INDEX msg_unseen;"
    return {
        "old_counts_inbox_ms": pg_exec_ms(
            pg, db, OLD_COUNTS % uid + " AND m.id = %d" % inbox,
            before=drop),
        "old_counts_all_mailboxes_ms": pg_exec_ms(pg, db, OLD_COUNTS % uid,
                                                  before=drop),
        "new_counts_all_mailboxes_ms": pg_exec_ms(pg, db, NEW_COUNTS % uid),
        "old_jmap_scan_ms": pg_exec_ms(pg, db, OLD_SCAN % (uid, inbox)),
        "new_jmap_scan_first_page_ms": pg_exec_ms(
            pg, db, OLD_SCAN % (uid, inbox) + " LIMIT 256"),
    }


def clone_rows(pg, db, table, where, overrides, copies):
    """copies more of table's rows matching where, each column as it is
    but for overrides {column: SQL expression over src.* and g (1 ..
    copies)}; triggers off (session_replication_role = replica)."""
    cols = [c for c in pg.psql(
        "SELECT column_name FROM information_schema.columns WHERE"
        " table_name = '%s' AND table_schema = 'public' ORDER BY"
        " ordinal_position" % table, db=db).split() if c]
    exprs = [overrides.get(c, "src." + c) for c in cols]
    # in parts: a statement each must end within psql's 120 s
    for lo in range(1, copies + 1, 50):
        pg.psql("SET session_replication_role = replica; INSERT INTO %s"
                " (%s) SELECT %s FROM %s src, generate_series(%d, %d) g"
                " WHERE %s" % (table, ", ".join(cols), ", ".join(exprs),
                               table, lo, min(copies, lo + 49), where),
                db=db)


def pg_big_clone(args):
    """--pg-clone N: a postgres account of N messages made fast: 100
    corpus messages delivered, then their rows (msg, blob with its search
    text, jemail) copied N/100 - 1 times in SQL (new ids, UIDs, dates;
    the same body files), the counters set to match; then the same reads
    as the growth rows, and the old queries timed beside the new."""
    per = 100
    copies = args.pg_clone // per - 1
    users = bench_users(0)
    pg = Postgres(settings=dict(PG_SETTINGS, fsync="off",
                                synchronous_commit="off"))
    spool = tempfile.mkdtemp(prefix="loft-bench-clone-")
    try:
        pg.psql("CREATE DATABASE growth", db="postgres")
        t = LoftTarget(users, auth={"argon2_t_cost": "1",
                                    "argon2_m_cost": "64",
                                    "argon2_parallelism": "1"},
                       more={"store": {"backend": "postgres",
                                       "postgres": pg.conninfo_for("growth"),
                                       "blob_dir": spool}})
        try:
            asyncio.run(big_fill(t, BIG_USER, per))
            uid = int(pg.psql("SELECT user_id FROM account ORDER BY"
                              " messages DESC LIMIT 1", db="growth"))
            # the delivered rows only (ids and UIDs under 1000)
            w = "src.user_id = %d AND src.id < 1000" % uid
            t0 = time.time()
            clone_rows(pg, "growth", "blob", w,
                       {"id": "src.id + g * 1000"}, copies)
            clone_rows(pg, "growth", "jemail", w,
                       {"id": "src.id + g * 1000",
                        "received": "src.received + g * 100000"}, copies)
            w = "src.user_id = %d AND src.uid < 1000" % uid
            clone_rows(pg, "growth", "msg", w,
                       {"uid": "src.uid + g * 1000",
                        "blob": "src.blob + g * 1000",
                        "internaldate": "src.internaldate + g * 100000",
                        "flags": "CASE WHEN g % 3 = 0 THEN 1 ELSE 0 END"},
                       copies)
            pg.psql(
                "UPDATE mailbox m SET uidnext = s.u + 1, messages = s.n,"
                " unseen = s.un, deleted = 0, size = s.z FROM (SELECT"
                " mailbox, max(uid) u, count(*) n, count(*) FILTER (WHERE"
                " flags & 1 = 0) un, sum(size) z FROM msg WHERE user_id ="
                " %d GROUP BY mailbox) s WHERE m.user_id = %d AND"
                " m.id = s.mailbox;"
                "UPDATE account SET messages = (SELECT count(*) FROM msg"
                " WHERE user_id = %d), bytes = (SELECT sum(size) FROM msg"
                " WHERE user_id = %d) WHERE user_id = %d;"
                "UPDATE jmailbox j SET emails = s.n, unread = s.un FROM"
                " (SELECT mailbox, count(*) n, count(*) FILTER (WHERE"
                " flags & 1 = 0) un FROM msg WHERE user_id = %d GROUP BY"
                " mailbox) s WHERE j.user_id = %d AND j.id = s.mailbox"
                % ((uid,) * 7), db="growth")
            pg.psql("VACUUM ANALYZE", db="growth")
            print("cloned to %s messages in %.0f s (load %s)" % (
                pg.psql("SELECT count(*) FROM msg", db="growth").strip(),
                time.time() - t0, loadavg()), flush=True)
            r, hits = asyncio.run(imap_reads(t, BIG_USER, 5))
            big = {k: statistics.median(v) for k, v in r.items()}
            big["search_hits"] = hits
            r = asyncio.run(jmap_reads(t, BIG_USER, 5))
            big.update({k: statistics.median(v) for k, v in r.items()})
            big.update(pg_old_reads(pg, "growth"))
            big["load"] = loadavg()
        finally:
            t.close()
    finally:
        pg.close()
        shutil.rmtree(spool, True)
    print("\npostgres, one account of %d messages (cloned rows), medians:"
          % args.pg_clone)
    for k, v in big.items():
        print("| %s | %s |" % (k, v if isinstance(v, str) else
                               "%.1f" % v))
    return 0


def psql_long(pg, sql, db):
    """pg.psql without its 120 s limit: one copy statement over 1,000
    users runs for minutes."""
    import subprocess
    from pgenv import PG_BIN
    r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t",
                        "-v", "ON_ERROR_STOP=1", "-h", pg._admin_host(),
                        "-p", str(pg.port), "-U", "loft", "-d", db,
                        "-c", sql], env=pg._env(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("psql %r: %s" % (sql[:200], r.stderr))
    return r.stdout


def table_cols(pg, db, table):
    return [c for c in pg.psql(
        "SELECT column_name FROM information_schema.columns WHERE"
        " table_name = '%s' AND table_schema = 'public' ORDER BY"
        " ordinal_position" % table, db=db).split() if c]


def copy_sql(pg, db, table, overrides, order, where="true"):
    """INSERT of K - 1 copies of table's rows of the accounts in
    bench_span (s: their spans, g: the copy), each column as it is but
    for overrides {column: SQL expression}, in the order a fill over
    time would have written them (copy by copy; order: src's columns)."""
    cols = table_cols(pg, db, table)
    return ("INSERT INTO %s (%s) SELECT %s FROM %s src JOIN bench_span s"
            " ON s.user_id = src.user_id, generate_series(1, (SELECT k"
            " FROM bench_fill) - 1) g WHERE %s ORDER BY g, %s"
            % (table, ", ".join(cols), ", ".join(
                overrides.get(c, "src." + c) for c in cols), table,
               where, order))


def gin_build(pg, db, defs, args_jobs):
    """The partitioned GIN indexes defs {name: CREATE INDEX ... ON blob}
    made again: each partition's built by CREATE INDEX on args_jobs
    connections at once (a GIN build is one process: ~4 ms a row here,
    an hour for 1.1 million rows), then attached to its parent, made
    ON ONLY blob, which becomes valid when all are."""
    from concurrent.futures import ThreadPoolExecutor
    parts = pg.psql("SELECT c.relname FROM pg_inherits i JOIN pg_class c"
                    " ON c.oid = i.inhrelid WHERE i.inhparent ="
                    " 'blob'::regclass ORDER BY 1", db=db).split()
    jobs = []
    for name, sql in defs.items():
        pg.psql(sql.replace(" ON public.blob ", " ON ONLY public.blob ",
                            1), db=db)
        for p in parts:
            jobs.append((name, p, sql.replace(
                "INDEX %s ON public.blob " % name,
                "INDEX %s_%s ON public.%s " % (p, name, p), 1)))

    def one(job):
        name, p, sql = job
        psql_long(pg, "SET maintenance_work_mem = '512MB';" + sql, db)
        pg.psql("ALTER INDEX %s ATTACH PARTITION %s_%s" % (name, p, name),
                db=db)
    with ThreadPoolExecutor(args_jobs) as ex:
        list(ex.map(one, jobs))


def pg_fill_copy(pg, db, part, rebuild_gin, max_msgs=None,
                 defer_gin=False):
    """--pg-fill-part K: every account's delivered rows copied K - 1 times
    within the account, as K - 1 more rounds of the same mail. Copy g
    of a row gets blob id + g * OFF (OFF above every id; its thread
    likewise, so copies thread as their originals do, in threads of
    their own), UID + g * the account's highest UID, MODSEQ + g * the
    account's change counter, dates + g * 100,000 s; a copy keeps its
    original's body file and Message-ID bytes (thread_ref's rows are
    copied with the Message-ID suffixed). Triggers are off
    (session_replication_role = replica: a row trigger per copied row ran
    at 5-10 ms a row here); what they keep for a delivery is copied or
    recomputed in bulk: jemail, jthread, jmember, jmbthread rows copied
    with the ids and modseqs above; blob_object's reference counts; the
    mailbox counts, UIDNEXT, HIGHESTMODSEQ; jmailbox's counts; the
    account's counter, messages and bytes; the blob id sequence.
    rebuild_gin: the two trigram GIN indexes dropped before and made
    after (CREATE INDEX) instead of kept up row by row. max_msgs: only
    accounts of at most that many messages. defer_gin: the indexes not
    made here. Returns ({step: seconds}, {index: definition} of those
    left to make: gin_build)."""
    off = int(pg.psql("SELECT coalesce(max(id), 0) + 1 FROM blob",
                      db=db).strip())
    times = {}

    def step(name, sql):
        t0 = time.time()
        psql_long(pg, "SET session_replication_role = replica;"
                  "SET maintenance_work_mem = '1GB';" + sql, db)
        times[name] = time.time() - t0
        print("  copy: %s %.0f s (load %s)" % (name, times[name], loadavg()),
              flush=True)

    step("spans", "DROP TABLE IF EXISTS bench_fill, bench_span;"
         "CREATE TABLE bench_fill AS SELECT %d AS k, %d::bigint AS off;"
         "CREATE TABLE bench_span AS SELECT a.user_id, a.modseq AS ms,"
         " (SELECT max(uid) FROM msg m WHERE m.user_id = a.user_id) AS us"
         " FROM account a WHERE EXISTS (SELECT 1 FROM msg m WHERE"
         " m.user_id = a.user_id)%s" % (part, off, "" if max_msgs is None
                                        else " AND a.messages <= %d"
                                        % max_msgs))
    gin = {}
    valid_gin = ("SELECT count(*) FROM pg_index WHERE indisvalid AND"
                 " pg_get_indexdef(indexrelid) LIKE '%gin_trgm_ops%'")
    gin_before = pg.psql(valid_gin, db=db).strip()
    if rebuild_gin:
        for name in pg.psql(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'blob'"
                " AND indexname LIKE '%trgm'", db=db).split():
            # a partitioned table's: "ON ONLY" would make the parent's
            # alone, invalid, and no partition's
            gin[name] = pg.psql("SELECT indexdef FROM pg_indexes WHERE"
                                " indexname = '%s'" % name, db=db).strip(
                                ).replace(" ON ONLY ", " ON ")
        pg.psql("".join("DROP INDEX %s;" % n for n in gin), db=db)
    th = "CASE WHEN src.%s = 0 THEN 0 ELSE src.%s + g * %d END"
    new_id = "src.%s + g * " + str(off)
    ms = "src.%s + g * s.ms"
    later = "src.%s + g * 100000"
    step("blob", copy_sql(pg, db, "blob", {"id": new_id % "id",
                                            "thread": th % (("thread",) * 2
                                                            + (off,))},
                          "src.id", "src.id < %d" % off))
    if gin and not defer_gin:
        t0 = time.time()
        gin_build(pg, db, gin, args_jobs=2)
        times["gin"] = time.time() - t0
        print("  copy: gin %.0f s (load %s)" % (times["gin"], loadavg()),
              flush=True)
        if pg.psql(valid_gin, db=db).strip() != gin_before:
            raise RuntimeError("the trigram indexes were not all made again")
    step("blob_object",
         "UPDATE blob_object o SET refs = o.refs + x.n FROM (SELECT sha256,"
         " count(*) n FROM blob WHERE id >= %d GROUP BY sha256) x WHERE"
         " o.sha256 = x.sha256" % off)
    step("jemail", copy_sql(pg, db, "jemail", {
        "id": new_id % "id", "created": ms % "created",
        "modseq": ms % "modseq", "received": later % "received"},
        "src.id", "src.id < %d" % off))
    step("jthread", copy_sql(pg, db, "jthread", {
        "id": new_id % "id", "created": ms % "created",
        "modseq": ms % "modseq"}, "src.id", "src.id < %d" % off))
    step("thread_ref", copy_sql(pg, db, "thread_ref", {
        "msgid": "src.msgid || '.' || g",
        "thread": th % (("thread",) * 2 + (off,))}, "src.thread",
        "position('.' in src.msgid) = 0"))
    step("msg", copy_sql(pg, db, "msg", {
        "uid": "src.uid + g * s.us", "blob": new_id % "blob",
        "modseq": ms % "modseq", "internaldate": later % "internaldate",
        "savedate": later % "savedate"}, "src.blob, src.mailbox"))
    step("jmember", copy_sql(pg, db, "jmember", {
        "modseq": ms % "modseq", "blob": new_id % "blob"},
        "src.modseq, src.blob", "src.blob < %d" % off))
    step("jmbthread", copy_sql(pg, db, "jmbthread", {
        "thread": th % (("thread",) * 2 + (off,))}, "src.thread",
        "src.thread <> 0 AND src.thread < %d" % off))
    step("jmbthread 0",
         "UPDATE jmbthread t SET emails = emails * k, unread = unread * k"
         " FROM bench_fill WHERE thread = 0 AND user_id IN (SELECT user_id"
         " FROM bench_span)")
    step("counters",
         "UPDATE mailbox mb SET uidnext = greatest(mb.uidnext, x.u + 1),"
         " highestmodseq = greatest(mb.highestmodseq, x.m), messages = x.n,"
         " unseen = x.un, deleted = x.d, size = x.z FROM (SELECT user_id,"
         " mailbox, max(uid) u, max(modseq) m, count(*) n, count(*) FILTER"
         " (WHERE (flags & 1) = 0) un, count(*) FILTER (WHERE (flags & 8)"
         " <> 0) d, sum(size) z FROM msg WHERE user_id IN (SELECT user_id"
         " FROM bench_span) GROUP BY user_id, mailbox) x WHERE"
         " mb.user_id = x.user_id AND mb.id = x.mailbox;"
         "UPDATE jmailbox j SET emails = x.e, unread = x.u, threads = x.t,"
         " unread_threads = x.ut, modseq = greatest(j.modseq, mb.m) FROM"
         " (SELECT user_id, mailbox, sum(emails) e, sum(unread) u, count(*)"
         " t, count(*) FILTER (WHERE unread > 0) ut FROM jmbthread WHERE"
         " user_id IN (SELECT user_id FROM bench_span) GROUP BY user_id,"
         " mailbox) x, (SELECT user_id, mailbox, max(modseq) m FROM"
         " jmember GROUP BY user_id, mailbox) mb WHERE"
         " j.user_id = x.user_id AND j.id = x.mailbox AND"
         " mb.user_id = x.user_id AND mb.mailbox = x.mailbox;"
         "UPDATE account a SET modseq = greatest(a.modseq, s.ms * k),"
         " messages = x.n, bytes = x.z FROM bench_span s, bench_fill,"
         " (SELECT user_id, count(*) n, sum(size) z FROM msg GROUP BY"
         " user_id) x WHERE a.user_id = s.user_id AND"
         " x.user_id = s.user_id;"
         "SELECT setval('blob_id', (SELECT max(id) FROM blob));"
         "DROP TABLE bench_fill, bench_span")
    return times, (gin if defer_gin else {})


def growth(args):
    nusers, per_user = (int(x) for x in args.growth.split("x"))
    users = bench_users(nusers)
    # cheap hashes: 1,000 accounts are made before the start
    cheap = {"argon2_t_cost": "1", "argon2_m_cost": "64",
             "argon2_parallelism": "1"}
    # fsync off in PostgreSQL too: each body's blob_object row is
    # refreshed in a commit of its own before the bytes are written
    # (pg-blob.c), a WAL flush per message even with [store] fsync = no
    pg = Postgres(settings=dict(PG_SETTINGS, fsync="off",
                                synchronous_commit="off"))
    spool = tempfile.mkdtemp(prefix="loft-bench-growth-")
    rows = []
    try:
        for kind in args.growth_backends.split(","):
            # filled without fsync (a body file's fsync and its
            # directory's made postgres + file blobs fill at ~20
            # messages/s on this shared machine; the reads and bytes
            # measured do not depend on it)
            more = {"store": {"fsync": "no"}}
            if kind == "postgres":
                pg.psql("CREATE DATABASE growth", db="postgres")
                more["store"].update({
                    "backend": "postgres",
                    "postgres": pg.conninfo_for("growth"),
                    "blob_dir": os.path.join(spool, "blobs")})
            t = LoftTarget(users, auth=cheap, more=more)
            try:
                rows.append((kind, growth_one(kind, t, pg, spool, users,
                                              per_user, args)))
            finally:
                t.close()
                if kind == "postgres":
                    pg.psql("DROP DATABASE growth", db="postgres")
                    shutil.rmtree(os.path.join(spool, "blobs"), True)
    finally:
        pg.close()
        shutil.rmtree(spool, True)
    growth_print(rows, args)
    return 0


def unindexed(t, user):
    """loftctl user show's search_unindexed for user (None where the
    backend has no background indexer: postgres indexes in the
    delivery's own transaction)."""
    rc, out, err = t.env.loftctl("user", "show", user)
    for line in out.splitlines():
        k, _, v = line.strip().partition(" = ")
        if k == "search_unindexed":
            return int(v)
    return None


def wait_indexed(t, users, limit=1800):
    """Seconds until the search indexer has every message of users.
    settle() alone is not enough: after a MULTIAPPEND the indexer waits
    for 2 s without a new message (sq-index.c, INDEX_BULK_QUIET_MS), so a
    quiet second can come before it starts, and the reads would time a
    SEARCH BODY that reads every unindexed message's text (9-15 s instead
    of 126-160 ms on 100,000 messages, seen here)."""
    t0 = time.time()
    while time.time() - t0 < limit:
        left = [n for n in (unindexed(t, u) for u in users) if n]
        if not left:
            break
        print("  waiting for the search indexer: %d messages left"
              % sum(left), flush=True)
        time.sleep(10)
    t.settle()
    return time.time() - t0


def pg_wal(pg):
    return int(float(pg.psql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn",
                             db="growth")))


PG_SIZE_DETAIL = (
    "SELECT coalesce(p.relname, c.relname), sum(pg_table_size(c.oid)),"
    " sum(pg_indexes_size(c.oid)) FROM pg_class c JOIN pg_namespace n"
    " ON n.oid = c.relnamespace LEFT JOIN pg_inherits i ON i.inhrelid ="
    " c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent WHERE"
    " c.relkind = 'r' AND n.nspname = 'public' GROUP BY 1"
    " ORDER BY 2 + 3 DESC")


def pg_size_detail(pg, messages):
    """{table: (table B/msg, index B/msg)}, partitions summed into their
    parent, those over 32 KiB, the biggest first."""
    out = {}
    for line in pg.psql(PG_SIZE_DETAIL, db="growth").split():
        name, tab, idx = line.split("|")
        if int(tab) + int(idx) > 8192 * 4:
            out[name] = (round(int(tab) / messages, 1),
                         round(int(idx) / messages, 1))
    return out


def pg_check(t, users):
    """loftctl check of users (it compares every counter with the rows);
    prints each answer, raises on a failure."""
    for u in users:
        rc, out, err = t.env.loftctl("check", u, timeout=600)
        print("  loftctl check %s: rc %d %s" % (
            u, rc, (out + err).strip().replace("\n", " / ")[:300]),
            flush=True)
        if rc != 0:
            raise RuntimeError("loftctl check %s failed" % u)


def growth_one(kind, t, pg, spool, users, per_user, args):
    res = {}
    ordinary = t.user_names()
    sent = 0
    # --pg-fill-part K: 1/K by LMTP (and MULTIAPPEND), the rest copied
    part = args.pg_fill_part if kind == "postgres" else 1
    big_part = 1 if args.pg_big_append else part
    if per_user % part or args.big % big_part:
        raise ValueError("--pg-fill-part must divide the messages")
    if part > 1:
        res["fill_part"] = part
        res["big_part"] = big_part
    print("%s: filling %d users x %d messages%s (load %s)"
          % (kind, len(ordinary), per_user // part,
             " (1/%d of them; the rest copied)" % part if part > 1 else "",
             loadavg()), flush=True)
    t0 = time.time()
    if kind == "postgres":
        wal0 = pg_wal(pg)
    if per_user and ordinary:
        sent += part * asyncio.run(growth_fill(t, ordinary,
                                               per_user // part))
    res["fill_users_s"] = time.time() - t0
    if kind == "postgres" and per_user and ordinary:
        # WAL of the deliveries themselves (a copy's is a bulk load's)
        res["wal_bytes_per_msg"] = ((pg_wal(pg) - wal0)
                                    / (len(ordinary) * per_user // part))
    # the rates the fills ran at (deliveries of GROWTH_RCPTS copies;
    # messages appended), and the load then: a slow fill is itself a
    # figure (issue 11, "New accounts without a stall")
    res["fill_load"] = loadavg()
    if per_user and ordinary:
        res["fill_deliveries_per_s"] = (len(ordinary) * per_user // part
                                        // GROWTH_RCPTS
                                        / res["fill_users_s"])
    t0 = time.time()
    if args.big:
        print("%s: %d messages to %s by MULTIAPPEND (load %s)"
              % (kind, args.big // big_part, BIG_USER, loadavg()),
              flush=True)
        sent += big_part * asyncio.run(big_fill(t, BIG_USER,
                                                args.big // big_part))
    res["fill_big_s"] = time.time() - t0
    if args.big:
        res["fill_big_per_s"] = args.big // big_part / res["fill_big_s"]
    if part > 1:
        t.settle()
        t0 = time.time()
        # the reads that do not use the trigram indexes are timed before
        # they are made (an hour's work at 1.1 million messages here),
        # SEARCH BODY after
        res["copy_steps_s"], gin_left = pg_fill_copy(
            pg, "growth", part, args.pg_fill_gin == "rebuild",
            # the big user appended whole: not copied
            max_msgs=per_user // part if big_part == 1 and args.big
            else None, defer_gin=args.pg_fill_gin == "rebuild")
        res["copy_s"] = time.time() - t0
        res["copy_load"] = loadavg()
        pg_check(t, ordinary[:3] + ([BIG_USER] if args.big else []))
    t.settle_limit = 1800
    t.settle()
    res["unindexed_wait_s"] = wait_indexed(
        t, ([BIG_USER] if args.big else []) + ordinary[::max(1, len(ordinary) // 20)][:20])
    messages = len(ordinary) * per_user + args.big
    if part == 1:
        gin_left = {}
    if kind == "postgres":
        pg.psql("VACUUM ANALYZE", db="growth")
        index = pg_growth_sizes(pg, res, messages)
        # a copy names its original's body file: counted K times, as
        # K distinct bodies of that size would be
        bodies = part * tree_bytes(os.path.join(spool, "blobs")).get(
            "all", [0, 0])[0]
    else:
        # at rest: the idle trim (10 s unused, looked at every 5 s) has
        # checkpointed and closed the accounts, as on a server after
        # its day's mail
        time.sleep(20)
        index, bodies, wal = sqlite_bytes(t)
        res["wal_bytes_per_msg"] = wal / max(1, messages)
    res["messages"] = messages
    res["mail_bytes_per_msg"] = sent / max(1, messages)
    res["index_bytes_per_msg"] = index / max(1, messages)
    res["body_bytes_per_msg"] = bodies / max(1, messages)
    if per_user and ordinary:
        sample = ordinary[::max(1, len(ordinary) // 20)][:20]
        per = {}
        for u in sample:
            r, _ = asyncio.run(imap_reads(t, u, 1, expect=per_user,
                                          search=not gin_left))
            for k, v in r.items():
                per.setdefault(k, []).extend(v)
        res["users"] = {k: statistics.median(v) for k, v in per.items()}
    if args.big:
        r, hits = asyncio.run(imap_reads(t, BIG_USER, 5, expect=args.big,
                                         search=not gin_left))
        big = {k: statistics.median(v) for k, v in r.items()}
        big["search_hits"] = hits
        r = asyncio.run(jmap_reads(t, BIG_USER, 5))
        big.update({k: statistics.median(v) for k, v in r.items()})
        if kind == "postgres":
            big.update(pg_old_reads(pg, "growth"))
        res["big"] = big
    res["load"] = loadavg()
    print("%s: %r" % (kind, res), flush=True)
    if gin_left:
        growth_search_after(t, pg, res, gin_left, messages, per_user,
                            ordinary, args)
        print("%s, with the trigram indexes: %r" % (kind, res), flush=True)
    return res


def pg_growth_sizes(pg, res, messages):
    tab, idx, _ = pg_sizes(pg, "growth")
    res["pg_table_bytes_per_msg"] = tab / max(1, messages)
    res["pg_index_bytes_per_msg"] = idx / max(1, messages)
    res["pg_detail"] = pg_size_detail(pg, max(1, messages))
    return tab + idx


def growth_search_after(t, pg, res, gin, messages, per_user, ordinary,
                        args):
    """--pg-fill-gin rebuild: the trigram indexes made, then the bytes
    again and SEARCH BODY's reads."""
    t0 = time.time()
    print("postgres: making the trigram indexes (load %s)" % loadavg(),
          flush=True)
    gin_build(pg, "growth", gin, args_jobs=2)
    res["gin_build_s"] = time.time() - t0
    pg.psql("VACUUM ANALYZE blob", db="growth")
    res["index_bytes_per_msg"] = (pg_growth_sizes(pg, res, messages)
                                  / max(1, messages))
    if "users" in res:
        ms = []
        for u in ordinary[::max(1, len(ordinary) // 20)][:20]:
            r, _ = asyncio.run(imap_reads(t, u, 1, expect=per_user,
                                          only_search=True))
            ms.extend(r["search_body_ms"])
        res["users"]["search_body_ms"] = statistics.median(ms)
    if "big" in res:
        r, hits = asyncio.run(imap_reads(t, BIG_USER, 5, expect=args.big,
                                         only_search=True))
        res["big"]["search_body_ms"] = statistics.median(
            r["search_body_ms"])
        res["big"]["search_hits"] = hits
    res["search_load"] = loadavg()


def growth_print(rows, args):
    print("\nGrowth (%s users x messages, big user %d; bodies capped at"
          " 16 KB; ms are medians)" % (args.growth, args.big))
    print("| backend | messages | mail B/msg | index B/msg | body B/msg |"
          " WAL left B/msg | load |\n|---|---|---|---|---|---|---|")
    for kind, r in rows:
        print("| %s | %d | %.0f | %.0f | %.0f | %s | %s |" % (
            kind, r["messages"], r["mail_bytes_per_msg"],
            r["index_bytes_per_msg"], r["body_bytes_per_msg"],
            "%.0f" % r["wal_bytes_per_msg"] if "wal_bytes_per_msg" in r
            else "-", r["load"]))
    print("\nfills: | backend | deliveries/s (x%d copies) | MULTIAPPEND"
          " msgs/s | load after the users' fill |\n|---|---|---|---|"
          % GROWTH_RCPTS)
    for kind, r in rows:
        print("| %s | %s | %s | %s |" % (
            kind, "%.1f" % r["fill_deliveries_per_s"]
            if "fill_deliveries_per_s" in r else "-",
            "%.0f" % r["fill_big_per_s"] if "fill_big_per_s" in r else "-",
            r.get("fill_load", "-")))
    for part, title in (("users", "each of 20 users"),
                        ("big", "the big user")):
        have = [(k, r[part]) for k, r in rows if part in r]
        if not have:
            continue
        keys = list(have[0][1])
        print("\n%s: | figure | %s |\n|---|%s" % (
            title, " | ".join(k for k, _ in have), "---|" * len(have)))
        for key in sorted(set().union(*(r for _, r in have)),
                          key=lambda k: (k not in keys, k)):
            print("| %s | %s |" % (key, " | ".join(
                "%.1f" % r[key] if key in r else "-" for _, r in have)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--no-dovecot", action="store_true")
    ap.add_argument("--no-standby", action="store_true",
                    help="PostgreSQL without a synchronous standby")
    ap.add_argument("--s3", action="store_true",
                    help="also the delivery rows with blobs = s3 (s3rver)")
    ap.add_argument("--radosgw", action="store_true",
                    help="S3 from Ceph's radosgw (tests/lib/cephenv.py: one"
                    " OSD, bluestore on a sparse file; `sh scripts/deps.sh"
                    " scaleout` installs it) instead of s3rver, for the"
                    " pg-s3 rows and the per-message table")
    ap.add_argument("--no-per-message", action="store_true")
    ap.add_argument("--failover", type=int, metavar="ROUNDS",
                    help="only the failover figure, over ROUNDS rounds")
    ap.add_argument("--push", type=int, metavar="SESSIONS",
                    help="only the cross-node push figure")
    ap.add_argument("--growth", metavar="UxM",
                    help="only the growth figures: U users x M messages")
    ap.add_argument("--big", type=int, default=0, metavar="N",
                    help="growth: one user with N messages too")
    ap.add_argument("--growth-backends", default="sqlite,postgres")
    ap.add_argument("--pg-fill-part", type=int, default=1, metavar="K",
                    help="growth on postgres: 1/K of each account's"
                    " messages delivered, the rest copied in SQL")
    ap.add_argument("--pg-fill-gin", choices=("keep", "rebuild"),
                    default="keep", help="--pg-fill-part: the trigram"
                    " indexes kept up during the copy, or made after it")
    ap.add_argument("--pg-big-append", action="store_true",
                    help="--pg-fill-part: the big user by MULTIAPPEND"
                    " whole, not copied")
    ap.add_argument("--pg-clone", type=int, metavar="N",
                    help="only: a postgres account of N cloned messages,"
                    " its reads")
    args = ap.parse_args()
    print("load %s" % loadavg(), flush=True)
    if args.failover:
        return failover(args.failover)
    if args.pg_clone:
        return pg_big_clone(args)
    if args.growth or args.big:
        args.growth = args.growth or "0x0"
        return growth(args)
    users = bench_users(args.users)
    if args.push:
        return push(args.push, users, not args.no_standby)
    return delivery(args, users)


if __name__ == "__main__":
    sys.exit(main())
