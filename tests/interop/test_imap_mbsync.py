#!/usr/bin/env python3
"""mbsync (isync) two-way sync of a 2,000 message account over IMAPS
(with COMPRESS=DEFLATE, as mbsync uses it by default):
a first full sync, then changes on both sides (server: flags, expunges,
new mail; local: flags, deletions, new mail), then a second sync; both
sides must agree message by message."""

import glob
import os
import re
import subprocess
import sys
import tempfile
import time

from imapconv import Conv
from clients import mbsync_rc
from loftenv import Loft, Results, SLOW

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
N = 2000
r = Results()


def message(i):
    return ('From: sender%d@example.net\r\nTo: %s\r\nSubject: message %d\r\n'
            'Message-ID: <m%d@example.net>\r\n\r\nThis is message %d.\r\n%s'
            % (i, USER, i, i, i, 'line of text\r\n' * (i % 20)))


def fill(c, first, count):
    """APPENDs messages with LITERAL+, pipelined in batches."""
    for start in range(first, first + count, 200):
        tags = []
        out = []
        for i in range(start, min(start + 200, first + count)):
            m = message(i).encode()
            tag = c.next_tag()
            tags.append(tag)
            out.append(b'%s APPEND INBOX {%d+}\r\n%s\r\n' % (tag.encode(), len(m), m))
        c.send(b''.join(out))
        for tag in tags:
            c.collect(tag, 'OK', name='append')


def local_files(root):
    return [f for d in ('cur', 'new') for f in glob.glob(os.path.join(root, 'INBOX', d, '*'))]


def uid_of(path):
    m = re.search(r',U=(\d+)', os.path.basename(path))
    return int(m.group(1)) if m else None


def mbsync(rc, name):
    t0 = time.monotonic()
    p = subprocess.run(['mbsync', '-c', rc, '-a'], capture_output=True, text=True,
                       timeout=300 * SLOW)
    elapsed = time.monotonic() - t0
    r.check(name, p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:])
    print('%s: %.2f s' % (name, elapsed))
    return p


def server_state(env):
    c = Conv(env.raw('imap'), None)
    c.login(USER, PW)
    c.run('SELECT INBOX')
    lines, _ = c.run('UID FETCH 1:* (FLAGS)')
    c.run('LOGOUT')
    state = {}
    for l in lines:
        m = re.match(r'\* \d+ FETCH \((?=.*UID (\d+))(?=.*FLAGS \(([^)]*)\))', l)
        if m:
            state[int(m.group(1))] = set(m.group(2).split())
    return state


with Loft(extra={'store': {'fsync': 'no'}}) as env, \
        tempfile.TemporaryDirectory(prefix='loft-mbsync-') as tmp:
    c = Conv(env.raw('imap'), r)
    c.login(USER, PW)
    t0 = time.monotonic()
    fill(c, 1, N)
    print('%d APPENDs (LITERAL+, pipelined): %.2f s' % (N, time.monotonic() - t0))
    c.run('STATUS INBOX (MESSAGES)', 'OK', [r'MESSAGES %d' % N])
    c.run('LOGOUT')

    maildir = os.path.join(tmp, 'mail')
    os.makedirs(maildir)
    rc = os.path.join(tmp, 'mbsyncrc')
    mbsync_rc(rc, env, USER, PW, maildir, '''Channel all
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
''')

    mbsync(rc, 'first sync')
    files = local_files(maildir)
    r.check('all %d messages pulled' % N, len(files) == N, len(files))
    uids = sorted(u for u in map(uid_of, files) if u)
    r.check('files carry server UIDs', uids == list(range(1, N + 1)),
            (uids[:3], uids[-3:]))
    for d in ('Sent', 'Drafts', 'Trash', 'Junk', 'Archive'):
        r.check('folder %s created locally' % d, os.path.isdir(os.path.join(maildir, d)))

    # ---- changes on the server ------------------------------------------
    c = Conv(env.raw('imap'), r)
    c.login(USER, PW)
    c.run('SELECT INBOX', 'OK')
    c.run('UID STORE 1:100 +FLAGS.SILENT (\\Flagged)', 'OK')
    c.run('UID STORE 101:150 +FLAGS.SILENT (\\Deleted)', 'OK')
    c.run('UID EXPUNGE 101:150', 'OK')
    fill(c, N + 1, 10)
    c.run('LOGOUT')

    # ---- changes on the device ---------------------------------------------
    for path in local_files(maildir):
        u = uid_of(path)
        if 300 <= u < 350:
            base, _, info = os.path.basename(path).partition(':2,')
            new = os.path.join(os.path.dirname(path).replace('/new', '/cur'),
                               base + ':2,' + ''.join(sorted(set(info + 'S'))))
            os.rename(path, new)
        elif 400 <= u < 420:
            os.unlink(path)
    for i in range(5):
        name = os.path.join(maildir, 'INBOX', 'new', '%d.local%d.loft-test' % (time.time(), i))
        with open(name, 'w') as f:
            f.write(message(90000 + i).replace('\r\n', '\n'))

    mbsync(rc, 'second sync')
    want = N - 50 - 20 + 10 + 5
    state = server_state(env)
    files = local_files(maildir)
    r.check('server count after sync', len(state) == want, len(state))
    r.check('local count after sync', len(files) == want, len(files))
    r.check('server flags from the device (\\Seen on 50)',
            sum(1 for u in range(300, 350) if '\\Seen' in state.get(u, ())) == 50)
    r.check('device deletions expunged on the server',
            not any(u in state for u in range(400, 420)))
    r.check('server expunges removed locally',
            not any(101 <= (uid_of(f) or 0) <= 150 for f in files))
    flagged = [f for f in files if 'F' in f.rpartition(':2,')[2] and (uid_of(f) or 0) <= 100]
    r.check('server flags on the device (\\Flagged on 100)', len(flagged) == 100, len(flagged))
    r.check('new local messages uploaded',
            len([u for u in state if u > N + 10]) == 5, sorted(state)[-6:])
    # a third sync has nothing left to do
    p = mbsync(rc, 'third sync')
    r.check('nothing to do the third time', len(server_state(env)) == want)

sys.exit(r.finish())
