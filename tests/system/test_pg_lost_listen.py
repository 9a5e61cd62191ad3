#!/usr/bin/env python3
"""The LISTEN connection killed during IDLE (issue 18, "Bad input it
must survive"; docs/scale-out.md, "Failures": a delay, reconnect every
0.5 s, every open view resyncs once).

Two nodes on one PostgreSQL. A client on node A idles on INBOX; the
nodes' change listeners (application_name loftd-listen) are ended with
pg_terminate_backend, and at once node B appends through IMAP, so B's
NOTIFY goes out while A listens to nobody: that notification is lost.
A must still tell its idling client (* n EXISTS) within seconds, from
the resync after its listener is back, not at the next IDLE keepalive
(set to 10 minutes here, so nothing else could wake the view). Then a
change made after the reconnect is heard as usual. Three rounds, each
on a session that stays in IDLE through it all.

A node whose listener never came back, or came back without resyncing
the open views, fails the first check of a round (the message would
wait for the keepalive). Skipped (77) without PostgreSQL 15."""

import re
import sys
import time

from imapconv import Conv
from loftenv import Results, SLOW
from scaleenv import ScaleEnv, skip_without_postgres

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
ROUNDS = 3
r = Results()


def append(conv, n):
    m = 'Subject: lost listen %d\r\n\r\nbody %d\r\n' % (n, n)
    return conv.run('APPEND INBOX {%d+}\r\n%s' % (len(m), m), 'OK')


def admin(env, sql):
    """sql run from the maintenance database (the nodes' one may refuse
    connections meanwhile)."""
    return env.pg.psql(sql, db='postgres')


def allow_connections(env, allow):
    admin(env, 'ALTER DATABASE "%s" ALLOW_CONNECTIONS %s'
          % (env.dbname, 'true' if allow else 'false'))


def kill_listeners(env):
    """Ends every node's change listener (waiting until each is gone);
    returns how many were ended."""
    out = admin(env, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid,"
                " 10000) FROM pg_stat_activity WHERE application_name ="
                " 'loftd-listen' AND datname = '%s') AS t" % env.dbname)
    m = re.search(r'(\d+)', out or '')
    return int(m.group(1)) if m else 0


def listeners(env):
    out = admin(env, "SELECT count(*) FROM pg_stat_activity WHERE"
                " application_name = 'loftd-listen' AND datname = '%s'"
                % env.dbname)
    m = re.search(r'(\d+)', out or '')
    return int(m.group(1)) if m else 0


def wait_listeners(env, n, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if listeners(env) >= n:
            return True
        time.sleep(0.1)
    return False


def main():
    if skip_without_postgres():
        return 77
    with ScaleEnv(nodes=2, extra={'imap': {'idle_keepalive': '10m'}}) as env:
        na, nb = env.nodes
        run(env, na, nb)
    return r.finish()


def run(env, na, nb):
    a = Conv(na.raw('imap'), r)
    b = Conv(nb.raw('imap'), r)
    a.login(USER, PW)
    b.login(USER, PW)
    a.run('SELECT INBOX', 'OK', [r'^\* 0 EXISTS'])
    b.run('SELECT INBOX', 'OK')
    r.check('both listeners connected', wait_listeners(env, 2, 30 * SLOW),
            listeners(env))

    # A's listener connects on its own thread after the start: B appends
    # until A's IDLE hears one
    a.send('i1 IDLE\r\n')
    a.expect(r'^\+ ', name='idle continuation')
    n = 0
    heard = False
    deadline = time.monotonic() + 60 * SLOW
    while not heard and time.monotonic() < deadline:
        n += 1
        append(b, n)
        try:
            heard = re.match(r'^\* %d EXISTS' % n,
                             a.read_response(timeout=1.0)) is not None
        except Exception:
            pass
    r.check('node A hears node B before the listener is killed', heard, n)
    a.send('DONE\r\n')
    a.expect(r'^i1 OK', name='DONE after the warm-up')
    a.run('NOOP', 'OK')

    a.send('i2 IDLE\r\n')
    a.expect(r'^\+ ', name='idle continuation')
    lost_log = na.log().count('change listener lost')
    for rnd in range(1, ROUNDS + 1):
        # the listeners cannot come back until the database lets them
        allow_connections(env, False)
        try:
            ended = kill_listeners(env)
            r.check('round %d: the listeners were ended' % rnd, ended >= 1,
                    ended)
            n += 1
            append(b, n)    # through B's open connection; its NOTIFY
            # reaches no listener of A
            early = []
            stop = time.monotonic() + 1.5
            while time.monotonic() < stop:
                try:
                    early.append(a.read_response(
                        timeout=max(0.05, stop - time.monotonic())))
                except Exception:
                    break
            r.check('round %d: the notification was lost (A silent while'
                    ' its listener is away)' % rnd,
                    not any('EXISTS' in line for line in early), early)
        finally:
            allow_connections(env, True)
        t0 = time.monotonic()
        got = a.expect(r'^\* %d EXISTS' % n, timeout=15 * SLOW,
                       name='round %d: A told of the message appended while'
                       ' its listener was away' % rnd)
        took = time.monotonic() - t0
        print('round %d: %d listeners ended, EXISTS %.2f s after the'
              ' database took connections again' % (rnd, ended, took))
        r.check('round %d: told well before the keepalive' % rnd,
                got is not None and took < 60, took)
        log = na.log()
        r.check('round %d: node A noticed the loss and resynced' % rnd,
                log.count('change listener lost') > lost_log and
                log.count('open views resync') >= rnd, log[-2000:])
        lost_log = log.count('change listener lost')
        r.check('round %d: both listeners back' % rnd,
                wait_listeners(env, 2, 30 * SLOW), listeners(env))
        # after the reconnect a change is heard as usual
        n += 1
        append(b, n)
        r.check('round %d: a change after the reconnect is heard' % rnd,
                a.expect(r'^\* %d EXISTS' % n, timeout=15 * SLOW,
                         name='round %d: heard after the reconnect' % rnd)
                is not None)
    a.send('DONE\r\n')
    a.expect(r'^i2 OK', name='DONE')
    lines, _ = a.run('UID SEARCH ALL', 'OK')
    got = set()
    for line in lines:
        if line.startswith('* SEARCH'):
            got = {int(x) for x in line.split()[2:]}
    r.check('node A lists every appended message', len(got) == n,
            (len(got), n))
    a.close()
    b.close()


if __name__ == '__main__':
    sys.exit(main())
