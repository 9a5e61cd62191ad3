#!/usr/bin/env python3
"""Loft's JMAP beside Cyrus's (Debian 12's Cyrus IMAP 3.6, run privately on
loopback: tests/lib/cyrusenv.py), on one mailbox of N messages (100,000 by
default), the same bytes delivered to both over LMTP.

    python3 bench/jmap.py                    # the full run
    python3 bench/jmap.py --quick            # 3,000 messages, short runs
    python3 bench/jmap.py --only push --streams 1000
    python3 bench/jmap.py --messages 100000 --reps 20 --only query,changes

Figures (medians over --reps, the servers alternating; times in ms of the
whole HTTP request as the client sees it, on a keep-alive connection):

  query_get     Email/query (inMailbox INBOX, receivedAt descending, limit
                50, calculateTotal) and Email/get of those 50 (by a result
                reference) with preview, in one request      goal < 20 ms
  changes       Email/changes after 10 changes (keywords set on 10
                messages by another request)                 goal < 5 ms
  mailbox_get   Mailbox/get of every mailbox, every property (counts)
  push          Loft only (Debian's Cyrus answers EventSource with 204):
                --streams EventSource connections open (10 per user), one
                LMTP delivery to each user in turn; on every stream of that
                user the delay from the LMTP reply (the mail is durable) to
                reading the StateChange: p50/p99/max      goal p99 < 50 ms
  mixed         --clients webmail-like clients for --seconds each: page of
                the list (query+get 50), open a message (body values),
                set $seen, poll (Email/changes + Mailbox/changes), Mailbox/get,
                a thread: requests/s and p50/p99 of a request

Memory per idle EventSource is bench/eventsource.py's (see bench/README.md).

Messages are bench/corpus.py's with bodies capped at 16 KB (--cap): the
same kinds of message (plain, alternative, attachments, threads, encoded
words) without the long tail of sizes, which JMAP's figures do not read.
Loft: build/loftd with fsync on, Bearer tokens (`loftctl token add`).
Cyrus: conversations on, Basic authentication against an always-true check,
its default fsync setting. Results also go to bench/results/jmap-<time>.json
and .md.
"""

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
os.environ.setdefault("LOFT_BUILD", os.path.join(ROOT, "build"))
os.environ.setdefault("LOFT_SRC", ROOT)

import corpus  # noqa: E402
from clients import Lmtp, ProtocolError  # noqa: E402
from scenarios import percentile  # noqa: E402
from targets import LoftTarget, cpu_seconds, settle  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import cyrusenv  # noqa: E402

BIG = "big@example.test"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
LIST_PROPS = ["id", "threadId", "mailboxIds", "keywords", "from", "to",
              "subject", "receivedAt", "size", "hasAttachment", "preview"]
READ_PROPS = ["id", "threadId", "mailboxIds", "keywords", "from", "to", "cc",
              "replyTo", "subject", "sentAt", "receivedAt", "messageId",
              "inReplyTo", "references", "textBody", "htmlBody",
              "attachments", "bodyValues"]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- a small keep-alive HTTP/1.1 client --------------------------------------

class Http:
    def __init__(self, host, port, auth):
        self.host, self.port, self.auth = host, port, auth
        self.r = self.w = None

    async def connect(self):
        self.r, self.w = await asyncio.open_connection(self.host, self.port,
                                                       limit=1 << 26)

    def close(self):
        if self.w is not None:
            self.w.close()
        self.r = self.w = None

    async def request(self, method, path, body=None, headers=None):
        """(status, headers dict, body bytes); reconnects once if the
        server closed the keep-alive connection."""
        for attempt in (0, 1):
            if self.w is None:
                await self.connect()
            try:
                return await self._request(method, path, body, headers)
            except (ConnectionError, asyncio.IncompleteReadError,
                    ProtocolError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _request(self, method, path, body, headers):
        h = {"Host": "%s:%d" % (self.host, self.port),
             "Authorization": self.auth}
        h.update(headers or {})
        if body is not None:
            h["Content-Length"] = str(len(body))
        head = "%s %s HTTP/1.1\r\n%s\r\n" % (
            method, path, "".join("%s: %s\r\n" % kv for kv in h.items()))
        self.w.write(head.encode() + (body or b""))
        line = await self.r.readline()
        if not line:
            raise ProtocolError("closed")
        status = int(line.split()[1])
        hdrs = {}
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                n = int((await self.r.readline()).split(b";")[0], 16)
                if n == 0:
                    while (await self.r.readline()) not in (b"\r\n", b""):
                        pass
                    break
                data += await self.r.readexactly(n)
                await self.r.readline()
        elif "content-length" in hdrs:
            data = await self.r.readexactly(int(hdrs["content-length"]))
        elif status in (204, 304) or method == "HEAD":
            data = b""
        else:
            data = await self.r.read()
            self.close()
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status, hdrs, data


class Jmap:
    """One JMAP client on one keep-alive connection."""

    def __init__(self, server):
        self.server = server
        self.http = Http(server.host, server.http_port, server.auth)
        self.api = server.api_path
        self.account = server.account

    async def call(self, calls):
        body = json.dumps({"using": USING, "methodCalls": calls}).encode()
        st, _, data = await self.http.request(
            "POST", self.api, body, {"Content-Type": "application/json"})
        if st != 200:
            raise ProtocolError("%s: HTTP %d %r" % (self.server.name, st,
                                                    data[:300]))
        out = {}
        for name, args, cid in json.loads(data)["methodResponses"]:
            if name == "error":
                raise ProtocolError("%s: %s -> %r" % (self.server.name, cid,
                                                      args))
            out[cid] = args
        return out

    def close(self):
        self.http.close()


# ---- the two servers ---------------------------------------------------------

class LoftServer:
    name = "loft"

    def __init__(self, users, clients):
        # One account serves every mixed client at once: its limit of
        # concurrent requests (4 by default) raised to the client count;
        # Cyrus advertises 5 and does not enforce it.
        self.target = LoftTarget(users, more={"jmap": {
            "max_concurrent_requests": str(max(5, clients))}})
        self.env = self.target.env
        self.host = "127.0.0.1"
        self.http_port = self.env.port("http")
        self.lmtp_port = self.env.port("lmtp")
        self.tokens = {}
        self.auth = self.auth_for(BIG)

    def auth_for(self, user):
        if user not in self.tokens:
            rc, out, err = self.env.loftctl("token", "add", user)
            if rc != 0:
                raise RuntimeError("loftctl token add: %s" % err)
            self.tokens[user] = out.strip()
        return "Bearer " + self.tokens[user]

    def pid(self):
        return self.env.proc.pid

    def filled(self):
        pass

    def close(self):
        self.target.close()


class CyrusServer:
    name = "cyrus"

    def __init__(self, users):
        self.env = cyrusenv.Cyrus(users)
        # filled under eatmydata (at about 14 messages/s with its fsyncs
        # the fill would take two hours), measured after a restart with
        # fsync back
        self.env.start(nosync=True)
        self.host = "127.0.0.1"
        self.http_port = self.env.ports["http"]
        self.lmtp_port = self.env.ports["lmtp"]
        self.auth = self.auth_for(BIG)

    def auth_for(self, user):
        raw = ("%s:%s" % (user, self.env.password(user))).encode()
        return "Basic " + base64.b64encode(raw).decode()

    def pid(self):
        return self.env.pid()

    def filled(self):
        self.env.stop()
        self.env.start()

    def close(self):
        self.env.close()


async def session(server):
    """Reads the session resource through /.well-known/jmap (following the
    redirect) and sets api_path and account."""
    h = Http(server.host, server.http_port, server.auth)
    path = "/.well-known/jmap"
    for _ in range(4):
        st, hdrs, data = await h.request("GET", path)
        if st in (301, 302, 307, 308):
            path = urllib.parse.urlsplit(hdrs["location"]).path or "/"
            continue
        break
    h.close()
    if st != 200:
        raise ProtocolError("%s: session: HTTP %d" % (server.name, st))
    s = json.loads(data)
    server.api_path = urllib.parse.urlsplit(s["apiUrl"]).path
    server.account = s["primaryAccounts"]["urn:ietf:params:jmap:mail"]
    return s


async def inbox_id(j):
    r = await j.call([["Mailbox/get", {"accountId": j.account,
                                       "properties": ["role", "name"]}, "m"]])
    for m in r["m"]["list"]:
        if m.get("role") == "inbox":
            return m["id"]
    raise ProtocolError("no inbox")


# ---- filling -----------------------------------------------------------------

async def fill(servers, count, cap, conns=8, seed=11, start=0):
    """Messages start..count-1 of the corpus to BIG on every server, over
    LMTP."""
    nxt = start
    t0 = time.time()

    async def worker():
        nonlocal nxt
        cs = [await Lmtp.connect(s.host, s.lmtp_port) for s in servers]
        while nxt < count:
            i, nxt = nxt, nxt + 1
            data = corpus.message(seed, i, cap=cap)
            await asyncio.gather(*(c.deliver("fill@example.org", [BIG], data)
                                   for c in cs))
            if i and i % 10000 == 0:
                print("bench: %d of %d delivered (%.0f s)"
                      % (i, count, time.time() - t0), flush=True)
        for c in cs:
            await c.close()
    await asyncio.gather(*(worker() for _ in range(conns)))


async def count_inbox(server, inbox):
    j = Jmap(server)
    r = await j.call([["Email/query", {"accountId": j.account,
                                       "filter": {"inMailbox": inbox},
                                       "calculateTotal": True,
                                       "limit": 1}, "q"]])
    j.close()
    return r["q"]["total"]


# ---- single-request figures --------------------------------------------------

def list_calls(account, inbox, position=0):
    return [["Email/query", {"accountId": account,
                             "filter": {"inMailbox": inbox},
                             "sort": [{"property": "receivedAt",
                                       "isAscending": False}],
                             "position": position, "limit": 50,
                             "calculateTotal": True}, "q"],
            ["Email/get", {"accountId": account,
                           "#ids": {"resultOf": "q", "name": "Email/query",
                                    "path": "/ids"},
                           "properties": LIST_PROPS}, "g"]]


async def timed(j, calls):
    t = time.perf_counter()
    r = await j.call(calls)
    return (time.perf_counter() - t) * 1000, r


async def single_figures(server, count, reps_inner):
    """One rep: query_get, changes, mailbox_get (each the median of
    reps_inner requests on one warm connection)."""
    j = Jmap(server)
    inbox = server.inbox
    acc = j.account
    res = {}
    await j.call(list_calls(acc, inbox))          # warm the connection
    ts = []
    for _ in range(reps_inner):
        ms, r = await timed(j, list_calls(acc, inbox))
        if r["q"]["total"] != count or len(r["g"]["list"]) != 50 or \
                not all(isinstance(e.get("preview"), str)
                        for e in r["g"]["list"]):
            raise ProtocolError("%s: list: total %r, %d got" % (
                server.name, r["q"]["total"], len(r["g"]["list"])))
        ts.append(ms)
    res["query_get_ms"] = statistics.median(ts)

    # 10 changes by another request, then Email/changes since before them
    ids = server.change_ids
    ts = []
    for k in range(reps_inner):
        r = await j.call([["Email/get", {"accountId": acc, "ids": []}, "s"]])
        since = r["s"]["state"]
        server.toggles += 1
        on = server.toggles % 2 == 1
        upd = {i: {"keywords/$flagged": True if on else None} for i in ids}
        r = await j.call([["Email/set", {"accountId": acc, "update": upd},
                           "u"]])
        if len(r["u"].get("updated") or {}) != 10:
            raise ProtocolError("%s: set: %r" % (server.name, r["u"]))
        ms, r = await timed(j, [["Email/changes", {"accountId": acc,
                                                   "sinceState": since},
                                 "c"]])
        c = r["c"]
        got = set(c["updated"]) | set(c["created"])
        if not set(ids) <= got:
            raise ProtocolError("%s: changes: %r" % (server.name, c))
        ts.append(ms)
    res["changes_ms"] = statistics.median(ts)

    ts = []
    for _ in range(reps_inner):
        ms, r = await timed(j, [["Mailbox/get", {"accountId": acc,
                                                 "ids": None}, "m"]])
        inb = [m for m in r["m"]["list"] if m["id"] == inbox][0]
        if inb["totalEmails"] != count:
            raise ProtocolError("%s: Mailbox/get: %r" % (server.name, inb))
        ts.append(ms)
    res["mailbox_get_ms"] = statistics.median(ts)
    j.close()
    return res


# ---- push latency (Loft) -----------------------------------------------------

class Stream:
    """One EventSource connection; next_state() reads up to the next
    StateChange and stamps it."""

    def __init__(self, r, w):
        self.r, self.w = r, w

    @classmethod
    async def open(cls, server, user):
        r, w = await asyncio.open_connection(server.host, server.http_port)
        w.write(("GET /jmap/eventsource/?types=*&closeafter=no&ping=0 "
                 "HTTP/1.1\r\nHost: localhost\r\nAuthorization: %s\r\n"
                 "Accept: text/event-stream\r\n\r\n"
                 % server.auth_for(user)).encode())
        line = await r.readline()
        if not line.startswith(b"HTTP/1.1 200"):
            raise ProtocolError("eventsource: %r" % line)
        while (await r.readline()) not in (b"\r\n", b""):
            pass
        return cls(r, w)

    async def next_state(self):
        """The time the data line of the next "state" event was read."""
        event = None
        while True:
            line = await self.r.readline()
            if not line:
                raise ProtocolError("eventsource closed")
            # chunked framing: size lines and empty lines are skipped
            line = line.strip()
            if line.startswith(b"event:"):
                event = line[6:].strip()
            elif line.startswith(b"data:") and event == b"state":
                return time.perf_counter()


async def push_latency(server, users, per_user):
    sem = asyncio.Semaphore(64)
    streams = {u: [] for u in users}

    async def open_one(u):
        async with sem:
            streams[u].append(await Stream.open(server, u))
    for u in users:      # tokens first: loftctl is slow beside the streams
        server.auth_for(u)
    await asyncio.gather(*(open_one(u) for u in users
                           for _ in range(per_user)))
    await asyncio.sleep(1.0)
    lat = []
    lm = await Lmtp.connect(server.host, server.lmtp_port)
    for d, u in enumerate(users):
        waiters = [asyncio.ensure_future(s.next_state()) for s in streams[u]]
        await asyncio.sleep(0)
        await lm.deliver("push@example.org", [u], corpus.message(99, d, 2000))
        t_ack = time.perf_counter()
        stamps = await asyncio.wait_for(asyncio.gather(*waiters), 30)
        # a StateChange read before the LMTP reply counts as 0
        lat.extend(max(0.0, t - t_ack) for t in stamps)
    await lm.close()
    for ss in streams.values():
        for s in ss:
            s.w.close()
    n = sum(len(ss) for ss in streams.values())
    return {"streams": n, "push_p50_ms": percentile(lat, 50) * 1000,
            "push_p99_ms": percentile(lat, 99) * 1000,
            "push_max_ms": max(lat) * 1000}


# ---- mixed workload ----------------------------------------------------------

async def mixed(server, clients, seconds, pool):
    """clients webmail-like clients for seconds: requests/s."""
    inbox = server.inbox
    stop = time.perf_counter() + seconds
    lat = []
    counts = {"requests": 0, "errors": 0}

    async def client(n):
        rng = random.Random(n)
        j = Jmap(server)
        acc = j.account
        r = await j.call([["Email/get", {"accountId": acc, "ids": []}, "e"],
                          ["Mailbox/get", {"accountId": acc, "ids": []},
                           "m"]])
        est, mst = r["e"]["state"], r["m"]["state"]
        while time.perf_counter() < stop:
            x = rng.random()
            if x < 0.35:        # a page of the list
                calls = list_calls(acc, inbox, rng.choice((0, 0, 50, 100)))
            elif x < 0.60:      # open a message
                calls = [["Email/get", {"accountId": acc,
                                        "ids": [rng.choice(pool)],
                                        "properties": READ_PROPS,
                                        "fetchHTMLBodyValues": True,
                                        "maxBodyValueBytes": 65536}, "r"]]
            elif x < 0.75:      # mark read or unread
                calls = [["Email/set", {"accountId": acc, "update": {
                    rng.choice(pool): {"keywords/$seen":
                                       True if rng.random() < 0.5
                                       else None}}}, "s"]]
            elif x < 0.85:      # poll for changes
                calls = [["Email/changes", {"accountId": acc,
                                            "sinceState": est,
                                            "maxChanges": 500}, "ec"],
                         ["Mailbox/changes", {"accountId": acc,
                                              "sinceState": mst}, "mc"]]
            elif x < 0.95:      # the folder list
                calls = [["Mailbox/get", {"accountId": acc, "ids": None},
                          "m"]]
            else:               # a conversation
                calls = [["Email/get", {"accountId": acc,
                                        "ids": [rng.choice(pool)],
                                        "properties": ["threadId"]}, "t0"],
                         ["Thread/get", {"accountId": acc,
                                         "#ids": {"resultOf": "t0",
                                                  "name": "Email/get",
                                                  "path": "/list/*/threadId"}},
                          "t"],
                         ["Email/get", {"accountId": acc,
                                        "#ids": {"resultOf": "t",
                                                 "name": "Thread/get",
                                                 "path": "/list/*/emailIds"},
                                        "properties": LIST_PROPS}, "te"]]
            t = time.perf_counter()
            try:
                r = await j.call(calls)
            except (ProtocolError, OSError) as e:
                counts["errors"] += 1
                if counts["errors"] <= 3:
                    print("bench: %s mixed: %s" % (server.name, str(e)[:300]),
                          file=sys.stderr)
                continue
            lat.append(time.perf_counter() - t)
            counts["requests"] += 1
            if "ec" in r:
                est = r["ec"]["newState"]
                mst = r["mc"]["newState"]
        j.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    el = time.perf_counter() - t0
    return {"requests_per_s": counts["requests"] / el,
            "request_p50_ms": percentile(lat, 50) * 1000,
            "request_p99_ms": percentile(lat, 99) * 1000,
            "errors": counts["errors"]}


# ---- main --------------------------------------------------------------------

def median_rows(runs):
    keys = runs[0].keys() if runs else []
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--cap", type=int, default=16000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--inner", type=int, default=10,
                    help="requests per figure in one rep")
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--only", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-cyrus", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.messages, args.reps, args.inner = 3000, 3, 5
        args.streams, args.users, args.seconds = 200, 20, 5
    only = set(x for x in args.only.split(",") if x)

    def want(x):
        return not only or x in only

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load_start = loadavg()
    t_start = time.time()
    users = ["user%03d@example.test" % i for i in range(args.users)]
    passwords = {u: "pw-%03d-secret" % i for i, u in enumerate(users)}
    passwords[BIG] = "large-mailbox-owner-pw"
    servers = []
    rows = []
    try:
        servers.append(LoftServer(passwords, args.clients))
        if not args.no_cyrus:
            if not cyrusenv.available():
                sys.exit("bench: no Cyrus (sh scripts/deps.sh bench)")
            servers.append(CyrusServer(list(passwords)))
        # the first delivery creates Cyrus's account; sessions after it
        asyncio.run(fill(servers, 1, args.cap))

        async def prepare(s):
            await session(s)
            s.inbox = await inbox_id(Jmap(s))
        for s in servers:
            asyncio.run(prepare(s))
        if want("query") or want("changes") or want("mixed"):
            t0 = time.time()
            asyncio.run(fill(servers, args.messages, args.cap, start=1))
            print("bench: filled %d messages on %d servers in %.0f s"
                  % (args.messages, len(servers), time.time() - t0),
                  flush=True)
        for s in servers:
            s.filled()
        count = {s.name: asyncio.run(count_inbox(s, s.inbox))
                 for s in servers}
        for s in servers:
            settle(s.pid(), limit=300)

        async def ids_of(s):
            j = Jmap(s)
            r = await j.call([["Email/query", {
                "accountId": j.account, "filter": {"inMailbox": s.inbox},
                "sort": [{"property": "receivedAt", "isAscending": False}],
                "limit": 2000}, "q"]])
            j.close()
            return r["q"]["ids"]
        for s in servers:
            ids = asyncio.run(ids_of(s))
            s.change_ids = ids[100:110]
            s.toggles = 0
            s.pool = ids
        if want("query") or want("changes"):
            runs = {s.name: [] for s in servers}
            for rep in range(args.reps):
                for s in servers:
                    runs[s.name].append(asyncio.run(single_figures(
                        s, count[s.name], args.inner)))
            for s in servers:
                m = median_rows(runs[s.name])
                m["messages"] = count[s.name]
                rows.append((s.name, "single requests", m))
        if want("mixed"):
            runs = {s.name: [] for s in servers}
            for rep in range(args.reps):
                for s in servers:
                    runs[s.name].append(asyncio.run(mixed(
                        s, args.clients, args.seconds, s.pool)))
            for s in servers:
                rows.append((s.name, "mixed %d clients %d s"
                             % (args.clients, args.seconds),
                             median_rows(runs[s.name])))
        if want("push"):
            loft = servers[0]
            settle(loft.pid(), limit=300)
            per = max(1, args.streams // len(users))
            r = asyncio.run(push_latency(loft, users, per))
            rows.append(("loft", "push %d streams, %d users" % (
                r["streams"], len(users)), r))
    finally:
        for s in servers:
            s.close()

    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "cores": os.cpu_count(), "kernel": platform.release(),
            "load_start": load_start, "load_end": loadavg(),
            "elapsed_s": round(time.time() - t_start),
            "params": vars(args)}
    lines = ["# JMAP: Loft beside Cyrus", "",
             "%(date)s, %(cores)s cores, kernel %(kernel)s, load "
             "%(load_start)s -> %(load_end)s, %(elapsed_s)s s" % meta,
             "", "| server | run | figure | value |",
             "| --- | --- | --- | --- |"]
    for name, what, fig in rows:
        for k, v in fig.items():
            lines.append("| %s | %s | %s | %s |" % (
                name, what, k, ("%.2f" % v) if isinstance(v, float) else v))
    text = "\n".join(lines) + "\n"
    print(text)
    outdir = os.path.join(HERE, "results")
    os.makedirs(outdir, exist_ok=True)
    stamp = "jmap-" + time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(outdir, stamp + ".json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    with open(os.path.join(outdir, stamp + ".md"), "w") as f:
        f.write(text)
    print("bench: results in bench/results/%s.{json,md}" % stamp)


if __name__ == "__main__":
    main()
