#!/usr/bin/env python3
"""Two loftd nodes starting at the same moment on an empty PostgreSQL
database (docs/scale-out.md, "Schema"): the first to take the advisory
lock creates the schema, the other waits for it and finds it made.

- both nodes log "loftd ready"; loft_schema holds exactly one row, at
  the version src/store/pg/pg-private.h names (PG_SCHEMA_VERSION), and
  each node's log is free of errors;
- both serve one account: an APPEND on node A is seen by an IDLE
  session on node B, an APPEND on B is read on A, UIDs 1 and 2.
Accounts are in a database of their own ([auth] postgres) made before,
so the store's database is empty when the nodes start. Skipped (77)
without PostgreSQL 15."""

import os
import re
import sys
import threading

from imapconv import Conv
from loftenv import Results, SLOW
from scaleenv import ScaleEnv, skip_without_postgres

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
SRC = os.environ.get('LOFT_SRC', os.path.join(os.path.dirname(
    os.path.abspath(__file__)), '..', '..'))
r = Results()


def schema_version():
    with open(os.path.join(SRC, 'src', 'store', 'pg', 'pg-private.h')) as f:
        return int(re.search(r'#define PG_SCHEMA_VERSION (\d+)',
                             f.read()).group(1))


def main():
    if skip_without_postgres():
        return 77
    with ScaleEnv(nodes=2, auth_database=True, start=False) as env:
        # the accounts are made; the store's database may have been
        # touched by loftctl: start both nodes on a fresh one
        env.use_database(env.pg.new_database())
        tables = env.psql("SELECT count(*) FROM pg_tables WHERE schemaname"
                          " NOT IN ('pg_catalog', 'information_schema')")
        r.check('the store\'s database is empty before the start',
                tables.strip() == '0', tables)
        run(env, env.nodes)
    return r.finish()


def run(env, nodes):
    errors = []
    go = threading.Barrier(2)

    def start(n):
        try:
            go.wait(60)
            n.start(timeout=120)
        except Exception as e:
            errors.append(str(e)[-2000:])
    threads = [threading.Thread(target=start, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300 * SLOW)
    r.check('both nodes started at once on the empty database',
            not errors and all(n.running() for n in nodes), errors)
    if errors:
        return
    rows = [int(v) for v in
            env.psql('SELECT version FROM loft_schema').split()]
    r.check('loft_schema: each step once, up to version %d'
            % schema_version(),
            sorted(rows) == list(range(1, schema_version() + 1)), rows)
    for i, n in enumerate(nodes):
        bad = [l for l in n.log().splitlines()
               if re.search(r'\berror \w+(\[[^\]]*\])?: ', l)]
        r.check('node %s logged no error' % 'AB'[i], not bad, bad[:5])
    na, nb = nodes
    a = Conv(na.raw('imap'), r, timeout=30 * SLOW)
    b = Conv(nb.raw('imap'), r, timeout=30 * SLOW)
    a.login(USER, PW)
    b.login(USER, PW)
    a.run('SELECT INBOX', 'OK')
    b.run('SELECT INBOX', 'OK')
    b.send(b'b IDLE\r\n')
    b.expect(r'^\+ ', name='IDLE on B')
    m1 = 'Subject: one\r\n\r\nfirst\r\n'
    _, t = a.run('APPEND INBOX {%d+}\r\n%s' % (len(m1), m1), 'OK',
                 name='APPEND on A')
    r.check('... UID 1', t is not None and
            re.search(r'APPENDUID \d+ 1\]', t) is not None, t)
    b.expect(r'^\* 1 EXISTS', timeout=30 * SLOW,
             name='IDLE on B sees it')
    b.send(b'DONE\r\n')
    b.expect(r'^b OK', name='DONE')
    m2 = 'Subject: two\r\n\r\nsecond\r\n'
    _, t = b.run('APPEND INBOX {%d+}\r\n%s' % (len(m2), m2), 'OK',
                 name='APPEND on B')
    r.check('... UID 2', t is not None and
            re.search(r'APPENDUID \d+ 2\]', t) is not None, t)
    # A was not told of UID 2: the UID FETCH announces it, then reads it
    lines, _ = a.run('UID FETCH 2 BODY.PEEK[]', 'OK', untagged=[r'^\* 2 EXISTS'],
                     name='FETCH on A')
    r.check('node A reads what B stored', any(m2 in l for l in lines),
            lines)
    a.close()
    b.close()


if __name__ == '__main__':
    sys.exit(main())
