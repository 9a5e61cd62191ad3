#!/usr/bin/env python3
"""Two nodes racing on one mailbox (issue 18, "Bad input it must
survive": two nodes racing APPEND, COPY, MOVE and EXPUNGE on one
mailbox; nothing acknowledged lost, no UID or modseq reused or seen out
of order).

Two loftd nodes on one PostgreSQL; 20 simulated clients of
tests/lib/imapstress.py on two shared accounts, each account's clients
split between node A and node B, do a random mix of every command (select,
fetch, store, search, copy, move, expunge, append, idle, QRESYNC
reselects, logging out and in) for 20 s (LOFT_STRESS_SECONDS; 15 s under
ASan). Each client checks every response against the protocol's state
rules (sequence numbers and UIDs, flags, MODSEQ and HIGHESTMODSEQ never
going back, EXISTS/EXPUNGE/VANISHED order, APPENDUID and COPYUID, a
message MOVEd away gone after the tagged OK). What the other node did
reaches a session only through PostgreSQL (rows and NOTIFY), so every
cross-node race is there.

Passes with 0 violations, 0 NO [SERVERBUG], no client error and no error
in either node's log. First the checker proves it can fail
(imapstress.selftest feeds it a response breaking each rule). Skipped
(77) without PostgreSQL 15."""

import asyncio
import os
import random
import sys
import time

import imapstress
from loftenv import SANITIZE, Results
from scaleenv import ScaleEnv, skip_without_postgres

R = Results()
USERS = {'race%d@example.test' % i: 'Race-Password-%d-xyz' % i
         for i in range(1, 3)}
CLIENTS = 20
SECONDS = float(os.environ.get('LOFT_STRESS_SECONDS',
                               '15' if SANITIZE else '20'))


async def run(ports, seconds):
    """imapstress.run over two nodes: client i on ports[(i // 2) % 2], so
    each account has clients on both."""
    report = imapstress.Report()
    shared = imapstress.Shared()
    names = sorted(USERS)
    deadline = time.monotonic() + seconds
    sessions = []
    for i in range(CLIENTS):
        user = names[i % len(names)]
        sessions.append(imapstress.Session(
            report, shared, i + 1, '127.0.0.1',
            ports[(i // len(names)) % 2], user, USERS[user],
            random.Random(1000 + i), 25 if i % 5 == 0 else 0, deadline,
            False))
    t0 = time.monotonic()
    await asyncio.gather(*(s.run() for s in sessions))
    report.elapsed = time.monotonic() - t0
    return report


def main():
    if skip_without_postgres():
        return 77
    problems = imapstress.selftest()
    R.check('the checker flags each broken rule, and only those',
            not problems, problems)
    extra = {'': {'log_level': 'info'},
             'limits': {'io_threads': '2', 'worker_threads': '8'}}
    with ScaleEnv(nodes=0) as env:
        na = env.add_node(extra)
        for user, pw in USERS.items():
            na.add_user(user, pw)
        nb = env.add_node(extra)
        asyncio.run(imapstress.seed('127.0.0.1', na.port('imap'), USERS,
                                    per_mailbox=25))
        rep = asyncio.run(run([na.port('imap'), nb.port('imap')], SECONDS))
        print('two nodes: %.0f ops/s over %.0f s'
              % (rep.ops / rep.elapsed, rep.elapsed))
        print(rep.summary())
        R.check('clients did work', rep.ops > CLIENTS * 10, rep.ops)
        R.check('0 violations', not rep.rule_counts, '\n' + rep.details(8))
        R.check('0 NO [SERVERBUG]', not rep.serverbugs, '\n' + rep.details(8))
        R.check('no client errors', not rep.errors, rep.errors[:5])
        R.check('QRESYNC reselects were checked',
                rep.checks['qresync-select'] > 0, dict(rep.checks))
        for name, node in (('A', na), ('B', nb)):
            errors = [line for line in node.log().splitlines()
                      if ' error ' in line or 'AddressSanitizer' in line
                      or 'runtime error' in line]
            R.check("node %s's log has no errors" % name, not errors,
                    errors[:10])
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
