#!/usr/bin/env python3
"""A full PostgreSQL disk (docs/scale-out.md, "Failures"): the store's
tables live in a tablespace on a small tmpfs of the test's own (the
database's default_tablespace; WAL and catalogs stay on the main disk),
and messages with incompressible text (its search trigrams grow the
GIN index) are APPENDed until it is full.

- full: APPEND gets NO [UNAVAILABLE] (retryable; PostgreSQL's "could not
  extend file": the transaction rolls back), LMTP 452 4.3.1 or 451 4.3.x;
  SELECT, FETCH and SEARCH of what is there still work, and nothing is
  half written (MESSAGES counts exactly the acknowledged APPENDs);
- room again (the tmpfs grown with mount -o remount): APPEND and LMTP
  are accepted at once, every acknowledged message reads back with its
  bytes, no UID given twice.
Needs root (mount); skipped (77) without it or PostgreSQL 15."""

import base64
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

from imapconv import Conv
from loftenv import Results, SLOW
from scaleenv import ScaleEnv, skip_without_postgres

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
r = Results()
rng = random.Random(18)


def msg(n):
    # incompressible: pglz and the trigram index keep it all
    raw = base64.b64encode(rng.randbytes(192 * 1024)).decode()
    words = '\r\n'.join(raw[i:i + 76] for i in range(0, len(raw), 76))
    return 'Subject: full %d\r\n\r\nnumber %d\r\n%s\r\n' % (n, n, words)


def main():
    if skip_without_postgres():
        return 77
    if os.getuid() != 0:
        print('0 passed, 0 failed (skipped: needs root to mount a tmpfs)')
        return 77
    ts = tempfile.mkdtemp(prefix='loft-ts-')
    mounted = False
    try:
        # PostgreSQL stops (leaving the with) before the umount
        with ScaleEnv(nodes=0, store={'postgres_timeout': '20s'}) as env:
            pw = env.pg.run_as
            res = subprocess.run(['mount', '-t', 'tmpfs', '-o',
                                  'size=40m,mode=0700,uid=%d,gid=%d'
                                  % (pw.pw_uid, pw.pw_gid), 'tmpfs', ts],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                print('0 passed, 0 failed (skipped: mount refused: %s)'
                      % res.stderr.strip())
                return 77
            mounted = True
            env.pg.psql("CREATE TABLESPACE small LOCATION '%s'" % ts,
                        db='postgres')
            env.pg.psql('ALTER DATABASE %s SET default_tablespace = small'
                        % env.dbname, db='postgres')
            run(env.add_node(), ts)
    finally:
        if mounted:
            subprocess.run(['umount', '-l', ts])
        shutil.rmtree(ts, True)
    return r.finish()


def append(c, m, tagged):
    _, t = c.run('APPEND INBOX {%d+}\r\n%s' % (len(m), m),
                 tagged, timeout=60 * SLOW)
    return t or ''


def lmtp(node, m):
    lm = node.lmtp(timeout=60)
    lm.ehlo('client.example.test')
    try:
        out = lm.sendmail('x@example.net', [USER], m.encode())
    except Exception as e:
        out = str(e)
    try:
        lm.quit()
    except Exception:
        pass
    return out


def run(node, ts):
    c = Conv(node.raw('imap'), r, timeout=60 * SLOW)
    c.login(USER, PW)
    c.run('SELECT INBOX', 'OK')
    acked = {}
    refused = None
    for n in range(1, 400):
        m = msg(n)
        t = append(c, m, r'(OK|NO|BAD)')
        found = re.search(r' OK \[APPENDUID \d+ (\d+)\]', t)
        if found:
            acked[int(found.group(1))] = m
            continue
        refused = t
        break
    print('%d messages before the tablespace was full' % len(acked),
          flush=True)
    r.check('full: APPEND gets NO [UNAVAILABLE]', refused is not None and
            re.search(r' NO \[UNAVAILABLE\]', refused) is not None, refused)
    t = append(c, msg(1000), r'(OK|NO|BAD)')
    r.check('full: the next APPEND too', ' NO [UNAVAILABLE]' in t, t)
    out = lmtp(node, msg(1001))
    r.check('full: LMTP 452 4.3.1 (or 451 4.3.x)',
            re.search(r'45[12].*4\.3\.\d', str(out)) is not None, out)
    lines, _ = c.run('STATUS INBOX (MESSAGES)', 'OK', name='full: STATUS')
    r.check('nothing half written: MESSAGES is the acknowledged count',
            re.search(r'MESSAGES %d\)' % len(acked), ' '.join(lines))
            is not None, (lines, len(acked)))
    first = min(acked) if acked else 1
    lines, _ = c.run('UID FETCH %d BODY.PEEK[]' % first, 'OK',
                     name='full: FETCH still works')
    r.check('... with the bytes', any(acked.get(first, '#') in l
                                      for l in lines))
    c.run('UID SEARCH BODY "number %d"' % len(acked), 'OK',
          name='full: SEARCH still works')

    res = subprocess.run(['mount', '-o', 'remount,size=512m', ts],
                         capture_output=True, text=True)
    r.check('room again (tmpfs grown)', res.returncode == 0, res.stderr)
    m = msg(2000)
    t = append(c, m, r'(OK|NO|BAD)')
    found = re.search(r' OK \[APPENDUID \d+ (\d+)\]', t)
    r.check('room again: APPEND accepted at once', found is not None, t)
    if found:
        acked[int(found.group(1))] = m
    out = lmtp(node, 'Subject: after\r\n\r\nroom again\r\n')
    r.check('room again: LMTP 250', out == {}, out)
    bad = []
    for uid, m in sorted(acked.items()):
        lines, _ = c.run('UID FETCH %d BODY.PEEK[]' % uid, 'OK',
                         name='FETCH of UID %d' % uid)
        if not any(m in l for l in lines):
            bad.append(uid)
    r.check('every acknowledged APPEND reads back with its bytes',
            not bad, bad)
    lines, _ = c.run('STATUS INBOX (MESSAGES)', 'OK')
    r.check('MESSAGES: the acknowledged APPENDs and the delivery',
            re.search(r'MESSAGES %d\)' % (len(acked) + 1), ' '.join(lines))
            is not None, (lines, len(acked)))
    c.close()


if __name__ == '__main__':
    sys.exit(main())
