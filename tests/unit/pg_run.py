"""Runs a unit-test binary against a private PostgreSQL (tests/lib/pgenv.py):
LOFT_TEST_PG is the connection string of its database. With --s3 first, a
private S3 server too (tests/lib/s3env.py): LOFT_TEST_S3 is its endpoint,
LOFT_TEST_S3_SECRET the secret key's file. With --ceph first, the same
against a private Ceph radosgw behind the same proxy (tests/lib/cephenv.py;
`make test-scaleout`). Exit status is the binary's; 77 (skipped) when
PostgreSQL 15 (or, with --s3, s3rver; with --ceph, Ceph) is not
installed."""

import os
import subprocess
import sys

from pgenv import Postgres
from s3env import S3


def run(argv, s3):
    with Postgres() as pg:
        env = dict(os.environ, LOFT_TEST_PG=pg.conninfo)
        if s3 is not None:
            env.update(LOFT_TEST_S3=s3.endpoint,
                       LOFT_TEST_S3_KEY=s3.access_key,
                       LOFT_TEST_S3_SECRET=s3.secret_file)
        r = subprocess.run(argv, env=env)
        if r.returncode != 0:
            sys.stderr.write('--- postgres log ---\n' + pg.log()[-4000:])
        return r.returncode


def main():
    argv = sys.argv[1:]
    want_s3 = argv[:1] == ['--s3']
    want_ceph = argv[:1] == ['--ceph']
    if want_s3 or want_ceph:
        argv = argv[1:]
    if not Postgres.available():
        print('0 passed, 0 failed (skipped: no PostgreSQL 15 binaries)')
        return 77
    if want_ceph:
        from cephenv import Ceph
        if not Ceph.available():
            print('0 passed, 0 failed (skipped: no Ceph: sh scripts/deps.sh'
                  ' scaleout)')
            return 77
        with Ceph() as ceph:
            print('radosgw up after %.1f s' % ceph.start_seconds, flush=True)
            return run(argv, ceph)
    if want_s3 and not S3.available():
        print('0 passed, 0 failed (skipped: no node or s3rver: make npm)')
        return 77
    if not want_s3:
        return run(argv, None)
    with S3() as s3:
        return run(argv, s3)


if __name__ == '__main__':
    sys.exit(main())
