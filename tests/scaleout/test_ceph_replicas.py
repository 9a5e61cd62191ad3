#!/usr/bin/env python3
"""Blob redundancy is the S3 store's (docs/scale-out.md, "Failures"): a
loftd node with [store] blobs = s3 on a private Ceph cluster of two OSDs
whose pools keep two copies of every object (size 2, min_size 1;
tests/lib/cephenv.py, behind the checking proxy of tests/lib/s3env.py).

- 24 messages (1 kB to 300 kB, and a 9 MB one that goes up in parts) are
  APPENDed; every one is an object in the bucket, and the data pool says
  size 2.
- kill -9 of one OSD: once the monitor has marked it down, every message
  reads back with its exact bytes (blob_cache = 0: each FETCH asks
  radosgw), `loftctl check` finds every object intact, and APPEND and
  FETCH still work on the one OSD left.
Skipped (77) without PostgreSQL 15 or Ceph (sh scripts/deps.sh
scaleout)."""

import hashlib
import re
import sys

from imapconv import Conv
from loftenv import Results, SLOW
from scaleenv import ScaleEnv, skip_without_postgres

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
BUCKET = 'loft-mail'
r = Results()


def msg(n, size):
    filler = ''.join('line %d of message %d\r\n' % (i, n)
                     for i in range(size // 24))
    return 'Subject: replica %d\r\n\r\nbody %d\r\n%s' % (n, n, filler)


def append(conv, m, name=None):
    _, t = conv.run('APPEND INBOX {%d+}\r\n%s' % (len(m), m), 'OK',
                    name=name, timeout=120 * SLOW)
    found = re.search(r'APPENDUID \d+ (\d+)', t or '')
    return int(found.group(1)) if found else None


def fetch_body(conv, uid, name=None):
    lines, _ = conv.run('UID FETCH %d BODY.PEEK[]' % uid, 'OK', name=name,
                        timeout=120 * SLOW)
    for l in lines:
        m = re.search(r'BODY\[\] \{(\d+)\}\r\n', l)
        if m:
            return l[m.end():m.end() + int(m.group(1))]
    return None


def main():
    if skip_without_postgres():
        return 77
    from cephenv import Ceph
    if not Ceph.available():
        print('0 passed, 0 failed (skipped: no Ceph: sh scripts/deps.sh'
              ' scaleout)')
        return 77
    ceph = None
    try:
        ceph = Ceph(osds=2)
        print('Ceph with 2 OSDs and radosgw up after %.1f s'
              % ceph.start_seconds, flush=True)
        s3 = {'endpoint': ceph.endpoint, 'bucket': BUCKET,
              'access_key': ceph.access_key,
              'secret_key_file': ceph.secret_file, 'timeout': '60s'}
        # blob_dir: the node's spool
        with ScaleEnv(nodes=1, store={'blobs': 's3', 'blob_cache': '0',
                                      'postgres_timeout': '30s'},
                      extra={'s3': s3}) as env:
            run(env.nodes[0], ceph)
    finally:
        if ceph is not None:
            ceph.close()
    return r.finish()


def run(node, ceph):
    c = Conv(node.raw('imap'), r, timeout=60 * SLOW)
    c.login(USER, PW)
    c.run('SELECT INBOX', 'OK')
    kept = {}
    sizes = [1000 + i * 12500 for i in range(23)] + [9 * 1024 * 1024]
    for i, size in enumerate(sizes):
        m = msg(i, size)
        uid = append(c, m, name='APPEND %d (%d bytes)' % (i, len(m)))
        if uid is not None:
            kept[uid] = m
    r.check('24 messages stored', len(kept) == len(sizes), len(kept))
    objects = ceph.objects(BUCKET)
    r.check('each one an object in the bucket, named by its SHA-256',
            all(hashlib.sha256(m.encode()).hexdigest() in objects
                for m in kept.values()), (len(objects), len(kept)))
    size = ceph.ceph('osd', 'pool', 'get', 'default.rgw.buckets.data',
                     'size')
    r.check('the data pool keeps 2 copies', size.strip() == 'size: 2', size)

    ceph.kill_osd(0)
    r.check('osd.0 killed (kill -9) and marked down', True)
    c2 = Conv(node.raw('imap'), r, timeout=60 * SLOW)
    c2.login(USER, PW)
    c2.run('SELECT INBOX', 'OK')
    bad = [uid for uid, m in sorted(kept.items())
           if fetch_body(c2, uid, name='FETCH BODY[] of UID %d with one'
                         ' OSD gone' % uid) != m]
    r.check('every message reads back with its bytes from the OSD left',
            not bad, bad)
    rc, out, err = node.loftctl('check', USER, timeout=300 * SLOW)
    r.check('loftctl check: every object intact', rc == 0, (rc, out, err))
    m = msg(99, 50000)
    uid = append(c2, m, name='APPEND with one OSD gone')
    r.check('... and reads back', uid is not None and
            fetch_body(c2, uid, name='FETCH of it') == m)
    r.check('every request signed as AWS Signature V4 says (the proxy)',
            not ceph.refused, ceph.refused[:5])
    c.close()
    c2.close()


if __name__ == '__main__':
    sys.exit(main())
