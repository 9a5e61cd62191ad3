#!/usr/bin/env python3
"""Another process writes to an account while loftd indexes a big backlog
(issue 17: loftctl import leaves search indexing to loftd).

loftd's indexer runs its batches as write transactions on the account's
index. Run back to back (as it did), they kept another process's writer
(a second `loftctl import`, `loftctl user show`, a restore) out until
SQLite's 30 s busy wait ran out: "database is locked". Now it runs one
batch per account per round and leaves a gap between rounds, and the
store's busy wait tries every few milliseconds.

The backlog is made long to drain out of a few messages: loftd runs with
LOFT_TEST_INDEX_SLOW_MS (each batch one row, holding the write lock that
long; sq-index.c). While it drains:
  - `loftctl user show` answers (search_unindexed shrinking);
  - a second `loftctl import` of a new message exits 0, and when it is
    done the backlog is still far from drained (so it did not wait for
    the end);
  - the new message is in INBOX (IMAP), once;
  - loftd stops promptly mid-backlog (the indexer checks between batches).
"""

import os
import re
import sys
import tempfile
import time

from loftenv import SLOW, Loft, Results, load_scale

R = Results()
PW = 'migrate-drain-password-1'
USERS = {'alice@example.test': PW}
N = 300
HOLD_MS = 100   # per batch of one row: the drain takes >= N * HOLD_MS


def body(i):
    return ('From: s%d@example.org\nSubject: drain %d\n'
            'Message-ID: <d%d@example.org>\n\ndrain text %d\n' % (i, i, i, i))


def make_maildir(md, first, count):
    for d in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(md, d))
    for i in range(first, first + count):
        with open(os.path.join(md, 'cur', '17200%05d.M%dP1.src:2,S'
                               % (i, i)), 'w') as f:
            f.write(body(i))


def unindexed(env, address):
    rc, out, err = env.loftctl('user', 'show', address, timeout=120)
    m = re.search(r'^  search_unindexed = (\d+)$', out, re.M)
    return (int(m.group(1)) if rc == 0 and m else None), out + err


def main():
    tmp = tempfile.mkdtemp(prefix='loft-migrate-drain-')
    big = os.path.join(tmp, 'big')
    one = os.path.join(tmp, 'one')
    make_maildir(big, 1, N)
    make_maildir(one, N + 1, 1)
    alice = 'alice@example.test'
    os.environ['LOFT_TEST_INDEX_SLOW_MS'] = str(HOLD_MS)
    with Loft(users=USERS) as env:
        rc, out, err = env.loftctl('import', alice, big, timeout=300)
        R.check('import of %d messages: exit 0' % N, rc == 0, out + err)

        # loftd was told at the import's end; wait until it is draining
        left, text = unindexed(env, alice)
        deadline = time.monotonic() + 60 * SLOW
        while (left is None or left >= N) and time.monotonic() < deadline:
            time.sleep(0.05)
            left, text = unindexed(env, alice)
        R.check('user show answers while loftd indexes (search_unindexed'
                ' below %d, above 0)' % N,
                left is not None and 0 < left < N, (left, text))

        t0 = time.monotonic()
        rc, out, err = env.loftctl('import', alice, one, timeout=120)
        took = time.monotonic() - t0
        R.check('a second import during the drain: exit 0 (took %.1f s)'
                % took, rc == 0 and re.search(
                    r'INBOX: 1 imported, 0 already there, 0 failed', out),
                out + err)
        after, text = unindexed(env, alice)
        # the new message is 1 of them; the drain must still be going
        R.check('the import got in while the backlog was still draining'
                ' (search_unindexed %s after it)' % after,
                after is not None and after > 10, (after, text))

        imap = env.imap_login(alice, PW)
        imap.select('INBOX', readonly=True)
        typ, data = imap.uid('SEARCH', 'HEADER', 'Message-ID',
                             '<d%d@example.org>' % (N + 1))
        R.check('the new message is in INBOX once',
                typ == 'OK' and len(data[0].split()) == 1, data)
        typ, data = imap.uid('SEARCH', 'ALL')
        R.check('every message there', len(data[0].split()) == N + 1,
                len(data[0].split()))
        imap.logout()

        left, text = unindexed(env, alice)
        t0 = time.monotonic()
        env.stop()
        took = time.monotonic() - t0
        R.check('loftd stops mid-backlog (%s rows left) in %.1f s'
                % (left, took), took < 20 * SLOW * load_scale(), took)
    del os.environ['LOFT_TEST_INDEX_SLOW_MS']
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
