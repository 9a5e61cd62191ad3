#!/usr/bin/env python3
"""Undelete (issue 17): one run, medians of --reps.

    python3 bench/undelete.py [--messages 10000] [--reps 3]

A Maildir of --messages small messages (bench/corpus.py's realistic
ones) is imported into an account (fsync = no, as the other benches);
then, each rep: an IMAP client marks every message \\Deleted and
EXPUNGEs (timed: the messages are kept for undelete), and
`loftctl undelete` brings them all back (timed). Rates are messages/s.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'lib'))
sys.path.insert(0, HERE)

import corpus  # noqa: E402
from loftenv import LOFTCTL, Loft  # noqa: E402

PW = 'bench-undelete-password-1'
USER = 'alice@example.test'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--messages', type=int, default=10000)
    ap.add_argument('--reps', type=int, default=3)
    a = ap.parse_args()
    n = a.messages
    tmp = tempfile.mkdtemp(prefix='loft-bench-undelete-')
    md = os.path.join(tmp, 'Maildir')
    for d in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(md, d))
    for i in range(n):
        data = corpus.message(23, i)
        with open(os.path.join(md, 'cur', '%d.M%dP1.bench:2,S' % (
                1700000000 + i, i)), 'wb') as f:
            f.write(data)
    exp, und = [], []
    with Loft(users={USER: PW}, extra={'store': {'fsync': 'no'}}) as env:
        r = subprocess.run([LOFTCTL, '--config', env.config_path, 'import',
                            USER, md], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stdout + r.stderr)
        for _ in range(a.reps):
            # a STORE or EXPUNGE of 10,000 takes longer than the test
            # clients' 20 s on a loaded machine
            imap = env.imap(timeout=1800)
            imap.login(USER, PW)
            imap.select('INBOX')
            t = time.monotonic()
            imap.uid('STORE', '1:*', '+FLAGS.SILENT', '(\\Deleted)')
            imap.expunge()
            exp.append(time.monotonic() - t)
            typ, data = imap.status('INBOX', '(MESSAGES)')
            assert b'MESSAGES 0' in data[0], data
            t = time.monotonic()
            r = subprocess.run([LOFTCTL, '--config', env.config_path,
                                'undelete', USER], capture_output=True,
                               text=True)
            und.append(time.monotonic() - t)
            if r.returncode != 0 or ': %d messages' % n not in r.stdout:
                raise RuntimeError(r.stdout + r.stderr)
            imap.noop()
            typ, data = imap.status('INBOX', '(MESSAGES)')
            assert (b'MESSAGES %d' % n) in data[0], data
            imap.logout()
    print('messages %d, reps %d, load %s' % (
        n, a.reps, open('/proc/loadavg').read().split()[0]))
    for name, v in (('expunge (kept)', exp), ('loftctl undelete', und)):
        s = statistics.median(v)
        print('%-20s %8.2f s %10.0f msg/s' % (name, s, n / s))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
