#!/usr/bin/env python3
"""A node cut off from PostgreSQL under load, then reconnected
(docs/scale-out.md, "Failures"): PostgreSQL runs in a network namespace
of the test's own, reached by loftd over a veth pair; `ip link set
down` on loftd's side cuts the link (no packet leaves: what a pulled
cable or a dead switch does), `ip link set up` mends it.

Under 2 IMAP APPEND clients and 1 LMTP client without pause
(test_failover's load, postgres_timeout = 3s):
- cut: /healthz answers 503; an APPEND on a logged-in session gets NO
  [UNAVAILABLE], LMTP 451 4.3.0; no other answer is seen by the load;
- mended: /healthz 200 again, the load's APPENDs and deliveries are
  acknowledged again, a session that was in IDLE through it all sees a
  new message;
- every acknowledged message is readable (APPENDs at their UIDs with
  their bytes), no acknowledged UID twice.
Needs root (ip netns); skipped (77) without it or PostgreSQL 15."""

import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'system'))
import test_failover as fo          # noqa: E402  (its load and checks)
from imapconv import Conv           # noqa: E402
from loftenv import Results, SLOW   # noqa: E402
from pgenv import Postgres          # noqa: E402
from scaleenv import ScaleEnv, skip_without_postgres   # noqa: E402

USER, PW = fo.USER, fo.PW
r = Results()
fo.r = r


def ip(*args):
    return subprocess.run(['ip'] + list(args), capture_output=True,
                          text=True, timeout=60)


def main():
    if skip_without_postgres():
        return 77
    if os.getuid() != 0 or shutil.which('ip') is None:
        print('0 passed, 0 failed (skipped: needs root and ip(8) for a'
              ' network namespace)')
        return 77
    pid = os.getpid()
    ns = 'loft-part-%d' % pid
    host_if, ns_if = 'lph%d' % pid, 'lpn%d' % pid
    net = '10.213.%d' % (pid % 200 + 20)
    if ip('netns', 'add', ns).returncode != 0:
        print('0 passed, 0 failed (skipped: ip netns add refused)')
        return 77
    pg = None
    try:
        for args in (('link', 'add', host_if, 'type', 'veth', 'peer', 'name',
                      ns_if),
                     ('link', 'set', ns_if, 'netns', ns),
                     ('addr', 'add', net + '.1/30', 'dev', host_if),
                     ('link', 'set', host_if, 'up'),
                     ('-n', ns, 'addr', 'add', net + '.2/30', 'dev', ns_if),
                     ('-n', ns, 'link', 'set', ns_if, 'up'),
                     ('-n', ns, 'link', 'set', 'lo', 'up')):
            res = ip(*args)
            if res.returncode != 0:
                raise RuntimeError('ip %s: %s' % (' '.join(args), res.stderr))
        pg = Postgres(netns=ns, host=net + '.2')
        with ScaleEnv(nodes=1, pg=pg, store={'postgres_timeout': '3s'},
                      extra={'imap': {'idle_keepalive': '2s'}}) as env:
            run(env.nodes[0], host_if)
    finally:
        ip('link', 'set', host_if, 'up')
        if pg is not None:
            pg.close()
        ip('netns', 'del', ns)
        ip('link', 'del', host_if)
    return r.finish()


class Load(fo.Load):
    # a delivery that meets a row lock still held by this node's own
    # session from before the cut waits out lock_timeout: 452 4.3.1
    # (busy, retryable) until the server has noticed that session gone
    # (its keepalives, set by loftd: about 11 s)
    RETRYABLE = fo.Load.RETRYABLE + (('452', '4.3.1'),)


def run(node, host_if):
    state = {'mu': fo.threading.Lock(), 'next': 0, 'appended': {},
             'delivered': set(), 'acks': []}
    w = Conv(node.raw('imap'), r, timeout=30 * SLOW)
    w.login(USER, PW)
    w.run('SELECT INBOX', 'OK')
    w.send(b'w IDLE\r\n')
    w.expect(r'^\+ ', name='IDLE before the cut')
    probe = Conv(node.raw('imap'), r, timeout=60 * SLOW)
    probe.login(USER, PW)
    load = Load(node, state)
    t0 = time.monotonic()
    fo.wait_for(lambda: len(load.acks_since(t0, 'a')) >= 10 and
                load.acks_since(t0, 'l'), 'the load is acknowledged')

    res = ip('link', 'set', host_if, 'down')
    r.check('ip link set down (loftd cut off from PostgreSQL)',
            res.returncode == 0, res.stderr)
    t_cut = time.monotonic()
    fo.wait_for(lambda: fo.healthz(node) == 503,
                'cut off: /healthz answers 503')
    r.check('cut off: /healthz answers 503', fo.healthz(node) == 503)
    m = fo.msg(900000)
    probe.run('APPEND INBOX {%d+}\r\n%s' % (len(m), m), r'NO \[UNAVAILABLE\]',
              name='cut off: APPEND gets NO [UNAVAILABLE]')
    lm = node.lmtp(timeout=60)
    lm.ehlo('client.example.test')
    try:
        refused = lm.sendmail('x@example.net', [USER], fo.msg(900001).encode())
    except Exception as e:
        refused = str(e)
    r.check('cut off: LMTP 451 4.3.0', '451' in str(refused) and
            '4.3.0' in str(refused), refused)
    try:
        lm.quit()
    except Exception:
        pass
    print('cut off for %.1f s' % (time.monotonic() - t_cut), flush=True)

    res = ip('link', 'set', host_if, 'up')
    r.check('ip link set up (mended)', res.returncode == 0, res.stderr)
    t_up = time.monotonic()
    fo.wait_for(lambda: fo.healthz(node) == 200, 'mended: /healthz 200')
    r.check('mended: /healthz 200', fo.healthz(node) == 200)
    fo.wait_for(lambda: len(load.acks_since(t_up, 'a')) >= 5 and
                load.acks_since(t_up, 'l'),
                'mended: APPENDs and deliveries acknowledged again')
    r.check('mended: APPENDs and deliveries acknowledged again',
            len(load.acks_since(t_up, 'a')) >= 5 and
            bool(load.acks_since(t_up, 'l')))
    print('first acknowledgement %.2f s after the link came up'
          % (min(load.acks_since(t_up, 'a') + load.acks_since(t_up, 'l'))
             - t_up), flush=True)
    load.finish()
    r.check('the load saw no answer but OK, NO [UNAVAILABLE] and LMTP'
            ' 451 4.3.0 or 452 4.3.1',
            not load.errors, load.errors[:5])

    # the IDLE session lived through it: a new message reaches it
    w.send(b'DONE\r\n')
    lines = []
    while True:
        line = w.read_response(timeout=60 * SLOW)
        lines.append(line)
        if line.startswith('w '):
            break
    r.check('the IDLE session is still there after the cut',
            lines[-1].startswith('w OK'), lines[-3:])
    w.send(b'w2 IDLE\r\n')
    w.expect(r'^\+ ', name='IDLE again')
    m = fo.msg(900002)
    probe.run('APPEND INBOX {%d+}\r\n%s' % (len(m), m), 'OK',
              name='APPEND after the cut')
    w.expect(r'^\* \d+ EXISTS', timeout=30 * SLOW,
             name='the IDLE session sees it')
    w.send(b'DONE\r\n')
    w.close()
    probe.close()
    fo.verify(node, state, 'after the cut')


if __name__ == '__main__':
    sys.exit(main())
