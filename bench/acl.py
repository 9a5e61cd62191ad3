"""Scenario `acl` (issue 15): shared mailboxes, Loft beside Dovecot with
the same ACLs.

Its own pair of servers (the other scenarios' Dovecot has no acl plugin):
Loft as always (ACLs, "Other Users/" and "Shared/" are built in); Dovecot
with the acl + imap_acl plugins, `acl = vfile`, a shared namespace
"Other Users/%%u/" whose private \\Seen lives in the reader's INDEXPVT
(`location = maildir:%%h/Maildir:INDEXPVT=~/Maildir/shared/%%u`) and
`acl_shared_dict` so LIST finds who shared what. Every grant is the same
SETACL on both (sales@'s on Loft by `loftctl acl set`: a shared address
never logs in; on Dovecot sales@ is an account that shares its INBOX).

Figures (medians over the reps, each LIST timed 5 times per rep):
- LIST "" "*" and LIST-STATUS (MESSAGES UNSEEN) of a user who sees
  10 folders of each of `owners` owners (1,000 for 100), 2 messages each;
  the listed count, MESSAGES and UNSEEN sums are checked on both.
- What sharing adds to the LIST "" "*" of a user with nothing shared:
  the same user and folders on a server without sharing (Loft with both
  namespaces off, Dovecot without the acl plugin) beside the sharing one.
- Push across users: the owner idles in her folder, the grantee appends
  to it (and the other way round); LMTP to sales@ reaching three readers
  idling in its shared INBOX. From the APPEND's tagged OK / the LMTP
  reply to each IDLE reading EXISTS (0 if it came first), p50/p99/max.
- A shared mailbox of `big` messages whose reader has seen the first
  half: the reader's SELECT (its [UNSEEN n] included) and STATUS
  (MESSAGES UNSEEN), beside the owner's own; EXISTS and UNSEEN checked.
- Bytes per reader of per-user \\Seen: Loft's seen_pvt table and its index
  (SQLite dbstat, over every index, after minus before the reader marked
  half the mailbox seen), Dovecot's INDEXPVT directory for that owner.

The big mailbox reaches Loft over LMTP; Dovecot's is written into its
Maildir (the same messages; its LMTP took most of an hour for 100,000 on
the shared machine), which Dovecot indexes at the first look.
"""

import asyncio
import glob
import os
import re
import sqlite3
import statistics
import time

import corpus
from clients import Imap, Lmtp, ProtocolError
from scenarios import percentile
from targets import DovecotTarget, LoftTarget

DOMAIN = "example.test"
FOLDERS = 10            # shared folders per owner
PER_FOLDER = 2          # messages in each
LIST_TIMES = 5          # each LIST timed this often per rep

VIEWER = "viewer@" + DOMAIN
LONELY = "lonely@" + DOMAIN
ALICE, BOB = "alice@" + DOMAIN, "bob@" + DOMAIN
READERS = ["r%d@%s" % (i, DOMAIN) for i in (1, 2, 3)]
SALES = "sales@" + DOMAIN
BIGOWNER, READER = "bigowner@" + DOMAIN, "reader@" + DOMAIN
PUSH_FOLDER = "Team"

DOVECOT_ACL = r"""
mail_plugins = $mail_plugins acl
protocol imap {
  mail_plugins = $mail_plugins imap_acl
}
namespace shared {
  type = shared
  separator = /
  prefix = Other Users/%%u/
  location = maildir:%%h/Maildir:INDEXPVT=~/Maildir/shared/%%u
  subscriptions = no
  list = children
}
plugin {
  acl = vfile
  acl_anyone = allow
  acl_shared_dict = file:@MAILDIR@/shared-mailboxes.db
}
"""


def owners_of(n):
    return ["o%03d@%s" % (i, DOMAIN) for i in range(n)]


def acl_users(owners):
    names = owners_of(owners) + [VIEWER, LONELY, ALICE, BOB, SALES,
                                 BIGOWNER, READER] + READERS
    return {u: "Bench-%d-pass-%08x" % (i, 0x5eed * (i + 7)) for i, u in
            enumerate(names)}


def other(owner, mailbox):
    """The name a grantee uses for owner's mailbox on both servers."""
    return "Other Users/%s/%s" % (owner, mailbox)


# ---- the servers -------------------------------------------------------------

class LoftAcl(LoftTarget):
    """Loft with sharing (sharing=True) or with both namespaces off."""

    def __init__(self, users, sharing=True):
        self.sales_mailbox = "Shared/sales"
        more = {}
        if not sharing:
            more = {"imap": {"other_users_namespace": "",
                             "shared_namespace": ""}}
        # Cheap password hashing: logins are not what this measures.
        cheap = {"argon2_t_cost": "1", "argon2_m_cost": "64",
                 "argon2_parallelism": "1"}
        shared = SALES in users
        if shared:
            users = dict(users)
            del users[SALES]
        super().__init__(users, auth=cheap, more=more)
        if shared:
            self._loftctl("shared", "add", SALES)

    def _loftctl(self, *args):
        rc, out, err = self.env.loftctl(*args)
        if rc != 0:
            raise ProtocolError("loftctl %s: %s%s" % (" ".join(args), out,
                                                      err))
        return out

    async def grant_sales(self, who, rights):
        self._loftctl("acl", "set", SALES, who, rights)

    def seen_bytes(self):
        """Bytes of seen_pvt and its index over every user's index.db."""
        total = 0
        for path in glob.glob(os.path.join(self.env.data_dir, "mail", "*",
                                           "*", "index.db")):
            db = sqlite3.connect(path)
            try:
                row = db.execute("SELECT sum(pgsize) FROM dbstat WHERE name"
                                 " IN ('seen_pvt', 'seen_pvt_modseq')"
                                 ).fetchone()
                total += row[0] or 0
            except sqlite3.OperationalError:
                pass     # an index without the table
            finally:
                db.close()
        return total


class DovecotAcl(DovecotTarget):
    """Dovecot with the acl plugins and INDEXPVT (sharing=True) or as the
    other scenarios have it."""

    def __init__(self, users, sharing=True):
        self.sales_mailbox = other(SALES, "INBOX")
        super().__init__(users, max_conns=2000,
                         more=DOVECOT_ACL if sharing else "")

    async def fill(self, user, count, seed_):
        """The same messages as LMTP would bring, written into the user's
        Maildir cur/ (Dovecot's LMTP takes most of an hour for 100,000
        on the loaded machine; what is measured is reading them). Dovecot
        indexes them at the first look (the count check)."""
        md = os.path.join(self.env.mail_dir, user, "Maildir")
        for d in (os.path.join(self.env.mail_dir, user), md,
                  os.path.join(md, "cur"), os.path.join(md, "new"),
                  os.path.join(md, "tmp")):
            os.makedirs(d, exist_ok=True)
            os.chown(d, self.env.uid, self.env.gid)
        cur = os.path.join(md, "cur")
        for i in range(count):
            path = os.path.join(cur, "%d.M%dP1.bench:2," % (1700000000 + i,
                                                             i))
            with open(path, "wb") as f:
                f.write(corpus.message(seed_, i, 2000))
            os.chown(path, self.env.uid, self.env.gid)

    async def grant_sales(self, who, rights):
        c = await Imap.connect(self.host, self.port("imap"))
        await c.login(SALES, self.password(SALES))
        await c.command('SETACL INBOX "%s" %s' % (who, rights))
        await c.close()

    def seen_bytes(self):
        """Bytes of every reader's INDEXPVT files (under their homes'
        Maildir/shared/)."""
        total = 0
        for top in glob.glob(os.path.join(self.env.mail_dir, "*", "Maildir",
                                          "shared")):
            for d, _, files in os.walk(top):
                for f in files:
                    try:
                        total += os.path.getsize(os.path.join(d, f))
                    except OSError:
                        pass
        return total


# ---- helpers -------------------------------------------------------------------

async def login(target, user):
    c = await Imap.connect(target.host, target.port("imap"))
    await c.login(user, target.password(user))
    return c


async def pipelined(c, commands, allow=()):
    """Sends commands pipelined; each must answer OK (or contain one of
    allow, e.g. ALREADYEXISTS)."""
    tags = []
    for cmd in commands:
        c.tagn += 1
        tag = b"b%d" % c.tagn
        tags.append((tag, cmd))
        c.w.write(tag + b" " + cmd + b"\r\n")
    for tag, cmd in tags:
        _, line = await c.read_until_tagged(tag, ok=False)
        if not line.startswith(tag + b" OK") and \
                not any(a in line for a in allow):
            raise ProtocolError("%r -> %r" % (cmd[:60], line[:200]))


def append_cmd(mailbox, data):
    return b'APPEND "%s" {%d+}\r\n%s' % (mailbox.encode(), len(data), data)


async def make_folders(target, user, names, messages=0, grant=None):
    """CREATEs names for user, APPENDs messages to each, and SETACLs each
    to grant = (identifier, rights) if given."""
    c = await login(target, user)
    await pipelined(c, [b'CREATE "%s"' % n.encode() for n in names],
                    allow=(b"ALREADYEXISTS",))
    cmds = []
    for j, n in enumerate(names):
        for k in range(messages):
            cmds.append(append_cmd(n, corpus.message(23, j * 10 + k, 1500)))
        if grant:
            cmds.append(b'SETACL "%s" "%s" %s' % (n.encode(),
                                                  grant[0].encode(),
                                                  grant[1].encode()))
    await pipelined(c, cmds)
    await c.close()


async def seed(target, owners, big, lonely_only=False):
    """Everything the figures read, made the same way on both servers."""
    folders = ["f%d" % i for i in range(FOLDERS)]
    sem = asyncio.Semaphore(8)

    async def one(fn, *a, **kw):
        async with sem:
            await fn(*a, **kw)
    # the lonely user has the same personal folders, nothing shared
    await make_folders(target, LONELY, folders, PER_FOLDER)
    if lonely_only:
        return
    await asyncio.gather(*(one(make_folders, target, o, folders, PER_FOLDER,
                               (VIEWER, "lrs"))
                           for o in owners_of(owners)))
    await make_folders(target, ALICE, [PUSH_FOLDER], 0, (BOB, "lrswi"))
    for r in READERS:
        await target.grant_sales(r, "lrsw")
    # the big shared mailbox: bigowner's INBOX, read by READER
    await fill(target, BIGOWNER, big)
    c = await login(target, BIGOWNER)
    await c.command('SETACL INBOX "%s" lrs' % READER)
    await c.close()


async def fill(target, user, count, conns=16, seed_=31):
    """count 2 KB messages into user's INBOX over LMTP (or the target's
    own way); checks the count."""
    nxt = 0
    if hasattr(target, "fill"):
        await target.fill(user, count, seed_)
        conns = 0

    async def worker():
        nonlocal nxt
        lm = await Lmtp.connect(target.host, target.port("lmtp"))
        while nxt < count:
            i, nxt = nxt, nxt + 1
            await lm.deliver("fill@example.org", [user],
                             corpus.message(seed_, i, 2000))
        await lm.close()
    await asyncio.gather(*(worker() for _ in range(conns)))
    c = await login(target, user)
    n = await status_of(c, "INBOX", "MESSAGES")
    await c.close()
    if n["MESSAGES"] != count:
        raise ProtocolError("%s: %s has %d messages, not %d"
                            % (target.name, user, n["MESSAGES"], count))


STATUS_RE = re.compile(rb'^\* STATUS (?:"((?:[^"\\]|\\.)*)"|(\S+)) \((.*)\)')
LIST_RE = re.compile(rb'^\* LIST \(([^)]*)\) (?:"[^"]*"|NIL) '
                     rb'(?:"((?:[^"\\]|\\.)*)"|(\S+))')


def parse_status(line):
    m = STATUS_RE.match(line.rstrip(b"\r\n"))
    if not m:
        return None, None
    name = (m.group(1) or m.group(2)).decode()
    w = m.group(3).split()
    return name, {k.decode(): int(v) for k, v in zip(w[::2], w[1::2])}


async def status_of(c, mailbox, items):
    u, _ = await c.command('STATUS "%s" (%s)' % (mailbox, items))
    for line in u:
        name, vals = parse_status(line)
        if vals is not None:
            return vals
    raise ProtocolError("no STATUS for %s" % mailbox)


def listed(untagged, prefix):
    """Selectable mailboxes under prefix in a LIST answer."""
    n = 0
    for line in untagged:
        m = LIST_RE.match(line)
        if not m:
            continue
        attrs = m.group(1).lower()
        name = (m.group(2) or m.group(3)).decode()
        if name.startswith(prefix) and b"\\noselect" not in attrs and \
                b"\\nonexistent" not in attrs:
            n += 1
    return n


async def timed(c, cmd, times=1):
    """Runs cmd times times; returns (median ms, untagged of the last)."""
    ms = []
    for _ in range(times):
        t0 = time.perf_counter()
        u, _ = await c.command(cmd)
        ms.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ms), u


# ---- figures -------------------------------------------------------------------

async def list_shared(target, owners):
    """The viewer's LIST and LIST-STATUS over owners x FOLDERS mailboxes."""
    c = await login(target, VIEWER)
    res = {}
    res["list_ms"], u = await timed(c, 'LIST "" "*"', LIST_TIMES)
    res["shared_listed"] = listed(u, "Other Users/")
    res["list_status_ms"], u = await timed(
        c, 'LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN))', LIST_TIMES)
    msgs = unseen = 0
    for line in u:
        name, vals = parse_status(line)
        if vals is not None and name.startswith("Other Users/"):
            msgs += vals.get("MESSAGES", 0)
            unseen += vals.get("UNSEEN", 0)
    res["status_messages"], res["status_unseen"] = msgs, unseen
    want = owners * FOLDERS
    if res["shared_listed"] != want or msgs != want * PER_FOLDER or \
            unseen != want * PER_FOLDER:
        raise ProtocolError("%s: viewer lists %d shared mailboxes (MESSAGES"
                            " %d, UNSEEN %d), not %d (%d)"
                            % (target.name, res["shared_listed"], msgs,
                               unseen, want, want * PER_FOLDER))
    await c.close()
    return res


async def list_lonely(target, plain):
    """LIST "" "*" of a user with nothing shared, on the sharing server and
    on one without sharing (plain), the same folders on both."""
    res = {}
    for key, t in (("", target), ("_nosharing", plain)):
        c = await login(t, LONELY)
        ms, u = await timed(c, 'LIST "" "*"', LIST_TIMES)
        n = listed(u, "")
        await c.close()
        if n < FOLDERS + 1:
            raise ProtocolError("%s: lonely lists %d mailboxes" % (t.name, n))
        res["lonely_list%s_ms" % key] = ms
        res["lonely_listed%s" % key] = n
    res["sharing_adds_ms"] = res["lonely_list_ms"] - \
        res["lonely_list_nosharing_ms"]
    return res


async def idle_in(target, user, mailbox):
    c = await login(target, user)
    await c.command('SELECT "%s"' % mailbox)
    await c.idle_start()
    return c


async def push_append(target, events, owner_idles=True):
    """Owner ALICE idles in her PUSH_FOLDER and BOB appends to it
    (owner_idles), or BOB idles in it and ALICE appends."""
    shared = other(ALICE, PUSH_FOLDER)
    if owner_idles:
        w = await idle_in(target, ALICE, PUSH_FOLDER)
        a, box = await login(target, BOB), shared
    else:
        w = await idle_in(target, BOB, shared)
        a, box = await login(target, ALICE), PUSH_FOLDER
    lat = []
    for i in range(events):
        waiter = asyncio.ensure_future(w.wait_exists_at())
        await asyncio.sleep(0)
        await a.command(append_cmd(box, corpus.message(41, i, 2000)).decode())
        t_ok = time.perf_counter()
        t = await asyncio.wait_for(waiter, 30)
        lat.append(max(0.0, t - t_ok))
    await w.idle_done()
    await w.close()
    await a.close()
    return lat_figures(lat, events)


async def push_sales(target, events):
    """LMTP to sales@ reaching three readers idling in its shared INBOX."""
    ws = [await idle_in(target, r, target.sales_mailbox) for r in READERS]
    lm = await Lmtp.connect(target.host, target.port("lmtp"))
    lat = []
    for i in range(events):
        waiters = [asyncio.ensure_future(w.wait_exists_at()) for w in ws]
        await asyncio.sleep(0)
        await lm.deliver("customer@example.org", [SALES],
                         corpus.message(43, i, 2000))
        t_ok = time.perf_counter()
        stamps = await asyncio.wait_for(asyncio.gather(*waiters), 30)
        lat.extend(max(0.0, t - t_ok) for t in stamps)
    await lm.close()
    for w in ws:
        await w.idle_done()
        await w.close()
    return lat_figures(lat, events * len(READERS))


def lat_figures(lat, want):
    if len(lat) != want:
        raise ProtocolError("push: %d of %d EXISTS" % (len(lat), want))
    return {"pushes": len(lat), "push_p50_ms": percentile(lat, 50) * 1000,
            "push_p99_ms": percentile(lat, 99) * 1000,
            "push_max_ms": max(lat) * 1000}


async def mark_half_seen(target, big):
    """READER marks the first half of BIGOWNER's INBOX seen; returns the
    bytes of per-user \\Seen it added on disk."""
    before = target.seen_bytes()
    c = await login(target, READER)
    await c.command('SELECT "%s"' % other(BIGOWNER, "INBOX"))
    await c.command("STORE 1:%d +FLAGS.SILENT (\\Seen)" % (big // 2))
    await c.close()
    await asyncio.sleep(1.0)   # Dovecot writes its private index at close
    seen = target.seen_bytes() - before
    return {"seen_bytes_per_reader": seen,
            "seen_bytes_per_seen_msg": seen / (big // 2)}


async def big_shared(target, big):
    """The reader's SELECT and STATUS of the big shared mailbox, beside
    the owner's own; EXISTS and UNSEEN checked."""
    res = {}
    name = other(BIGOWNER, "INBOX")
    for who, user, box, unseen in (("reader", READER, name, big - big // 2),
                                   ("owner", BIGOWNER, "INBOX", big)):
        c = await login(target, user)
        t0 = time.perf_counter()
        u, _ = await c.command('SELECT "%s"' % box)
        res["select_%s_ms" % who] = (time.perf_counter() - t0) * 1000
        exists = first = None
        for line in u:
            if line.endswith(b" EXISTS\r\n"):
                exists = int(line.split()[1])
            m = re.search(rb"\[UNSEEN (\d+)\]", line)
            if m:
                first = int(m.group(1))
        await c.command("UNSELECT")
        t0 = time.perf_counter()
        vals = await status_of(c, box, "MESSAGES UNSEEN")
        res["status_unseen_%s_ms" % who] = (time.perf_counter() - t0) * 1000
        await c.close()
        want_first = big // 2 + 1 if who == "reader" else 1
        if exists != big or vals["MESSAGES"] != big or \
                vals["UNSEEN"] != unseen or first != want_first:
            raise ProtocolError("%s: %s sees EXISTS %s, [UNSEEN %s], STATUS"
                                " %s; want %d, %d, UNSEEN %d"
                                % (target.name, who, exists, first, vals,
                                   big, want_first, unseen))
        res["unseen_%s" % who] = vals["UNSEEN"]
    return res


# ---- the run -------------------------------------------------------------------

def run(P, res, alternate):
    """Called by bench/run.py for --only acl: its own servers."""
    owners, big, events = P["acl_owners"], P["big"], P["acl_events"]
    users = acl_users(owners)
    print("bench acl: starting Loft and Dovecot (acl plugin, INDEXPVT) with"
          " %d users, and both without sharing" % len(users), flush=True)
    started = []
    try:
        for cls in (LoftAcl, DovecotAcl):
            started.append(cls(users))
        for cls in (LoftAcl, DovecotAcl):
            started.append(cls({LONELY: users[LONELY]}, sharing=False))
        loft, dove, loft0, dove0 = started
        both = [loft, dove]
        t0 = time.time()

        async def seed_all():
            await asyncio.gather(*(seed(t, owners, big) for t in both),
                                 *(seed(t, owners, big, lonely_only=True)
                                   for t in (loft0, dove0)))
        asyncio.run(seed_all())
        print("bench acl: seeded both in %.0f s (%d owners x %d folders,"
              " %d messages in the big shared mailbox)"
              % (time.time() - t0, owners, FOLDERS, big), flush=True)
        # warm: Dovecot makes each reader's private index at first sight
        for t in both:
            asyncio.run(list_shared(t, owners))
        runs = alternate(both, P["reps"], lambda t: list_shared(t, owners))
        res.add("acl LIST, 1 viewer",
                "%d shared mailboxes of %d owners, %d msgs each"
                % (owners * FOLDERS, owners, PER_FOLDER),
                runs["loft"], runs["dovecot"])
        runs = {"loft": [], "dovecot": []}
        for _ in range(P["reps"]):
            for t, t0_ in ((loft, loft0), (dove, dove0)):
                runs[t.name].append(asyncio.run(list_lonely(t, t0_)))
        res.add("acl LIST, nothing shared",
                "%d personal folders; vs a server without sharing"
                % (FOLDERS + 1), runs["loft"], runs["dovecot"])
        for owner_idles, what in ((True, "owner idles, grantee appends"),
                                  (False, "grantee idles, owner appends")):
            runs = alternate(both, P["reps"], lambda t: push_append(
                t, events, owner_idles))
            res.add("acl push across users", "%s, %d appends"
                    % (what, events), runs["loft"], runs["dovecot"])
        runs = alternate(both, P["reps"], lambda t: push_sales(t, events))
        res.add("acl push LMTP sales@", "3 readers in IDLE, %d deliveries"
                % events, runs["loft"], runs["dovecot"])
        seen = {t.name: [asyncio.run(mark_half_seen(t, big))] for t in both}
        res.add("acl per-user \\Seen on disk",
                "1 reader saw %d of %d" % (big // 2, big),
                seen["loft"], seen["dovecot"])
        for t in both:     # warm (Dovecot's first SELECT after the STORE)
            asyncio.run(big_shared(t, big))
        runs = alternate(both, P["reps"], lambda t: big_shared(t, big))
        res.add("acl big shared mailbox", "%d msgs, reader saw the first"
                " half" % big, runs["loft"], runs["dovecot"])
    finally:
        for t in started:
            t.close()
