#!/usr/bin/env python3
"""Undelete (issue 17): removed messages are kept for
deleted_retention_days (default 14) and `loftctl undelete` brings them
back.

  - a POP3 client under pop3_delete = expunge deletes everything; IMAP
    shows nothing, `user show` reports the kept mail apart from usage;
  - `undelete --list` names them and changes nothing; `undelete` brings
    them back into INBOX with new UIDs, their flags (no \\Deleted),
    keywords, dates and bytes, and an IMAP client in IDLE sees them
    (loftd is told through the control socket, not at its next poll);
  - a second undelete has nothing to do (exit 0);
  - a deleted folder comes back with its mail (--folder), --since in
    the future takes nothing;
  - a MOVE keeps nothing;
  - `retention run --now` within the period keeps them, past it purges
    them; deleted_retention_days = 0 keeps nothing.
"""

import re
import sys
import time

from imapconv import Conv
from loftenv import Loft, Results
from pop3client import deliver, simple_message

R = Results()
PW = 'undelete-test-password-1'
USERS = {'alice@example.test': PW, 'bob@example.test': PW,
         'carol@example.test': PW}


def loftctl(env, *args):
    rc, out, err = env.loftctl(*args)
    return rc, out, err


def fetch_all(imap, mailbox):
    """{Message-ID: (uid, flags, internaldate, bytes)} of a mailbox."""
    typ, _ = imap.select('"%s"' % mailbox, readonly=True)
    if typ != 'OK':
        return None
    typ, data = imap.uid('FETCH', '1:*', '(FLAGS INTERNALDATE BODY.PEEK[])')
    out = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        uid = int(re.search(rb'UID (\d+)', item[0]).group(1))
        flags = sorted(f.decode() for f in re.search(
            rb'FLAGS \(([^)]*)\)', item[0]).group(1).split()
            if f != b'\\Recent')
        date = re.search(rb'INTERNALDATE "([^"]+)"', item[0]).group(1)
        mid = re.search(rb'Message-ID: (<[^>]+>)', item[1]).group(1).decode()
        out[mid] = (uid, flags, date, item[1])
    imap.close()
    return out


def kept(env, address):
    rc, out, err = loftctl(env, 'user', 'show', address)
    m = re.search(r'^deleted \(kept for undelete\): (\d+) bytes .*?, (\d+) '
                  r'messages', out, re.M)
    return (int(m.group(1)), int(m.group(2))) if m else None


def listed(env, address, *args):
    rc, out, err = loftctl(env, 'undelete', address, '--list', *args)
    return rc, [l for l in out.splitlines() if l.strip()], err


def main():
    with Loft(users=USERS) as env:
        alice = 'alice@example.test'
        rc, out, err = loftctl(env, 'user', 'set', alice,
                               'pop3_delete=expunge')
        R.check('user set pop3_delete=expunge', rc == 0, out + err)
        for i in range(1, 7):
            deliver(env, alice, simple_message(i))
        imap = env.imap_login(alice, PW)
        imap.select('INBOX')
        imap.uid('STORE', '2', '+FLAGS', '(\\Flagged $Work)')
        imap.uid('STORE', '3', '+FLAGS', '(\\Seen)')
        before = fetch_all(imap, 'INBOX')
        R.check('six delivered', len(before) == 6, sorted(before))
        rc, out, err = loftctl(env, 'user', 'show', alice)
        used = int(re.search(r'^usage: (\d+) bytes', out, re.M).group(1))

        # a POP3 client deletes everything from the server
        p = env.pop3_login(alice, PW)
        n = len(p.list()[1])
        for i in range(1, n + 1):
            p.dele(i)
        p.quit()
        R.check('POP3 deleted all', n == 6, n)
        R.check('IMAP shows nothing', fetch_all(imap, 'INBOX') == {},
                fetch_all(imap, 'INBOX'))
        rc, out, err = loftctl(env, 'user', 'show', alice)
        R.check('usage without the kept mail',
                re.search(r'^usage: 0 bytes', out, re.M), out)
        R.check('user show reports the kept mail apart',
                kept(env, alice) == (used, 6), (kept(env, alice), used, out))

        rc, lines, err = listed(env, alice)
        R.check('undelete --list: six lines', rc == 0 and len(lines) == 6,
                (rc, lines, err))
        R.check('--list names folder and subject',
                all('\tINBOX\t' in l and 'message ' in l for l in lines),
                lines)
        R.check('--list changes nothing', kept(env, alice) == (used, 6),
                kept(env, alice))

        # an IMAP client in IDLE sees the mail come back
        idle = Conv(env.raw('imap'), R)
        idle.login(alice, PW)
        idle.run('SELECT INBOX', 'OK', [r'^\* 0 EXISTS'])
        idle.send(b'i IDLE\r\n')
        idle.expect(r'^\+ ', name='IDLE continuation')
        t0 = time.monotonic()
        rc, out, err = loftctl(env, 'undelete', alice)
        R.check('undelete: six back', rc == 0 and
                re.search(r': 6 messages \(\d+ bytes\) brought back', out),
                out + err)
        if idle.expect(r'^\* 6 EXISTS', timeout=20,
                       name='IDLE sees the undeleted mail'):
            print('IDLE saw them %.1f s after undelete started'
                  % (time.monotonic() - t0))
        idle.send(b'DONE\r\n')
        idle.expect(r'^i OK', name='IDLE done')

        after = fetch_all(imap, 'INBOX')
        R.check('the same six messages', sorted(after) == sorted(before),
                (sorted(after), sorted(before)))
        for mid, (uid, flags, date, body) in after.items():
            buid, bflags, bdate, bbody = before.get(mid, (0, [], b'', b''))
            R.check('%s: new UID above the old ones' % mid, uid > 6,
                    (uid, buid))
            R.check('%s: flags and keywords kept' % mid, flags == bflags,
                    (flags, bflags))
            R.check('%s: date and bytes kept' % mid,
                    date == bdate and body == bbody, (date, bdate))
        R.check('nothing kept any more', kept(env, alice) == (0, 0),
                kept(env, alice))
        rc, out, err = loftctl(env, 'undelete', alice)
        R.check('nothing to bring back: exit 0', rc == 0 and
                ': 0 messages' in out, out + err)

        # a folder deleted with its mail comes back
        imap.create('Projects/2026')
        imap.append('Projects/2026', '(\\Answered)', None,
                    simple_message(20))
        imap.append('Projects/2026', None, None, simple_message(21))
        imap.delete('Projects/2026')
        typ, data = imap.list('""', 'Projects/2026')
        R.check('folder gone', data == [None], data)
        rc, lines, err = listed(env, alice, '--since', '-1d')
        R.check('--since -1d lists the folder\'s two',
                len([l for l in lines if '\tProjects/2026\t' in l]) == 2,
                lines)
        rc, out, err = loftctl(env, 'undelete', alice, '--since',
                               '2099-01-01')
        R.check('--since in the future: nothing', rc == 0 and
                ': 0 messages' in out, out + err)
        rc, out, err = loftctl(env, 'undelete', alice, '--folder',
                               'Projects/2026')
        R.check('undelete --folder: two back, folder made again',
                rc == 0 and ': 2 messages' in out and
                '1 folders made again' in out, out + err)
        proj = fetch_all(imap, 'Projects/2026')
        R.check('the folder has its two', proj is not None and
                len(proj) == 2, proj)
        R.check('their flags', proj is not None and
                proj.get('<m20@example.org>', (0, []))[1] == ['\\Answered'],
                proj)

        # a MOVE keeps nothing; an IMAP EXPUNGE does
        imap.select('INBOX')
        imap.uid('MOVE', '1:*', '"Projects/2026"')
        R.check('MOVE keeps nothing', kept(env, alice) == (0, 0),
                kept(env, alice))
        imap.select('"Projects/2026"')
        imap.uid('STORE', '1:*', '+FLAGS', '(\\Deleted)')
        imap.expunge()
        R.check('EXPUNGE keeps all eight', (kept(env, alice) or (0, 0))[1]
                == 8, kept(env, alice))

        # retention: kept within the period, purged after it
        rc, out, err = loftctl(env, 'retention', 'run', alice, '--now', '+13d')
        R.check('13 days: still kept', rc == 0 and
                (kept(env, alice) or (0, 0))[1] == 8, (out, err,
                                                       kept(env, alice)))
        rc, out, err = loftctl(env, 'retention', 'run', alice, '--now', '+15d')
        R.check('15 days: purged', rc == 0 and
                'deleted purged 8' in out and kept(env, alice) == (0, 0),
                (out, err, kept(env, alice)))
        rc, lines, err = listed(env, alice)
        R.check('nothing to list after the purge', rc == 0 and lines == [],
                lines)
        imap.logout()

        # deleted_retention_days = 0: not kept
        bob = 'bob@example.test'
        rc, out, err = loftctl(env, 'user', 'set', bob,
                               'deleted_retention_days=0')
        R.check('user set deleted_retention_days=0', rc == 0, out + err)
        deliver(env, bob, simple_message(30))
        im = env.imap_login(bob, PW)
        im.select('INBOX')
        im.uid('STORE', '1:*', '+FLAGS', '(\\Deleted)')
        im.expunge()
        im.logout()
        R.check('off: nothing kept', kept(env, bob) == (0, 0), kept(env, bob))

        # deleted_in_quota = yes: kept mail takes its place in the quota
        carol = 'carol@example.test'
        for kv in ('quota_messages=2', 'deleted_in_quota=yes'):
            rc, out, err = loftctl(env, 'user', 'set', carol, kv)
            R.check('user set %s' % kv, rc == 0, out + err)
        deliver(env, carol, simple_message(40))
        deliver(env, carol, simple_message(41))
        im = env.imap_login(carol, PW)
        im.select('INBOX')
        im.uid('STORE', '1:*', '+FLAGS', '(\\Deleted)')
        im.expunge()
        im.logout()
        try:
            deliver(env, carol, simple_message(42))
            refused = None
        except Exception as e:
            refused = e
        R.check('kept mail counts: the quota is full', refused is not None
                and '5.2.2' in str(refused), refused)
        rc, out, err = loftctl(env, 'user', 'set', carol,
                               'deleted_in_quota=no')
        try:
            deliver(env, carol, simple_message(43))
            ok = True
        except Exception as e:
            ok = e
        R.check('deleted_in_quota = no: it does not', ok is True, ok)

        rc, out, err = loftctl(env, 'undelete', 'nobody@example.test')
        R.check('unknown account: exit 1', rc == 1, (rc, out, err))
        rc, out, err = loftctl(env, 'undelete', alice, '--since', 'soon')
        R.check('bad --since: usage', rc == 2 and '--since' in err,
                (rc, err))
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
