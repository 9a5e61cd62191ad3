#!/usr/bin/env python3
"""Issue 9 item 2: reading a message another session has just expunged.

Session A has INBOX selected and still holds message 1 by its sequence
number; session B expunges it (its file is deleted after the commit).
A's FETCH 1 (BODY[]) by sequence number, where RFC 9051 7.4.1 keeps the
EXPUNGE from A, must give the data or nothing, with OK: never NO
[SERVERBUG]. UID FETCH of it gives nothing and OK. The same for POP3: a
maildrop listed before an IMAP expunge answers RETR and TOP of the message
with its octets (or a clean -ERR), the session goes on, and loftd logs no
error. The messages are big (stored as files, not in the index)."""

import re
import sys

from imapconv import Conv
from loftenv import Loft, Results

A = 'alice@example.test'
r = Results()
BIG = ('Subject: big %d\r\nFrom: a@example.test\r\n\r\n'
       + ('0123456789abcdef' * 8 + '\r\n') * 3000)   # ~400 KB


def append(c, text):
    _, t = c.run('APPEND INBOX {%d+}\r\n%s' % (len(text), text), 'OK')
    m = re.search(r'APPENDUID \d+ (\d+)', t or '')
    return int(m.group(1)) if m else None


with Loft() as env:
    a = Conv(env.raw('imap'), r, timeout=120)
    b = Conv(env.raw('imap'), r, timeout=120)
    a.login(A, env.users[A])
    b.login(A, env.users[A])
    uids = [append(b, BIG % i) for i in range(4)]
    a.run('SELECT INBOX', 'OK', [r'^\* 4 EXISTS'])

    for round_, (seq, uid) in enumerate(((1, uids[0]), (1, uids[1]))):
        b.run('SELECT INBOX', 'OK')
        b.run('UID STORE %d +FLAGS.SILENT (\\Deleted)' % uid, 'OK')
        b.run('UID EXPUNGE %d' % uid, 'OK')
        b.run('UNSELECT', 'OK')
        lines, tagged = a.run('FETCH %d (UID BODY[])' % seq, 'OK',
                              absent=[r'EXPUNGE'],
                              name='round %d: FETCH by number of an expunged message' % round_)
        body = [l for l in lines if 'BODY[]' in l]
        r.check('round %d: the data or nothing' % round_,
                not body or ('Subject: big %d' % (uid - uids[0])) in body[0],
                [l[:120] for l in lines])
        # nothing comes with a reason, as Dovecot gives it (RFC 9051 7.1)
        r.check('round %d: nothing says EXPUNGEISSUED' % round_,
                bool(body) or '[EXPUNGEISSUED]' in (tagged or ''), tagged)
        a.run('NOOP', 'OK', [r'^\* %d EXPUNGE' % seq], name='round %d: NOOP tells' % round_)
        _, tagged = a.run('UID FETCH %d (BODY.PEEK[])' % uid, 'OK', absent=[r'BODY\['],
                          name='round %d: UID FETCH of it: nothing' % round_)
        r.check('round %d: a UID the session no longer holds is no news' % round_,
                '[EXPUNGEISSUED]' not in (tagged or ''), tagged)
    _, tagged = a.run('FETCH 1:* (UID)', 'OK', [r'^\* 1 FETCH'])
    r.check('a FETCH of messages all there: plain OK',
            '[EXPUNGEISSUED]' not in (tagged or ''), tagged)

    # ---- POP3: the maildrop was listed before the expunge --------------------
    p = env.pop3_login(A)
    count, _ = p.stat()
    r.check('pop3 maildrop', count == 2, count)
    b.run('SELECT INBOX', 'OK')
    b.run('UID STORE %d +FLAGS.SILENT (\\Deleted)' % uids[2], 'OK')
    b.run('UID EXPUNGE %d' % uids[2], 'OK')
    b.run('UNSELECT', 'OK')
    for cmd in ('RETR', 'TOP'):
        try:
            if cmd == 'RETR':
                resp, lines, _ = p.retr(1)
            else:
                resp, lines, _ = p.top(1, 0)
            ok = resp.startswith(b'+OK') and any(b'Subject: big 2' in l for l in lines)
            r.check('pop3 %s of an expunged message: its octets' % cmd, ok, resp)
        except Exception as e:   # poplib raises error_proto on -ERR
            msg = str(e)
            r.check('pop3 %s of an expunged message: a clean -ERR' % cmd,
                    msg.startswith("b'-ERR") and 'SERVERBUG' not in msg
                    and 'nternal' not in msg, msg)
    resp, lines, _ = p.retr(2)
    r.check('pop3 session goes on', any(b'Subject: big 3' in l for l in lines), resp)
    p.quit()
    for c in (a, b):
        c.run('LOGOUT', 'OK')
    log = env.log() if hasattr(env, 'log') else ''
    r.check('no error in the log', '[err]' not in log and 'SERVERBUG' not in log,
            [l for l in log.splitlines() if '[err]' in l][:5])

sys.exit(r.finish())
