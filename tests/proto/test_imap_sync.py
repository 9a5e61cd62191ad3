#!/usr/bin/env python3
"""IMAP sessions in sync: what one session (or LMTP delivery) changes shows
up in another's IDLE within 1 s (EXISTS, FETCH FLAGS, EXPUNGE, VANISHED
with QRESYNC); a busy session gets the updates where RFC 3501 7.4.1
allows them and never an EXPUNGE during FETCH/STORE/SEARCH by sequence
number; IDLE outlives the idle timeout with keepalives."""

import sys
import time

from imapconv import Conv
from loftenv import Loft, Results

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
r = Results()
latencies = []


def msg(n):
    return 'Subject: sync %d\r\n\r\nbody %d\r\n' % (n, n)


def idle_expect(a, action, pattern, name):
    """a is idling; runs action() and waits up to 1 s for pattern."""
    t0 = time.monotonic()
    action()
    got = a.expect(pattern, timeout=1.0, name=name)
    if got is not None:
        latencies.append(time.monotonic() - t0)
    return got


with Loft(extra={'imap': {'idle_keepalive': '1s', 'timeout': '3s'}}) as env:
    a = Conv(env.raw('imap'), r)
    b = Conv(env.raw('imap'), r)
    a.login(USER, PW)
    b.login(USER, PW)
    for i in range(1, 4):
        b.run('APPEND INBOX {%d+}\r\n%s' % (len(msg(i)), msg(i)), 'OK')
    a.run('SELECT INBOX', 'OK', [r'^\* 3 EXISTS'])
    b.run('SELECT INBOX', 'OK')

    # ---- IDLE push -------------------------------------------------------
    a.send('i1 IDLE\r\n')
    a.expect(r'^\+ ', name='idle continuation')
    idle_expect(a, lambda: b.run('APPEND INBOX {%d+}\r\n%s' % (len(msg(4)), msg(4)), 'OK'),
                r'^\* 4 EXISTS', 'IDLE sees APPEND from another session')
    idle_expect(a, lambda: b.run('STORE 2 +FLAGS.SILENT (\\Flagged)', 'OK'),
                r'^\* 2 FETCH \(UID 2 FLAGS \(\\Flagged', 'IDLE sees STORE')
    idle_expect(a, lambda: (b.run('STORE 3 +FLAGS.SILENT (\\Deleted)', 'OK'),
                            b.run('EXPUNGE', 'OK')),
                r'^\* 3 EXPUNGE', 'IDLE sees EXPUNGE')
    # LMTP delivery
    def deliver():
        l = env.lmtp()
        l.ehlo('client.example.test')
        l.sendmail('x@example.net', [USER], msg(5).encode())
        l.quit()
    idle_expect(a, deliver, r'^\* 4 EXISTS', 'IDLE sees LMTP delivery')
    # keepalive: the idle timeout is 3 s, IDLE outlives it; b does not
    time.sleep(3.5)
    a.send('DONE\r\n')
    a.expect(r'^i1 OK', name='IDLE survives the idle timeout, DONE ends it')
    a.run('NOOP', 'OK', name='session alive after IDLE')
    b.expect(r'^\* BYE', name='a session without IDLE is logged out')
    b.close()
    b = Conv(env.raw('imap'), r)
    b.login(USER, PW)
    b.run('SELECT INBOX', 'OK')

    # ---- no EXPUNGE during commands by sequence number -------------------
    b.run('STORE 1 +FLAGS.SILENT (\\Deleted)', 'OK')
    b.run('EXPUNGE', 'OK')
    a.run('FETCH 1:* (FLAGS)', 'OK', absent=[r'EXPUNGE'], name='FETCH sees no EXPUNGE')
    a.run('STORE 1 +FLAGS.SILENT (kw)', 'OK', absent=[r'EXPUNGE'],
          name='STORE sees no EXPUNGE')
    a.run('SEARCH ALL', 'OK', absent=[r'EXPUNGE'], name='SEARCH sees no EXPUNGE')
    a.run('UID FETCH 1:* (FLAGS)', 'OK', [r'^\* 1 EXPUNGE'], name='UID FETCH may see it')
    a.run('NOOP', 'OK', absent=[r'EXPUNGE'], name='reported once')

    # a busy session gets EXISTS and FETCH at its next command
    b.run('APPEND INBOX {%d+}\r\n%s' % (len(msg(6)), msg(6)), 'OK')
    b.run('STORE 1 +FLAGS.SILENT (\\Answered)', 'OK')
    a.run('NOOP', 'OK', [r'^\* 4 EXISTS', r'^\* 1 FETCH \(UID 2 FLAGS .*\\Answered'])

    # ---- QRESYNC: VANISHED in IDLE ------------------------------------------
    q = Conv(env.raw('imap'), r)
    q.login(USER, PW)
    q.run('ENABLE QRESYNC', 'OK')
    q.run('SELECT INBOX', 'OK')
    q.send('i2 IDLE\r\n')
    q.expect(r'^\+ ', name='idle continuation (qresync)')
    idle_expect(q, lambda: (b.run('UID STORE 4 +FLAGS.SILENT (\\Deleted)', 'OK'),
                            b.run('UID EXPUNGE 4', 'OK')),
                r'^\* VANISHED 4$', 'IDLE sees VANISHED with QRESYNC')
    q.send('DONE\r\n')
    q.expect(r'^i2 OK', name='DONE (qresync)')
    q.send('i3 IDLE\r\n')
    q.expect(r'^\+ ')
    q.send('NOTDONE\r\n')
    q.expect(r'^i3 BAD \[CLIENTBUG\]', name='IDLE ended by something else than DONE')
    q.run('NOOP', 'OK')

    # ---- a session in another mailbox is not woken ------------------------------
    s = Conv(env.raw('imap'), r)
    s.login(USER, PW)
    s.run('SELECT Sent', 'OK')
    s.send('i4 IDLE\r\n')
    s.expect(r'^\+ ')
    b.run('APPEND INBOX {%d+}\r\n%s' % (len(msg(7)), msg(7)), 'OK')
    try:
        extra = s.read_response(timeout=0.5)
    except Exception:
        extra = None
    r.check('IDLE in Sent not told about INBOX', extra is None or 'Still here' in extra,
            extra)
    s.send('DONE\r\n')
    s.expect(r'^i4 OK')

    if latencies:
        latencies.sort()
        print('IDLE push latency: median %.1f ms, max %.1f ms over %d changes'
              % (latencies[len(latencies) // 2] * 1000, latencies[-1] * 1000,
                 len(latencies)))

sys.exit(r.finish())
