#!/usr/bin/env python3
"""Moving in from Dovecot and out again (issue 17), against a private
Dovecot from Debian (tests/lib/dovecotenv.py):

  - mail over Dovecot's LMTP, folders with non-ASCII names, flags and
    keywords over its IMAP, one message expunged (a UID gap);
  - `loftctl import` of Dovecot's Maildir on disk: Loft's IMAP shows the
    same folders, UIDVALIDITY, UIDs, flags, keywords, INTERNALDATE and
    bytes as Dovecot's; POP3 (poplib) lists the same UIDLs on both; a
    second run imports nothing; --dry-run writes nothing; --json;
  - `loftctl export --format maildir` read back by Dovecot (another
    user's Maildir): the same UIDVALIDITY, UIDs, flags, keywords, bytes;
  - `loftctl export --format mbox` imported into a third account: the
    same again (X-IMAPbase, X-UID, Status, X-Status, X-Keywords);
  - bad input: duplicate UIDs in dovecot-uidlist, a symlink out of the
    tree, a broken file name, an mbox without From_ lines: each named,
    exit 1, nothing of a refused folder imported;
  - a message expunged at the source: the next IMAP run (QRESYNC,
    VANISHED) reports it and keeps it; with --expunge it is expunged in
    Loft too, kept for undelete.
"""

import imaplib
import json
import os
import poplib
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile

from dovecotenv import Dovecot
from loftenv import Loft, Results

R = Results()
PW = 'migrate-test-password-1'
USERS = {'alice@example.test': PW, 'bob@example.test': PW,
         'carol@example.test': PW, 'dave@example.test': PW,
         'erin@example.test': PW, 'frank@example.test': PW,
         'gina@example.test': PW}

FOLDERS = ['Lists', 'Lists.Rust', 'Fran&AOc-ais', '&ZeVnLIqe-']


def message(i):
    return ('From: Sender %d <s%d@example.org>\r\n'
            'To: alice@example.test\r\n'
            'Subject: message %d \xe9\r\n'
            'Message-ID: <m%d@example.org>\r\n'
            'Date: Mon, 1 Jun 2026 10:%02d:00 +0000\r\n'
            'Content-Type: text/plain; charset=utf-8\r\n'
            '\r\n'
            'Body of message %d.\r\nFrom here on, a line that starts'
            ' with From.\r\n\r\nFrom me\r\n.\r\n' % (i, i, i, i, i, i)
            ).encode('utf-8')


def lmtp_deliver(port, rcpt, data):
    with smtplib.LMTP('127.0.0.1', port) as s:
        s.sendmail('s@example.org', [rcpt], data)


def snapshot(imap):
    """{folder: (uidvalidity, uidnext, {uid: (flags, internaldate, body)})}
    over IMAP (folders as the server names them, mUTF-7)."""
    typ, lines = imap.list('""', '*')
    out = {}
    for line in lines:
        m = re.match(rb'\((.*?)\) (?:"(.)"|NIL) (.*)$', line)
        if b'\\Noselect' in m.group(1) or b'\\NonExistent' in m.group(1):
            continue
        sep = m.group(2).decode() if m.group(2) else '/'
        name = m.group(3).decode()
        if name.startswith('"'):
            name = name[1:-1]
        typ, _ = imap.select('"%s"' % name, readonly=True)
        uv = int(imap.response('UIDVALIDITY')[1][0])
        typ, st = imap.status('"%s"' % name, '(UIDNEXT)')
        un = int(re.search(rb'UIDNEXT (\d+)', st[0]).group(1))
        msgs = {}
        typ, data = imap.uid('FETCH', '1:*',
                             '(FLAGS INTERNALDATE BODY.PEEK[])')
        for item in data:
            if not isinstance(item, tuple):
                continue
            meta, body = item
            uid = int(re.search(rb'UID (\d+)', meta).group(1))
            flags = re.search(rb'FLAGS \(([^)]*)\)', meta).group(1).split()
            flags = tuple(sorted(f.decode().lower() for f in flags
                                 if f != b'\\Recent'))
            idate = re.search(rb'INTERNALDATE "([^"]+)"', meta).group(1)
            msgs[uid] = (flags, idate.decode(), body)
        imap.close()
        out[name.replace(sep, '/')] = (uv, un, msgs)
    return out


def uidls(host_port, user):
    p = poplib.POP3('127.0.0.1', host_port, timeout=20)
    p.user(user)
    p.pass_(PW)
    resp, lines, _ = p.uidl()
    p.quit()
    return sorted(l.split()[1] for l in lines)


def compare(name, want, got, check_uidnext=True):
    # Loft's own empty folders (Sent, Trash, ...) are not the source's
    got = {f: v for f, v in got.items() if f in want or v[2]}
    R.check('%s: same folders' % name, set(want) == set(got),
            '%s vs %s' % (sorted(want), sorted(got)))
    for f in want:
        if f not in got:
            continue
        uv, un, msgs = want[f]
        guv, gun, gmsgs = got[f]
        R.check('%s: %s UIDVALIDITY' % (name, f), uv == guv, (uv, guv))
        if check_uidnext:
            R.check('%s: %s UIDNEXT' % (name, f), un == gun, (un, gun))
        R.check('%s: %s UIDs' % (name, f), sorted(msgs) == sorted(gmsgs),
                (sorted(msgs), sorted(gmsgs)))
        for uid in msgs:
            if uid not in gmsgs:
                continue
            R.check('%s: %s UID %d flags' % (name, f, uid),
                    msgs[uid][0] == gmsgs[uid][0], (msgs[uid][0], gmsgs[uid][0]))
            R.check('%s: %s UID %d date' % (name, f, uid),
                    msgs[uid][1] == gmsgs[uid][1], (msgs[uid][1], gmsgs[uid][1]))
            R.check('%s: %s UID %d bytes' % (name, f, uid),
                    msgs[uid][2].replace(b'\r\n', b'\n') ==
                    gmsgs[uid][2].replace(b'\r\n', b'\n'),
                    (len(msgs[uid][2]), len(gmsgs[uid][2])))


def dovecot_fill(dc):
    for i in range(1, 9):
        lmtp_deliver(dc.ports['lmtp'], 'alice@example.test', message(i))
    imap = dc.imap_login('alice@example.test')
    for f in FOLDERS:
        imap.create(f)
        imap.subscribe(f)
    imap.select('INBOX')
    imap.uid('STORE', '1', '+FLAGS', '(\\Seen \\Flagged)')
    imap.uid('STORE', '2', '+FLAGS', '($Work \\Answered)')
    imap.uid('STORE', '3', '+FLAGS', '(\\Deleted)')
    imap.expunge()
    imap.uid('STORE', '4', '+FLAGS', '(\\Draft $Label1 \\Deleted)')
    imap.uid('STORE', '5', '+FLAGS', '($Forwarded \\Seen)')
    imap.uid('COPY', '1:2', 'Fran&AOc-ais')
    imap.uid('COPY', '5:6', '&ZeVnLIqe-')
    imap.uid('COPY', '7', 'Lists.Rust')
    imap.select('Fran&AOc-ais')
    imap.uid('STORE', '2', '+FLAGS', '(Projekt)')
    imap.close()
    imap.logout()


def main():
    if not Dovecot.available():
        print('dovecot is not installed: skipped')
        print('0 passed, 0 failed')
        return 0
    tmp = tempfile.mkdtemp(prefix='loft-migrate-')
    with Dovecot(users={'alice@example.test': PW, 'bob@example.test': PW}) as dc, \
            Loft(users=USERS) as env:
        dovecot_fill(dc)
        dimap = dc.imap_login('alice@example.test')
        want = snapshot(dimap)
        dimap.logout()
        want_uidls = uidls(dc.ports['pop3'], 'alice@example.test')
        R.check('dovecot holds the mail', len(want.get('INBOX', (0, 0, {}))[2]) == 7,
                want.get('INBOX'))
        maildir = os.path.join(dc.mail_dir, 'alice@example.test', 'Maildir')

        # dry run: nothing written
        rc, out, err = env.loftctl('import', 'alice@example.test', maildir,
                                   '--dry-run')
        R.check('dry run exit 0', rc == 0, out + err)
        R.check('dry run counts', 'INBOX: 7 to import' in out, out)
        imap = env.imap_login('alice@example.test', PW)
        typ, st = imap.status('INBOX', '(MESSAGES)')
        R.check('dry run imported nothing', b'MESSAGES 0' in st[0], st)
        imap.logout()

        rc, out, err = env.loftctl('import', 'alice@example.test', maildir)
        R.check('import exit 0', rc == 0, out + err)
        R.check('import summary per folder',
                re.search(r'^INBOX: 7 imported, 0 already there, 0 failed'
                          r' \(UIDVALIDITY and UIDs kept\)$', out, re.M), out)
        imap = env.imap_login('alice@example.test', PW)
        got = snapshot(imap)
        imap.logout()
        compare('maildir import', want, got)
        got_uidls = uidls(env.port('pop3'), 'alice@example.test')
        R.check('POP3 UIDLs equal Dovecot\'s', got_uidls == want_uidls,
                (want_uidls, got_uidls))

        rc, out, err = env.loftctl('import', 'alice@example.test', maildir,
                                   '--json')
        objs = [json.loads(l) for l in out.splitlines() if l.strip()]
        R.check('second run exit 0', rc == 0, out + err)
        folders = [o for o in objs if o.get('type') == 'folder']
        R.check('second run imports nothing',
                folders and all(o['imported'] == 0 for o in folders) and
                sum(o['skipped'] for o in folders) == 12, out)
        summ = [o for o in objs if o.get('type') == 'summary']
        R.check('json summary', summ and summ[0]['imported'] == 0, out)

        # export as Maildir, read back by Dovecot as bob
        bob_md = os.path.join(dc.mail_dir, 'bob@example.test', 'Maildir')
        rc, out, err = env.loftctl('export', 'alice@example.test', bob_md,
                                   '--format', 'maildir')
        R.check('maildir export exit 0', rc == 0, out + err)
        subprocess.run(['chown', '-R', '%d:%d' % (dc.uid, dc.gid),
                        os.path.dirname(bob_md)], check=False)
        bimap = dc.imap_login('bob@example.test')
        back = snapshot(bimap)
        bimap.logout()
        compare('export read by dovecot', want, back)

        # mbox round trip into carol
        mb = os.path.join(tmp, 'mbox')
        rc, out, err = env.loftctl('export', 'alice@example.test', mb,
                                   '--format', 'mbox')
        R.check('mbox export exit 0', rc == 0, out + err)
        with open(os.path.join(mb, 'INBOX'), 'rb') as f:
            text = f.read()
        R.check('mbox has UW-IMAP\'s X-IMAP and X-UID',
                b'\nX-IMAP: ' in text and b'\nX-UID: 1\n' in text, text[:300])
        R.check('mbox quotes From_ lines in bodies', b'\n>From me\n' in text,
                text[:600])
        rc, out, err = env.loftctl('import', 'carol@example.test', mb)
        R.check('mbox import exit 0', rc == 0, out + err)
        imap = env.imap_login('carol@example.test', PW)
        carol = snapshot(imap)
        imap.logout()
        compare('mbox round trip', want, carol)

        # over IMAP from Dovecot into frank, POP3 into gina
        pwfile = os.path.join(tmp, 'pw')
        with open(pwfile, 'w') as f:
            f.write(PW + '\n')
        src = 'imap://alice%%40example.test@127.0.0.1:%d' % dc.ports['imap']
        rc, out, err = env.loftctl('import', 'frank@example.test', src,
                                   '--password-file', pwfile)
        R.check('imap import exit 0', rc == 0, out + err)
        imap = env.imap_login('frank@example.test', PW)
        frank = snapshot(imap)
        imap.select('INBOX', readonly=True)
        hms = int(re.search(rb'HIGHESTMODSEQ (\d+)', b' '.join(
            imap.response('HIGHESTMODSEQ')[1] or [b'HIGHESTMODSEQ 0'])).group(1)
            if False else imap.response('HIGHESTMODSEQ')[1][0] or 0)
        imap.logout()
        compare('imap import', want, frank)
        dimap = dc.imap_login('alice@example.test')
        dimap.enable('CONDSTORE')
        dimap.select('INBOX', readonly=True)
        dhms = int(dimap.response('HIGHESTMODSEQ')[1][0] or 0)
        R.check('change counter above the source\'s HIGHESTMODSEQ',
                hms > dhms, (hms, dhms))
        # changes at the source: a new message, a flag
        lmtp_deliver(dc.ports['lmtp'], 'alice@example.test', message(9))
        dimap.select('INBOX')
        dimap.uid('STORE', '6', '+FLAGS', '(\\Flagged $Later)')
        want2 = snapshot(dimap)
        dimap.logout()
        rc, out, err = env.loftctl('import', 'frank@example.test', src,
                                   '--password-file', pwfile)
        R.check('imap second run exit 0', rc == 0, out + err)
        # RFC 7162: only UIDs above the last run's and the flags
        # changed since its HIGHESTMODSEQ were asked for
        R.check('imap second run copies just the new one (CHANGEDSINCE)',
                re.search(r'^INBOX: 1 imported, 7 already there, 0 failed'
                          r' .*flags updated \(changes since MODSEQ \d+\)$',
                          out, re.M), out)
        imap = env.imap_login('frank@example.test', PW)
        frank2 = snapshot(imap)
        imap.logout()
        compare('imap second run', want2, frank2)
        # a flag taken away at the source, then a run with that only
        dimap = dc.imap_login('alice@example.test')
        dimap.select('INBOX')
        dimap.uid('STORE', '6', '-FLAGS', '($Later)')
        want3 = snapshot(dimap)
        dimap.logout()
        rc, out, err = env.loftctl('import', 'frank@example.test', src,
                                   '--password-file', pwfile)
        R.check('imap third run: the removed keyword only',
                rc == 0 and re.search(r'^INBOX: 0 imported, 8 already there,'
                                      r' 0 failed .*flags updated \(changes'
                                      r' since MODSEQ \d+\)$', out, re.M),
                out + err)
        imap = env.imap_login('frank@example.test', PW)
        compare('imap third run', want3, snapshot(imap))
        imap.logout()
        rc, out, err = env.loftctl(
            'import', 'gina@example.test',
            'pop3://alice%%40example.test@127.0.0.1:%d' % dc.ports['pop3'],
            input=PW + '\n')
        R.check('pop3 import exit 0', rc == 0, out + err)
        R.check('pop3 import keeps the UIDLs',
                uidls(env.port('pop3'), 'gina@example.test') ==
                uidls(dc.ports['pop3'], 'alice@example.test'), out + err)
        rc, out, err = env.loftctl(
            'import', 'gina@example.test',
            'pop3://alice%%40example.test@127.0.0.1:%d' % dc.ports['pop3'],
            input=PW + '\n')
        R.check('pop3 second run imports nothing', rc == 0 and
                'INBOX: 0 imported, 8 already there' in out, out + err)
        rc, out, err = env.loftctl('import', 'gina@example.test', src,
                                   input='wrong-password\n')
        R.check('a wrong source password: exit 1, said', rc == 1 and
                'AUTHENTICATE' in err, out + err)

        # bad input
        bad = os.path.join(tmp, 'bad')
        shutil.copytree(maildir, bad, symlinks=True)
        with open(os.path.join(bad, '.Lists.Rust', 'dovecot-uidlist'),
                  'a') as f:
            f.write('1 :duplicate.M1.host\n')
        os.symlink('/etc/passwd', os.path.join(bad, 'cur', 'evil:2,S'))
        os.makedirs(os.path.join(bad, '.Broken', 'cur'))
        with open(os.path.join(bad, '.Broken', 'cur', 'x:2,S!'), 'w') as f:
            f.write('Subject: broken name\n\nhello\n')
        rc, out, err = env.loftctl('import', 'dave@example.test', bad)
        R.check('bad maildir exit 1', rc == 1, out + err)
        R.check('duplicate UID named',
                re.search(r'Lists/Rust: dovecot-uidlist: line \d+: UID 1 '
                          r'.*; folder not imported', err), err)
        R.check('symlink named', 'cur/evil:2,S: a symlink, not followed'
                in err, err)
        R.check('broken name named', 'Broken: cur/x:2,S!: broken file name'
                in err, err)
        imap = env.imap_login('dave@example.test', PW)
        typ, st = imap.status('INBOX', '(MESSAGES)')
        R.check('the good folders imported', b'MESSAGES %d' % len(
            want2['INBOX'][2]) in st[0], st)
        typ, st = imap.status('Lists/Rust', '(MESSAGES)')
        R.check('the refused folder is not imported',
                typ != 'OK' or b'MESSAGES 0' in st[0], st)
        imap.logout()
        junk = os.path.join(tmp, 'notmbox')
        with open(junk, 'w') as f:
            f.write('just some text\nno From line\n')
        rc, out, err = env.loftctl('import', 'erin@example.test', junk)
        R.check('not an mbox: exit 1 and named', rc == 1 and
                'not an mbox' in err, out + err)
        rc, out, err = env.loftctl('import', 'nobody@example.test', maildir)
        R.check('unknown account refused', rc == 1, out + err)
        # expunged at the source: a QRESYNC run (VANISHED) reports it
        # and keeps it; with --expunge it goes here too, kept for undelete
        dimap = dc.imap_login('alice@example.test')
        dimap.select('INBOX')
        dimap.uid('STORE', '6', '+FLAGS', '(\\Deleted)')
        dimap.uid('EXPUNGE', '6')   # UID 4 has \Deleted too: it stays
        dimap.logout()
        rc, out, err = env.loftctl('import', 'frank@example.test', src,
                                   '--password-file', pwfile)
        R.check('imap run after an expunge at the source: reported, kept',
                rc == 1 and re.search(r'^INBOX: 0 imported, 7 already there',
                                      out, re.M) and
                'INBOX: 1 messages imported earlier vanished at the source'
                ' (kept in Loft; --expunge removes them)' in err, out + err)
        rc, out, err = env.loftctl('import', 'frank@example.test', src,
                                   '--password-file', pwfile, '--expunge')
        R.check('--expunge: the vanished message expunged here',
                rc == 0 and re.search(r'^INBOX: 0 imported, 7 already there'
                                      r'.*, 1 expunged \(gone at the'
                                      r' source\)$', out, re.M), out + err)
        imap = env.imap_login('frank@example.test', PW)
        imap.select('INBOX', readonly=True)
        typ, data = imap.uid('SEARCH', 'ALL')
        imap.logout()
        R.check('--expunge: UID 6 gone', b'6' not in data[0].split(), data)
        rc, out, err = env.loftctl('undelete', 'frank@example.test', '--list')
        R.check('--expunge: kept for undelete', rc == 0 and
                len(out.strip().splitlines()) == 1, out + err)
    shutil.rmtree(tmp, ignore_errors=True)
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
