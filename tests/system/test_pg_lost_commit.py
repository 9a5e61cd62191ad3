#!/usr/bin/env python3
"""A COMMIT whose answer was lost (docs/scale-out.md, "Failures"): loftd
reaches PostgreSQL through a proxy (tests/lib/pgproxy.py) that reads the
wire protocol and cuts the connection at the COMMIT of a delivery's
transaction (one that ran `INSERT INTO msg`).

- cut after the COMMIT reached the server: it committed, the answer is
  lost. The APPEND is answered OK with its APPENDUID, the message is
  there once with its bytes, and loftd logged "it committed";
- cut before the server saw the COMMIT: it rolled back. The APPEND is
  run again on a fresh connection and answered OK, the message is there
  once, loftd logged "it did not commit";
- the same two cuts under LMTP: 250, the message there once;
- a session idling on the same node sees each new message once (EXISTS
  counts up by one), and the mailbox holds exactly the messages
  answered OK, no UID twice.
Skipped (77) without PostgreSQL 15."""

import re
import sys

from imapconv import Conv
from loftenv import Results, SLOW
from pgproxy import PgProxy
from scaleenv import ScaleEnv, skip_without_postgres

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
MARK = 'INSERT INTO msg'
r = Results()


def msg(n):
    return 'Subject: commit %d\r\nMessage-ID: <lost%d@example.test>\r\n' \
           '\r\nbody of message %d\r\n' % (n, n, n)


def status(conv):
    lines, _ = conv.run('STATUS INBOX (MESSAGES UIDNEXT)', 'OK')
    m = re.search(r'MESSAGES (\d+) UIDNEXT (\d+)', ' '.join(lines))
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def bodies(conv):
    """{uid: body} of every message in INBOX."""
    lines, _ = conv.run('UID FETCH 1:* (BODY.PEEK[])', 'OK',
                        timeout=30 * SLOW)
    out = {}
    for l in lines:
        m = re.search(r'UID (\d+)[^{]*BODY\[\] \{(\d+)\}\r\n', l)
        if m:
            out[int(m.group(1))] = l[m.end():m.end() + int(m.group(2))]
    return out


def main():
    if skip_without_postgres():
        return 77
    with ScaleEnv(nodes=0, store={'postgres_timeout': '20s'}) as env:
        px = PgProxy(env.pg.port)
        env.defer(px.close)
        env.use_database(px.conninfo_for(env.dbname))
        run(env.add_node(), px)
    return r.finish()


def run(node, px):
    c = Conv(node.raw('imap'), r, timeout=30 * SLOW)
    c.login(USER, PW)
    c.run('SELECT INBOX', 'OK')
    w = Conv(node.raw('imap'), r, timeout=30 * SLOW)
    w.login(USER, PW)
    w.run('SELECT INBOX', 'OK')
    w.send(b'w IDLE\r\n')
    w.expect(r'^\+ ', name='IDLE')
    sent = {}
    count = 0
    n = 0
    for mode in ('after', 'before'):
        n += 1
        m = msg(n)
        log_at = len(node.log())
        px.cut_commit(mode, MARK)
        _, t = c.run('APPEND INBOX {%d+}\r\n%s' % (len(m), m), 'OK',
                     name='APPEND whose COMMIT is cut %s the server'
                     ' got it' % mode)
        r.check('... the proxy cut it (%s)' % mode, px.cuts[-1:] == [mode],
                px.cuts)
        found = re.search(r'APPENDUID \d+ (\d+)', t or '')
        uid = int(found.group(1)) if found else None
        r.check('... answered with its APPENDUID', uid is not None, t)
        sent[uid] = m
        count += 1
        w.expect(r'^\* %d EXISTS' % count, timeout=30 * SLOW,
                 name='the idling session sees message %d once' % count)
        said = 'it committed' if mode == 'after' else 'it did not commit'
        r.check('loftd logged "a COMMIT\'s answer was lost: %s"' % said,
                "answer was lost: %s" % said in node.log()[log_at:],
                node.log()[log_at:][-1500:])
    for mode in ('after', 'before'):
        n += 1
        m = msg(n)
        px.cut_commit(mode, MARK)
        lm = node.lmtp()
        lm.ehlo('client.example.test')
        try:
            refused = lm.sendmail('x@example.net', [USER], m.encode())
        except Exception as e:         # smtplib: every recipient refused
            refused = str(e)
        try:
            lm.quit()
        except Exception:
            pass
        r.check('LMTP delivery whose COMMIT is cut %s the server got it:'
                ' 250' % mode, refused == {}, refused)
        r.check('... the proxy cut it (%s)' % mode, px.cuts[-1:] == [mode],
                px.cuts)
        count += 1
        w.expect(r'^\* %d EXISTS' % count, timeout=30 * SLOW,
                 name='the idling session sees message %d once' % count)
    w.send(b'DONE\r\n')
    w.expect(r'^w OK', name='DONE')
    c.run('NOOP', 'OK', untagged=[r'^\* %d EXISTS' % n],
          name='NOOP: the session learns of the deliveries')
    got = bodies(c)
    r.check('the mailbox holds exactly the %d messages answered OK' % n,
            len(got) == n, sorted(got))
    r.check('each APPEND at its APPENDUID with its bytes',
            all(got.get(uid) == m for uid, m in sent.items()),
            {u: (got.get(u) or '')[:40] for u in sent})
    texts = sorted(b.split('\r\n\r\n', 1)[-1] for b in got.values())
    r.check('each message once', texts == sorted(
        'body of message %d\r\n' % i for i in range(1, n + 1)), texts)
    messages, uidnext = status(c)
    r.check('STATUS agrees, and no UID was given twice',
            messages == n and uidnext == max(got) + 1, (messages, uidnext))
    rc, out, err = node.loftctl('check', USER)
    r.check('loftctl check finds nothing wrong', rc == 0, (rc, out, err))
    c.close()
    w.close()


if __name__ == '__main__':
    sys.exit(main())
