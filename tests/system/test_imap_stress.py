#!/usr/bin/env python3
"""IMAP under load (issue 9): 50 simulated clients on three shared
accounts do a random mix of every command for 60 s (LOFT_STRESS_SECONDS
to change it; 20 s under ASan), each checking every response against the
protocol's state rules (tests/lib/imapstress.py: sequence numbers, UIDs,
flags and keywords against the FLAGS list, MODSEQ and HIGHESTMODSEQ,
EXISTS/EXPUNGE/VANISHED order, QRESYNC reselects). One client in five
logs out and in again every 25 operations, the others keep one session.

Passes with 0 violations, 0 NO [SERVERBUG], no client error and no error
in loftd's log. First the checker proves it can fail (imapstress.selftest
feeds it a response breaking each rule).

The same clients then run against a private Dovecot for a short while
(not under ASan), to show the checker does not flag what a mature server
does legally. Dovecot breaks one rule, change-unreported (RFC 7162 3.2:
under QRESYNC its tagged OK [HIGHESTMODSEQ n] of a STORE can cover another
session's change it reports only in the next command, so a client that
loses its connection there would never see that change); that rule is
reported for Dovecot, not failed on (docs/compat.md).
"""

import asyncio
import os
import sys

from dovecotenv import Dovecot
from loftenv import SANITIZE, Loft, Results
import imapstress

R = Results()
USERS = {'stress%d@example.test' % i: 'Stress-Password-%d-xyz' % i for i in range(1, 4)}
CLIENTS = 50
SECONDS = float(os.environ.get('LOFT_STRESS_SECONDS', '20' if SANITIZE else '60'))
DOVECOT_SECONDS = float(os.environ.get('LOFT_STRESS_DOVECOT_SECONDS', '15'))
# Dovecot 2.3's own: a flag change at a MODSEQ it already announced as
# HIGHESTMODSEQ is sometimes never sent (change-unreported); a session
# that cached flags then and resyncs with QRESYNC sees the same miss
# (qresync-stale). Both stay violations for Loft.
DOVECOT_OWN = {'change-unreported', 'qresync-stale'}


def run(port, seconds):
    asyncio.run(imapstress.seed('127.0.0.1', port, USERS, per_mailbox=25))
    return asyncio.run(imapstress.run('127.0.0.1', port, USERS, CLIENTS, seconds,
                                      logout_every=25, heavy_share=5))


problems = imapstress.selftest()
R.check('the checker flags each broken rule, and only those', not problems, problems)

with Loft(users=USERS, extra={'': {'log_level': 'info'},
                              'limits': {'io_threads': '2', 'worker_threads': '8'}}) as env:
    rep = run(env.port('imap'), SECONDS)
    print('loft: %.0f ops/s over %.0f s' % (rep.ops / rep.elapsed, rep.elapsed))
    print(rep.summary())
    R.check('clients did work', rep.ops > CLIENTS * 10, rep.ops)
    R.check('logins happened (both session styles)', rep.logins > CLIENTS, rep.logins)
    R.check('0 violations', not rep.rule_counts, '\n' + rep.details(8))
    R.check('0 NO [SERVERBUG]', not rep.serverbugs, '\n' + rep.details(8))
    R.check('no client errors', not rep.errors, rep.errors[:5])
    for rule in ('qresync-select', 'silent-store', 'store-result', 'flags-vs-model'):
        R.check('rule %s was exercised' % rule, rep.checks[rule] > 0, dict(rep.checks))
    errors = [l for l in env.log().splitlines() if ' error ' in l or 'ERROR' in l
              or 'AddressSanitizer' in l or 'runtime error' in l]
    R.check("loftd's log has no errors", not errors, errors[:10])

def dovecot_round():
    with Dovecot(users=USERS, extra='mail_max_userip_connections = 200\n') as dc:
        rep = run(dc.ports['imap'], DOVECOT_SECONDS)
    print('dovecot: %.0f ops/s over %.0f s' % (rep.ops / rep.elapsed, rep.elapsed))
    print(rep.summary())
    other = {k: n for k, n in rep.rule_counts.items() if k not in DOVECOT_OWN}
    shown = [v for v in rep.violations if v[0] in other]
    for rule, who, detail, trace in shown[:8]:
        print('--- %s (%s): %s' % (rule, who, detail))
        print('\n'.join('    ' + t for t in trace))
    return rep, other


if not SANITIZE and Dovecot.available():
    # Dovecot broke modseq-back once in CI (2026-12-06, one violation in
    # 17,246 operations; not once in 42 rounds run here since). The round
    # shows the checker does not flag what Dovecot does legally; one rare
    # event is as likely Dovecot's race as the checker's, so a round with
    # another rule broken is printed in full (for whoever looks next) and
    # run again, and the second round must be clean: a checker that
    # flags legal behaviour keeps doing it.
    rep, other = dovecot_round()
    if other or rep.serverbugs:
        print('Dovecot broke a rule besides its own; running it once more')
        rep, other = dovecot_round()
    R.check('Dovecot: no violations besides its own %s' % sorted(DOVECOT_OWN),
            not other and not rep.serverbugs, '\n' + rep.details(8))
    R.check('Dovecot: no client errors', not rep.errors, rep.errors[:5])

sys.exit(R.finish())
