#!/usr/bin/env python3
"""UID commands that name a message the session has not been told of yet
(RFC 9051 6.4.9, 7.4.1): another session, another node or LMTP just added
it, and the client names its UID (from APPENDUID on another connection,
or UIDNEXT as it knew it). The server tells the session of the message
(* n EXISTS) before answering, and then the command acts on it: UID
FETCH returns it, UID STORE changes it, UID SEARCH finds it, UID COPY
and UID MOVE copy it (COPYUID). An EXISTS without the FETCH asked for
leaves a client with a message it cannot show.

Three setups: one node on the embedded store with LMTP delivery (every
user's common case), one node on PostgreSQL with LMTP delivery, and two
nodes on one PostgreSQL with APPEND on node B and the commands on node A
at once (before or after A heard B's NOTIFY: the command must not depend
on it). Then a crowd: eight sessions of one account on node A whose
syncs share reads (src/store/pg/pg-delta.c) all UID FETCH at the same
moment what B just appended, and all idle while B appends: each gets
every message. The PostgreSQL ones are skipped without PostgreSQL 15."""

import re
import sys
import threading

from imapconv import Conv
from loftenv import Loft, Results, SLOW
from pgenv import Postgres
from scaleenv import ScaleEnv

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
r = Results()


class Adder:
    """Adds messages to INBOX behind the reader's back: by LMTP (the UID
    is predicted: the reader's UIDNEXT, one more each time) or by APPEND
    on another session (the UID is APPENDUID's)."""

    def __init__(self, env, uidnext, via):
        self.env, self.next, self.via = env, uidnext, via
        self.n = 0
        if via == 'append':
            self.conv = Conv(env.raw('imap'), r)
            self.conv.login(USER, PW)

    def add(self):
        self.n += 1
        subject = 'uidsync-%s-%d' % (self.via, self.n)
        m = 'Subject: %s\r\n\r\nbody %d\r\n' % (subject, self.n)
        uid = self.next
        if self.via == 'append':
            _, t = self.conv.run('APPEND INBOX {%d+}\r\n%s' % (len(m), m),
                                 'OK')
            got = re.search(r'APPENDUID \d+ (\d+)', t or '')
            uid = int(got.group(1)) if got else None
            r.check('APPENDUID %s is the UIDNEXT the reader knew (%s)'
                    % (uid, self.next), uid == self.next)
        else:
            lm = self.env.lmtp()
            lm.ehlo('client.example.test')
            lm.sendmail('x@example.net', [USER], m.encode())
            lm.quit()
        self.next += 1
        return uid, subject

    def close(self):
        if self.via == 'append':
            self.conv.close()


def announced(lines, count, uid, name, fetch=True):
    """lines hold * count EXISTS and, after it, a FETCH naming uid."""
    ex = [i for i, l in enumerate(lines)
          if re.match(r'^\* %d EXISTS' % count, l)]
    r.check('%s: * %d EXISTS' % (name, count), ex, lines)
    if not fetch:
        return
    fe = [i for i, l in enumerate(lines)
          if re.match(r'^\* %d FETCH \(.*\bUID %d\b' % (count, uid), l)]
    r.check('%s: * %d FETCH (UID %d ...)' % (name, count, uid), fe, lines)
    r.check('%s: EXISTS before that FETCH' % name,
            ex and fe and ex[0] < fe[0], lines)


def scenario(label, reader_env, writer_env, via):
    a = Conv(reader_env.raw('imap'), r)
    a.login(USER, PW)
    a.run('CREATE Archive', '(OK|NO)')
    lines, _ = a.run('SELECT INBOX', 'OK')
    count = next(int(m.group(1)) for m in
                 (re.match(r'^\* (\d+) EXISTS', l) for l in lines) if m)
    uidnext = next(int(m.group(1)) for m in
                   (re.search(r'\[UIDNEXT (\d+)\]', l) for l in lines) if m)
    lines, _ = a.run('STATUS Archive (UIDNEXT)', 'OK')
    arch_next = int(re.search(r'UIDNEXT (\d+)', ' '.join(lines)).group(1))
    w = Adder(writer_env, uidnext, via)

    def fresh(command, what, fetch=True):
        """Adds a message behind a's back, then runs command on a with
        its UID (%d) or its subject (%s) at once."""
        nonlocal count
        uid, subject = w.add()
        count += 1
        cmd = command % (subject if '%s' in command else uid)
        lines, t = a.run(cmd, 'OK', name='%s: %s' % (label, cmd))
        announced(lines, count, uid, '%s: %s' % (label, what), fetch)
        return uid, lines, t

    fresh('UID FETCH %d (FLAGS)', 'UID FETCH')
    # what a polling client sends
    fresh('UID FETCH %d:* (UID FLAGS)', 'UID FETCH n:*')

    # UID STORE: the flag is set, and said
    uid, lines, _ = fresh('UID STORE %d +FLAGS (\\Flagged)', 'UID STORE')
    r.check('%s: UID STORE: the FETCH shows \\Flagged' % label,
            any(re.match(r'^\* %d FETCH \(.*\bUID %d\b.*\\Flagged' %
                         (count, uid), l) for l in lines), lines)
    lines, _ = a.run('UID FETCH %d (FLAGS)' % uid, 'OK')
    r.check('%s: UID STORE: \\Flagged is stored' % label,
            any('\\Flagged' in l for l in lines), lines)

    # UID SEARCH finds it, by UID and by its subject
    uid, lines, _ = fresh('UID SEARCH UID %d', 'UID SEARCH UID', fetch=False)
    r.check('%s: UID SEARCH UID %d finds it' % (label, uid),
            any(l.split()[:3] == ['*', 'SEARCH', str(uid)] for l in lines),
            lines)
    uid, lines, _ = fresh('UID SEARCH SUBJECT %s', 'UID SEARCH SUBJECT',
                          fetch=False)
    r.check('%s: UID SEARCH SUBJECT finds it' % label,
            any(l.split()[:3] == ['*', 'SEARCH', str(uid)] for l in lines),
            lines)

    # UID COPY: copied, COPYUID says so
    uid, lines, t = fresh('UID COPY %d Archive', 'UID COPY', fetch=False)
    r.check('%s: UID COPY: [COPYUID v %d %d]' % (label, uid, arch_next),
            t is not None and re.search(r'\[COPYUID \d+ %d %d\]'
                                        % (uid, arch_next), t), t)
    arch_next += 1

    # UID MOVE: moved (COPYUID, then its EXPUNGE after its EXISTS)
    uid, lines, t = fresh('UID MOVE %d Archive', 'UID MOVE', fetch=False)
    r.check('%s: UID MOVE: [COPYUID v %d %d]' % (label, uid, arch_next),
            any(re.search(r'\[COPYUID \d+ %d %d\]' % (uid, arch_next), l)
                for l in lines), lines)
    ex = [i for i, l in enumerate(lines) if l == '* %d EXPUNGE' % count]
    r.check('%s: UID MOVE: * %d EXPUNGE after * %d EXISTS'
            % (label, count, count),
            ex and ex[0] > min([i for i, l in enumerate(lines)
                                if l == '* %d EXISTS' % count] or [1 << 30]),
            lines)
    count -= 1
    arch_next += 1
    lines, _ = a.run('STATUS Archive (MESSAGES)', 'OK')
    r.check('%s: Archive holds the copy and the moved one' % label,
            any(re.search(r'MESSAGES 2\)', l) for l in lines), lines)
    w.close()
    a.close()


def shared_syncs(node):
    """loft_pg_view_syncs_total{answer="shared"} of node's /metrics."""
    c = node.http(proto='metrics')
    c.request('GET', '/metrics')
    text = c.getresponse().read().decode()
    c.close()
    n = [float(l.split()[-1]) for l in text.splitlines()
         if l.startswith('loft_pg_view_syncs_total{answer="shared"}')]
    return n[0] if n else 0


def crowd(na, nb, k=8, rounds=4):
    """k sessions of one account on node A at once, whose syncs may share
    a read (src/store/pg/pg-delta.c): each round node B appends, then all
    k UID FETCH its UID at the same moment, and each must get it (a read
    that began before B's commit must not answer them); then all k idle
    and each sees every append on B. Some syncs took a shared answer."""
    before = shared_syncs(na)
    a = Conv(na.raw('imap'), r)
    a.login(USER, PW)
    a.run('CREATE Crowd', 'OK')
    a.close()
    readers = []
    for _ in range(k):
        c = Conv(na.raw('imap'), Results())
        c.login(USER, PW)
        c.run('SELECT Crowd', 'OK')
        readers.append(c)
    b = Conv(nb.raw('imap'), r)
    b.login(USER, PW)

    def append_on_b(n):
        m = 'Subject: crowd %d\r\n\r\nbody\r\n' % n
        _, t = b.run('APPEND Crowd {%d+}\r\n%s' % (len(m), m), 'OK')
        got = re.search(r'APPENDUID \d+ (\d+)', t or '')
        return int(got.group(1)) if got else None

    for n in range(1, rounds + 1):
        uid = append_on_b(n)
        go = threading.Barrier(k)
        got = [None] * k

        def fetch(i):
            go.wait(60)
            lines, _ = readers[i].run('UID FETCH %d (FLAGS)' % uid, 'OK')
            got[i] = any(re.match(r'^\* %d FETCH \(.*\bUID %d\b' % (n, uid),
                                  l) for l in lines)
        threads = [threading.Thread(target=fetch, args=(i,))
                   for i in range(k)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120 * SLOW)
        r.check('crowd round %d: each of %d sessions on A, at once, gets'
                ' UID %s just appended on B' % (n, k, uid), all(got), got)
    for c in readers:
        c.send('i IDLE\r\n')
        c.expect(r'^\+ ', timeout=30 * SLOW)
    recent = None
    for n in range(rounds + 1, rounds + 4):
        append_on_b(n)
        seen = [c.expect(r'^\* %d EXISTS' % n, timeout=30 * SLOW)
                is not None for c in readers]
        r.check('crowd: each of %d idling sessions on A sees append %d on B'
                % (k, n), all(seen), seen)
        # \Recent (RFC 3501 2.3.2): the new message is one session's
        now = []
        for c in readers:
            line = c.expect(r'^\* \d+ RECENT', timeout=30 * SLOW)
            now.append(int(line.split()[1]) if line else None)
        if recent is not None and None not in now + recent:
            r.check('crowd: append %d is \\Recent in exactly one session'
                    % n, sum(now) - sum(recent) == 1, (recent, now))
        recent = now
    for c in readers:
        c.close()
    b.close()
    after = shared_syncs(na)
    print('crowd: %d syncs on node A took a shared answer' % (after - before))
    r.check('crowd: some syncs on node A shared a read', after > before,
            (before, after))


def main():
    with Loft() as env:
        scenario('one node, LMTP', env, env, 'lmtp')
    if not Postgres.available():
        print('(PostgreSQL 15 not installed: the postgres setups skipped)')
        return r.finish()
    with ScaleEnv(nodes=2) as env:
        na, nb = env.nodes
        scenario('postgres, one node, LMTP', na, na, 'lmtp')
        # fresh mailboxes for the two-node run: bob's account
        global USER, PW
        USER, PW = 'bob@example.test', 'can-we-fix-it-yes'
        scenario('two nodes, APPEND on B', na, nb, 'append')
        crowd(na, nb)
    return r.finish()


if __name__ == '__main__':
    sys.exit(main())
