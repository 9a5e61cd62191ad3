#!/usr/bin/env python3
"""How long `loftctl migrate-store` locks an account (issue 18, "Moving
between backends"): one run per size and direction.

    python3 bench/migstore.py [--messages 1000,10000] [--restore]

One loftd with backend = sqlite and [store] postgres on a private
PostgreSQL 15 (tests/lib/pgenv.py, file blobs). For each size an mbox of
N messages (~2 KB, a third \\Seen, a few keywords) is imported into a
fresh account on sqlite, then moved sqlite -> postgres and back. During
each move, the account is used as a client would:

  - an IMAP client sits in IDLE on INBOX (its * BYE [UNAVAILABLE] is the
    lock's start as a client sees it);
  - a prober logs in and SELECTs INBOX every 100 ms: NO [UNAVAILABLE]
    while locked; its first success after a refusal is the lock's end;
  - an LMTP client delivers one message every 250 ms (a 451 also marks
    the lock's start; the 250s are mail that arrives during the copy).

Printed per move: the lock as the clients saw it (first BYE/451/NO to
the first successful LOGIN+SELECT after it), loftctl's own "locked N ms",
the wall time of the move, the copy rate (messages/s of wall time), and
the LMTP deliveries accepted / refused during the move.

--changes KINDS pauses each move after its live copy and its catch-up
rounds (LOFT_TEST_MOVE_LIVE_PAUSE, before the lock) and makes these
changes, each once, so that they all fall to the locked delta: expunge
(5 INBOX messages, which undelete keeps), pop3 (a RETR and a DELE under
pop3_delete = hide: marks that move no modseq), role (the archive role
moved between Archive and Projects with JMAP Mailbox/set), metadata (a
SETMETADATA entry changed), rename (a folder renamed back and forth),
seen (another account's own \Seen in a shared folder set and cleared).
Default: all of them; `--changes none` for the moves alone.

--kept N expunges N of the imported messages before the moves
(undelete keeps them: the account moves with N kept messages).

--restore also times `loftctl backup` of the N-message account and
`loftctl restore` of it into a fresh account on postgres (one run).

Binaries: $LOFTD / $LOFTCTL or build/ (tests/lib/loftenv.py).
"""

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'lib'))

from loftenv import Loft  # noqa: E402
from pgenv import Postgres  # noqa: E402

WORDS = ('alpha bravo charlie delta echo foxtrot golf hotel india juliet '
         'kilo lima mike november oscar papa quebec romeo sierra tango '
         'uniform victor whiskey xray yankee zulu').split()


def write_mbox(path, n, seed=1):
    rnd = random.Random(seed)
    with open(path, 'w') as f:
        for i in range(n):
            body = '\n'.join(' '.join(rnd.choice(WORDS) for _ in range(12))
                             for _ in range(22))
            status = 'Status: RO\n' if i % 3 == 0 else ''
            kw = 'X-Keywords: $Label%d\n' % (i % 4) if i % 7 == 0 else ''
            f.write('From sender%d@example.org Mon Jan  1 00:00:00 2024\n'
                    'From: Sender %d <sender%d@example.org>\n'
                    'To: alice@example.test\n'
                    'Subject: message %d %s\n'
                    'Message-ID: <bench%d@example.org>\n'
                    'Date: Mon, 1 Jan 2024 00:00:00 +0000\n%s%s\n%s\n\n'
                    % (i % 50, i % 50, i % 50, i, rnd.choice(WORDS), i,
                       status, kw, body))


class Watch:
    """The clients that use the account during a move."""

    def __init__(self, loft, user):
        self.loft, self.user = loft, user
        self.pw = loft.users[user]
        self.stop = threading.Event()
        self.first_refusal = None     # BYE, 451 or NO [UNAVAILABLE]
        self.back = None              # first LOGIN+SELECT OK after it
        self.lmtp_ok = 0
        self.lmtp_451 = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self.idle, self.prober, self.lmtp)]

    def refused(self, t):
        with self.lock:
            if self.first_refusal is None or t < self.first_refusal:
                self.first_refusal = t

    def start(self):
        ready = []
        self._idle_ready = threading.Event()
        for t in self.threads:
            t.start()
        self._idle_ready.wait(30)
        return ready

    def idle(self):
        s = socket.create_connection(('127.0.0.1', self.loft.port('imap')),
                                     timeout=600)
        f = s.makefile('rb')
        f.readline()
        for cmd in ('a LOGIN %s %s' % (self.user, self.pw),
                    'c SELECT INBOX', 'd IDLE'):
            s.sendall((cmd + '\r\n').encode())
            tag = cmd.split()[0]
            while True:
                line = f.readline().decode()
                if not line or line.startswith(tag + ' ') or \
                        line.startswith('+'):
                    break
        self._idle_ready.set()
        s.settimeout(0.5)
        while not self.stop.is_set():
            try:
                line = f.readline()
            except (socket.timeout, OSError):
                continue
            if not line:
                break
            if line.startswith(b'* BYE'):
                self.refused(time.monotonic())
                break
        s.close()

    def login_ok(self):
        try:
            s = socket.create_connection(('127.0.0.1',
                                          self.loft.port('imap')), timeout=30)
        except OSError:
            return False
        try:
            f = s.makefile('rb')
            f.readline()
            ok = True
            for cmd in ('a LOGIN %s %s' % (self.user, self.pw),
                        'b SELECT INBOX', 'c LOGOUT'):
                s.sendall((cmd + '\r\n').encode())
                tag = cmd.split()[0]
                while True:
                    line = f.readline().decode()
                    if not line:
                        return False
                    if line.startswith(tag + ' '):
                        break
                if tag != 'c' and not line.startswith(tag + ' OK'):
                    ok = False
                    break
            return ok
        except OSError:
            return False
        finally:
            s.close()

    def prober(self):
        while not self.stop.is_set():
            t = time.monotonic()
            ok = self.login_ok()
            if not ok:
                self.refused(t)
            elif self.first_refusal is not None and self.back is None:
                self.back = time.monotonic()
            time.sleep(0.1)

    def lmtp(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            t = time.monotonic()
            code = lmtp_one(self.loft, self.user, 'during the move %d' % i)
            if code.startswith('250'):
                self.lmtp_ok += 1
            else:
                self.lmtp_451 += 1
                self.refused(t)
            time.sleep(0.25)

    def finish(self):
        # the clients see the new place: wait for the prober's success
        deadline = time.monotonic() + 60
        while self.back is None and self.first_refusal is not None and \
                time.monotonic() < deadline:
            time.sleep(0.05)
        self.stop.set()
        for t in self.threads:
            t.join(30)


def lmtp_one(loft, rcpt, subject):
    try:
        s = socket.create_connection(('127.0.0.1', loft.port('lmtp')),
                                     timeout=60)
    except OSError as e:
        return str(e)
    f = s.makefile('rb')

    def reply():
        while True:
            line = f.readline().decode()
            if not line or line[3:4] != '-':
                return line
    try:
        reply()
        for cmd in ('LHLO bench', 'MAIL FROM:<x@example.org>',
                    'RCPT TO:<%s>' % rcpt):
            s.sendall((cmd + '\r\n').encode())
            rc = reply()
            if not rc.startswith('250'):
                return rc
        s.sendall(b'DATA\r\n')
        reply()
        s.sendall(('Subject: %s\r\nFrom: x@example.org\r\n\r\nhello\r\n.\r\n'
                   % subject).encode())
        rc = reply()
        s.sendall(b'QUIT\r\n')
        return rc
    except OSError as e:
        return str(e)
    finally:
        s.close()


CHANGES = ('expunge', 'pop3', 'role', 'metadata', 'rename', 'seen')
VIEWER = 'viewer@example.test'


def imap_cmds(loft, user, cmds):
    """Tagged commands on one connection; the tagged replies."""
    s = socket.create_connection(('127.0.0.1', loft.port('imap')),
                                 timeout=60)
    f = s.makefile('rb')
    f.readline()
    done = []
    for i, cmd in enumerate(['LOGIN %s %s' % (user, loft.users[user])] +
                            cmds + ['LOGOUT']):
        tag = 't%d' % i
        s.sendall(('%s %s\r\n' % (tag, cmd)).encode())
        while True:
            line = f.readline().decode('utf-8', 'replace')
            if not line or line.startswith(tag + ' '):
                done.append(line.strip())
                break
    s.close()
    return done


def changes_setup(loft, user, kinds):
    """What the changes need: a Projects folder, a shared one, POP3's
    hide policy."""
    cmds = ['CREATE Projects', 'CREATE Team',
            'APPEND Team {5+}\r\nhi\r\n',
            'SETACL Team %s lrs' % VIEWER]
    imap_cmds(loft, user, cmds)
    loft.loftctl('user', 'set', user, 'pop3_delete=hide')


def make_changes(loft, user, kinds, n):
    """One change of each kind, made while loftctl waits before the
    lock."""
    if 'expunge' in kinds:
        imap_cmds(loft, user, ['SELECT INBOX',
                               'STORE 1:5 +FLAGS.SILENT (\\Deleted)',
                               'EXPUNGE'])
    if 'pop3' in kinds:
        p = loft.pop3_login(user)
        p.retr(1)
        p.dele(2)
        p.quit()
    if 'metadata' in kinds:
        imap_cmds(loft, user, ['SETMETADATA INBOX (/private/comment '
                               '"move %d")' % n])
    if 'rename' in kinds:
        a, b = ('Projects', 'Projects2') if n % 2 else ('Projects2',
                                                        'Projects')
        imap_cmds(loft, user, ['RENAME %s %s' % (a, b)])
    if 'seen' in kinds:
        imap_cmds(loft, VIEWER, ['SELECT "Other Users/%s/Team"' % user,
                                 'STORE 1 %sFLAGS (\\Seen)'
                                 % ('+' if n % 2 else '-')])
    if 'role' in kinds:
        sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'lib'))
        from jmapclient import Jmap
        j = Jmap(loft, user)
        boxes = {m['name']: m['id']
                 for m in j.ok('Mailbox/get', {'ids': None})['list']}
        proj = boxes.get('Projects') or boxes.get('Projects2')
        frm, to = (boxes['Archive'], proj) if n % 2 else (proj,
                                                          boxes['Archive'])
        j.ok('Mailbox/set', {'update': {frm: {'role': None},
                                        to: {'role': 'archive'}}})


def move(loft, user, to, kinds=(), n=0):
    w = Watch(loft, user)
    w.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    cmd = [loft.loftctl_bin, '--config', loft.config_path, 'migrate-store',
           user, '--to', to]
    tc = 0.0
    if kinds:
        pause = os.path.join(loft.data_dir, 'bench-live-pause')
        open(pause, 'w').close()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ,
                                      LOFT_TEST_MOVE_LIVE_PAUSE=pause))
        while not os.path.exists(pause + '.ready') and p.poll() is None:
            time.sleep(0.05)
        t = time.monotonic()
        make_changes(loft, user, kinds, n)
        tc = time.monotonic() - t
        os.unlink(pause)
        out, err = p.communicate(timeout=3600)
        if os.path.exists(pause + '.ready'):
            os.unlink(pause + '.ready')
        p = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    else:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=3600)
    wall = time.monotonic() - t0 - tc
    w.finish()
    if p.returncode != 0 or 'moved to %s' % to not in p.stdout:
        raise RuntimeError('migrate-store: %s%s' % (p.stdout, p.stderr))
    m = re.search(r'(\d+) messages.*locked (\d+) ms', p.stdout)
    msgs, locked = int(m.group(1)), int(m.group(2))
    seen = (w.back - w.first_refusal) if (w.back and w.first_refusal) \
        else float('nan')
    return {'wall': wall, 'locked_ms': locked, 'seen': seen,
            'messages': msgs, 'ok': w.lmtp_ok, 'r451': w.lmtp_451,
            'out': (p.stdout + p.stderr).strip(),
            'whole': 'copied whole' in p.stdout}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--messages', default='1000,10000')
    ap.add_argument('--restore', action='store_true')
    ap.add_argument('--directions', default='postgres,sqlite')
    ap.add_argument('--kept', type=int, default=0)
    ap.add_argument('--changes', default='none',
                    help='comma-separated: %s, all or none'
                    % ','.join(CHANGES))
    args = ap.parse_args()
    kinds = () if args.changes == 'none' else CHANGES \
        if args.changes == 'all' else tuple(args.changes.split(','))
    for k in kinds:
        if k not in CHANGES:
            ap.error('--changes: no such kind: %s' % k)
    if not Postgres.available():
        print('no PostgreSQL 15 binaries')
        return 1
    pg = Postgres()
    work = tempfile.mkdtemp(prefix='loft-bench-migstore-')
    rows = []
    try:
        sizes = [int(x) for x in args.messages.split(',')]
        users = {'u%d@example.test' % n: 'bench-password-%d' % n for n in sizes}
        users.update({'r%d@example.test' % n: 'bench-password-r'
                      for n in sizes})
        users[VIEWER] = 'bench-password-v1ew'
        extra = {'store': {'postgres': pg.new_database(),
                           'blob_dir': os.path.join(work, 'blobs')},
                 '': {'log_level': 'info'}}
        with Loft(users=users, extra=extra) as loft:
            for n in sizes:
                user = 'u%d@example.test' % n
                mbox = os.path.join(work, 'm%d.mbox' % n)
                write_mbox(mbox, n)
                t = time.monotonic()
                rc, out, err = loft.loftctl('import', user, mbox,
                                            timeout=3600)
                if rc != 0:
                    raise RuntimeError(out + err)
                print('# %d messages imported on sqlite in %.1f s'
                      % (n, time.monotonic() - t), flush=True)
                if args.kept:
                    imap_cmds(loft, user, [
                        'SELECT m%d' % n, 'STORE %d:%d +FLAGS.SILENT '
                        '(\\Deleted)' % (n - args.kept + 1, n), 'EXPUNGE'])
                    rc, out, err = loft.loftctl('undelete', user, '--list')
                    print('# %d kept for undelete' % len(
                        [l for l in out.splitlines() if l.strip()]),
                        flush=True)
                if kinds:
                    changes_setup(loft, user, kinds)
                for k, to in enumerate(args.directions.split(',')):
                    res = move(loft, user, to, kinds, k + 1)
                    res.update(n=n, to=to)
                    rows.append(res)
                    print('# ' + res['out'], flush=True)
                    print('%6d -> %-8s  seen locked %6.2f s  loftctl locked '
                          '%6.2f s  wall %6.1f s  %5.0f msg/s  LMTP during: '
                          '%d x 250, %d x 451%s'
                          % (n, to, res['seen'], res['locked_ms'] / 1000,
                             res['wall'], res['messages'] / res['wall'],
                             res['ok'], res['r451'],
                             '  (copied whole under the lock)'
                             if res['whole'] else ''), flush=True)
                if args.restore:
                    bdir = os.path.join(work, 'backup%d' % n)
                    t = time.monotonic()
                    rc, out, err = loft.loftctl('backup', user, bdir,
                                                timeout=3600)
                    if rc != 0:
                        raise RuntimeError(out + err)
                    tb = time.monotonic() - t
                    ruser = 'r%d@example.test' % n
                    rc, out, err = loft.loftctl('migrate-store', ruser,
                                                '--to', 'postgres')
                    t = time.monotonic()
                    rc, out, err = loft.loftctl('restore', bdir, user,
                                                '--as', ruser,
                                                timeout=3600)
                    tr = time.monotonic() - t
                    if rc != 0:
                        raise RuntimeError(out + err)
                    print('%6d backup (sqlite) %.1f s; restore into an '
                          'account on postgres %.1f s (%.0f msg/s)'
                          % (n, tb, tr, n / tr),
                          flush=True)
    finally:
        pg.close()
        shutil.rmtree(work, ignore_errors=True)
    print('\nchanges during the copy: %s' % (','.join(kinds) or 'none'))
    print('messages  to        seen-locked  loftctl-locked  wall   msg/s')
    for x in rows:
        print('%8d  %-8s  %9.2f s  %12.2f s  %5.1f s  %5.0f%s'
              % (x['n'], x['to'], x['seen'], x['locked_ms'] / 1000,
                 x['wall'], x['messages'] / x['wall'],
                 '  whole' if x['whole'] else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
