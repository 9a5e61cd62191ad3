"""An IMAP stress client that checks what the server says (issue 9).

Many simulated clients share a few accounts and do what mail clients do
(select, fetch, store, search, sort, copy, move, expunge, append, idle,
list, status, reselect with QRESYNC, log out and in), each keeping a model
of what the server has told it: the message list (sequence number ->
UID), the flags and MODSEQ of each message, the mailbox's FLAGS list and
HIGHESTMODSEQ. Every response is checked against the protocol's rules at
the moment it is read; a rule broken is a violation, counted with the
client's last exchanges for the report.

The rules (names as reported):
  exists-shrank       EXISTS below the count the client has (RFC 3501 5.2,
                      RFC 9051 7.4.1: only EXPUNGE lowers it)
  expunge-range       EXPUNGE n with n outside 1..count
  expunge-forbidden   EXPUNGE/VANISHED while FETCH, STORE or SEARCH by
                      sequence number is answered (RFC 3501 7.4.1, RFC 9051
                      7.5.1, RFC 7162 3.2.10)
  expunge-qresync     EXPUNGE after QRESYNC was enabled (RFC 7162 3.2.10)
  vanished-unknown    VANISHED of a UID the client was never told of
  vanished-earlier    VANISHED (EARLIER) outside SELECT QRESYNC / UID FETCH
                      VANISHED (RFC 7162 3.2.10)
  fetch-range         FETCH n with n outside 1..count
  uid-mismatch        a FETCH gives another UID for a sequence number, or
                      UIDs that do not ascend with sequence numbers
  keyword-unannounced a FETCH shows a keyword not in the last FLAGS list
                      (RFC 9051 7.3.5, RFC 3501 7.2.6)
  flag-invalid        an unknown system flag, or \\Recent under IMAP4rev2
  modseq-back         a message's MODSEQ lower than one already seen
                      (RFC 7162 3.1)
  modseq-same-flags   the same MODSEQ with other flags than the client knows
  change-unreported   under QRESYNC, a change the client learns of although a
                      HIGHESTMODSEQ at or above it was given first (RFC 7162
                      3.2: the client must not lose changes if the
                      connection drops)
  highestmodseq-back  HIGHESTMODSEQ lower than one given before (RFC 7162)
  store-result        the FETCH of a STORE of the client's own keyword does
                      not show the change (RFC 3501 6.4.6)
  silent-unreported   a CONDSTORE .SILENT STORE changed a message without an
                      untagged FETCH with its MODSEQ (RFC 7162 3.1.3)
  select-missing      SELECT without FLAGS, EXISTS or UIDVALIDITY (RFC 9051
                      6.3.2), or without HIGHESTMODSEQ under CONDSTORE
  closed-missing      no OK [CLOSED] before the new mailbox's responses when
                      one mailbox replaces another under QRESYNC or
                      IMAP4rev2 (RFC 7162 3.2.11, RFC 9051 7.1)
  qresync-lost        after SELECT (QRESYNC ...), a cached message that is
                      gone was not reported VANISHED, or a changed one not
                      reported by FETCH (RFC 7162 3.2.5.1)
  qresync-stale       after SELECT (QRESYNC ...), a cached message whose
                      flags differ at a MODSEQ at or below the cached
                      HIGHESTMODSEQ: a change the session was never told
                      (change-unreported, seen through QRESYNC)
  appenduid           APPENDUID of another UIDVALIDITY, or a UID not above
                      the ones the client knows (RFC 4315)
  copyuid             COPYUID sets of different sizes or UIDs that were not
                      asked for (RFC 4315)
  move-left           a message MOVEd away still in the client's list after
                      the tagged OK (RFC 6851 3.3)
  search-range        SEARCH/ESEARCH/SORT results outside the client's view
  esearch             ESEARCH with a wrong tag or MIN/MAX/COUNT/ALL that
                      disagree (RFC 4731)
  recent-rev2         RECENT or \\Recent sent to an IMAP4rev2 session
  bad-reply           BAD for a command the client sent correctly, or NO
                      where none is allowed
  unexpected-bye      BYE that is not the answer to LOGOUT
  protocol            a response that cannot be parsed
NO [SERVERBUG] replies are counted apart (serverbugs).

    report = asyncio.run(imapstress.run(host, port, users, clients=50,
                                        seconds=60))
    report.ops, report.violations, report.serverbugs

Run alone: python3 tests/lib/imapstress.py --port 143 --user a@b:pw ...
"""

import asyncio
import collections
import random
import re
import ssl
import sys
import time

SYSTEM = {'\\seen', '\\answered', '\\flagged', '\\deleted', '\\draft'}
MAILBOXES = ('INBOX', 'Archive', 'Work')
KEYWORD_POOL = ['$Label%d' % i for i in range(1, 25)] + ['$Junk', '$NotJunk',
                                                         '$Forwarded', '$MDNSent']


class ProtocolError(Exception):
    pass


class Gone(Exception):
    """The connection ended (BYE or EOF)."""


# ---- parsing -------------------------------------------------------------

_TOKEN = re.compile(rb'''[ ]*(?:
    (?P<open>\() | (?P<close>\)) |
    "(?P<q>(?:[^"\\]|\\.)*)" |
    \x01(?P<lit>\d+)\x01 |
    (?P<atom>[^ ()"\x01\[\]]+(?:\[[^\]]*\](?:<\d+>)?)?)
)''', re.X)


def _unquote(b):
    return re.sub(rb'\\(.)', rb'\1', b)


def parse_list(data, pos, lits):
    """Parses items from data[pos:] up to a ')' or the end; returns
    (list, pos after). Atoms are str, quoted strings and literals bytes
    (quoted ones wrapped in Q), NIL None, lists lists."""
    out = []
    n = len(data)
    while pos < n:
        m = _TOKEN.match(data, pos)
        if m is None or m.end() == pos:
            if data[pos:].strip() == b'':
                return out, n
            raise ProtocolError('cannot parse at %r' % data[pos:pos + 40])
        pos = m.end()
        if m.group('open'):
            sub, pos = parse_list(data, pos, lits)
            out.append(sub)
        elif m.group('close'):
            return out, pos
        elif m.group('q') is not None:
            out.append(Q(_unquote(m.group('q'))))
        elif m.group('lit') is not None:
            out.append(Q(lits[int(m.group('lit'))]))
        else:
            a = m.group('atom').decode('latin-1')
            out.append(None if a.upper() == 'NIL' else a)
    return out, pos


class Q(bytes):
    """A string (quoted or literal), as opposed to an atom."""


def parse_resp_text(rest):
    """'[CODE args] text' -> (CODE or None, args str, text)."""
    rest = rest.lstrip(b' ')
    if not rest.startswith(b'['):
        return None, '', rest.decode('utf-8', 'replace')
    depth, i = 0, 0
    for i, ch in enumerate(rest):
        if ch == 0x28:
            depth += 1
        elif ch == 0x29:
            depth -= 1
        elif ch == 0x5d and depth == 0:
            break
    inner = rest[1:i].decode('utf-8', 'replace')
    code, _, args = inner.partition(' ')
    return code.upper(), args, rest[i + 1:].decode('utf-8', 'replace').strip()


def parse_set(s):
    """'1:3,7' -> list of ints (ranges expanded; '*' refused)."""
    out = []
    for part in s.split(','):
        if ':' in part:
            a, b = part.split(':')
            a, b = int(a), int(b)
            if a > b:
                a, b = b, a
            if b - a > 1000000:
                raise ProtocolError('huge set %s' % s)
            out.extend(range(a, b + 1))
        else:
            out.append(int(part))
    return out


def make_set(nums):
    nums = sorted(set(nums))
    out, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else '%d:%d' % (nums[i], nums[j]))
        i = j + 1
    return ','.join(out)


class Resp:
    __slots__ = ('kind', 'tag', 'num', 'word', 'data', 'code', 'args', 'text',
                 'raw')

    def __init__(self, kind, raw):
        self.kind, self.raw = kind, raw
        self.tag = self.num = self.word = self.data = None
        self.code = self.args = self.text = None


def parse_response(line, lits):
    raw = line
    if line.startswith(b'+'):
        r = Resp('cont', raw)
        r.text = line[1:].decode('utf-8', 'replace')
        return r
    tag, _, rest = line.partition(b' ')
    if tag != b'*':
        r = Resp('tagged', raw)
        r.tag = tag.decode('latin-1')
        word, _, rest = rest.partition(b' ')
        r.word = word.decode('latin-1').upper()
        r.code, r.args, r.text = parse_resp_text(rest)
        return r
    m = re.match(rb'(\d+) ([A-Za-z]+)(?: (.*))?$', rest, re.S)
    if m:
        r = Resp('num', raw)
        r.num = int(m.group(1))
        r.word = m.group(2).decode().upper()
        if r.word == 'FETCH':
            data = m.group(3) or b''
            lst, _ = parse_list(data, 0, lits)
            if len(lst) != 1 or not isinstance(lst[0], list):
                raise ProtocolError('FETCH data: %r' % data[:80])
            r.data = lst[0]
        return r
    word, _, rest = rest.partition(b' ')
    r = Resp('untagged', raw)
    r.word = word.decode('latin-1').upper()
    if r.word in ('OK', 'NO', 'BAD', 'BYE', 'PREAUTH'):
        r.code, r.args, r.text = parse_resp_text(rest)
    else:
        r.data, _ = parse_list(rest, 0, lits)
    return r


# ---- the connection ------------------------------------------------------

class Conn:
    def __init__(self, reader, writer, trace):
        self.r, self.w, self.trace = reader, writer, trace

    @classmethod
    async def open(cls, host, port, trace, tls=False):
        ctx = None
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        r, w = await asyncio.open_connection(host, port, ssl=ctx, limit=1 << 24)
        return cls(r, w, trace)

    def send(self, data):
        self.trace.append('C: ' + data[:200].decode('utf-8', 'replace').rstrip())
        self.w.write(data)

    async def read(self):
        line = await self.r.readline()
        if not line:
            raise Gone('connection closed')
        if not line.endswith(b'\r\n'):
            raise ProtocolError('line without CRLF: %r' % line[-60:])
        lits = []
        out = line[:-2]
        while True:
            m = re.search(rb'~?\{(\d+)\+?\}$', out)
            if not m:
                break
            n = int(m.group(1))
            lits.append(await self.r.readexactly(n))
            out = out[:m.start()] + b'\x01%d\x01' % (len(lits) - 1)
            more = await self.r.readline()
            if not more.endswith(b'\r\n'):
                raise Gone('connection closed in a response')
            out += more[:-2]
        self.trace.append('S: ' + out[:300].decode('utf-8', 'replace'))
        return parse_response(out, lits)

    def close(self):
        try:
            self.w.close()
        except Exception:
            pass


# ---- the model -----------------------------------------------------------

class Msg:
    __slots__ = ('uid', 'flags', 'modseq')

    def __init__(self, uid=None, flags=None, modseq=None):
        self.uid, self.flags, self.modseq = uid, flags, modseq


class Mailbox:
    def __init__(self, name, readonly):
        self.name = name
        self.readonly = readonly
        self.msgs = []
        self.flags_list = set()
        self.uidvalidity = None
        self.uidnext = None
        self.h = 0             # the last HIGHESTMODSEQ told
        # store-result checks waiting to learn whether the message was
        # expunged by another session before the STORE reached it:
        # uid -> (detail, trace)
        self.pending_results = {}


class Ctx:
    """What the command being answered is, for the rules that depend on
    it, and what its answer holds."""

    def __init__(self, name, no_expunge=False, earlier_ok=False, uid=False):
        self.name = name
        self.uid = uid
        self.tag = None
        self.no_expunge = no_expunge
        self.earlier_ok = earlier_ok
        self.fetches = []       # (seq, uid, items dict)
        self.vanished = []      # UIDs (plain VANISHED)
        self.earlier = []       # UIDs (VANISHED (EARLIER))
        self.expunged_uids = []
        self.codes = []         # (code, args) of untagged OK
        self.untagged = []      # other untagged Resp
        self.order = []         # kinds in order (for CLOSED)


class Report:
    def __init__(self):
        self.ops = 0
        self.op_counts = collections.Counter()
        self.violations = []
        self.rule_counts = collections.Counter()
        self.serverbugs = []
        self.errors = []
        self.logins = 0
        self.checks = collections.Counter()   # how often each rule was tried

    def violation(self, sess, rule, detail, trace=None):
        self.rule_counts[rule] += 1
        if len(self.violations) < 200:
            trace = list(sess.trace) if trace is None else trace
            self.violations.append((rule, sess.name, detail, trace[-24:]))

    def summary(self):
        lines = ['ops %d, logins %d, violations %d, serverbugs %d, errors %d'
                 % (self.ops, self.logins, sum(self.rule_counts.values()),
                    len(self.serverbugs), len(self.errors)),
                 '  checked: ' + ', '.join('%s %d' % kv for kv in
                                          sorted(self.checks.items()))]
        for rule, n in self.rule_counts.most_common():
            lines.append('  %-20s %d' % (rule, n))
        return '\n'.join(lines)

    def details(self, limit=5):
        out = []
        for rule, who, detail, trace in self.violations[:limit]:
            out.append('--- %s (%s): %s' % (rule, who, detail))
            out.extend('    ' + t for t in trace)
        for who, line, trace in self.serverbugs[:limit]:
            out.append('--- SERVERBUG (%s): %s' % (who, line))
            out.extend('    ' + t for t in trace[-12:])
        for e in self.errors[:limit]:
            out.append('--- error: %s' % e)
        return '\n'.join(out)


class Shared:
    """What all clients of one account share: FLAGS-replace STOREs (they
    wipe other clients' own keywords) by time."""

    def __init__(self):
        self.replaces = collections.defaultdict(list)   # (user, mbox) -> [(t0, t1)]

    def replace_overlaps(self, key, t0, t1):
        return any(a <= t1 and (b is None or b >= t0)
                   for a, b in self.replaces[key])


# ---- a session -----------------------------------------------------------

class Session:
    def __init__(self, report, shared, ident, host, port, user, password,
                 rng, logout_every, deadline, tls=False):
        self.report, self.shared = report, shared
        self.ident = ident
        self.name = 'c%d' % ident
        self.host, self.port, self.tls = host, port, tls
        self.user, self.password = user, password
        self.rng = rng
        self.logout_every = logout_every
        self.deadline = deadline
        self.trace = collections.deque(maxlen=60)
        self.conn = None
        self.tagn = 0
        self.enabled = set()
        self.sel = None
        self.cache = {}          # QRESYNC: mailbox -> (uv, h, {uid: flags}, uidnext)
        self.own_kw = '$k%d' % ident
        self.last_appenduid = {}
        self.idling = False

    # ---- violations

    def v(self, rule, detail):
        self.report.violation(self, rule, detail)

    # ---- commands

    async def command(self, text, ctx=None, literal=None, ok=('OK',)):
        """Sends a command, processes every response up to its tagged
        reply; returns (tagged Resp, ctx)."""
        self.tagn += 1
        tag = 't%d' % self.tagn
        ctx = ctx or Ctx(text.split(' ', 1)[0].upper())
        ctx.tag = tag
        data = ('%s %s' % (tag, text)).encode('utf-8')
        if literal is not None:
            data += b' {%d+}\r\n' % len(literal) + literal
        self.conn.send(data + b'\r\n')
        while True:
            r = await self.conn.read()
            if r.kind == 'tagged':
                if r.tag != tag:
                    self.v('protocol', 'tag %s while waiting for %s' % (r.tag, tag))
                    continue
                self.tagged(r, ctx, ok, text)
                if ctx.name in ('NOOP', 'CHECK'):
                    self.resolve_store_results()
                return r, ctx
            if r.kind == 'cont':
                self.v('protocol', 'continuation for a command with LITERAL+')
                continue
            self.untagged(r, ctx)

    def tagged(self, r, ctx, ok, text):
        if r.code is not None:
            ctx.codes.append((r.code, r.args))
            if r.code == 'HIGHESTMODSEQ':
                self.highestmodseq(r.args)
        if r.word == 'NO' and r.code == 'SERVERBUG':
            if len(self.report.serverbugs) < 100:
                self.report.serverbugs.append((self.name, r.raw[:200],
                                               list(self.trace)))
            else:
                self.report.serverbugs.append((self.name, '', []))
            return
        if r.word not in ok:
            rule = 'bad-reply'
            self.v(rule, '%s -> %s' % (text[:80], r.raw[:160]))

    def highestmodseq(self, args):
        if self.sel is None:
            return
        try:
            h = int(args.split()[0])
        except (ValueError, IndexError):
            self.v('protocol', 'HIGHESTMODSEQ %r' % args)
            return
        if h < self.sel.h:
            self.v('highestmodseq-back', '%d after %d' % (h, self.sel.h))
        self.sel.h = max(self.sel.h, h)

    # ---- untagged responses

    def untagged(self, r, ctx):
        ctx.order.append(r.word if r.kind != 'untagged' or r.code is None
                         else r.code)
        if r.kind == 'num':
            if r.word == 'EXISTS':
                self.on_exists(r.num)
            elif r.word == 'EXPUNGE':
                self.on_expunge(r.num, ctx)
            elif r.word == 'FETCH':
                self.on_fetch(r.num, r.data, ctx)
            elif r.word == 'RECENT':
                if 'IMAP4REV2' in self.enabled:
                    self.v('recent-rev2', r.raw[:80])
            return
        w = r.word
        if w in ('OK', 'NO', 'BAD', 'PREAUTH'):
            if r.code is not None:
                ctx.codes.append((r.code, r.args))
                if r.code == 'HIGHESTMODSEQ':
                    self.highestmodseq(r.args)
                elif r.code == 'PERMANENTFLAGS':
                    pass
            return
        if w == 'BYE':
            if ctx.name != 'LOGOUT':
                self.v('unexpected-bye', r.raw[:120])
                raise Gone('BYE')
            return
        if w == 'FLAGS':
            if self.sel is not None and r.data and isinstance(r.data[0], list):
                self.sel.flags_list = {f.lower() for f in r.data[0]
                                       if isinstance(f, str)}
            return
        if w == 'VANISHED':
            self.on_vanished(r.data, ctx)
            return
        if w in ('SEARCH', 'SORT', 'ESEARCH') and self.sel is not None:
            # against the view as it is when the result is read
            self.check_search(r, ctx)
        ctx.untagged.append(r)

    def on_exists(self, n):
        if self.sel is None:
            self.v('protocol', 'EXISTS with no mailbox selected')
            return
        have = len(self.sel.msgs)
        if n < have:
            self.v('exists-shrank', 'EXISTS %d with %d known' % (n, have))
            return
        self.sel.msgs.extend(Msg() for _ in range(n - have))

    def on_expunge(self, n, ctx):
        if self.sel is None:
            self.v('protocol', 'EXPUNGE with no mailbox selected')
            return
        if ctx.no_expunge:
            self.v('expunge-forbidden', 'EXPUNGE %d during %s' % (n, ctx.name))
        if 'QRESYNC' in self.enabled:
            self.v('expunge-qresync', 'EXPUNGE %d with QRESYNC' % n)
        if n < 1 or n > len(self.sel.msgs):
            self.v('expunge-range', 'EXPUNGE %d of %d' % (n, len(self.sel.msgs)))
            return
        m = self.sel.msgs.pop(n - 1)
        ctx.expunged_uids.append(m.uid)

    def on_vanished(self, data, ctx):
        earlier = bool(data) and isinstance(data[0], list)
        if earlier:
            if [str(x).upper() for x in data[0]] != ['EARLIER']:
                self.v('protocol', 'VANISHED %r' % data[0])
            data = data[1:]
        try:
            uids = parse_set(data[0]) if data else []
        except (ValueError, ProtocolError) as e:
            self.v('protocol', 'VANISHED set: %s' % e)
            return
        if earlier:
            if not ctx.earlier_ok:
                self.v('vanished-earlier', 'during %s' % ctx.name)
            ctx.earlier.extend(uids)
            return
        if 'QRESYNC' not in self.enabled:
            self.v('protocol', 'VANISHED without QRESYNC')
        if ctx.no_expunge:
            self.v('expunge-forbidden', 'VANISHED during %s' % ctx.name)
        if self.sel is None:
            self.v('protocol', 'VANISHED with no mailbox selected')
            return
        for uid in uids:
            if not self.remove_uid(uid):
                self.v('vanished-unknown', 'VANISHED %d not in the view' % uid)
            else:
                ctx.vanished.append(uid)
                ctx.expunged_uids.append(uid)

    def remove_uid(self, uid):
        """Removes the message with uid, or an unknown-UID message where
        uid would lie; False if neither exists."""
        msgs = self.sel.msgs
        lo_known = 0
        for i, m in enumerate(msgs):
            if m.uid == uid:
                del msgs[i]
                return True
            if m.uid is not None:
                if m.uid > uid:
                    break
                lo_known = i + 1
        # the unknown slots right after the last known UID below uid
        i = lo_known
        if i < len(msgs) and msgs[i].uid is None:
            del msgs[i]
            return True
        return False

    def on_fetch(self, n, items, ctx):
        if self.sel is None:
            self.v('protocol', 'FETCH with no mailbox selected')
            return
        msgs = self.sel.msgs
        if n < 1 or n > len(msgs):
            self.v('fetch-range', 'FETCH %d of %d' % (n, len(msgs)))
            return
        d = {}
        it = iter(items)
        for k in it:
            try:
                d[str(k).upper()] = next(it)
            except StopIteration:
                self.v('protocol', 'FETCH item %r without a value' % k)
                return
        m = msgs[n - 1]
        uid = d.get('UID')
        if uid is not None:
            uid = int(uid)
            if m.uid is not None and m.uid != uid:
                self.v('uid-mismatch', 'seq %d: UID %d, was %d' % (n, uid, m.uid))
                return
            if m.uid is None:
                prev = next((x.uid for x in reversed(msgs[:n - 1])
                             if x.uid is not None), 0)
                nxt = next((x.uid for x in msgs[n:] if x.uid is not None), None)
                if uid <= prev or (nxt is not None and uid >= nxt):
                    self.v('uid-mismatch', 'seq %d: UID %d between %d and %s'
                           % (n, uid, prev, nxt))
                    return
                m.uid = uid
        ctx.fetches.append((n, m.uid, d))
        flags = d.get('FLAGS')
        modseq = d.get('MODSEQ')
        if modseq is not None:
            try:
                modseq = int(modseq[0])
            except (TypeError, ValueError, IndexError):
                self.v('protocol', 'MODSEQ %r' % modseq)
                modseq = None
        if flags is not None:
            self.report.checks['fetch-flags'] += 1
            fl = set()
            for f in flags:
                lf = str(f).lower()
                if lf.startswith('\\'):
                    if lf == '\\recent':
                        if 'IMAP4REV2' in self.enabled:
                            self.v('recent-rev2', 'FLAGS with \\Recent')
                        continue
                    if lf not in SYSTEM:
                        self.v('flag-invalid', f)
                    fl.add(lf)
                else:
                    if lf not in self.sel.flags_list:
                        self.v('keyword-unannounced', '%s (FLAGS list %s)'
                               % (f, ' '.join(sorted(self.sel.flags_list))[:200]))
                    fl.add(lf)
            fl = frozenset(fl)
            self.check_change(m, fl, modseq)
            m.flags = fl
            m.modseq = modseq
        elif modseq is not None:
            if m.modseq is not None and modseq < m.modseq:
                self.v('modseq-back', 'UID %s: %d after %d' % (m.uid, modseq, m.modseq))
            # MODSEQ alone (a .SILENT STORE): the caller applies the change

    def check_change(self, m, flags, modseq):
        """A message's flags as told now, against what the client knew."""
        if modseq is None or m.modseq is None or m.flags is None:
            return
        self.report.checks['flags-vs-model'] += 1
        if modseq < m.modseq:
            self.v('modseq-back', 'UID %s: %d after %d' % (m.uid, modseq, m.modseq))
        elif modseq == m.modseq and flags != m.flags:
            self.v('modseq-same-flags', 'UID %s MODSEQ %d: %s, knew %s'
                   % (m.uid, modseq, sorted(flags), sorted(m.flags)))
        elif (m.modseq < modseq <= self.sel.h and flags != m.flags and
              'QRESYNC' in self.enabled):
            # RFC 7162 3.2 makes this a MUST for QRESYNC sessions: a
            # client that loses its connection after a HIGHESTMODSEQ
            # resynchronises from it and would never see this change
            self.v('change-unreported', 'UID %s: MODSEQ %d (%s) <= HIGHESTMODSEQ %d'
                   ' told before; knew %s at %d'
                   % (m.uid, modseq, sorted(flags), self.sel.h, sorted(m.flags),
                      m.modseq))

    # ---- connection, login, select

    async def connect(self):
        self.conn = await Conn.open(self.host, self.port, self.trace, self.tls)
        g = await self.conn.read()
        if g.kind != 'untagged' or g.word != 'OK':
            raise ProtocolError('greeting %r' % g.raw[:80])
        self.enabled = set()
        self.sel = None
        r, _ = await self.command('LOGIN "%s" "%s"' % (self.user, self.password))
        if r.word != 'OK':
            raise ProtocolError('login refused: %r' % r.raw)
        self.report.logins += 1
        want = []
        x = self.rng.random()
        if x < 0.35:
            want = ['QRESYNC']
        elif x < 0.65:
            want = ['CONDSTORE']
        if self.rng.random() < 0.2:
            want.append('IMAP4rev2')
        if want:
            r, ctx = await self.command('ENABLE ' + ' '.join(want))
            for u in ctx.untagged:
                if u.word == 'ENABLED':
                    self.enabled |= {str(x).upper() for x in u.data}
            if 'QRESYNC' in self.enabled:
                self.enabled.add('CONDSTORE')

    async def logout(self):
        try:
            await self.command('LOGOUT')
        except (Gone, ConnectionError):
            pass
        self.leave_mailbox()
        self.conn.close()
        self.conn = None

    def leave_mailbox(self):
        """Keeps what QRESYNC needs to come back: every UID and the
        HIGHESTMODSEQ the view was complete at."""
        s = self.sel
        self.sel = None
        if s is None or 'QRESYNC' not in self.enabled or s.readonly:
            return
        if not s.msgs or any(m.uid is None for m in s.msgs) or s.h == 0:
            self.cache.pop(s.name, None)
            return
        self.cache[s.name] = (s.uidvalidity, s.h,
                              {m.uid: (m.flags, m.modseq) for m in s.msgs},
                              max(s.uidnext or 0, max(m.uid for m in s.msgs) + 1))

    async def select(self, name, readonly=False):
        prev = self.sel
        self.leave_mailbox()
        qres = None
        if 'QRESYNC' in self.enabled and name in self.cache and self.rng.random() < 0.8:
            qres = self.cache.pop(name)
        verb = 'EXAMINE' if readonly else 'SELECT'
        text = '%s %s' % (verb, name)
        if qres is not None:
            uv, h, known, _ = qres
            text += ' (QRESYNC (%d %d %s))' % (uv, h, make_set(known))
        elif 'CONDSTORE' in self.enabled and self.rng.random() < 0.3:
            text += ' (CONDSTORE)'
        self.sel = Mailbox(name, readonly)
        ctx = Ctx(verb, earlier_ok=qres is not None)
        r, ctx = await self.command(text, ctx, ok=('OK', 'NO'))
        if r.word != 'OK':
            self.sel = None
            return False
        order = ctx.order
        self.report.checks['select'] += 1
        if prev is not None and ('QRESYNC' in self.enabled or
                                 'IMAP4REV2' in self.enabled):
            if 'CLOSED' not in order or order.index('CLOSED') != 0:
                self.v('closed-missing', 'order %s' % order[:6])
        codes = dict(ctx.codes)
        if 'FLAGS' not in order or 'EXISTS' not in order or 'UIDVALIDITY' not in codes:
            self.v('select-missing', 'order %s' % order)
        if 'CONDSTORE' in self.enabled and 'HIGHESTMODSEQ' not in codes:
            self.v('select-missing', 'no HIGHESTMODSEQ under CONDSTORE')
        try:
            self.sel.uidvalidity = int(codes.get('UIDVALIDITY', '0'))
            self.sel.uidnext = int(codes.get('UIDNEXT', '0'))
        except ValueError:
            self.v('protocol', 'UIDVALIDITY/UIDNEXT %r' % codes)
        if qres is not None:
            await self.qresync_check(qres, ctx, self.sel.h)
        await self.learn_uids()
        return True

    async def qresync_check(self, qres, ctx, h_select):
        """RFC 7162 3.2.5.1: the cache minus VANISHED (EARLIER), with the
        FETCHed changes, is the mailbox as it is now."""
        uv, h, known, uidnext = qres
        if uv != self.sel.uidvalidity:
            return
        self.report.checks['qresync-select'] += 1
        # reported gone: VANISHED (EARLIER), and a plain VANISHED before
        # the tagged OK for a message expunged after the mailbox was
        # opened (counted in EXISTS, then removed from it)
        gone = set(ctx.earlier) | set(ctx.vanished)
        fetched = {uid: d for _, uid, d in ctx.fetches if uid is not None}
        expect = sorted(u for u in known if u not in gone)
        # the whole mailbox now, told in full
        r, full = await self.command('UID FETCH 1:* (UID FLAGS MODSEQ)',
                                     Ctx('UID FETCH'))
        now = {}
        for _, uid, d in full.fetches:
            try:
                now[uid] = (frozenset(str(f).lower() for f in d.get('FLAGS', [])
                                      if str(f).lower() != '\\recent'),
                            int(d['MODSEQ'][0]))
            except (KeyError, ValueError, IndexError, TypeError):
                pass
        old_now = sorted(u for u in now if u < uidnext)
        # messages expunged since full: reported by VANISHED there
        lost = [u for u in expect if u not in now and u not in full.vanished]
        if lost:
            self.v('qresync-lost', 'cached UIDs %s gone without VANISHED' % lost[:10])
        extra = [u for u in old_now if u not in known]
        if extra:
            self.v('qresync-lost', 'UIDs %s below the old UIDNEXT %d not cached'
                   % (extra[:10], uidnext))
        for u in expect:
            if u not in now or u in fetched:
                continue
            flags, modseq = now[u]
            cflags, cmodseq = known[u]
            if h < modseq <= h_select:
                self.v('qresync-lost', 'UID %d changed at %d > %d, not reported'
                       % (u, modseq, h))
            elif modseq <= h and cflags is not None and cflags != flags:
                # the cache was wrong already at h: a change at or below a
                # told HIGHESTMODSEQ that the session never saw, i.e. what
                # change-unreported catches, seen through QRESYNC
                self.v('qresync-stale', 'UID %d: %s, cached %s, MODSEQ %d <= %d'
                       % (u, sorted(flags), sorted(cflags), modseq, h))

    async def learn_uids(self):
        """Asks for the UIDs (and flags) of messages known only by number."""
        for _ in range(3):
            if self.sel is None:
                return
            unknown = [i + 1 for i, m in enumerate(self.sel.msgs) if m.uid is None]
            if not unknown:
                return
            items = 'UID FLAGS MODSEQ' if 'CONDSTORE' in self.enabled else 'UID FLAGS'
            await self.command('FETCH %s (%s)' % (make_set(unknown), items),
                               Ctx('FETCH', no_expunge=True))

    # ---- operations

    def pick_seqs(self, most=10):
        n = len(self.sel.msgs)
        lo = self.rng.randint(1, n)
        hi = min(n, lo + self.rng.randint(0, most - 1))
        return lo, hi

    def uids_of(self, lo, hi):
        return [m.uid for m in self.sel.msgs[lo - 1:hi] if m.uid is not None]

    async def op_fetch_flags(self):
        lo, hi = self.pick_seqs(30)
        items = self.rng.choice(['FLAGS', 'UID FLAGS', 'FAST', 'ALL'])
        if 'CONDSTORE' in self.enabled and self.rng.random() < 0.6:
            items = '(%s MODSEQ)' % items.replace('FAST', 'FLAGS').replace('ALL', 'FLAGS')
        elif ' ' in items:
            items = '(%s)' % items
        await self.command('FETCH %d:%d %s' % (lo, hi, items),
                           Ctx('FETCH', no_expunge=True))

    async def op_fetch_content(self):
        lo, hi = self.pick_seqs(5)
        items = self.rng.choice([
            '(ENVELOPE BODYSTRUCTURE)', '(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])',
            '(RFC822.SIZE BODY.PEEK[TEXT]<0.200>)', '(BINARY.SIZE[1] BINARY.PEEK[1])',
            '(BODY.PEEK[])', '(INTERNALDATE UID)'])
        uid = self.rng.random() < 0.4
        if uid:
            us = self.uids_of(lo, hi)
            if not us:
                return
            await self.command('UID FETCH %s %s' % (make_set(us), items), Ctx('UID FETCH'))
        else:
            await self.command('FETCH %d:%d %s' % (lo, hi, items),
                               Ctx('FETCH', no_expunge=True))

    async def op_fetch_seen(self):
        """BODY[] without PEEK: sets \\Seen; a flag change it makes SHOULD
        come with FLAGS (RFC 9051 6.4.5), so where none came the client
        no longer knows the flags."""
        if self.sel.readonly:
            return
        lo, hi = self.pick_seqs(2)
        r, ctx = await self.command('FETCH %d:%d (BODY[TEXT]<0.50>)' % (lo, hi),
                                    Ctx('FETCH', no_expunge=True))
        told = {seq for seq, _, d in ctx.fetches if 'FLAGS' in d}
        for seq in range(lo, hi + 1):
            if seq not in told and seq <= len(self.sel.msgs):
                self.sel.msgs[seq - 1].flags = None

    async def op_changedsince(self):
        if 'CONDSTORE' not in self.enabled or self.sel.h == 0:
            return
        since = max(0, self.sel.h - self.rng.randint(0, 20))
        mods = 'CHANGEDSINCE %d' % since
        uid = self.rng.random() < 0.7
        earlier = False
        if uid and 'QRESYNC' in self.enabled and self.rng.random() < 0.5:
            mods += ' VANISHED'
            earlier = True
        if uid:
            await self.command('UID FETCH 1:* (FLAGS) (%s)' % mods,
                               Ctx('UID FETCH', earlier_ok=earlier))
        else:
            await self.command('FETCH 1:* (FLAGS) (%s)' % mods,
                               Ctx('FETCH', no_expunge=True))

    async def store(self, what, mode, flags, silent=False, uid=None, unchanged=None):
        lo, hi = what
        uid = self.rng.random() < 0.5 if uid is None else uid
        if uid:
            us = self.uids_of(lo, hi)
            if not us:
                return None, None, None, None, None
            target = make_set(us)
        else:
            target = '%d:%d' % (lo, hi)
        item = '%sFLAGS%s' % (mode, '.SILENT' if silent else '')
        mod = ' (UNCHANGEDSINCE %d)' % unchanged if unchanged is not None else ''
        before = {m.uid: m for m in self.sel.msgs[lo - 1:hi] if m.uid is not None}
        t0 = time.monotonic()
        key = (self.user, self.sel.name)
        rec = None
        if mode == '':
            rec = [t0, None]
            self.shared.replaces[key].append(rec)
        r, ctx = await self.command('%sSTORE %s%s %s (%s)' % (
            'UID ' if uid else '', target, mod, item, ' '.join(flags)),
            Ctx('STORE', no_expunge=not uid))
        t1 = time.monotonic()
        if rec is not None:
            rec[1] = t1
            self.shared.replaces[key] = [x for x in self.shared.replaces[key]
                                         if x[1] is None or x[1] > t1 - 30]
        return (r, ctx, before, t0, t1)

    def apply_silent(self, res, mode, flags):
        """A .SILENT STORE: CONDSTORE tells each changed message's MODSEQ
        (RFC 7162 3.1.3) and the client works the flags out; without it
        the client's flags of those messages are a guess."""
        r, ctx, before, t0, t1 = res
        if r is None or r.word != 'OK':
            for m in before.values():
                m.flags = None
            return
        modified = set()
        for code, args in ctx.codes:
            if code == 'MODIFIED':
                try:
                    modified = set(parse_set(args.split()[0]))
                except (ValueError, ProtocolError, IndexError):
                    pass
        lf = {f.lower() for f in flags}
        told = {uid: d for _, uid, d in ctx.fetches}
        for uid, m in before.items():
            if m not in self.sel.msgs:
                continue
            d = told.get(uid)
            if d is not None and 'FLAGS' in d:
                continue       # told in full (on_fetch applied it)
            if 'CONDSTORE' not in self.enabled or m.flags is None:
                m.flags = None
                continue
            new = (m.flags | lf if mode == '+' else m.flags - lf if mode == '-'
                   else frozenset(lf))
            if d is not None and 'MODSEQ' in d:
                self.report.checks['silent-store'] += 1
                m.flags = frozenset(new)
                try:
                    m.modseq = int(d['MODSEQ'][0])
                except (ValueError, IndexError, TypeError):
                    m.flags = None
            elif new != m.flags and uid not in modified:
                # changed (or expunged meanwhile): without a FETCH the
                # client cannot tell which
                m.flags = None

    async def op_store_shared(self):
        if self.sel.readonly:
            return
        flag = self.rng.choice(['\\Seen', '\\Flagged', '\\Answered', '\\Seen'])
        mode = self.rng.choice('+-')
        silent = self.rng.random() < 0.4
        res = await self.store(self.pick_seqs(6), mode, [flag], silent)
        if res[0] is not None and silent:
            self.apply_silent(res, mode, [flag])

    async def op_store_own(self):
        """The client's own keyword: only this client sets or clears it
        (FLAGS-replace STOREs of others aside), so the FETCH of a
        non-silent STORE must show the change."""
        if self.sel.readonly:
            return
        mode = self.rng.choice('+-')
        silent = self.rng.random() < 0.3
        res = await self.store(self.pick_seqs(4), mode, [self.own_kw], silent)
        r, ctx, before, t0, t1 = res
        if r is None:
            return
        if silent:
            self.apply_silent(res, mode, [self.own_kw])
            return
        if r.word != 'OK' or self.shared.replace_overlaps((self.user, self.sel.name), t0, t1):
            return
        self.check_store_result(mode, before, ctx)

    def check_store_result(self, mode, before, ctx):
        """The last FETCH of each message of a non-silent STORE of the
        own keyword must show the change (RFC 3501 6.4.6), unless another
        session expunged the message before the STORE reached it: then
        the last FETCH may be one of the sync in front of the STORE, and
        the server has no result to show (RFC 2180 4.2). Such a message
        is gone from the mailbox, so a mismatch whose message is not
        expunged in this answer waits for the next NOOP or CHECK (every
        pending expunge is sent there): still there, it is a violation."""
        kw = self.own_kw.lower()
        last = {}
        for seq, uid, d in ctx.fetches:
            if uid in before and 'FLAGS' in d:
                last[uid] = d      # the latest state told wins
        gone = set(ctx.expunged_uids)
        for uid, d in last.items():
            self.report.checks['store-result'] += 1
            has = kw in {str(f).lower() for f in d['FLAGS']}
            if has == (mode == '+'):
                continue
            if uid in gone:
                self.report.checks['store-result-expunged'] += 1
                continue
            self.sel.pending_results[uid] = (
                'UID %s after %sFLAGS %s: %s' % (uid, mode, self.own_kw, d['FLAGS']),
                list(self.trace))

    def resolve_store_results(self):
        if self.sel is None or not self.sel.pending_results:
            return
        here = {m.uid for m in self.sel.msgs}
        for uid, (detail, trace) in self.sel.pending_results.items():
            if uid in here:
                self.report.violation(self, 'store-result', detail, trace)
            else:
                self.report.checks['store-result-expunged'] += 1
        self.sel.pending_results.clear()

    async def op_store_keyword(self):
        """Keywords from a shared pool: new ones come and go, so FLAGS
        announcements are exercised."""
        if self.sel.readonly:
            return
        kws = self.rng.sample(KEYWORD_POOL, self.rng.randint(1, 2))
        mode = self.rng.choice('++-')
        silent = self.rng.random() < 0.5
        res = await self.store(self.pick_seqs(3), mode, kws, silent)
        if res[0] is not None and silent:
            self.apply_silent(res, mode, kws)

    async def op_store_replace(self):
        if self.sel.readonly:
            return
        flags = self.rng.sample(['\\Seen', '\\Flagged', '$Label1', self.own_kw], 2)
        silent = self.rng.random() < 0.3
        res = await self.store(self.pick_seqs(2), '', flags, silent)
        if res[0] is not None and silent:
            self.apply_silent(res, '', flags)

    async def op_store_unchanged(self):
        if self.sel.readonly or 'CONDSTORE' not in self.enabled:
            return
        lo, hi = self.pick_seqs(3)
        ms = [m.modseq for m in self.sel.msgs[lo - 1:hi] if m.modseq is not None]
        since = min(ms) if ms and self.rng.random() < 0.7 else self.sel.h
        silent = self.rng.random() < 0.5
        res = await self.store((lo, hi), '+', ['\\Flagged'], silent,
                               unchanged=max(1, since))
        if res[0] is not None and silent:
            self.apply_silent(res, '+', ['\\Flagged'])

    async def op_search(self):
        keys = self.rng.choice(['ALL', 'UNSEEN', 'FLAGGED', 'KEYWORD ' + self.own_kw,
                                'NOT DELETED', 'SUBJECT stress', 'BODY lorem',
                                'LARGER 300', 'OR SEEN FLAGGED', 'UID 1:*'])
        if 'CONDSTORE' in self.enabled and self.rng.random() < 0.3:
            keys += ' MODSEQ %d' % max(1, self.sel.h - 30)
        ret = ''
        if self.rng.random() < 0.4:
            ret = 'RETURN (%s) ' % ' '.join(self.rng.sample(['MIN', 'MAX', 'COUNT', 'ALL'],
                                                              self.rng.randint(1, 3)))
        uid = self.rng.random() < 0.5
        await self.command('%sSEARCH %s%s' % ('UID ' if uid else '', ret, keys),
                           Ctx('SEARCH', no_expunge=not uid, uid=uid))

    def in_view(self, nums, uid):
        if not uid:
            n = len(self.sel.msgs)
            return [x for x in nums if x < 1 or x > n]
        known = {m.uid for m in self.sel.msgs}
        if None in known:
            return []
        return [x for x in nums if x not in known]

    def check_search(self, u, ctx):
        uid = ctx.uid
        if u.word in ('SEARCH', 'SORT'):
            nums = []
            for x in u.data:
                if isinstance(x, str) and x.isdigit():
                    nums.append(int(x))
            bad = self.in_view(nums, uid)
            if bad:
                self.v('search-range', '%s results %s not in the view' % (u.word, bad[:5]))
        else:
            self.check_esearch(u, uid, ctx.tag)

    def check_esearch(self, u, uid, tag_sent):
        d = u.data
        i = 0
        if d and isinstance(d[0], list):
            tag = d[0]
            if len(tag) != 2 or str(tag[0]).upper() != 'TAG' or \
                    bytes(tag[1]).decode() != tag_sent:
                self.v('esearch', 'tag %r for %s' % (tag, tag_sent))
            i = 1
        isuid = False
        if i < len(d) and str(d[i]).upper() == 'UID':
            isuid = True
            i += 1
        if isuid != uid:
            self.v('esearch', 'UID indicator %s for a %sSEARCH' % (isuid, 'UID ' if uid else ''))
        vals = {}
        while i + 1 < len(d):
            vals[str(d[i]).upper()] = d[i + 1]
            i += 2
        try:
            allnums = parse_set(vals['ALL']) if 'ALL' in vals else None
            mn = int(vals['MIN']) if 'MIN' in vals else None
            mx = int(vals['MAX']) if 'MAX' in vals else None
            cnt = int(vals['COUNT']) if 'COUNT' in vals else None
        except (ValueError, ProtocolError, TypeError) as e:
            self.v('protocol', 'ESEARCH %r: %s' % (d, e))
            return
        if mn is not None and mx is not None and mn > mx:
            self.v('esearch', 'MIN %d > MAX %d' % (mn, mx))
        if allnums is not None:
            if cnt is not None and cnt != len(allnums):
                self.v('esearch', 'COUNT %d, ALL has %d' % (cnt, len(allnums)))
            if mn is not None and allnums and mn != min(allnums):
                self.v('esearch', 'MIN %d, ALL from %d' % (mn, min(allnums)))
            if mx is not None and allnums and mx != max(allnums):
                self.v('esearch', 'MAX %d, ALL to %d' % (mx, max(allnums)))
        nums = (allnums or []) + [x for x in (mn, mx) if x is not None]
        bad = self.in_view(nums, uid)
        if bad:
            self.v('search-range', 'ESEARCH %s not in the view' % bad[:5])

    async def op_sort(self):
        uid = self.rng.random() < 0.5
        if self.rng.random() < 0.7:
            crit = self.rng.choice(['DATE', 'REVERSE ARRIVAL', 'SUBJECT', 'FROM', 'SIZE'])
            await self.command('%sSORT (%s) UTF-8 ALL' % ('UID ' if uid else '', crit),
                               Ctx('SORT', no_expunge=not uid, uid=uid))
        else:
            r, ctx = await self.command('%sTHREAD REFERENCES UTF-8 ALL' % ('UID ' if uid else ''),
                                        Ctx('THREAD', no_expunge=not uid))

    async def op_copy_move(self, move):
        if move and self.sel.readonly:
            return
        dst = self.rng.choice([m for m in MAILBOXES if m != self.sel.name])
        lo, hi = self.pick_seqs(3)
        uid = self.rng.random() < 0.5
        asked = self.uids_of(lo, hi)
        if uid:
            if not asked:
                return
            target = make_set(asked)
        else:
            target = '%d:%d' % (lo, hi)
        verb = 'MOVE' if move else 'COPY'
        r, ctx = await self.command('%s%s %s %s' % ('UID ' if uid else '', verb, target, dst),
                                    Ctx(verb), ok=('OK', 'NO'))
        if r.word != 'OK':
            return
        for code, args in ctx.codes:
            if code != 'COPYUID':
                continue
            try:
                uv, src, dsts = args.split()[:3]
                src, dsts = parse_set(src), parse_set(dsts)
            except (ValueError, ProtocolError):
                self.v('protocol', 'COPYUID %r' % args)
                continue
            if len(src) != len(dsts):
                self.v('copyuid', '%d source UIDs, %d new' % (len(src), len(dsts)))
            stray = [u for u in src if u not in asked and asked]
            if stray and not uid:
                stray = [u for u in stray if u in {m.uid for m in self.sel.msgs}]
            if stray:
                self.v('copyuid', 'source UIDs %s were not asked for' % stray[:5])
            if move:
                left = [u for u in src if any(m.uid == u for m in self.sel.msgs)]
                if left:
                    self.v('move-left', 'UIDs %s still in the view' % left[:5])

    async def op_expunge(self):
        if self.sel.readonly:
            return
        lo, hi = self.pick_seqs(3)
        if self.rng.random() < 0.5:
            us = self.uids_of(lo, hi)
            if not us:
                return
            res = await self.store((lo, hi), '+', ['\\Deleted'], True, uid=True)
            if res[0] is not None:
                self.apply_silent(res, '+', ['\\Deleted'])
            await self.command('UID EXPUNGE %s' % make_set(us), Ctx('UID EXPUNGE'))
        else:
            res = await self.store((lo, hi), '+', ['\\Deleted'], self.rng.random() < 0.5)
            if res[0] is not None:
                self.apply_silent(res, '+', ['\\Deleted'])
            await self.command('EXPUNGE', Ctx('EXPUNGE'))

    async def op_append(self, mailbox=None):
        mailbox = mailbox or (self.sel.name if self.sel and self.rng.random() < 0.7
                              else self.rng.choice(MAILBOXES))
        flags = ''
        x = self.rng.random()
        if x < 0.3:
            flags = '(\\Seen) '
        elif x < 0.5:
            flags = '(%s %s) ' % (self.rng.choice(KEYWORD_POOL), self.own_kw)
        body = message(self.rng, self.ident)
        r, ctx = await self.command('APPEND %s %s' % (mailbox, flags.strip()) if flags
                                    else 'APPEND %s' % mailbox,
                                    Ctx('APPEND'), literal=body, ok=('OK', 'NO'))
        if r.word != 'OK':
            return
        for code, args in ctx.codes:
            if code != 'APPENDUID':
                continue
            try:
                uv, uid = (int(x) for x in args.split()[:2])
            except ValueError:
                self.v('protocol', 'APPENDUID %r' % args)
                continue
            last = self.last_appenduid.get(mailbox)
            if last and last[0] == uv and uid <= last[1]:
                self.v('appenduid', '%s UID %d after %d' % (mailbox, uid, last[1]))
            self.last_appenduid[mailbox] = (uv, uid)
            if self.sel is not None and self.sel.name == mailbox:
                if self.sel.uidvalidity and uv != self.sel.uidvalidity:
                    self.v('appenduid', 'UIDVALIDITY %d, selected %d' % (uv, self.sel.uidvalidity))
                if self.sel.uidnext and uid < self.sel.uidnext:
                    self.v('appenduid', 'UID %d below UIDNEXT %d' % (uid, self.sel.uidnext))

    async def op_idle(self):
        self.tagn += 1
        tag = 't%d' % self.tagn
        ctx = Ctx('IDLE')
        self.conn.send(b'%s IDLE\r\n' % tag.encode())
        r = await self.conn.read()
        while r.kind != 'cont':
            if r.kind == 'tagged':
                self.v('bad-reply', 'IDLE -> %s' % r.raw[:100])
                return
            self.untagged(r, ctx)
            r = await self.conn.read()
        end = time.monotonic() + self.rng.uniform(0.05, 0.5)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                r = await asyncio.wait_for(self.conn.read(), left)
            except asyncio.TimeoutError:
                break
            if r.kind == 'tagged':
                self.v('protocol', 'tagged reply during IDLE')
                return
            self.untagged(r, ctx)
        self.conn.send(b'DONE\r\n')
        while True:
            r = await self.conn.read()
            if r.kind == 'tagged':
                self.tagged(r, ctx, ('OK',), 'IDLE')
                return
            self.untagged(r, ctx)

    async def op_misc(self):
        x = self.rng.random()
        if x < 0.3:
            await self.command('NOOP')
        elif x < 0.5:
            await self.command('STATUS %s (MESSAGES UIDNEXT UNSEEN%s)'
                               % (self.rng.choice(MAILBOXES),
                                  ' HIGHESTMODSEQ' if 'CONDSTORE' in self.enabled else ''),
                               ok=('OK',))
        elif x < 0.65:
            await self.command('LIST "" *')
        elif x < 0.75:
            await self.command('LIST (SUBSCRIBED) "" %')
        elif x < 0.85:
            await self.command('CHECK')
        else:
            box = 'scratch%d' % self.ident
            await self.command('CREATE %s' % box, ok=('OK', 'NO'))
            await self.op_append(box)
            await self.command('RENAME %s %s-r' % (box, box), ok=('OK', 'NO'))
            await self.command('DELETE %s-r' % box, ok=('OK', 'NO'))

    async def op_verify(self):
        """The whole mailbox's flags: every message the client knows must
        look as it was told, unless it changed since (higher MODSEQ)."""
        items = 'UID FLAGS MODSEQ' if 'CONDSTORE' in self.enabled else 'UID FLAGS'
        uid = self.rng.random() < 0.5
        if uid:
            await self.command('UID FETCH 1:* (%s)' % items, Ctx('UID FETCH'))
        else:
            await self.command('FETCH 1:* (%s)' % items, Ctx('FETCH', no_expunge=True))

    async def op_reselect(self):
        name = self.rng.choice(MAILBOXES)
        readonly = self.rng.random() < 0.15
        await self.select(name, readonly)

    async def op_close(self):
        if self.rng.random() < 0.5 and not self.sel.readonly:
            ctx = Ctx('CLOSE')
            self.leave_mailbox()
            await self.command('CLOSE', ctx)
        else:
            self.leave_mailbox()
            await self.command('UNSELECT')

    OPS = (('op_fetch_flags', 12), ('op_fetch_content', 8), ('op_fetch_seen', 2),
           ('op_changedsince', 5), ('op_store_shared', 12), ('op_store_own', 8),
           ('op_store_keyword', 4), ('op_store_replace', 2), ('op_store_unchanged', 3),
           ('op_search', 6), ('op_sort', 3), ('copy', 3), ('move', 4),
           ('op_expunge', 4), ('op_append', 6), ('op_idle', 4), ('op_misc', 6),
           ('op_verify', 3), ('op_reselect', 3), ('op_close', 1))

    async def one_op(self):
        if self.sel is None:
            await self.select(self.rng.choice(MAILBOXES), self.rng.random() < 0.1)
            return 'select'
        n = len(self.sel.msgs)
        if n == 0:
            await self.op_append(self.sel.name)
            await self.learn_uids()
            return 'append'
        names, weights = zip(*self.OPS)
        weights = list(weights)
        if n > 120:
            weights[names.index('op_expunge')] *= 4
            weights[names.index('move')] *= 3
        elif n < 15:
            weights[names.index('op_append')] *= 4
        name = self.rng.choices(names, weights)[0]
        if name in ('copy', 'move'):
            await self.op_copy_move(name == 'move')
        else:
            await getattr(self, name)()
        if self.sel is not None:
            await self.learn_uids()
        return name

    async def run(self):
        ops_here = 0
        while time.monotonic() < self.deadline:
            try:
                if self.conn is None:
                    await self.connect()
                    ops_here = 0
                name = await self.one_op()
                self.report.ops += 1
                self.report.op_counts[name] += 1
                ops_here += 1
                if self.logout_every and ops_here >= self.logout_every:
                    await self.logout()
            except Gone as e:
                if str(e) != 'BYE':
                    self.report.errors.append('%s: %s' % (self.name, e))
                self.drop()
            except (ProtocolError, ConnectionError, asyncio.IncompleteReadError) as e:
                self.report.errors.append('%s: %s: %s' % (self.name, type(e).__name__, e))
                self.v('protocol', str(e)[:200])
                self.drop()
        if self.conn is not None:
            await self.logout()

    def drop(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.sel = None
        self.cache.clear()


def message(rng, ident):
    """A small message, plain or multipart, of a few hundred bytes."""
    n = rng.randint(1, 1 << 30)
    subject = 'stress %d from c%d' % (n, ident)
    date = 'Mon, %d Jan 2026 %02d:%02d:00 +0000' % (rng.randint(1, 28), rng.randint(0, 23),
                                                    rng.randint(0, 59))
    hdr = ('From: Client %d <c%d@stress.test>\r\nTo: all@stress.test\r\n'
           'Subject: %s\r\nDate: %s\r\nMessage-ID: <%d.%d@stress.test>\r\n'
           % (ident, ident, subject, date, n, ident))
    text = 'lorem ipsum %d dolor sit amet\r\n' % n * rng.randint(1, 8)
    if rng.random() < 0.6:
        return (hdr + '\r\n' + text).encode()
    return (hdr + 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n'
            '--b%d\r\nContent-Type: text/plain\r\n\r\n%s\r\n--b%d\r\n'
            'Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            'AAECAwQFBgcICQ==\r\n--b%d--\r\n' % (n, n, text, n, n)).encode()


async def seed(host, port, users, per_mailbox=30, tls=False, seed_no=1):
    """Puts messages into every user's mailboxes and creates Work."""
    rng = random.Random(seed_no)
    report = Report()
    for user, pw in users.items():
        s = Session(report, Shared(), 0, host, port, user, pw, rng, 0, 0, tls)
        s.trace = collections.deque(maxlen=20)
        s.conn = await Conn.open(host, port, s.trace, tls)
        await s.conn.read()
        await s.command('LOGIN "%s" "%s"' % (user, pw))
        for box in MAILBOXES:
            await s.command('CREATE %s' % box, ok=('OK', 'NO'))
            for _ in range(per_mailbox):
                await s.command('APPEND %s' % box, literal=message(rng, 0))
        await s.command('LOGOUT')
        s.conn.close()


async def run(host, port, users, clients=50, seconds=60, seed_no=1, logout_every=0,
              tls=False, heavy_share=1, only=None):
    """Runs the clients on the users' accounts for seconds; returns the
    Report. logout_every: 0 for long sessions, N to log out and in again
    after every N operations (login-heavy); heavy_share: only every
    heavy_share-th client does (1: all of them). only: the numbers (0 ..
    clients-1) of the clients to run here, the others run elsewhere (client
    i is the same whoever runs it); every client of one account must run in
    one process, as they share what Shared records."""
    report = Report()
    shared = Shared()
    names = sorted(users)
    deadline = time.monotonic() + seconds
    sessions = []
    for i in (range(clients) if only is None else only):
        user = names[i % len(names)]
        rng = random.Random(seed_no * 1000 + i)
        every = logout_every if i % heavy_share == 0 else 0
        sessions.append(Session(report, shared, i + 1, host, port, user, users[user],
                                rng, every, deadline, tls))
    t0 = time.monotonic()
    await asyncio.gather(*(s.run() for s in sessions))
    report.elapsed = time.monotonic() - t0
    return report


def selftest():
    """Feeds the checker responses that break each rule (and ones that do
    not): a checker that cannot fail proves nothing. Returns a list of
    what went wrong (empty: every rule fires, and only when it should)."""
    problems = []

    def session(enabled=(), uids=(1, 2, 3), flags=None, modseq=None, h=0):
        rep_ = Report()
        s = Session(rep_, Shared(), 1, '', 0, 'u', 'p', random.Random(1), 0, 0)
        s.enabled = set(enabled)
        s.sel = Mailbox('INBOX', False)
        s.sel.flags_list = set(SYSTEM)
        s.sel.h = h
        for u in uids:
            s.sel.msgs.append(Msg(u, flags, modseq))
        return s

    def feed(s, lines, ctx=None):
        ctx = ctx or Ctx('NOOP')
        ctx.tag = 't1'
        for line in lines:
            s.untagged(parse_response(line.encode(), []), ctx)
        return s.report.rule_counts

    cases = [
        # (rule expected or None, session args, lines, ctx)
        ('keyword-unannounced', {}, ['* 1 FETCH (FLAGS ($x))'], None),
        (None, {}, ['* FLAGS (\\Seen $x)', '* 1 FETCH (FLAGS ($X))'], None),
        ('exists-shrank', {}, ['* 2 EXISTS'], None),
        (None, {}, ['* 5 EXISTS', '* 5 FETCH (UID 9)'], None),
        ('expunge-forbidden', {}, ['* 1 EXPUNGE'], Ctx('FETCH', no_expunge=True)),
        (None, {}, ['* 1 EXPUNGE'], Ctx('UID FETCH')),
        ('expunge-range', {}, ['* 4 EXPUNGE'], None),
        ('expunge-qresync', {'enabled': ['QRESYNC', 'CONDSTORE']}, ['* 1 EXPUNGE'], None),
        ('vanished-unknown', {'enabled': ['QRESYNC']}, ['* VANISHED 5'], None),
        (None, {'enabled': ['QRESYNC']}, ['* VANISHED 2:3'], None),
        ('vanished-earlier', {'enabled': ['QRESYNC']}, ['* VANISHED (EARLIER) 2'], None),
        ('uid-mismatch', {}, ['* 2 FETCH (UID 5)'], None),
        ('fetch-range', {}, ['* 9 FETCH (FLAGS ())'], None),
        ('modseq-same-flags', {'flags': frozenset(), 'modseq': 10},
         ['* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (10))'], None),
        ('modseq-back', {'flags': frozenset(), 'modseq': 10},
         ['* 1 FETCH (UID 1 FLAGS () MODSEQ (9))'], None),
        ('change-unreported', {'enabled': ['QRESYNC'], 'flags': frozenset(), 'modseq': 10,
                               'h': 20}, ['* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (15))'], None),
        (None, {'enabled': ['QRESYNC'], 'flags': frozenset(), 'modseq': 10, 'h': 20},
         ['* 1 FETCH (UID 1 FLAGS (\\Seen) MODSEQ (21))'], None),
        ('highestmodseq-back', {'h': 20}, ['* OK [HIGHESTMODSEQ 10] x'], None),
        ('recent-rev2', {'enabled': ['IMAP4REV2']}, ['* 1 RECENT'], None),
        ('flag-invalid', {}, ['* 1 FETCH (FLAGS (\\Bogus))'], None),
        ('esearch', {}, ['* ESEARCH (TAG "t1") MIN 3 MAX 2'], Ctx('SEARCH')),
        ('esearch', {}, ['* ESEARCH (TAG "x9") COUNT 1'], Ctx('SEARCH')),
        ('search-range', {}, ['* SEARCH 1 4'], Ctx('SEARCH')),
        ('search-range', {}, ['* SEARCH 7'], Ctx('SEARCH', uid=True)),
        (None, {}, ['* SEARCH 3 1'], Ctx('SEARCH', uid=True)),
    ]
    problems.extend(selftest_store_result(session, feed))
    for want, kw, lines, ctx in cases:
        s = session(**kw)
        try:
            got = feed(s, lines, ctx)
        except (ProtocolError, Gone) as e:
            problems.append('%s: raised %s' % (lines, e))
            continue
        if want is None and got:
            problems.append('%s: flagged %s, legal' % (lines, dict(got)))
        elif want is not None and got.get(want, 0) == 0:
            problems.append('%s: %s not flagged (got %s)' % (lines, want, dict(got)))
    return problems


def selftest_store_result(session, feed):
    """store-result: UID STORE 1:2 +FLAGS ($k1) whose answer shows UID 2
    without the keyword, from the sync in front of the STORE. Legal when
    UID 2 is expunged in that answer or before the next NOOP; a violation
    when it is still there at the NOOP."""
    problems = []
    lines = ['* 2 FETCH (UID 2 FLAGS (\\Seen))',
             '* FLAGS (\\Seen $k1)',
             '* 1 FETCH (UID 1 FLAGS ($k1))']
    for expunge_at, want in (('answer', 0), ('noop', 0), (None, 1)):
        s = session()
        before = {m.uid: m for m in s.sel.msgs[0:2]}
        ctx = Ctx('STORE', uid=True)
        feed(s, lines + (['* 2 EXPUNGE'] if expunge_at == 'answer' else []), ctx)
        s.check_store_result('+', before, ctx)
        if s.report.rule_counts['store-result']:
            problems.append('store-result flagged before the NOOP')
        feed(s, ['* 2 EXPUNGE'] if expunge_at == 'noop' else [], Ctx('NOOP'))
        s.resolve_store_results()
        got = s.report.rule_counts['store-result']
        if got != want:
            problems.append('store-result, UID 2 expunged at %s: %d violations, want %d'
                            % (expunge_at, got, want))
    return problems


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--user', action='append', required=True, help='address:password')
    ap.add_argument('--clients', type=int, default=50)
    ap.add_argument('--seconds', type=float, default=60)
    ap.add_argument('--logout-every', type=int, default=0)
    ap.add_argument('--seed', action='store_true', help='fill the mailboxes first')
    a = ap.parse_args(argv)
    users = dict(u.split(':', 1) for u in a.user)
    if a.seed:
        asyncio.run(seed(a.host, a.port, users))
    rep = asyncio.run(run(a.host, a.port, users, a.clients, a.seconds,
                          logout_every=a.logout_every))
    print(rep.summary())
    print(rep.details(10))
    return 0 if not rep.rule_counts and not rep.serverbugs else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
