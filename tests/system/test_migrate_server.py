#!/usr/bin/env python3
"""A backup of the whole server, and a backup that meets an expunge
(issue 17, docs/backup.md):

  - `loftctl backup DEST` (no ADDRESS) keeps what is in no one account:
    a domain without accounts, a group and its members, a DKIM key, a
    message still in the outbound queue, and per account its app
    passwords (hashes) and the readers' own \\Seen of its shared folder.
    Secrets stay private: server.json and the manifests are mode 0600,
    DEST and its directories 0700.
  - The server is wiped (a new data_dir) and `loftctl restore DEST`
    brings it back: the domain, the group, the same UIDVALIDITY, UIDs,
    flags and POP3 UIDLs, the reader's own \\Seen (not the owner's), the
    app password logs in over IMAP, `dkim list --records` prints the
    same records and the key file is mode 0600, and the queued message
    is delivered (to smtp-sink, signed by the old server); a second
    restore queues nothing again.
  - A message body file expunged (and removed by loftd) while a backup
    reads an older snapshot: the backup reads the account again from a
    newer one and succeeds; its manifest lacks the expunged messages,
    verify passes.
"""

import glob
import os
import re
import shutil
import smtplib
import stat
import subprocess
import sys
import tempfile
import time

from loftenv import Loft, Results, free_port, SLOW

R = Results()
PW = 'migrate-server-password-1'
ALICE, BOB, CAROL = ('alice@example.test', 'bob@example.test',
                     'carol@example.test')
USERS = {ALICE: PW, BOB: PW, CAROL: PW}
SHARED = 'Other Users/%s/INBOX' % ALICE


class Sink:
    """Postfix's smtp-sink writing one file per message."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='loft-sink-')
        shutil.chown(self.dir, 'postfix', 'postfix')
        self.port = free_port()
        self.log = open(os.path.join(self.dir, 'log'), 'wb')
        self.proc = subprocess.Popen(
            ['/usr/sbin/smtp-sink', '-u', 'postfix', '-d',
             os.path.join(self.dir, 'm%H%M%S.'), '127.0.0.1:%d' % self.port,
             '16'], stdout=self.log, stderr=self.log)

    def messages(self):
        out = []
        for f in glob.glob(os.path.join(self.dir, 'm*')):
            try:
                with open(f, 'rb') as fh:
                    out.append(fh.read())
            except OSError:
                pass
        return out

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, True)


def wait_for(cond, bound=60):
    deadline = time.monotonic() + bound * SLOW
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    return cond()


def fetch_flags(imap, box):
    """{uid: set of flags} of a mailbox (EXAMINE)."""
    typ, _ = imap.select('"%s"' % box, readonly=True)
    assert typ == 'OK', box
    typ, data = imap.uid('FETCH', '1:*', '(FLAGS)')
    out = {}
    for item in data:
        if item is None:
            continue
        line = item if isinstance(item, bytes) else item[0]
        m = re.search(rb'UID (\d+) FLAGS \(([^)]*)\)', line) or \
            re.search(rb'FLAGS \(([^)]*)\) UID (\d+)', line)
        if m is None:
            continue
        if m.re.pattern.startswith(b'UID'):
            uid, flags = m.group(1), m.group(2)
        else:
            uid, flags = m.group(2), m.group(1)
        out[int(uid)] = set(flags.decode().split()) - {'\\Recent'}
    return out


def state(env):
    """What a user sees: alice's INBOX (UIDVALIDITY, flags by UID), bob's
    view of it, alice's POP3 UIDLs."""
    imap = env.imap_login(ALICE, PW)
    imap.select('INBOX', readonly=True)
    uv = int(imap.response('UIDVALIDITY')[1][0])
    own = fetch_flags(imap, 'INBOX')
    imap.logout()
    imap = env.imap_login(BOB, PW)
    bobs = fetch_flags(imap, SHARED)
    imap.logout()
    pop = env.pop3_login(ALICE, PW)
    uidl = pop.uidl()[1]
    pop.quit()
    return uv, own, bobs, sorted(uidl)


def private_modes(dest):
    """Files not 0600 and directories not 0700 under dest."""
    bad = []
    for root, dirs, files in os.walk(dest):
        for d in dirs:
            if stat.S_IMODE(os.stat(os.path.join(root, d)).st_mode) != 0o700:
                bad.append(os.path.join(root, d))
        for f in files:
            p = os.path.join(root, f)
            if stat.S_IMODE(os.stat(p).st_mode) != 0o600:
                bad.append(p)
    if stat.S_IMODE(os.stat(dest).st_mode) != 0o700:
        bad.append(dest)
    return bad


def body_files(data_dir):
    """The message files the store keeps outside its index."""
    return [p for p in glob.glob(os.path.join(data_dir, '**', 'blobs', '*',
                                              '*'), recursive=True)
            if os.path.isfile(p)]


def whole_server(tmp, sink):
    dest = os.path.join(tmp, 'backup')
    closed = free_port()          # nobody listens: the message stays queued
    extra = {'submission': {'listen': '127.0.0.1:%d' % free_port()},
             'queue': {'smarthost': '127.0.0.1:%d' % closed,
                       'smarthost_tls': 'none'},
             'auth': {'throttle': 'no'}}
    with Loft(users=USERS, extra=extra) as env:
        for args in (('domain', 'add', 'lonely.test'),
                     ('group', 'add', 'team@example.test', BOB),
                     ('acl', 'set', ALICE + '/INBOX', '$team', 'lrs'),
                     ('dkim', 'add', 'example.test', '--selector', 's1',
                      '--ed25519')):
            rc, out, err = env.loftctl(*args)
            R.check('loftctl %s %s' % args[:2], rc == 0, out + err)
        rc, out, err = env.loftctl('token', 'add', ALICE, '--name', 'phone')
        m = re.search(r'loft_[A-Za-z0-9_-]{43}', out)
        R.check('token add', rc == 0 and m, out + err)
        token = m.group(0) if m else ''
        imap = env.imap_login(ALICE, PW)
        for i in range(1, 6):
            imap.append('INBOX', None, None,
                        ('Subject: m%d\r\nMessage-ID: <m%d@x>\r\n\r\n'
                         'body %d\r\n' % (i, i, i)).encode())
        imap.select('INBOX')
        imap.uid('STORE', '5', '+FLAGS', '(\\Seen)')
        imap.logout()
        imap = env.imap_login(BOB, PW)
        typ, _ = imap.select('"%s"' % SHARED)
        R.check('bob opens alice\'s INBOX through the group', typ == 'OK')
        imap.uid('STORE', '1:2', '+FLAGS', '(\\Seen)')
        imap.logout()
        c = smtplib.SMTP('127.0.0.1', env.port('submission'),
                         timeout=30 * SLOW)
        c.login(ALICE, PW)
        c.sendmail(ALICE, ['x@remote.example'],
                   ('From: %s\r\nTo: x@remote.example\r\nSubject: queued\r\n'
                    'X-Restore-Id: 4242\r\n\r\nstill queued\r\n'
                    % ALICE).encode())
        c.quit()
        rc, out, err = env.loftctl('queue', 'list')
        R.check('the message waits in the queue',
                'x@remote.example' in out, out + err)
        before = state(env)
        R.check('bob\'s own \\Seen differs from alice\'s',
                '\\Seen' in before[2][1] and '\\Seen' not in before[1][1] and
                '\\Seen' in before[1][5] and '\\Seen' not in before[2][5],
                before)
        rc, records, err = env.loftctl('dkim', 'list', '--records')
        rc, out, err = env.loftctl('backup', dest, timeout=300)
        R.check('backup of the server: exit 0', rc == 0, out + err)
        snap = sorted(os.listdir(os.path.join(dest, 'snapshots')))[-1]
        with open(os.path.join(dest, 'snapshots', snap, 'server.json')) as f:
            srv = f.read()
        R.check('server.json: the domain without accounts, the group, the'
                ' key, the queued message',
                '"lonely.test"' in srv and '"team@example.test"' in srv and
                '"s1"' in srv and 'x@remote.example' in srv, srv[:300])
        R.check('secrets stay private (files 0600, directories 0700)',
                private_modes(dest) == [], private_modes(dest))
        rc, out, err = env.loftctl('backup', 'verify', dest, timeout=300)
        R.check('verify: the server record checked',
                rc == 0 and 'and the server record checked' in out,
                out + err)
    # ---- a fresh server (new data_dir) from the backup ----
    extra['queue'] = {'smarthost': '127.0.0.1:%d' % sink.port,
                      'smarthost_tls': 'none', 'retry_min': '1s'}
    with Loft(users={}, extra=extra) as fresh:
        rc, out, err = fresh.loftctl('restore', dest, timeout=300)
        R.check('restore DEST: exit 0', rc == 0, out + err)
        R.check('restore DEST: the queued message',
                'queue: 1 messages restored' in out, out + err)
        fresh.users.update(USERS)
        rc, out, err = fresh.loftctl('domain', 'list')
        R.check('the domain without accounts', 'lonely.test' in out, out)
        rc, out, err = fresh.loftctl('group', 'members', 'team@example.test')
        R.check('the group and its member', BOB in out, out + err)
        after = state(fresh)
        R.check('UIDVALIDITY, UIDs, flags, the reader\'s own \\Seen and'
                ' POP3 UIDLs as before', after == before, (after, before))
        imap = fresh.imap()
        try:
            typ, _ = imap.login(ALICE, token)
        except Exception as e:       # imaplib raises on NO
            typ = str(e)
        R.check('the app password logs in', typ == 'OK', typ)
        rc, out, err = fresh.loftctl('dkim', 'list', '--records')
        R.check('the same DKIM record', rc == 0 and out == records and
                's1._domainkey.example.test' in out, (out, records))
        keys = glob.glob(os.path.join(fresh.data_dir, 'dkim', '*', '*.pem'))
        R.check('the key file is mode 0600', keys and all(
            stat.S_IMODE(os.stat(k).st_mode) == 0o600 for k in keys), keys)
        got = wait_for(lambda: [m for m in sink.messages()
                                if b'X-Restore-Id: 4242' in m], 60)
        R.check('the queued message is delivered',
                len(got) == 1, len(got))
        R.check('signed by the old server with the restored key',
                got and re.search(rb'DKIM-Signature:[^\r\n]*', got[0]) and
                b's=s1' in got[0] and b'd=example.test' in got[0],
                got[0][:400] if got else '')
        rc, out, err = fresh.loftctl('restore', dest, timeout=300)
        R.check('a second restore queues nothing again',
                rc == 0 and 'queue: 0 messages restored' in out, out + err)


def expunge_race(tmp):
    dest = os.path.join(tmp, 'race')
    pause = os.path.join(tmp, 'pause')
    big = 'x' * 200 * 1024       # kept as a file, not in the index
    with Loft(users={ALICE: PW},
              extra={'policy': {'deleted_retention_days': '0'}}) as env:
        imap = env.imap_login(ALICE, PW)
        for i in range(1, 7):
            imap.append('INBOX', None, None,
                        ('Subject: big %d\r\n\r\n%s %d\r\n'
                         % (i, big, i)).encode())
        imap.logout()
        files = body_files(env.data_dir)
        R.check('six body files', len(files) == 6, files)
        with open(pause, 'w'):
            pass
        envv = dict(os.environ, LOFT_TEST_BACKUP_PAUSE=pause)
        proc = subprocess.Popen([env.loftctl_bin, '--config',
                                 env.config_path, 'backup', ALICE, dest],
                                env=envv, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        ready = wait_for(lambda: os.path.exists(pause + '.ready'), 120)
        R.check('the backup holds its snapshot', ready)
        imap = env.imap_login(ALICE, PW)
        imap.select('INBOX')
        imap.uid('STORE', '2:4', '+FLAGS', '(\\Deleted)')
        imap.expunge()
        imap.logout()
        gone = wait_for(lambda: len(body_files(env.data_dir)) == 3, 60)
        R.check('loftd removed the expunged bodies', gone,
                body_files(env.data_dir))
        os.unlink(pause)
        out, err = proc.communicate(timeout=300 * SLOW)
        R.check('the backup succeeds', proc.returncode == 0, out + err)
        snap = sorted(os.listdir(os.path.join(dest, 'snapshots')))[-1]
        with open(os.path.join(dest, 'snapshots', snap,
                               ALICE + '.json')) as f:
            man = f.read()
        uids = sorted(int(u) for u in re.findall(r'"uid":(\d+)', man))
        R.check('its manifest: the mail after the expunge',
                uids == [1, 5, 6], uids)
        rc, out, err = env.loftctl('backup', 'verify', dest, timeout=300)
        R.check('verify passes', rc == 0, out + err)


def main():
    if not os.access('/usr/sbin/smtp-sink', os.X_OK):
        R.check('smtp-sink installed (postfix)', False)
        return R.finish()
    tmp = tempfile.mkdtemp(prefix='loft-migrate-server-')
    os.chmod(tmp, 0o755)
    sink = Sink()
    try:
        whole_server(tmp, sink)
        expunge_race(tmp)
    finally:
        sink.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
