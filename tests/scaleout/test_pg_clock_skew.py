#!/usr/bin/env python3
"""Node clocks an hour apart (docs/scale-out.md): leases and retention
follow the database's clock, never a node's. Node B runs under
libfaketime (Debian's faketime) an hour ahead; loftctl runs an hour
ahead or behind.

- retention: a message in Trash saved 23.5 hours ago by the database's
  clock stays when `loftctl retention run` runs an hour ahead
  (trash_retention_days = 1: the node's clock would say 24.5 hours);
  one saved 24.5 hours ago goes when loftctl runs an hour behind;
- times kept in rows: a message APPENDed through node B (an hour ahead)
  is saved at the database's time, not an hour later;
- the queue's lease: node A delivers a message to a remote that holds
  its answer to DATA; node B, an hour ahead, does not take the message
  while node A renews its lease (3 leases long), and delivers it once
  node A is killed and its lease has run out in the database's clock:
  delivered once.
Skipped (77) without PostgreSQL 15 or libfaketime (sh scripts/deps.sh
scaleout)."""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'proto'))
import test_scaleout_queue as sq    # noqa: E402  (its stalling remote)
from imapconv import Conv           # noqa: E402
from loftenv import Results, SLOW, LOFTCTL   # noqa: E402
from scaleenv import ScaleEnv, skip_without_postgres   # noqa: E402

USER = sq.USER
PW = 'tea-party-rabbit-hole'
LEASE = 6
FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1'
r = Results()
sq.r = r


def skewed_env(offset):
    env = dict(os.environ)
    env['LD_PRELOAD'] = FAKETIME_LIB
    env['FAKETIME'] = offset
    env['FAKETIME_DONT_FAKE_MONOTONIC'] = '1'
    return env


def loftctl_at(node, offset, *args):
    res = subprocess.run([LOFTCTL, '--config', node.config_path] +
                         list(args), capture_output=True, text=True,
                         env=skewed_env(offset), timeout=120 * SLOW)
    return res.returncode, res.stdout, res.stderr


def main():
    if skip_without_postgres():
        return 77
    if not os.path.exists(FAKETIME_LIB):
        print('0 passed, 0 failed (skipped: no libfaketime: sh'
              ' scripts/deps.sh scaleout)')
        return 77
    sink = sq.StallingSink()
    extra = sq.sender_extra(sink, lease='%ds' % LEASE)
    extra['policy'] = {'trash_retention_days': '1'}
    with ScaleEnv(nodes=2, extra=extra, node_extra=sq.own_submission,
                  start=False) as env:
        na, nb = env.nodes
        saved = dict(os.environ)
        os.environ.update(skewed_env('+1h'))
        try:
            nb.start()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        na.start()
        run(env.pg, env.dbname, na, nb, sink)
    return r.finish()


def trash_count(c):
    lines, _ = c.run('STATUS Trash (MESSAGES)', 'OK')
    m = re.search(r'MESSAGES (\d+)', ' '.join(lines))
    return int(m.group(1)) if m else None


def run(pg, db, na, nb, sink):
    mail = nb.children().get('mail')
    with open('/proc/%d/environ' % mail, 'rb') as f:
        r.check('node B\'s mail process runs an hour ahead (libfaketime)',
                b'FAKETIME=+1h' in f.read())

    # ---- retention ----------------------------------------------------
    c = Conv(na.raw('imap'), r, timeout=30 * SLOW)
    c.login(USER, PW)
    c.run('CREATE Trash (USE (\\Trash))', '(OK|NO)')
    m = 'Subject: old\r\n\r\nin the trash\r\n'
    c.run('APPEND Trash {%d+}\r\n%s' % (len(m), m), 'OK')
    sql = ("UPDATE msg SET savedate = extract(epoch FROM now())::bigint"
           " - 86400 %s 1800 WHERE (user_id, mailbox) IN (SELECT user_id,"
           " id FROM mailbox WHERE name = 'Trash')")
    pg.psql(sql % '+', db=db)
    rc, out, err = loftctl_at(na, '+1h', 'retention', 'run', USER)
    r.check('loftctl retention run an hour ahead', rc == 0, (rc, out, err))
    r.check('... keeps a Trash message saved 23.5 h ago (database clock)',
            trash_count(c) == 1, (trash_count(c), out))
    pg.psql(sql % '-', db=db)
    rc, out, err = loftctl_at(na, '-1h', 'retention', 'run', USER)
    r.check('loftctl retention run an hour behind', rc == 0, (rc, out, err))
    r.check('... removes one saved 24.5 h ago (database clock)',
            trash_count(c) == 0, (trash_count(c), out))

    # ---- times kept in rows -------------------------------------------
    b = Conv(nb.raw('imap'), r, timeout=30 * SLOW)
    b.login(USER, PW)
    m = 'Subject: ahead\r\n\r\nfrom the node an hour ahead\r\n'
    b.run('APPEND INBOX {%d+}\r\n%s' % (len(m), m), 'OK',
          name='APPEND on node B (an hour ahead)')
    out = pg.psql("SELECT savedate - extract(epoch FROM now())::bigint FROM"
                  " msg WHERE (user_id, mailbox) IN (SELECT user_id, id FROM"
                  " mailbox WHERE name = 'INBOX')", db=db)
    r.check('... saved at the database\'s time (within a minute), not an'
            ' hour ahead', out.strip() and abs(int(out)) < 60, out)
    b.close()
    c.close()

    # ---- the queue's lease --------------------------------------------
    sq.submit(na, 'STALLSKEW1')
    r.check('node A is delivering (the remote holds DATA)',
            sink.stalled.wait(60 * SLOW))
    t0 = time.monotonic()
    # node B, an hour ahead, must leave the message alone while node A
    # renews its lease: three leases long
    while time.monotonic() - t0 < 3 * LEASE:
        if sink.count(b'STALLSKEW1'):
            break
        time.sleep(0.2)
    r.check('node B (an hour ahead) did not take node A\'s message while'
            ' A held its lease', sink.count(b'STALLSKEW1') == 0,
            sink.count(b'STALLSKEW1'))
    t0 = time.monotonic()
    for pid in na.children().values():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    na.kill9()
    r.check('node B delivers it once node A\'s lease ran out',
            sq.wait(lambda: sink.count(b'STALLSKEW1') >= 1, 4 * LEASE + 60))
    print('node A killed: node B (an hour ahead) delivered after %.1f s'
          ' (lease %d s, renewed every %d s)' % (time.monotonic() - t0,
                                                 LEASE, LEASE // 3))
    r.check('... delivered once',
            sq.wait(lambda: nb.loftctl('queue', 'list')[1].strip() == '',
                    30) and sink.count(b'STALLSKEW1') == 1,
            sink.count(b'STALLSKEW1'))


if __name__ == '__main__':
    sys.exit(main())
