"""The benchmark scenarios. Each takes a target (bench/targets.py: a running
Loft or Dovecot with the same users) and its parameters, and returns a dict
of figures. Nothing here knows which server it talks to.
"""

import asyncio
import collections
import os
import random
import re
import statistics
import time

import corpus
import procsplit
from clients import Imap, Lmtp, Pop3, ProtocolError


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


# ---- 1. LMTP delivery ------------------------------------------------------

async def lmtp_delivery(target, conns, count, size=None, rcpts_max=1,
                        seed=7):
    """Delivers count messages over conns parallel LMTP connections.
    size: fixed body size (10 KB scenario) or None for the realistic corpus
    (long-tailed sizes, 1..rcpts_max recipients per message)."""
    users = target.user_names()
    msgs = []
    rng = random.Random(seed)
    for i in range(count):
        nr = rng.randint(1, rcpts_max)
        rcpts = rng.sample(users, min(nr, len(users)))
        msgs.append((rcpts, corpus.message(seed, i, size)))
    latencies = []
    small = []     # messages kept in the index (Loft: <= 128 KiB)
    queue = list(range(count))

    async def worker():
        c = await Lmtp.connect(target.host, target.port("lmtp"))
        try:
            while queue:
                i = queue.pop()
                rcpts, data = msgs[i]
                t0 = time.perf_counter()
                await c.deliver("sender@example.org", rcpts, data)
                latencies.append(time.perf_counter() - t0)
                if len(data) <= 128 * 1024:
                    small.append(latencies[-1])
        finally:
            await c.close()

    cpu0 = target.cpu()
    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(conns)))
    t1 = time.monotonic()
    elapsed = t1 - t0
    # server CPU per message, with the background work that follows the
    # last reply (Loft's search indexer, Dovecot's index updates and FTS
    # indexer-workers); the rate counted until that work is done too
    done = await asyncio.get_running_loop().run_in_executor(None,
                                                            target.settle)
    cpu = target.cpu() - cpu0
    nbytes = sum(len(m[1]) * len(m[0]) for m in msgs)
    return {"msgs_per_s": count / elapsed,
            "indexed_msgs_per_s": count / (max(done, t1) - t0),
            "MB_per_s": nbytes / elapsed / 1e6,
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "cpu_ms_per_msg": cpu / count * 1000,
            **({"small_p50_ms": percentile(small, 50) * 1000,
                "small_p99_ms": percentile(small, 99) * 1000}
               if size is None else {})}


def lmtp_syncs(target, conns, count, size=None, rcpts_max=1, seed=8):
    """The same delivery under strace -f -c (not timed: tracing slows the
    server): sync calls (fsync, fdatasync, ...) per message and per copy."""
    from targets import SyscallCount
    users = target.user_names()
    rng = random.Random(seed)
    copies = sum(min(rng.randint(1, rcpts_max), len(users))
                 for _ in range(count))
    with SyscallCount(target.pids()) as sc:
        asyncio.run(lmtp_delivery(target, conns, count, size, rcpts_max,
                                  seed))
        # the background work after the last reply is in the count too
        target.settle()
    n = sc.counts()
    total = sum(n.values())
    out = {"syncs_per_msg": total / count, "syncs_per_copy": total / copies}
    for k, v in n.items():
        out["%s_per_msg" % k] = v / count
    return out


# ---- 1b. new accounts' first delivery beside existing accounts --------------

async def new_accounts(target, rep, count=100, load_msgs=300, conns=4,
                       seed=21):
    """Existing accounts' LMTP delivery latency (10 KB, conns connections)
    alone ("usual"), then again while count accounts created just now get
    their first message over conns other connections ("during"). Goal:
    during p99 under twice the usual p99. The new accounts are made with
    the server running (not timed)."""
    users = target.user_names()
    new = {"new%02d-%03d@example.test" % (rep, i): "new-account-pw-%d" % i
           for i in range(count)}
    await asyncio.get_running_loop().run_in_executor(
        None, target.add_users, new)

    async def existing(n, stop=None):
        lat = []
        left = [n]

        async def worker(k):
            c = await Lmtp.connect(target.host, target.port("lmtp"))
            i = 0
            while left[0] > 0 or (stop is not None and not stop.is_set()):
                left[0] -= 1
                i += 1
                data = corpus.message(seed, k * 100000 + i, 10_000)
                t0 = time.perf_counter()
                await c.deliver("load@example.org",
                                [users[(k + i) % len(users)]], data)
                lat.append(time.perf_counter() - t0)
            await c.close()
        await asyncio.gather(*(worker(k) for k in range(conns)))
        return lat

    usual = await existing(load_msgs)
    stop = asyncio.Event()
    first = []
    todo = sorted(new)

    async def newcomer():
        c = await Lmtp.connect(target.host, target.port("lmtp"))
        while todo:
            u = todo.pop()
            t0 = time.perf_counter()
            await c.deliver("hello@example.org", [u],
                            corpus.message(seed + 1, len(todo), 10_000))
            first.append(time.perf_counter() - t0)
        await c.close()

    async def newcomers():
        await asyncio.sleep(0.2)    # the existing load is running
        await asyncio.gather(*(newcomer() for _ in range(conns)))
        stop.set()

    during, _ = await asyncio.gather(existing(load_msgs // 4, stop),
                                     newcomers())
    u99 = percentile(usual, 99)
    d99 = percentile(during, 99)
    return {"usual_p50_ms": percentile(usual, 50) * 1000,
            "usual_p99_ms": u99 * 1000,
            "during_p50_ms": percentile(during, 50) * 1000,
            "during_p99_ms": d99 * 1000,
            "p99_during_over_usual": d99 / u99,
            "first_p50_ms": percentile(first, 50) * 1000,
            "first_p99_ms": percentile(first, 99) * 1000,
            "first_max_ms": max(first) * 1000}


# ---- 2. idle connections and push latency ----------------------------------

IDLE_SETTLE_S = 20


async def idle_connections(target, count, tls, users=None):
    """Opens count IMAP connections (spread over the target's users), each
    logged in, INBOX selected and in IDLE; measures the server's memory per
    connection (PSS of all its processes, after minus before, divided by
    count), then delivers one message to every user, one after the other,
    and measures on EVERY connection the delay from the delivery's LMTP
    reply (the mail is durable then) to that connection's untagged EXISTS,
    stamped when the client reads the line. users: the accounts to spread
    over (default the ordinary ones; [one user] puts every session on one
    mailbox)."""
    users = users or target.user_names()
    port = target.port("imaps" if tls else "imap")
    mem0 = target.memory()
    by0 = target.memory_by_process() if hasattr(target,
                                                "memory_by_process") else {}
    conns = []
    sem = asyncio.Semaphore(64)

    async def open_one(i):
        user = users[i % len(users)]
        async with sem:
            c = await Imap.connect(target.host, port, tls)
            await c.login(user, target.password(user))
            await c.command("SELECT INBOX")
            await c.idle_start()
        conns.append((user, c))

    await asyncio.gather(*(open_one(i) for i in range(count)))
    await asyncio.sleep(1.0)
    mem1 = target.memory()
    per_conn = (mem1 - mem0) / count
    opened = {"mem_total_MB": mem1 / 1e6, "mem_added_MB": (mem1 - mem0) / 1e6}
    # Where it went, per process (privilege separation: parent, auth,
    # outbound, mail; a page shared since the fork counts in PSS at a share
    # each until one of them writes it)
    by1 = target.memory_by_process() if by0 else {}
    per_process = {"mem_per_conn_%s_KiB" % k.replace("-", "_"):
                   (by1.get(k, 0) - by0.get(k, 0)) / count / 1024
                   for k in set(by0) | set(by1)}
    # and once the sessions have sat idle a while: what a server keeps
    # for an idle session, after its own idle housekeeping (Loft gives
    # back an idle account's pooled readers and caches after 10 s)
    await asyncio.sleep(IDLE_SETTLE_S)
    mem2 = target.memory()
    opened["mem_per_conn_settled_KiB"] = (mem2 - mem0) / count / 1024
    opened["mem_total_settled_MB"] = mem2 / 1e6

    by_user = {}
    for user, c in conns:
        by_user.setdefault(user, []).append(c)
    lat = []
    lm = await Lmtp.connect(target.host, target.port("lmtp"))
    for d, user in enumerate(sorted(by_user)):
        waiters = [asyncio.ensure_future(c.wait_exists_at())
                   for c in by_user[user]]
        await asyncio.sleep(0)    # every waiter is reading before delivery
        await lm.deliver("push@example.org", [user],
                         corpus.message(99, d, 2000))
        t_ack = time.perf_counter()
        stamps = await asyncio.wait_for(asyncio.gather(*waiters),
                                        max(30, len(waiters) / 50))
        # An EXISTS can be read before the LMTP reply (the server tells the
        # IDLE sessions as it commits, beside the reply): that counts as 0.
        lat.extend(max(0.0, t - t_ack) for t in stamps)
    await lm.close()
    for _, c in conns:
        c.w.close()
    await asyncio.sleep(0.5)
    if len(lat) != count:
        raise ProtocolError("idle: %d of %d connections saw EXISTS"
                            % (len(lat), count))
    return {**per_process, **opened,
            "connections": count, "mem_per_conn_KiB": per_conn / 1024,
            "push_p50_ms": percentile(lat, 50) * 1000,
            "push_p99_ms": percentile(lat, 99) * 1000,
            "push_max_ms": max(lat) * 1000}


# ---- 3. the big mailbox ----------------------------------------------------

async def big_mailbox(target, user, expect=None, word=corpus.SEARCH_WORD):
    """Timings on a mailbox already filled (see fill_mailbox)."""
    res = {}
    pw = target.password(user)
    t = time.perf_counter()
    c = await Imap.connect(target.host, target.port("imap"))
    await c.login(user, pw)
    await c.command("ENABLE QRESYNC")
    untagged, _ = await c.command("SELECT INBOX")
    res["login_select_ms"] = (time.perf_counter() - t) * 1000
    uidvalidity = modseq = exists = None
    for line in untagged:
        if b"UIDVALIDITY" in line:
            uidvalidity = int(line.split(b"UIDVALIDITY ")[1].split(b"]")[0])
        if line.endswith(b" EXISTS\r\n"):
            exists = int(line.split()[1])
    if expect is not None and exists != expect:
        raise ProtocolError("big mailbox holds %s messages, not %d"
                            % (exists, expect))
    res["messages"] = exists

    async def timed(name, cmd):
        t0 = time.perf_counter()
        n = await c.count_untagged(cmd)
        res[name] = (time.perf_counter() - t0) * 1000
        return n

    await timed("uid_fetch_flags_ms", "UID FETCH 1:* (FLAGS)")
    await timed("fetch_env_bs_ms", "FETCH 1:* (ENVELOPE BODYSTRUCTURE)")
    t0 = time.perf_counter()
    u, _ = await c.command("UID SEARCH BODY " + word)
    res["search_body_ms"] = (time.perf_counter() - t0) * 1000
    res["search_body_hits"] = sum(len(x.split()) - 2 for x in u
                                  if x.startswith(b"* SEARCH"))
    t0 = time.perf_counter()
    await c.command("SEARCH TEXT " + word)
    res["search_text_ms"] = (time.perf_counter() - t0) * 1000
    # a header field about 1 % of messages have (corpus.LIST_ID)
    t0 = time.perf_counter()
    u, _ = await c.command("UID SEARCH HEADER List-Id " + corpus.LIST_ID)
    res["search_header_ms"] = (time.perf_counter() - t0) * 1000
    res["search_header_hits"] = sum(len(x.split()) - 2 for x in u
                                    if x.startswith(b"* SEARCH"))
    # QRESYNC: remember the state, make 10 changes from another session,
    # then time a reselect that asks only for what changed.
    await c.command("UNSELECT")
    u, _ = await c.command("STATUS INBOX (HIGHESTMODSEQ MESSAGES)")
    for line in u:
        if b"HIGHESTMODSEQ" in line:
            modseq = int(line.split(b"HIGHESTMODSEQ ")[1].split(b")")[0]
                         .split()[0])
    other = await Imap.connect(target.host, target.port("imap"))
    await other.login(user, pw)
    await other.command("SELECT INBOX")
    # Toggle \Answered so every rep makes 10 real changes (adding a flag a
    # message already has changes nothing).
    for i in range(1, 11):
        u, _ = await other.command("FETCH %d (FLAGS)" % (i * 7))
        sign = "-" if any(b"\\Answered" in x for x in u) else "+"
        await other.command("STORE %d %sFLAGS.SILENT (\\Answered)"
                            % (i * 7, sign))
    await other.close()
    t0 = time.perf_counter()
    u, _ = await c.command("SELECT INBOX (QRESYNC (%d %d))"
                           % (uidvalidity, modseq))
    res["qresync_10_changes_ms"] = (time.perf_counter() - t0) * 1000
    res["qresync_fetches"] = sum(1 for x in u if b" FETCH " in x)
    if res["qresync_fetches"] < 10:
        raise ProtocolError("QRESYNC reported %d changes, not 10"
                            % res["qresync_fetches"])
    t0 = time.perf_counter()
    await c.count_untagged("STORE 1:* +FLAGS.SILENT (\\Flagged)")
    res["store_all_ms"] = (time.perf_counter() - t0) * 1000
    await c.command("STORE 1:* -FLAGS.SILENT (\\Flagged)")
    await c.close()
    return res


async def fill_mailboxes(targets, user, count, seed=11, conns=8,
                         make=None):
    """Delivers the same count corpus messages to user on every target over
    LMTP (not timed): each message is made once and sent to all. Then checks
    that every target's INBOX holds exactly count messages. make(seed, i):
    the message (default corpus.message). Returns the bytes sent."""
    nxt = 0
    sent = 0
    make = make or corpus.message

    async def worker():
        nonlocal nxt, sent
        cs = [await Lmtp.connect(t.host, t.port("lmtp")) for t in targets]
        while nxt < count:
            i, nxt = nxt, nxt + 1
            data = make(seed, i)
            sent += len(data)
            await asyncio.gather(*(c.deliver("fill@example.org", [user], data)
                                   for c in cs))
        for c in cs:
            await c.close()
    await asyncio.gather(*(worker() for _ in range(conns)))
    for t in targets:
        c = await Imap.connect(t.host, t.port("imap"))
        await c.login(user, t.password(user))
        u, _ = await c.command("STATUS INBOX (MESSAGES)")
        await c.close()
        n = int(b"".join(u).split(b"MESSAGES ")[1].split(b")")[0])
        if n != count:
            raise ProtocolError("%s: big mailbox has %d messages, not %d"
                                % (t.name, n, count))
    return sent


def plain_message(seed, i):
    """A text/plain message of the corpus's sizes (no attachments, no
    HTML): the 'plain-text mail alone' of the disk figures."""
    rng = random.Random(seed * 7919 + i)
    return corpus.message(seed, i, size=corpus._body_size(rng))


def disk_figures(target, user, messages, mail_bytes):
    """Bytes on disk per message of one account, after the server's
    background work (the search indexer) is done."""
    target.settle()
    d = target.disk(user)
    out = {"messages": messages,
           "mail_bytes_per_msg": mail_bytes / messages,
           "total_bytes_per_msg": d["files"] / messages,
           "allocated_bytes_per_msg": d["allocated"] / messages,
           "bodies_bytes_per_msg": d["blob"] / messages,
           "index_bytes_per_msg": d["index"] / messages,
           "total_pct_of_mail": 100.0 * d["files"] / mail_bytes}
    if d["search"]:
        out["search_bytes_per_msg"] = d["search"] / messages
        out["search_pct_of_mail"] = 100.0 * d["search"] / mail_bytes
    return out


# ---- 3b. MULTIAPPEND and CHANGEDSINCE ----------------------------------------

async def multiappend_fill(target, user, count, per_cmd=50, seed=13):
    """Fills user's INBOX with count corpus messages by MULTIAPPEND (RFC
    3502), per_cmd messages per command, one connection, LITERAL+."""
    c = await Imap.connect(target.host, target.port("imap"))
    await c.login(user, target.password(user))
    t0 = time.perf_counter()
    sent = 0
    for lo in range(0, count, per_cmd):
        msgs = [corpus.message(seed, i)
                for i in range(lo, min(count, lo + per_cmd))]
        sent += sum(len(m) for m in msgs)
        c.tagn += 1
        tag = b"m%d" % c.tagn
        c.w.write(tag + b" APPEND INBOX" +
                  b"".join(b" {%d+}\r\n" % len(m) + m for m in msgs) +
                  b"\r\n")
        await c.read_until_tagged(tag)
    el = time.perf_counter() - t0
    u, _ = await c.command("STATUS INBOX (MESSAGES)")
    await c.close()
    n = int(b"".join(u).split(b"MESSAGES ")[1].split(b")")[0])
    if n != count:
        raise ProtocolError("MULTIAPPEND: %d messages, not %d" % (n, count))
    return {"messages": n, "msgs_per_s": count / el, "fill_s": el,
            "mail_bytes": sent}


async def changedsince(target, user, tries=5):
    """UID FETCH 1:* (FLAGS) (CHANGEDSINCE m) (RFC 7162 3.1.4) after 10
    flag changes by another session: median of tries."""
    pw = target.password(user)
    c = await Imap.connect(target.host, target.port("imap"))
    await c.login(user, pw)
    other = await Imap.connect(target.host, target.port("imap"))
    await other.login(user, pw)
    await other.command("SELECT INBOX")
    times = []
    for t in range(tries):
        u, _ = await c.command("SELECT INBOX (CONDSTORE)")
        modseq = exists = None
        for line in u:
            if b"[HIGHESTMODSEQ " in line:
                modseq = int(line.split(b"[HIGHESTMODSEQ ")[1].split(b"]")[0])
            if line.endswith(b" EXISTS\r\n"):
                exists = int(line.split()[1])
        for i in range(1, 11):
            n = (i * 97 + t) % exists + 1
            u, _ = await other.command("FETCH %d (FLAGS)" % n)
            sign = "-" if any(b"\\Answered" in x for x in u) else "+"
            await other.command("STORE %d %sFLAGS.SILENT (\\Answered)"
                                % (n, sign))
        t0 = time.perf_counter()
        u, _ = await c.command("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)"
                               % modseq)
        times.append(time.perf_counter() - t0)
        got = sum(1 for x in u if b" FETCH " in x)
        if got < 10:
            raise ProtocolError("CHANGEDSINCE reported %d changes, not 10"
                                % got)
    await other.close()
    await c.close()
    return {"changedsince_10_ms": statistics.median(times) * 1000}


# ---- 4. POP3 ---------------------------------------------------------------

async def pop3_maildrop(target, user, expect=None):
    res = {}
    pw = target.password(user)
    # Login and UIDL are timed apart too: Loft verifies argon2id (its
    # cache holds a success for a minute) where Dovecot's passwd-file has
    # {PLAIN}, so an uncached rep is mostly password hashing.
    t0 = time.perf_counter()
    p = await Pop3.connect(target.host, target.port("pop3"))
    await p.login(user, pw)
    t1 = time.perf_counter()
    n, _ = await p.multiline("UIDL")
    t2 = time.perf_counter()
    res["login_uidl_ms"] = (t2 - t0) * 1000
    res["login_ms"] = (t1 - t0) * 1000
    res["uidl_ms"] = (t2 - t1) * 1000
    res["messages"] = n
    if expect is not None and n != expect:
        raise ProtocolError("maildrop has %d messages, not %d" % (n, expect))
    t0 = time.perf_counter()
    total = 0
    for i in range(1, n + 1):
        _, size = await p.multiline("TOP %d 0" % i)
        total += size
    res["top0_all_s"] = time.perf_counter() - t0
    # the same, pipelined as RFC 2449 allows (what fetchmail/getmail-like
    # clients that read headers first can do)
    t0 = time.perf_counter()
    await p.pipelined_multi(["TOP %d 0" % i for i in range(1, n + 1)])
    res["top0_all_pipelined_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    total = 0
    for i in range(1, n + 1):
        _, size = await p.multiline("RETR %d" % i)
        total += size
    el = time.perf_counter() - t0
    res["retr_MB_per_s"] = total / el / 1e6
    await p.close()   # no DELE: nothing changes
    return res


# ---- 5. mixed workload -----------------------------------------------------

def mixed_workload(target, clients, seconds, seed=5, procs=None,
                   logout_every=0):
    """clients IMAP sessions doing what mail clients do, for seconds:
    select, fetch headers, fetch bodies, flag, move, expunge, append, idle.
    logout_every 0: long sessions; N: each client logs out after N
    operations and connects and logs in again (inside the timed window:
    phones that open a connection per check; LOGIN and LOGOUT are not
    counted as operations, logins_per_s counts them).
    The sessions are spread over procs client processes (bench/procsplit.py:
    one Python process would measure itself); client i does the same thing
    whichever process runs it. The clock starts once every client has
    logged in: the servers hash passwords differently (Loft argon2 at its
    production cost, the Dovecot here {PLAIN}); logins are the login
    scenario's figure. Returns operations per second, errors, and the
    server's and the clients' CPU time per operation."""
    procs = max(1, min(clients, procs or procsplit.default_procs()))
    parts = [(p, [i for i in range(clients) if i % procs == p], seconds, seed,
              logout_every)
             for p in range(procs)]
    run = procsplit.run_split(target, parts, _mixed_part)
    ops = sum(r["ops"] for r in run.results)
    errors = [e for r in run.results for e in r["errors"]]
    return {"ops_per_s": ops / run.wall,
            "logins_per_s": sum(r["logins"] for r in run.results) / run.wall,
            "errors": sum(r["nerrors"] for r in run.results),
            "first_error": errors[0] if errors else "",
            **cpu_figures(run, ops)}


def cpu_figures(run, ops):
    """The server's CPU per operation (every process of the server, from
    the common start until every client process ended its timed part),
    the client processes' own, and the load the run saw."""
    return {"server_cpu_us_per_op": run.server_cpu / max(ops, 1) * 1e6,
            "client_cpu_us_per_op": run.client_cpu / max(ops, 1) * 1e6,
            "client_procs": len(run.results),
            "load_1min": os.getloadavg()[0]}


async def _mixed_part(target, part, sync):
    """One client process of mixed_workload: its share of the clients."""
    pno, mine, seconds, seed, logout_every = part
    users = target.user_names()
    ops = 0
    logins = 0
    errors = []
    append_msg = corpus.message(seed, 1, 6000)

    async def login(i):
        c = await Imap.connect(target.host, target.port("imap"))
        user = users[i % len(users)]
        await c.login(user, target.password(user))
        return c

    conns = await asyncio.gather(*(login(i) for i in mine))
    stop = await sync.started() + seconds

    async def client(i, c):
        nonlocal ops, logins
        rng = random.Random(seed * 100 + i)
        here = 0
        while time.monotonic() < stop:
            try:
                if logout_every and here >= logout_every:
                    await c.close()
                    c = await login(i)
                    conns[mine.index(i)] = c
                    logins += 1
                    here = 0
                u, _ = await c.command("SELECT INBOX")
                exists = 0
                for line in u:
                    if line.endswith(b"EXISTS\r\n"):
                        exists = int(line.split()[1])
                    elif line.endswith(b"EXPUNGE\r\n"):
                        # another session's expunge told during SELECT
                        exists -= 1
                ops += 1
                here += 1
                if exists == 0:
                    await c.command("APPEND INBOX {%d+}\r\n" % len(append_msg)
                                    + append_msg.decode())
                    ops += 1
                    here += 1
                    continue
                r = rng.random()
                lo = rng.randint(1, exists)
                hi = min(exists, lo + 20)
                if r < 0.3:
                    await c.count_untagged(
                        "FETCH %d:%d (UID FLAGS ENVELOPE RFC822.SIZE)"
                        % (lo, hi))
                elif r < 0.5:
                    await c.count_untagged("FETCH %d BODY.PEEK[1]" % lo)
                elif r < 0.65:
                    await c.command("STORE %d +FLAGS (\\Seen)" % lo)
                elif r < 0.72:
                    await c.command("MOVE %d Archive" % lo)
                elif r < 0.8:
                    await c.command("STORE %d +FLAGS.SILENT (\\Deleted)" % lo)
                    await c.command("EXPUNGE")
                elif r < 0.9:
                    await c.command("APPEND INBOX {%d+}\r\n" % len(append_msg)
                                    + append_msg.decode())
                else:
                    await c.idle_start()
                    await asyncio.sleep(0.05)
                    await c.idle_done()
                ops += 1
                here += 1
            except (ProtocolError, asyncio.IncompleteReadError, OSError) as e:
                errors.append(str(e)[:200])
                if len(errors) > 100:
                    break

    await asyncio.gather(*(client(i, c) for i, c in zip(mine, conns)))
    await sync.finished()
    for c in conns:
        await c.close()
    return {"part": pno, "ops": ops, "logins": logins, "errors": errors[:5],
            "nerrors": len(errors)}


# ---- 5b. the checking stress client ----------------------------------------

STRESS_USERS = 3


def stress_users(target):
    return {u: target.password(u) for u in target.user_names()[:STRESS_USERS]}


async def stress_seed(target):
    import imapstress
    await imapstress.seed(target.host, target.port("imap"),
                          stress_users(target), per_mailbox=25)


def stress_workload(target, clients, seconds, logout_every, procs=None):
    """tests/lib/imapstress.py: clients on a few shared accounts doing a
    random mix of every command, each checking every response against the
    protocol's state rules. logout_every 0: long sessions; N: every client
    logs out and in again after N operations. The clients are spread over
    procs client processes (bench/procsplit.py), all clients of one
    account in one process (they share what imapstress.Shared records),
    so at most one process per account. Returns operations per second,
    logins per second, the violations found (per rule as v_<rule>) and the
    server's and the clients' CPU time per operation."""
    names = sorted(stress_users(target))
    procs = max(1, min(len(names), procs or procsplit.default_procs()))
    parts = [(p, [i for i in range(clients) if (i % len(names)) % procs == p],
              clients, seconds, logout_every) for p in range(procs)]
    run = procsplit.run_split(target, parts, _stress_part)
    ops = sum(r["ops"] for r in run.results)
    rules = collections.Counter()
    for r in run.results:
        rules.update(r["rule_counts"])
    out = {"ops_per_s": ops / run.wall,
           "logins_per_s": sum(r["logins"] for r in run.results) / run.wall,
           "violations": sum(rules.values()),
           "serverbugs": sum(r["serverbugs"] for r in run.results),
           "errors": sum(r["errors"] for r in run.results),
           **cpu_figures(run, ops)}
    for rule, n in rules.items():
        out["v_" + rule.replace("-", "_")] = n
    for r in run.results:
        if r["details"]:
            print(r["details"], flush=True)
    return out


async def _stress_part(target, part, sync):
    """One client process of stress_workload."""
    import imapstress
    pno, mine, clients, seconds, logout_every = part
    await sync.started()
    rep = await imapstress.run(target.host, target.port("imap"),
                               stress_users(target), clients, seconds,
                               logout_every=logout_every, only=mine)
    return {"part": pno, "ops": rep.ops, "logins": rep.logins,
            "rule_counts": dict(rep.rule_counts),
            "serverbugs": len(rep.serverbugs), "errors": len(rep.errors),
            "details": rep.details(3) if rep.rule_counts or rep.serverbugs
            else ""}


# ---- 5c. NOTIFY: one connection watching many folders ------------------------

NOTIFY_ROOT = "Watch"


async def notify_seed(target, user, folders):
    """Creates folders Watch/f0 .. f<n-1> for user (once, before the runs)."""
    c = await Imap.connect(target.host, target.port("imap"))
    await c.login(user, target.password(user))
    # pipelined: the replies are read in order
    batch = 200
    for lo in range(0, folders, batch):
        tags = []
        for i in range(lo, min(folders, lo + batch)):
            c.tagn += 1
            tag = b"b%d" % c.tagn
            tags.append(tag)
            c.w.write(tag + b" CREATE %s/f%d\r\n" % (NOTIFY_ROOT.encode(), i))
        for tag in tags:
            _, line = await c.read_until_tagged(tag, ok=False)
            if not (line.startswith(tag + b" OK") or b"ALREADYEXISTS" in line):
                raise ProtocolError("CREATE: %r" % line[:200])
    await c.close()


async def notify_latency(target, user, folders, events, idle, seed=11):
    """RFC 5465 NOTIFY: one connection (nothing selected; in IDLE or not)
    watches every folder under Watch/ with NOTIFY SET (subtree Watch
    (MessageNew MessageExpunge)); another appends to a random folder, one
    at a time. Push latency: from the appender reading its tagged OK (the
    message is durable) to the watcher reading that folder's STATUS (0 if
    the STATUS came first); and from the APPEND sent (an upper bound: the
    append's own work is in it)."""
    rng = random.Random(seed)
    w = await Imap.connect(target.host, target.port("imap"))
    await w.login(user, target.password(user))
    caps = b" ".join((await w.command("CAPABILITY"))[0])
    if b" NOTIFY" not in caps:
        await w.close()
        return {"supported": 0}
    await w.command("NOTIFY SET (subtree %s (MessageNew MessageExpunge))"
                    % NOTIFY_ROOT)
    if idle:
        await w.idle_start()
    a = await Imap.connect(target.host, target.port("imap"))
    await a.login(user, target.password(user))
    msg = corpus.message(seed, 0, 2000).decode("utf-8", "replace")
    lat, lat_send = [], []

    async def wait_status(name):
        pat = re.compile(rb'^\* STATUS "?' + re.escape(name.encode()) +
                         rb'"? \(')
        while True:
            line = await w.read_response_line()
            if pat.match(line):
                return time.perf_counter()

    for _ in range(events):
        name = "%s/f%d" % (NOTIFY_ROOT, rng.randrange(folders))
        waiter = asyncio.ensure_future(wait_status(name))
        t_send = time.perf_counter()
        await a.command("APPEND %s {%d+}\r\n%s" % (name, len(msg.encode()),
                                                    msg))
        t_ok = time.perf_counter()
        t_status = await asyncio.wait_for(waiter, 120)
        lat.append(max(0.0, t_status - t_ok))
        lat_send.append(t_status - t_send)
    if idle:
        await w.idle_done()
    await a.close()
    await w.close()
    return {"supported": 1, "p50_ms": percentile(lat, 50) * 1000,
            "p99_ms": percentile(lat, 99) * 1000,
            "max_ms": max(lat) * 1000,
            "from_send_p50_ms": percentile(lat_send, 50) * 1000,
            "from_send_p99_ms": percentile(lat_send, 99) * 1000}


# ---- 6. login rate ---------------------------------------------------------

async def login_rate(target, seconds, parallel=4):
    users = target.user_names()
    n = 0
    stop = time.perf_counter() + seconds

    async def worker(i):
        nonlocal n
        while time.perf_counter() < stop:
            user = users[(i + n) % len(users)]
            c = await Imap.connect(target.host, target.port("imaps"), True)
            await c.authenticate_plain(user, target.password(user))
            await c.close()
            n += 1
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(parallel)))
    return {"logins_per_s": n / (time.perf_counter() - t0)}


def median_of(runs, key):
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else float("nan")
