"""Runs a unit-test binary against a private PostgreSQL (tests/lib/pgenv.py):
LOFT_TEST_PG is the connection string of its database. Exit status is the
binary's; 77 (skipped) when PostgreSQL 15 is not installed."""

import os
import subprocess
import sys

from pgenv import Postgres


def main():
    if not Postgres.available():
        print('0 passed, 0 failed (skipped: no PostgreSQL 15 binaries)')
        return 77
    with Postgres() as pg:
        env = dict(os.environ, LOFT_TEST_PG=pg.conninfo)
        r = subprocess.run(sys.argv[1:], env=env)
        if r.returncode != 0:
            sys.stderr.write('--- postgres log ---\n' + pg.log()[-4000:])
        return r.returncode


if __name__ == '__main__':
    sys.exit(main())
