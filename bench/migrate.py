#!/usr/bin/env python3
"""Moving in, beside Dovecot (issue 17): one run, medians of --reps.

    python3 bench/migrate.py [--messages 2000] [--reps 3]

The realistic corpus (bench/corpus.py) is delivered to alice on a private
Dovecot (tests/lib/dovecotenv.py, LMTP, mail_fsync = never as in the
other benches), then timed:

  loft maildir    loftctl import of alice's Maildir on disk into Loft
  loft imap       loftctl import over IMAP from that Dovecot
  doveadm import  doveadm import of that Maildir into another user
  doveadm backup  doveadm backup of that Maildir into another user (dsync)
  loft backup     loftctl backup of the imported account, then again
                  unchanged (incremental)
  loft restore    loftctl restore into a fresh account
  doveadm imapc   Dovecot's IMAP migration: doveadm backup -R from that
                  Dovecot's IMAP (imapc:) into another user

    python3 bench/migrate.py --big 100000 [--big-size 4096]

A Maildir of --big corpus messages (bodies of --big-size bytes) written
on disk, then once each:
loftctl import of it, loftctl backup (first), the same again unchanged,
loftctl restore into a fresh server (a second loftd with its own
data_dir: the account is made there), and beside them doveadm backup -R
of that Maildir into a Dovecot user, first and again into the up-to-date
copy.

Each Loft run imports into a new account; each Dovecot run into a new
user. Rates are messages/s and MB/s of the corpus' bytes.

Search indexing: loftctl import and restore store every message's search
text (SEARCH is exact at once) and leave its trigram indexing to loftd,
which takes the account when loftctl tells it, in the background. The
"+index" rows run until `loftctl user show` says search_unindexed = 0
(polled; each poll is one loftctl run, so they are upper bounds). The
Dovecot here has no search index unless --dovecot-fts xapian: then
doveadm import runs without fts_autoindex, `doveadm index -u USER '*'`
after it, and its "+index" row is the two together, the like-for-like
comparison with Loft's import + index (doveadm import alone hard-links
the files and parses nothing).
"""

import argparse
import os
import re
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
from dovecotenv import Dovecot  # noqa: E402
from loftenv import LOFTCTL, Loft  # noqa: E402
from targets import dovecot_fts_conf  # noqa: E402

PW = 'bench-migrate-password-1'


def timed(cmd, **kw):
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    dt = time.monotonic() - t
    if r.returncode != 0:
        raise RuntimeError('%s: %s%s' % (cmd, r.stdout, r.stderr))
    return dt


def unindexed(ctl, user):
    """Messages of user whose search text loftd has not indexed yet."""
    r = subprocess.run(ctl + ['user', 'show', user], capture_output=True,
                       text=True)
    m = re.search(r'search_unindexed = (\d+)', r.stdout)
    if r.returncode != 0 or m is None:
        raise RuntimeError('user show %s: %s%s' % (user, r.stdout, r.stderr))
    return int(m.group(1))


def indexed_after(ctl, user, t0, bound=36000):
    """Seconds from t0 until user's search index covers every message."""
    while unindexed(ctl, user) != 0:
        if time.monotonic() - t0 > bound:
            raise RuntimeError('%s: not indexed after %d s' % (user, bound))
        time.sleep(0.05)
    return time.monotonic() - t0


def timed_index(cmd, ctl, user, **kw):
    """(seconds of cmd, seconds until loftd indexed what it added)."""
    t = time.monotonic()
    dt = timed(cmd, **kw)
    return dt, indexed_after(ctl, user, t)


def dove_count(doveadm, user):
    """Messages in a Dovecot user's INBOX (-1: unreadable)."""
    r = subprocess.run(doveadm + ['mailbox', 'status', '-u', user,
                                  'messages', 'INBOX'],
                       capture_output=True, text=True)
    m = r.stdout.strip().split('=')
    return int(m[1]) if len(m) == 2 and m[1].isdigit() else -1


def loft_count(ctl, user):
    """Messages of a Loft account (-1: unreadable)."""
    r = subprocess.run(ctl + ['user', 'show', user], capture_output=True,
                       text=True)
    for line in r.stdout.splitlines():
        if line.startswith('usage:'):
            return int(line.split(',')[-1].split()[0])
    return -1


def big(n, size, index=True):
    """A --big N account: import, backup, unchanged backup, restore;
    doveadm backup first and into an up-to-date copy."""
    tmp = tempfile.mkdtemp(prefix='loft-bench-migrate-big-')
    md = os.path.join(tmp, 'Maildir')
    for d in ('cur', 'new', 'tmp'):
        os.makedirs(os.path.join(md, d))
    total = 0
    for i in range(n):
        data = corpus.message(29, i, size=size)
        total += len(data)
        with open(os.path.join(md, 'cur', '%d.M%dP1.bench:2,S' % (
                1700000000 + i, i)), 'wb') as f:
            f.write(data)
    os.chmod(tmp, 0o755)
    for root, dirs, files in os.walk(tmp):
        for x in dirs:
            os.chmod(os.path.join(root, x), 0o755)
        for x in files:
            os.chmod(os.path.join(root, x), 0o644)
    mb = total / 1048576.0
    rows = []

    class Rows(list):
        def append(self, row):
            super().append(row)
            print('%-30s %10.2f s  (load %s)' % (
                row[0], row[1], open('/proc/loadavg').read().split()[0]),
                flush=True)
    rows = Rows()
    print('big: %d messages, %.1f MB written' % (n, mb), flush=True)
    users = {'big@example.test': PW}
    with Dovecot(users={'bak@example.test': PW}, fsync=False) as dc, \
            Loft(users=users, extra={'store': {'fsync': 'no'}}) as env:
        ctl = [LOFTCTL, '--config', env.config_path]
        dest = os.path.join(tmp, 'backup')
        if index:
            dt, di = timed_index(ctl + ['import', 'big@example.test', md],
                                 ctl, 'big@example.test', timeout=36000)
            rows.append(('loft import (maildir)', dt))
            rows.append(('loft import +index', di))
        else:
            rows.append(('loft import (maildir)', timed(
                ctl + ['import', 'big@example.test', md], timeout=36000)))
        rows.append(('loft backup (first)', timed(
            ctl + ['backup', 'big@example.test', dest], timeout=36000)))
        rows.append(('loft backup (unchanged)', timed(
            ctl + ['backup', 'big@example.test', dest], timeout=36000)))
        # a fresh server (its own data_dir): the account is made there
        # as it was, with its folders and ids
        with Loft(users={'other@example.test': PW},
                  extra={'store': {'fsync': 'no'}}) as env2:
            ctl2 = [LOFTCTL, '--config', env2.config_path]
            if index:
                dt, di = timed_index(ctl2 + ['restore', dest,
                                             'big@example.test'], ctl2,
                                     'big@example.test', timeout=36000)
                rows.append(('loft restore (fresh server)', dt))
                rows.append(('loft restore +index', di))
            else:
                rows.append(('loft restore (fresh server)', timed(
                    ctl2 + ['restore', dest, 'big@example.test'],
                    timeout=36000)))
            restored = loft_count(ctl2, 'big@example.test')
        doveadm = ['doveadm', '-c', dc.config_path]
        # Dovecot's mail processes write their index and dotlocks into
        # the source Maildir: it must be theirs
        for root, dirs, files in os.walk(tmp):
            for x in dirs + files:
                os.chown(os.path.join(root, x), dc.uid, dc.gid)
        rows.append(('doveadm backup (first)', timed(
            doveadm + ['backup', '-R', '-u', 'bak@example.test',
                       'maildir:' + md], timeout=36000)))
        rows.append(('doveadm backup (up to date)', timed(
            doveadm + ['backup', '-R', '-u', 'bak@example.test',
                       'maildir:' + md], timeout=36000)))
        # every copy holds every message (else its rows are marked)
        counts = {'loft': loft_count(ctl, 'big@example.test'),
                  'loft restore': restored,
                  'doveadm': dove_count(doveadm, 'bak@example.test')}
    print('big: messages %d, %.1f MB, load %s; messages in each copy: %s'
          % (n, mb, open('/proc/loadavg').read().split()[0], counts))
    print('%-30s %10s %10s %10s' % ('', 'seconds', 'msg/s', 'MB/s'))
    for k, v in rows:
        whose = ('loft restore' if k.startswith('loft restore') else
                 'loft' if k.startswith('loft') else 'doveadm')
        print('%-30s %10.2f %10.0f %10.1f%s' % (
            k, v, n / v, mb / v,
            '' if counts[whose] == n else '  INCOMPLETE'))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--messages', type=int, default=2000)
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--big', type=int, default=0)
    # the corpus' messages average ~62 KB: 100,000 of them are 6 GB per
    # copy (source, Loft, backup, restore, Dovecot); --big-size sets the
    # body size of those (corpus.message(size=...))
    ap.add_argument('--big-size', type=int, default=4096)
    ap.add_argument('--dovecot-fts', choices=('xapian',), default=None,
                    help='Dovecot with a search index (dovecot-fts-xapian),'
                    ' indexed after doveadm import, as Loft indexes after'
                    ' loftctl import')
    ap.add_argument('--big-no-index', action='store_true',
                    help='--big without the +index rows (the backup and'
                    ' restore rows run while loftd indexes)')
    a = ap.parse_args()
    if a.big:
        return big(a.big, a.big_size, index=not a.big_no_index)
    n, reps = a.messages, a.reps
    users = {'alice@example.test': PW}
    for i in range(reps):
        users['imp%d@example.test' % i] = PW
        users['bak%d@example.test' % i] = PW
        users['imc%d@example.test' % i] = PW
    loft_users = {}
    for i in range(reps):
        for k in ('md', 'im', 'rs'):
            loft_users['%s%d@example.test' % (k, i)] = PW
    tmp = tempfile.mkdtemp(prefix='loft-bench-migrate-')
    rows = []
    fts = a.dovecot_fts
    # the source account's deliveries are not indexed (LMTP without the
    # fts plugins): nothing of the source is timed, and a xapian index
    # per delivery made the corpus' delivery take longer than the rows
    extra = dovecot_fts_conf(fts)
    if fts:
        extra += 'protocol lmtp {\n  mail_plugins =\n}\n'
    with Dovecot(users=users, fsync=False, extra=extra) as dc, \
            Loft(users=loft_users, extra={'store': {'fsync': 'no'}}) as env:
        ctl = [LOFTCTL, '--config', env.config_path]
        total = 0
        import smtplib
        with smtplib.LMTP('127.0.0.1', dc.ports['lmtp']) as s:
            for i in range(n):
                data = corpus.message(17, i)
                total += len(data)
                s.sendmail('bench@example.org', ['alice@example.test'], data)
        im = dc.imap_login('alice@example.test')
        im.select('INBOX')
        im.logout()
        md = os.path.join(dc.mail_dir, 'alice@example.test', 'Maildir')
        mb = total / 1048576.0
        doveadm = ['doveadm', '-c', dc.config_path]
        # with a search index: saved without it, indexed after (timed)
        noauto = ['-o', 'plugin/fts_autoindex=no'] if fts else []
        t = {'loft maildir': [], 'loft maildir +index': [],
             'loft imap': [], 'loft imap +index': [],
             'doveadm import': [], 'doveadm backup': [],
             'loft backup': [], 'loft backup unchanged': [],
             'loft restore': [], 'loft restore +index': [],
             'doveadm imapc': []}
        if fts:
            t['doveadm index'] = []
            t['doveadm import +index'] = []
        pwf = os.path.join(tmp, 'pw')
        with open(pwf, 'w') as f:
            f.write(PW + '\n')

        def pair(row, got):
            t[row].append(got[0])
            t[row + ' +index'].append(got[1])
        for i in range(reps):
            pair('loft maildir', timed_index(
                ctl + ['import', 'md%d@example.test' % i, md], ctl,
                'md%d@example.test' % i))
            t['doveadm import'].append(timed(
                doveadm + noauto + ['import', '-u', 'imp%d@example.test' % i,
                                    'maildir:' + md, '', 'all']))
            if fts:
                t['doveadm index'].append(timed(
                    doveadm + ['index', '-u', 'imp%d@example.test' % i,
                               '*']))
                t['doveadm import +index'].append(
                    t['doveadm import'][-1] + t['doveadm index'][-1])
            t['doveadm backup'].append(timed(
                doveadm + noauto + ['backup', '-R', '-u',
                                    'bak%d@example.test' % i,
                                    'maildir:' + md]))
            pair('loft imap', timed_index(
                ctl + ['import', 'im%d@example.test' % i,
                       'imap://alice%%40example.test@127.0.0.1:%d'
                       % dc.ports['imap'], '--password-file', pwf], ctl,
                'im%d@example.test' % i))
            t['doveadm imapc'].append(timed(
                doveadm + noauto + [
                    '-o', 'imapc_host=127.0.0.1',
                    '-o', 'imapc_port=%d' % dc.ports['imap'],
                    '-o', 'imapc_user=alice@example.test',
                    '-o', 'imapc_password=' + PW,
                    '-o', 'imapc_features=rfc822.size fetch-headers',
                    '-o', 'mail_prefetch_count=20',
                    'backup', '-R', '-u', 'imc%d@example.test' % i,
                    'imapc:']))
            dest = os.path.join(tmp, 'backup%d' % i)
            t['loft backup'].append(timed(
                [LOFTCTL, '--config', env.config_path, 'backup',
                 'md%d@example.test' % i, dest]))
            t['loft backup unchanged'].append(timed(
                [LOFTCTL, '--config', env.config_path, 'backup',
                 'md%d@example.test' % i, dest]))
            pair('loft restore', timed_index(
                ctl + ['restore', dest, 'md%d@example.test' % i, '--as',
                       'rs%d@example.test' % i], ctl,
                'rs%d@example.test' % i))
        # every row must have moved every message (a row that did not
        # is marked, never reported as a rate)
        bad = set()

        for i in range(reps):
            for row, got in (
                    ('doveadm import',
                     dove_count(doveadm, 'imp%d@example.test' % i)),
                    ('doveadm backup',
                     dove_count(doveadm, 'bak%d@example.test' % i)),
                    ('doveadm imapc',
                     dove_count(doveadm, 'imc%d@example.test' % i)),
                    ('loft maildir', loft_count(ctl, 'md%d@example.test' % i)),
                    ('loft imap', loft_count(ctl, 'im%d@example.test' % i)),
                    ('loft restore',
                     loft_count(ctl, 'rs%d@example.test' % i))):
                if got != n:
                    bad.update((row, row + ' +index'))
                    print('%s rep %d: %d of %d messages' % (row, i, got, n))
        print('messages %d, %.1f MB, reps %d, load %s, dovecot fts %s' % (
            n, mb, reps, open('/proc/loadavg').read().split()[0], fts))
        print('%-24s %10s %10s %10s' % ('', 'seconds', 'msg/s', 'MB/s'))
        for k, v in t.items():
            s = statistics.median(v)
            print('%-24s %10.2f %10.0f %10.1f%s' % (
                k, s, n / s, mb / s, '  INCOMPLETE' if k in bad else ''))
        dm = statistics.median(t['doveadm import'])
        lm = statistics.median(t['loft maildir'])
        print('ratio loft maildir / doveadm import (rate): %.2f' % (dm / lm))
        print('ratio loft imap / doveadm import (rate): %.2f'
              % (dm / statistics.median(t['loft imap'])))
        print('ratio loft maildir / doveadm backup (rate): %.2f'
              % (statistics.median(t['doveadm backup']) / lm))
        print('ratio loft imap / doveadm imapc (rate): %.2f'
              % (statistics.median(t['doveadm imapc'])
                 / statistics.median(t['loft imap'])))
        if fts:
            print('ratio loft maildir +index / doveadm import +index'
                  ' (rate): %.2f'
                  % (statistics.median(t['doveadm import +index'])
                     / statistics.median(t['loft maildir +index'])))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
