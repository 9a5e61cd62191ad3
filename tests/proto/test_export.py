#!/usr/bin/env python3
"""`loftctl export` and `loftctl backup` read an account through the
store's export stream (issue 17; on the postgres backend, issue 18: run
as pg/test_export with LOFT_TEST_BACKEND=postgres):

  - maildir: every message of every folder once, \\Flagged and \\Seen in
    the file names, the bytes as IMAP serves them (LF line ends);
  - mbox: UW-IMAP's X-IMAP with the folder's UIDVALIDITY as IMAP reports
    it, X-UID per message in UID order, Status: RO for \\Seen, the From_
    line naming the envelope sender (Return-Path) as Dovecot writes it;
  - backup of the account, then `backup verify`: intact (exit 0);
  - what they say: the export one line per folder with its count and no
    blank line; the backup the account's four messages (it said "0
    exported" for every account), an unchanged re-run "unchanged since
    the last run"; verify of a damaged blob its problems, not
    "0 messages imported".
"""

import os
import re
import sys

from loftenv import Loft, Results
from pop3client import deliver, simple_message

R = Results()
PW = 'export-test-password-1'
A = 'alice@example.test'


def files_under(root):
    """{relative path: bytes} of every file in a cur/ or new/ directory."""
    out = {}
    for d, _, names in os.walk(root):
        if os.path.basename(d) not in ('cur', 'new'):
            continue
        for n in names:
            with open(os.path.join(d, n), 'rb') as f:
                out[os.path.relpath(os.path.join(d, n), root)] = f.read()
    return out


def main():
    with Loft(users={A: PW}) as env:
        for i in (1, 2, 3):
            deliver(env, A, simple_message(i))
        imap = env.imap_login(A, PW)
        imap.select('INBOX')
        imap.uid('STORE', '2', '+FLAGS', '(\\Flagged)')
        typ, data = imap.uid('FETCH', '2', '(BODY.PEEK[])')
        two = data[0][1] if data and isinstance(data[0], tuple) else None
        imap.create('Projects')
        imap.append('Projects', '(\\Seen)', None, simple_message(4))
        typ, data = imap.status('INBOX', '(UIDVALIDITY)')
        m = re.search(rb'UIDVALIDITY (\d+)', data[0] or b'')
        uv = int(m.group(1)) if m else None
        imap.logout()

        md = os.path.join(env.dir, 'export-maildir')
        rc, out, err = env.loftctl('export', A, md, '--format', 'maildir')
        R.check('maildir export: exit 0', rc == 0, out + err)
        R.check('maildir export: INBOX: 3 exported, Projects: 1 exported',
                'INBOX: 3 exported, 0 failed\n' in out and
                'Projects: 1 exported, 0 failed\n' in out, out)
        R.check('maildir export: no blank line', '\n\n' not in out, out)
        files = files_under(md)
        R.check('maildir: four messages', len(files) == 4, sorted(files))
        flagged = [n for n, b in files.items()
                   if b'Subject: message 2' in b]
        R.check('maildir: message 2 flagged in its name',
                len(flagged) == 1 and re.search(r':2,[A-Z]*F', flagged[0]),
                flagged)
        R.check('maildir: message 2 as IMAP serves it',
                len(flagged) == 1 and two is not None and
                files[flagged[0]] == two.replace(b'\r\n', b'\n'),
                (flagged, two))
        seen = [n for n, b in files.items() if b'Subject: message 4' in b]
        R.check('maildir: the Projects message seen',
                len(seen) == 1 and re.search(r':2,[A-Z]*S', seen[0]), seen)

        mb = os.path.join(env.dir, 'export-mbox')
        rc, out, err = env.loftctl('export', A, mb, '--format', 'mbox')
        R.check('mbox export: exit 0', rc == 0, out + err)
        try:
            with open(os.path.join(mb, 'INBOX'), 'rb') as f:
                inbox = f.read()
        except OSError as e:
            inbox = b''
            R.check('mbox: INBOX written', False, str(e))
        base = re.search(rb'\nX-IMAP: (\d+) (\d+)\n', inbox)
        R.check('mbox: X-IMAP carries the UIDVALIDITY',
                base is not None and int(base.group(1)) == uv,
                (base.group(0) if base else None, uv))
        froms = re.findall(rb'^From (\S+) ', inbox, re.M)
        R.check('mbox: the From_ lines name the envelope sender (the'
                ' delivery\'s Return-Path), the folder data MAILER-DAEMON',
                froms == [b'MAILER-DAEMON'] + [b'sender@example.org'] * 3,
                froms)
        R.check('mbox: X-UID 1, 2, 3 in order',
                re.findall(rb'\nX-UID: (\d+)\n', inbox) == [b'1', b'2', b'3'],
                re.findall(rb'\nX-UID: (\d+)\n', inbox))
        try:
            with open(os.path.join(mb, 'Projects'), 'rb') as f:
                proj = f.read()
        except OSError:
            proj = b''
        four = [p for p in proj.split(b'\nFrom ')
                if b'Subject: message 4' in p]
        R.check('mbox: the Projects message seen (Status: RO)',
                len(four) == 1 and b'\nStatus: RO\n' in four[0], four)

        dest = os.path.join(env.dir, 'backup')
        rc, out, err = env.loftctl('backup', A, dest)
        R.check('backup: exit 0', rc == 0, out + err)
        R.check('backup: says the account\'s four messages',
                '%s: 4 exported, 0 failed\n' % A in out, out)
        R.check('backup: no blank line', '\n\n' not in out, out)
        rc, out, err = env.loftctl('backup', 'verify', dest)
        R.check('backup verify: intact', rc == 0, out + err)
        rc, out, err = env.loftctl('backup', A, dest)
        R.check('unchanged re-run: exit 0', rc == 0, out + err)
        R.check('unchanged re-run: says the account is referenced',
                '%s: unchanged since the last run' % A in out, out)
        rc, out, err = env.loftctl('backup', A, dest, '--json')
        R.check('unchanged re-run, --json: "referenced": true',
                '"referenced":true' in out and
                '"folder":"%s"' % A in out, out)
        blobs = sorted(os.path.join(d, n)
                       for d, _, ns in os.walk(os.path.join(dest, 'blobs'))
                       for n in ns)
        if blobs:
            with open(blobs[0], 'ab') as f:
                f.write(b'damage')
        rc, out, err = env.loftctl('backup', 'verify', dest)
        R.check('damaged: verify exit 1 naming the blob',
                rc == 1 and blobs and os.path.basename(blobs[0]) in err,
                (rc, err))
        R.check('damaged: verify counts problems, no "messages imported"',
                re.search(r'verify: \d+ problems', err) is not None and
                'imported' not in err, err)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
