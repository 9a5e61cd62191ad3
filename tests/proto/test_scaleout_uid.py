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
on it). The PostgreSQL ones are skipped without PostgreSQL 15."""

import re
import sys

from imapconv import Conv
from loftenv import Loft, Results
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
    return r.finish()


if __name__ == '__main__':
    sys.exit(main())
