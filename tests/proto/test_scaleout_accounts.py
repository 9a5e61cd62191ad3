#!/usr/bin/env python3
"""Accounts in PostgreSQL (issue 18, docs/scale-out.md): two loftd nodes
with [store] backend = postgres keep their accounts in the same database
(no accounts.db in either data_dir). A user added with node A's loftctl
logs in on both nodes (IMAP and POP3); a password changed with node B's
loftctl is refused at once on both and the new one works on both; an app
password made on one node works on the other; `loftctl user del` run
where no loftd runs (a third config on the same database) ends the
user's IDLE sessions on both nodes and its logins are refused
everywhere. Skipped (77) without PostgreSQL 15."""

import os
import poplib
import sys
import time

from imapconv import Conv
from loftenv import Results, SLOW
from scaleenv import ScaleEnv, skip_without_postgres

USER = 'carol@example.test'
PW1 = 'first-secret-passphrase'
PW2 = 'second-secret-passphrase'
r = Results()


def login(env, user, password):
    """The tagged answer of an IMAP LOGIN on env."""
    c = Conv(env.raw('imap'), Results())
    try:
        c.send('l1 LOGIN "%s" "%s"\r\n' % (user, password))
        deadline = time.monotonic() + 30 * SLOW
        while time.monotonic() < deadline:
            line = c.read_response(timeout=30 * SLOW)
            if line.startswith('l1 '):
                return line
        return None
    finally:
        c.close()


def pop3_ok(env, user, password):
    try:
        p = env.pop3_login(user, password)
        p.quit()
        return True
    except poplib.error_proto:
        return False


def main():
    if skip_without_postgres():
        return 77
    with ScaleEnv(nodes=2) as env:
        # loftctl only: no loftd of its own
        tool = env.add_node(start=False)
        run(*env.nodes[:2], tool)
    return r.finish()


def run(na, nb, tool):
    for env, name in ((na, 'A'), (nb, 'B'), (tool, 'the tool')):
        r.check('no accounts.db in node %s\'s data_dir' % name,
                not os.path.exists(os.path.join(env.data_dir,
                                                'accounts.db')),
                os.listdir(env.data_dir))
    # the default users made by node A's setup are node B's too
    r.check('node B lists node A\'s users',
            'alice@example.test' in nb.loftctl('user', 'list')[1])

    rc, out, err = na.loftctl('user', 'add', USER, input=PW1 + '\n')
    r.check('user add on node A', rc == 0, (out, err))
    for env, name in ((na, 'A'), (nb, 'B')):
        got = login(env, USER, PW1)
        r.check('new user logs in on node %s' % name,
                got is not None and got.startswith('l1 OK'), got)
        r.check('new user POP3 on node %s' % name, pop3_ok(env, USER, PW1))

    rc, out, err = nb.loftctl('user', 'passwd', USER, input=PW2 + '\n')
    r.check('user passwd on node B', rc == 0, (out, err))
    for env, name in ((na, 'A'), (nb, 'B')):
        got = login(env, USER, PW1)
        r.check('old password refused at once on node %s' % name,
                got is not None and got.startswith('l1 NO'), got)
        got = login(env, USER, PW2)
        r.check('new password works on node %s' % name,
                got is not None and got.startswith('l1 OK'), got)

    rc, out, err = na.loftctl('token', 'add', USER)
    token = next((w for w in out.split() if w.startswith('loft_')), None)
    r.check('token add on node A', rc == 0 and token is not None, (out, err))
    if token is not None:
        got = login(nb, USER, token)
        r.check('app password made on A works on node B',
                got is not None and got.startswith('l1 OK'), got)

    # IDLE on both nodes, then user del where no loftd runs
    convs = []
    for env in (na, nb):
        c = Conv(env.raw('imap'), r)
        c.login(USER, PW2)
        c.run('SELECT INBOX', 'OK')
        c.send('i1 IDLE\r\n')
        c.expect(r'^\+ ', name='idle continuation')
        convs.append(c)
    rc, out, err = tool.loftctl('user', 'del', USER, '--yes')
    r.check('user del with no loftd on this machine', rc == 0, (out, err))
    for c, name in zip(convs, ('A', 'B')):
        c.expect(r'^\* BYE', timeout=30 * SLOW,
                 name='user del ends IDLE on node %s' % name)
        c.close()
    for env, name in ((na, 'A'), (nb, 'B')):
        got = login(env, USER, PW2)
        r.check('deleted user refused on node %s' % name,
                got is not None and got.startswith('l1 NO'), got)
    r.check('user list no longer names it',
            USER not in na.loftctl('user', 'list')[1])


if __name__ == '__main__':
    sys.exit(main())
