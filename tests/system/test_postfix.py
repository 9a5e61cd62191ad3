"""Postfix -> LMTP -> store: a private Postfix from Debian (postfix -c DIR,
loopback only, its own SMTP port and queue) takes mail over SMTP and hands
it to loftd with its lmtp: transport; the mail must land in the store,
per-recipient LMTP replies must reach Postfix's log, and an unknown user
must bounce (not defer).

Then docs/postfix.md's recipe as written (its main.cf block, read from the
page): Loft on unix:private/loft-lmtp inside Postfix's queue directory,
reject_unverified_recipient: a known user is delivered, an unknown one is
refused with 550 at RCPT (no bounce), Postfix's queue ends empty, and
Loft logs the probe it refused. Skipped, saying why, only if Postfix
cannot run here (not installed, not root).
"""

import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from loftenv import SLOW, SRC, Loft, Results  # noqa: E402
from lmtplib import imap_messages, imap_up, message_count, wait_for  # noqa: E402
from postfixenv import Postfix  # noqa: E402

R = Results()
A = 'alice@example.test'
B = 'bob@example.test'


def find(env, address, tag):
    for m in imap_messages(env, address) or []:
        if tag in m:
            return m
    return None


def main():
    why = Postfix.available()
    if why is not None:
        print('SKIP: Postfix test not run: %s' % why)
        print('0 passed, 0 failed')
        return 0
    with Loft() as env:
        target = 'inet:127.0.0.1:%d' % env.port('lmtp')
        # bob's mail takes the Unix socket (mode 0666; postfix's lmtp
        # client runs as postfix and must reach it through the temp dir)
        os.chmod(env.dir, 0o711)
        transport = {B: 'lmtp:unix:' + env.lmtp_socket}
        with Postfix(lmtp=target, transport=transport) as pf:
            smtp = smtplib.SMTP('127.0.0.1', pf.port, timeout=30 * SLOW)
            smtp.ehlo('client.test')
            # 1: one recipient
            refused = smtp.sendmail('sender@remote.test', [A],
                                    b'Message-ID: <pf-1@remote.test>\r\nSubject: one\r\n'
                                    b'From: sender@remote.test\r\n\r\nvia postfix\r\n')
            R.check('postfix accepted 1', refused == {}, refused)
            # 2: two recipients in one LMTP transaction, 8-bit body
            refused = smtp.sendmail('sender@remote.test', [A, B],
                                    'Message-ID: <pf-2@remote.test>\r\nSubject: zwei\r\n'
                                    'Content-Type: text/plain; charset=utf-8\r\n'
                                    'Content-Transfer-Encoding: 8bit\r\n\r\n'
                                    'Grüße\r\n'.encode(),
                                    mail_options=['BODY=8BITMIME'])
            R.check('postfix accepted 2', refused == {}, refused)
            # 3: a big one (chunked DATA on our side)
            big = b'Message-ID: <pf-3@remote.test>\r\nSubject: big\r\n\r\n' + \
                (b'.' + b'b' * 900 + b'\r\n') * 3000
            refused = smtp.sendmail('sender@remote.test', [B], big)
            R.check('postfix accepted 3', refused == {}, refused)
            # 4: nobody: Postfix accepts (it does not know our users) and
            # our 550 5.1.1 makes it bounce, not retry
            smtp.sendmail('sender@remote.test', ['nobody@example.test'],
                          b'Message-ID: <pf-4@remote.test>\r\nSubject: lost\r\n\r\nx\r\n')
            smtp.quit()

            R.check('postfix delivered 4 copies', pf.wait_delivered(4, 60 * SLOW),
                    pf.log()[-3000:])
            bounced = [d for d in pf.deliveries() if d[0] == 'nobody@example.test']
            R.check('unknown user bounced with 5.1.1',
                    wait_for(lambda: any(d[1] == 'bounced' and '550 5.1.1' in d[2]
                                         for d in pf.deliveries()), 30 * SLOW),
                    bounced or pf.log()[-2000:])
            sent = [d for d in pf.deliveries() if d[1] == 'sent']
            R.check('postfix logged our 250 2.0.0 replies',
                    all('250 2.0.0' in d[2] for d in sent) and len(sent) >= 4, sent)
        R.check('alice has 2', message_count(env, A) == 2, message_count(env, A))
        R.check('bob has 2', message_count(env, B) == 2, message_count(env, B))
        if imap_up(env):
            m = find(env, A, b'<pf-1@remote.test>')
            R.check('message 1 stored', m is not None)
            if m is not None:
                R.check('our Received names postfix',
                        b'Received: from postfix.example.test ([127.0.0.1])' in m, m[:600])
                R.check('postfix Received kept', b'by postfix.example.test (Postfix)' in m)
                R.check('body intact', m.endswith(b'\r\n\r\nvia postfix\r\n'))
            m = find(env, B, b'<pf-2@remote.test>')
            R.check('8-bit body intact', m is not None and m.endswith('Grüße\r\n'.encode()))
            R.check('bob got it over the Unix socket',
                    m is not None and b'Received: from postfix.example.test (unix socket)' in m,
                    m[:400] if m else None)
            m = find(env, B, b'<pf-3@remote.test>')
            R.check('big message intact (dots kept)',
                    m is not None and m.endswith((b'.' + b'b' * 900 + b'\r\n') * 3000))
        R.check('loftd still running', env.running())
        R.check('no sanitizer report', 'Sanitizer' not in env.log()
                and 'runtime error' not in env.log(), env.log()[-3000:])
    test_recipe()
    return R.finish()


def recipe_main_cf():
    """The ```postfix block of docs/postfix.md, for example.test."""
    text = open(os.path.join(SRC, 'docs', 'postfix.md')).read()
    m = re.search(r'```postfix\n(.*?)```', text, re.S)
    return m.group(1).replace('example.org', 'example.test')


def rcpt_code(port, rcpt, timeout):
    """The final reply code to RCPT TO:<rcpt> (a 450 while the probe is
    still out is asked again)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = smtplib.SMTP('127.0.0.1', port, timeout=60 * SLOW)
            c.ehlo('client.remote.test')
            c.mail('sender@remote.test')
            code, text = c.rcpt(rcpt)
            c.quit()
        except (OSError, smtplib.SMTPException) as e:
            code, text = None, repr(e)
        if code not in (450, None) or time.monotonic() > deadline:
            return code, text
        time.sleep(1)


def test_recipe():
    main_cf = recipe_main_cf()
    R.check('recipe: reject_unverified_recipient',
            'reject_unverified_recipient' in main_cf, main_cf)
    # The client below comes from 127.0.0.1: keep it out of mynetworks,
    # so the recipe's restrictions apply to it as to the internet; relay
    # restrictions as Postfix's (and Debian's) default.
    extra = main_cf + ('\nmynetworks = 127.0.0.2/32\n'
                       'smtpd_relay_restrictions = permit_mynetworks,'
                       ' permit_sasl_authenticated, defer_unauth_destination\n')
    with Postfix(lmtp='unix:unused', extra=extra) as pf:
        # The recipe's unix:private/loft-lmtp is relative to the queue
        # directory, which Postfix made at its start.
        sock = os.path.join(pf.queue_dir(), 'private', 'loft-lmtp')
        with Loft(extra={'lmtp': {'listen': 'unix:' + sock}}) as env:
            code, text = rcpt_code(pf.port, 'nobody@example.test', 60 * SLOW)
            R.check('recipe: unknown user refused at RCPT with 550',
                    code == 550, (code, text, pf.log()[-2000:]))
            code, text = rcpt_code(pf.port, A, 60 * SLOW)
            R.check('recipe: known user accepted at RCPT', code == 250,
                    (code, text, pf.log()[-2000:]))
            smtp = smtplib.SMTP('127.0.0.1', pf.port, timeout=60 * SLOW)
            smtp.ehlo('client.remote.test')
            refused = smtp.sendmail('sender@remote.test', [A],
                                    b'Message-ID: <recipe@remote.test>\r\n'
                                    b'Subject: recipe\r\n\r\nby the book\r\n')
            smtp.quit()
            R.check('recipe: message accepted', refused == {}, refused)
            R.check('recipe: delivered', wait_for(
                lambda: find(env, A, b'<recipe@remote.test>') is not None,
                60 * SLOW), pf.log()[-2000:])
            R.check('recipe: Postfix queue empty', wait_for(
                lambda: 'Mail queue is empty' in pf.queue_listing(),
                60 * SLOW), pf.queue_listing())
            R.check('recipe: no bounce for the unknown user', not any(
                d[0] == 'nobody@example.test' and d[1] == 'bounced'
                for d in pf.deliveries()), pf.deliveries())
            R.check('recipe: main.cf sets nothing twice',
                    'overriding earlier entry' not in pf.log(),
                    pf.log()[-1000:])
            R.check('recipe: Loft logged the refused probe',
                    re.search(r'refused: to=<nobody@example.test> .*'
                              r'status="550 5.1.1"', env.log()) is not None,
                    env.log()[-2000:])


if __name__ == '__main__':
    sys.exit(main())
