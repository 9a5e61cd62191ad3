#!/usr/bin/env python3
"""Devices keep their state across a move from Dovecot to Loft (issue 17):

  - mbsync (isync) syncs a private Dovecot account to a local Maildir;
    `loftctl import` of Dovecot's Maildir on disk moves the account to
    Loft (UIDVALIDITY and UIDs kept); the same mbsync configuration and
    state, pointed at Loft, downloads nothing, uploads nothing and
    changes no flag on either side;
  - fetchmail in keep mode (UIDL tracking in its idfile) fetches the
    INBOX from Dovecot; pointed at Loft with the same user name it
    fetches nothing (the UIDLs are Dovecot's), and a new message is the
    only one it fetches next.
"""

import glob
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile

from dovecotenv import Dovecot
from loftenv import Loft, Results, SLOW

R = Results()
PW = 'migrate-clients-password-1'
USER = 'alice@example.test'


def message(i):
    return ('From: s%d@example.org\r\nTo: %s\r\nSubject: client %d\r\n'
            'Message-ID: <c%d@example.org>\r\n\r\nbody %d\r\n'
            % (i, USER, i, i, i)).encode()


def lmtp_deliver(port, data):
    with smtplib.LMTP('127.0.0.1', port) as s:
        s.sendmail('s@example.org', [USER], data)


def local_state(root):
    """{folder/file name without the mbsync UID part: flags} and the set of
    file names, of the device's Maildir."""
    names = set()
    for d in ('cur', 'new'):
        for f in glob.glob(os.path.join(root, '**', d, '*'), recursive=True):
            names.add(os.path.relpath(f, root))
    return names


def server_flags(imap):
    out = {}
    typ, lines = imap.list('""', '*')
    for line in lines:
        name = re.search(rb' "?([^"]*)"?$', line).group(1).decode()
        if imap.select('"%s"' % name, readonly=True)[0] != 'OK':
            continue
        uv = int(imap.response('UIDVALIDITY')[1][0])
        typ, data = imap.uid('FETCH', '1:*', '(FLAGS)')
        for item in data or []:
            if not item:
                continue
            raw = item if isinstance(item, bytes) else item[0]
            m = re.search(rb'UID (\d+) FLAGS \(([^)]*)\)', raw) or \
                re.search(rb'FLAGS \(([^)]*)\) UID (\d+)', raw)
            if m is None:
                continue
            a, b = m.groups()
            uid, flags = (a, b) if a.isdigit() else (b, a)
            out[(name, uv, int(uid))] = sorted(
                f for f in flags.decode().split() if f != '\\Recent')
        imap.close()
    return out


def mbsync(rc, name):
    p = subprocess.run(['mbsync', '-c', rc, '-a'], capture_output=True,
                       text=True, timeout=120 * SLOW)
    R.check(name, p.returncode == 0, p.stdout[-1500:] + p.stderr[-1500:])
    return p


def mbsyncrc(path, port, maildir):
    with open(path, 'w') as f:
        f.write('''FSync no

IMAPAccount server
Host 127.0.0.1
Port %d
User %s
Pass %s
SSLType None
AuthMechs LOGIN PLAIN

IMAPStore remote
Account server

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel all
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
''' % (port, USER, PW, maildir, maildir))


def fetchmail(tmp, port, name, want_rc):
    rc = os.path.join(tmp, 'fetchmailrc')
    out = os.path.join(tmp, 'fetched')
    with open(rc, 'w') as f:
        f.write('set idfile "%s/fetchids"\n'
                'poll 127.0.0.1 with protocol POP3 and port %d uidl:\n'
                '  user "%s" there with password "%s" is "root" here\n'
                '  keep sslproto "" mda "/bin/sh -c \'cat >> %s\'"\n'
                % (tmp, port, USER, PW, out))
    os.chmod(rc, 0o600)
    env = dict(os.environ, FETCHMAILHOME=tmp, HOME=tmp)
    before = os.path.getsize(out) if os.path.exists(out) else 0
    p = subprocess.run(['fetchmail', '-f', rc, '--nodetach', '--nosyslog'],
                       capture_output=True, text=True, env=env,
                       timeout=120 * SLOW)
    R.check('%s: fetchmail exit %d' % (name, want_rc),
            p.returncode == want_rc, (p.returncode, p.stdout[-1500:],
                                      p.stderr[-1500:]))
    got = open(out, 'rb').read()[before:] if os.path.exists(out) else b''
    return got.count(b'Message-ID: <c')


def main():
    if not Dovecot.available() or shutil.which('mbsync') is None or \
            shutil.which('fetchmail') is None:
        print('dovecot, mbsync or fetchmail is not installed: skipped')
        print('0 passed, 0 failed')
        return 0
    tmp = tempfile.mkdtemp(prefix='loft-migrate-clients-')
    with Dovecot(users={USER: PW}) as dc, Loft(users={USER: PW}) as env:
        for i in range(1, 7):
            lmtp_deliver(dc.ports['lmtp'], message(i))
        d = dc.imap_login(USER)
        d.create('Projects')
        d.subscribe('Projects')
        d.append('Projects', '(\\Answered $Work)', None, message(20))
        d.append('Projects', None, None, message(21))
        d.select('INBOX')
        d.uid('STORE', '1', '+FLAGS', '(\\Seen \\Flagged)')
        d.uid('STORE', '2', '+FLAGS', '(\\Seen)')
        d.uid('STORE', '3', '+FLAGS', '(\\Deleted)')
        d.expunge()
        d.logout()

        # the devices, in sync with Dovecot
        maildir = os.path.join(tmp, 'device')
        os.makedirs(maildir)
        rc = os.path.join(tmp, 'mbsyncrc')
        mbsyncrc(rc, dc.ports['imap'], maildir)
        mbsync(rc, 'mbsync from Dovecot')
        device = local_state(maildir)
        R.check('mbsync pulled the 7 messages', len(device) == 7,
                sorted(device))
        n = fetchmail(tmp, dc.ports['pop3'], 'fetchmail from Dovecot', 0)
        R.check('fetchmail fetched the INBOX (5)', n == 5, n)

        # the move: Dovecot's Maildir on disk into Loft
        src = os.path.join(dc.mail_dir, USER, 'Maildir')
        r = env.loftctl('import', USER, src)
        R.check('import exit 0', r[0] == 0, r[1] + r[2])
        imap = env.imap_login(USER, PW)
        before = server_flags(imap)
        imap.logout()

        # the same devices, pointed at Loft
        mbsyncrc(rc, env.port('imap'), maildir)
        p = mbsync(rc, 'mbsync from Loft, same state')
        after_device = local_state(maildir)
        R.check('mbsync downloaded nothing and changed no local flag',
                after_device == device,
                (sorted(after_device - device), sorted(device - after_device),
                 p.stdout[-800:]))
        imap = env.imap_login(USER, PW)
        after = server_flags(imap)
        imap.logout()
        R.check('mbsync uploaded nothing and changed no flag in Loft',
                after == before, (before, after))
        n = fetchmail(tmp, env.port('pop3'), 'fetchmail from Loft, same'
                      ' idfile (1: no mail)', 1)
        R.check('fetchmail fetched nothing from Loft', n == 0, n)

        # new mail at Loft: each device gets just that one
        lmtp_deliver(env.port('lmtp'), message(30))
        mbsync(rc, 'mbsync after new mail')
        new = local_state(maildir) - after_device
        R.check('mbsync pulled only the new message', len(new) == 1,
                sorted(new))
        n = fetchmail(tmp, env.port('pop3'), 'fetchmail after new mail', 0)
        R.check('fetchmail fetched only the new message', n == 1, n)
    shutil.rmtree(tmp, ignore_errors=True)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
