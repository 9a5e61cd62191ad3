#!/usr/bin/env python3
"""DKIM keys shared by two loftd nodes on one PostgreSQL (issue 18,
docs/scale-out.md "Accounts"): a key made with `loftctl dkim add` on node
A is in the database; node B's auth process copies it into B's
data_dir/dkim within seconds (the same key), `loftctl dkim list` on B
shows it, and mail submitted on B goes out signed with it. `loftctl dkim
del` on B removes it for both: node A's copy goes, and mail submitted on
A is no longer signed with it. Skipped (77) without PostgreSQL 15."""

import os
import sys

from loftenv import Results
from scaleenv import ScaleEnv, skip_without_postgres
from test_scaleout_queue import (StallingSink, own_submission, sender_extra,
                                 submit, wait)

DOMAIN, SEL = 'example.test', 'shared1'
r = Results()


def key_file(env):
    return os.path.join(env.data_dir, 'dkim', DOMAIN, SEL + '.pem')


def read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:
        return None


def signed_with(sink, marker):
    """The sink's copy of the message marked marker: its DKIM-Signature
    selectors (None while it has not come)."""
    with sink.lock:
        for d in sink.kept:
            if marker.encode() in d:
                head = d.split(b'\r\n\r\n', 1)[0].replace(b'\r\n\t', b' ') \
                    .replace(b'\r\n ', b' ')
                return [l for l in head.split(b'\r\n')
                        if l.lower().startswith(b'dkim-signature:')]
    return None


def main():
    if skip_without_postgres():
        return 77
    sink = StallingSink()
    with ScaleEnv(nodes=2, extra=sender_extra(sink),
                  node_extra=own_submission) as env:
        run(*env.nodes, sink)
    return r.finish()


def run(na, nb, sink):
    rc, out, err = na.loftctl('dkim', 'add', DOMAIN, '--selector', SEL,
                              '--ed25519')
    r.check('loftctl dkim add on node A', rc == 0 and
            '%s._domainkey.%s.' % (SEL, DOMAIN) in out, (rc, out, err))
    mine = read(key_file(na))
    r.check('node A has its copy', mine is not None)
    r.check('node B\'s copy comes within seconds, the same key',
            wait(lambda: read(key_file(nb)) == mine, 60))
    rc, out, err = nb.loftctl('dkim', 'list')
    r.check('loftctl dkim list on node B shows it',
            rc == 0 and '%s %s ed25519' % (DOMAIN, SEL) in out,
            (rc, out, err))
    rc, out, err = nb.loftctl('dkim', 'add', DOMAIN, '--selector', SEL)
    r.check('the same selector again on node B: refused',
            rc != 0 and 'exists' in (out + err), (rc, out, err))

    submit(nb, 'SIGNED1')
    r.check('mail submitted on node B goes out',
            wait(lambda: signed_with(sink, 'SIGNED1') is not None, 60))
    sigs = signed_with(sink, 'SIGNED1') or []
    r.check('... signed with the key made on node A (d=%s, s=%s)'
            % (DOMAIN, SEL),
            any(b'd=' + DOMAIN.encode() in s and b's=' + SEL.encode() in s
                for s in sigs), sigs)

    rc, out, err = nb.loftctl('dkim', 'del', DOMAIN, SEL.upper())
    r.check('loftctl dkim del on node B', rc == 0, (rc, out, err))
    r.check('node A\'s copy goes within seconds',
            wait(lambda: read(key_file(na)) is None, 60))
    r.check('node B\'s copy goes too',
            wait(lambda: read(key_file(nb)) is None, 60))
    submit(na, 'UNSIGNED1')
    r.check('mail submitted on node A goes out',
            wait(lambda: signed_with(sink, 'UNSIGNED1') is not None, 60))
    sigs = signed_with(sink, 'UNSIGNED1') or []
    r.check('... no longer signed with the deleted key',
            not any(b's=' + SEL.encode() in s for s in sigs), sigs)
    rc, out, err = na.loftctl('dkim', 'del', DOMAIN, SEL)
    r.check('deleting it again: no such key',
            rc != 0 and 'no key' in (out + err), (rc, out, err))
    rc, out, err = na.loftctl('dkim', 'list')
    r.check('loftctl dkim list on node A: empty', rc == 0 and
            SEL not in out, (rc, out, err))


if __name__ == '__main__':
    sys.exit(main())
