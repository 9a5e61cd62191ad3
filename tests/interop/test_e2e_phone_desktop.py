#!/usr/bin/env python3
"""End to end: a phone on POP3 while the desktop sits in IMAP IDLE.

For each pop3_delete policy (trash, hide, expunge) the phone (python
poplib over POP3S) first downloads with "leave on server", then deletes;
the desktop must see exactly what the policy promises, live in IDLE:
nothing on a download, an EXPUNGE (and the message in Trash) for trash,
nothing at all for hide, an EXPUNGE for expunge. UIDLs stay the same
between sessions. Then the phone's "remove from server after 14 days",
enforced by the server: `loftctl retention run --now +15d` while loftd
runs, with the desktop seeing the removal.
"""

import re
import sys
import time

from imapconv import Conv, ConvError
from loftenv import Loft, Results, SLOW

R = Results()
USERS = {'trash@example.test': 'phone-and-desktop-1', 'hide@example.test': 'phone-and-desktop-2',
         'expunge@example.test': 'phone-and-desktop-3', 'keep@example.test': 'phone-and-desktop-4'}


def deliver(env, rcpt, n):
    c = env.lmtp()
    c.ehlo('mta')
    c.mail('sender@example.org')
    c.rcpt(rcpt)
    code, msg = c.data(('From: sender@example.org\r\nTo: %s\r\nSubject: note %d\r\n'
                        'Message-ID: <n%d.%s>\r\n\r\nbody of note %d\r\n'
                        % (rcpt, n, n, rcpt, n)).encode())
    c.quit()
    assert code == 250, (code, msg)


def drain(conv, wait=0.4):
    """Untagged responses that arrive within wait seconds."""
    out = []
    end = time.monotonic() + wait * SLOW
    try:
        while time.monotonic() < end:
            r = conv.read_response(timeout=max(0.05, end - time.monotonic()))
            if r != '* OK Still here':
                out.append(r)
    except (ConvError, OSError):
        pass
    return out


def desktop(env, address):
    d = Conv(env.raw('imaps'), R)
    d.login(address, USERS[address])
    d.run('SELECT INBOX', untagged=[r'^\* 3 EXISTS'])
    d.send('idle IDLE\r\n')
    d.expect(r'^\+ ')
    return d


def leave_done(d):
    d.send('DONE\r\n')
    return d.collect('idle', 'OK', name='IDLE done')[0]


def mailbox_counts(env, address):
    rc, out, err = env.loftctl('user', 'show', address)
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r'^\s+(\S[^:]*): (\d+) messages', out, re.M)}


def main():
    # a short IDLE keepalive: loftctl's changes show up in IDLE with it
    with Loft(users=USERS, extra={'imap': {'idle_keepalive': '1s'}}) as env:
        for address, policy in (('trash@example.test', 'trash'),
                                ('hide@example.test', 'hide'),
                                ('expunge@example.test', 'expunge')):
            rc, out, err = env.loftctl('user', 'set', address, 'pop3_delete=' + policy)
            R.check('set ' + policy, rc == 0, out + err)
            for i in range(3):
                deliver(env, address, i + 1)
            d = desktop(env, address)

            # leave on server: download everything, delete nothing
            p = env.pop3_login(address, tls=True)
            count, size = p.stat()
            R.check(policy + ': STAT 3', count == 3, (count, size))
            uidl1 = p.uidl()[1]
            for i in (1, 2, 3):
                resp, lines, octets = p.retr(i)
                R.check('%s: RETR %d' % (policy, i),
                        b'body of note %d' % i in lines, lines)
            p.quit()
            seen = drain(d)
            R.check(policy + ': a download changes nothing in IMAP',
                    not any('EXPUNGE' in l or 'VANISHED' in l or 'EXISTS' in l
                            for l in seen), seen)

            # next check: same UIDLs, nothing new to download; then delete 1 and 2
            p = env.pop3_login(address, tls=True)
            R.check(policy + ': UIDL stable', p.uidl()[1] == uidl1, (p.uidl()[1], uidl1))
            p.dele(1)
            p.dele(2)
            p.quit()
            seen = drain(d, 1.0)
            expunges = [l for l in seen if re.match(r'^\* \d+ EXPUNGE$', l)]
            if policy == 'hide':
                R.check('hide: IMAP sees nothing', seen == [], seen)
            else:
                R.check(policy + ': IMAP IDLE sees 2 EXPUNGE',
                        sorted(expunges) in (['* 1 EXPUNGE', '* 1 EXPUNGE'],
                                             ['* 1 EXPUNGE', '* 2 EXPUNGE']), seen)
            leave_done(d)
            lines, _ = d.run('STATUS INBOX (MESSAGES)')
            want_inbox = 3 if policy == 'hide' else 1
            d.run('STATUS INBOX (MESSAGES)',
                  untagged=[r'MESSAGES %d\)' % want_inbox],
                  name=policy + ': INBOX count')
            d.run('STATUS Trash (MESSAGES)',
                  untagged=[r'MESSAGES %d\)' % (2 if policy == 'trash' else 0)],
                  name=policy + ': Trash count')
            if policy == 'trash':
                d.run('SELECT Trash')
                d.run('FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])',
                      untagged=[r'^\* 1 FETCH .*Subject: note 1',
                                r'^\* 2 FETCH .*Subject: note 2'])
            d.run('LOGOUT')

            p = env.pop3_login(address, tls=True)
            R.check(policy + ': POP3 sees 1 left', p.stat()[0] == 1)
            R.check(policy + ': the survivor keeps its UIDL',
                    p.uidl()[1] == [b'1 ' + uidl1[2].split()[1]], (p.uidl(), uidl1))
            p.quit()

        # "remove from server after 14 days", enforced by the server
        address = 'keep@example.test'
        rc, out, err = env.loftctl('user', 'set', address, 'pop3_retention_days=14',
                                   'pop3_delete=trash')
        R.check('set retention', rc == 0, out + err)
        for i in range(3):
            deliver(env, address, i + 1)
        p = env.pop3_login(address, tls=True)
        p.retr(1)
        p.retr(2)
        p.quit()
        # the downloads are recorded durably at QUIT: a crash right after
        # does not make the server forget them
        env.restart(kill=True)
        d = desktop(env, address)
        rc, out, err = env.loftctl('retention', 'run', address, '--now', '+13d')
        R.check('13 days: nothing removed', rc == 0 and
                'pop3 removed 0,' in out, out + err)
        rc, out, err = env.loftctl('retention', 'run', address, '--now', '+15d')
        R.check('15 days: the 2 downloaded are removed', rc == 0 and
                'pop3 removed 2,' in out, out + err)
        # loftctl is another process, unheard by loftd's change hub: the
        # desktop in IDLE gets the removal with the next keepalive
        seen = drain(d, 2.5)
        R.check('desktop IDLE sees the retention', len(
            [l for l in seen if re.match(r'^\* \d+ EXPUNGE$', l)]) == 2, seen)
        leave_done(d)
        R.check('kept mail in Trash', mailbox_counts(env, address).get('Trash') == 2,
                mailbox_counts(env, address))
        p = env.pop3_login(address, tls=True)
        R.check('POP3 sees the undownloaded one', p.stat()[0] == 1)
        p.quit()
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
