"""Postfix -> LMTP -> store: a private Postfix from Debian (postfix -c DIR,
loopback only, its own SMTP port and queue) takes mail over SMTP and hands
it to loftd with its lmtp: transport; the mail must land in the store,
per-recipient LMTP replies must reach Postfix's log, and an unknown user
must bounce (not defer). Skipped, saying why, only if Postfix cannot run
here (not installed, not root).
"""

import os
import smtplib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from loftenv import SLOW, Loft, Results  # noqa: E402
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
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
