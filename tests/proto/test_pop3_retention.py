#!/usr/bin/env python3
"""Server-side retention with a clock the test controls: `loftctl retention
run [ADDRESS] --now DATE` applies pop3_retention_days (counted from the
first RETR, removed as pop3_delete says), trash_retention_days and
junk_retention_days, and prints what it removed. What POP3 shows and what
the mailboxes hold (`loftctl user show`) is checked after each run."""

import datetime
import re
import sys

from loftenv import Results
from pop3client import Pop3, deliver, make_env, simple_message

R = Results()
USERS = {
    'alice@example.test': 'tea-party-rabbit-hole',   # trash (default)
    'bob@example.test': 'can-we-fix-it-yes',       # expunge
    'carol@example.test': 'ghost-of-christmas-past',   # hide
    'dave@example.test': 'open-the-pod-bay-doors',     # retention off
}


def mailboxes(env, address):
    rc, out, err = env.loftctl('user', 'show', address)
    counts = {}
    for m in re.finditer(r'^\s+(\S[^:]*): (\d+) messages', out, re.M):
        counts[m.group(1)] = int(m.group(2))
    return counts


def pop_stat(env, address):
    p = Pop3.connect(env)
    p.login(address, USERS[address])
    r = p.cmd('STAT')
    p.cmd('QUIT')
    p.close()
    m = re.match(rb'\+OK (\d+) ', r)
    return int(m.group(1)) if m else None


def retrieve(env, address, nums):
    p = Pop3.connect(env)
    p.login(address, USERS[address])
    for n in nums:
        st, lines = p.multi('RETR %d' % n)
        R.check('RETR %s %d' % (address, n), st.startswith(b'+OK'), st)
    p.cmd('QUIT')
    p.close()


def run(env, *args):
    rc, out, err = env.loftctl('retention', 'run', *args)
    return rc, out, err


def parse_report(out):
    rep = {}
    for m in re.finditer(r'^(\S+): pop3 removed (\d+), trash expunged (\d+), '
                         r'junk expunged (\d+)$', out, re.M):
        rep[m.group(1)] = tuple(int(x) for x in m.group(2, 3, 4))
    return rep


def main():
    with make_env(users=USERS, imap=False) as env:
        for addr, policy in (('alice', 'trash'), ('bob', 'expunge'),
                             ('carol', 'hide'), ('dave', 'trash')):
            address = addr + '@example.test'
            days = '0' if addr == 'dave' else '14'
            for kv in ('pop3_delete=' + policy, 'pop3_retention_days=' + days):
                rc, out, err = env.loftctl('user', 'set', address, kv)
                R.check('user set %s %s' % (address, kv), rc == 0, out + err)
            for i in range(3):
                deliver(env, address, simple_message(i + 1))
            retrieve(env, address, [1, 2])

        rc, out, err = run(env, 'alice@example.test', '--now', '+13d')
        R.check('13 days: nothing due', rc == 0 and
                parse_report(out).get('alice@example.test') == (0, 0, 0), out + err)
        R.check('13 days: POP3 still sees 3', pop_stat(env, 'alice@example.test') == 3)

        rc, out, err = run(env, 'alice@example.test', '--now', '+15d')
        R.check('15 days: trash policy removes the 2 retrieved', rc == 0 and
                parse_report(out).get('alice@example.test') == (2, 0, 0), out + err)
        R.check('only the named account in the report',
                list(parse_report(out)) == ['alice@example.test'], out)
        R.check('alice POP3 sees 1', pop_stat(env, 'alice@example.test') == 1)
        mb = mailboxes(env, 'alice@example.test')
        R.check('alice INBOX 1, Trash 2', mb.get('INBOX') == 1 and mb.get('Trash') == 2, mb)

        rc, out, err = run(env, '--now', '+15d')
        rep = parse_report(out)
        R.check('all accounts reported', rc == 0 and
                set(USERS) <= set(rep), out + err)
        R.check('bob: expunged 2', rep.get('bob@example.test') == (2, 0, 0), rep)
        R.check('carol: hidden 2', rep.get('carol@example.test') == (2, 0, 0), rep)
        R.check('dave: retention off', rep.get('dave@example.test') == (0, 0, 0), rep)
        R.check('alice: nothing more', rep.get('alice@example.test') == (0, 0, 0), rep)
        mb = mailboxes(env, 'bob@example.test')
        R.check('bob: gone from INBOX, not in Trash',
                mb.get('INBOX') == 1 and mb.get('Trash') == 0, mb)
        R.check('bob POP3 sees 1', pop_stat(env, 'bob@example.test') == 1)
        mb = mailboxes(env, 'carol@example.test')
        R.check('carol: INBOX keeps all 3 (hidden only from POP3)',
                mb.get('INBOX') == 3 and mb.get('Trash') == 0, mb)
        R.check('carol POP3 sees 1', pop_stat(env, 'carol@example.test') == 1)
        R.check('dave POP3 sees 3', pop_stat(env, 'dave@example.test') == 3)

        # Trash retention (30 days by default) counts from the move.
        rc, out, err = run(env, 'alice@example.test', '--now', '+50d')
        R.check('trash retention: 2 expunged',
                parse_report(out).get('alice@example.test') == (0, 2, 0), out + err)
        mb = mailboxes(env, 'alice@example.test')
        R.check('alice Trash empty', mb.get('Trash') == 0, mb)

        # Junk retention, with an explicit date.
        deliver(env, 'dave+Junk@example.test', simple_message(9))
        R.check('dave Junk 1', mailboxes(env, 'dave@example.test').get('Junk') == 1)
        rc, out, err = env.loftctl('user', 'set', 'dave@example.test', 'junk_retention_days=5')

        when = (datetime.datetime.now(datetime.timezone.utc)
                + datetime.timedelta(days=6)).strftime('%Y-%m-%dT%H:%M:%SZ')
        rc, out, err = run(env, 'dave@example.test', '--now', when)
        R.check('junk retention: 1 expunged',
                parse_report(out).get('dave@example.test') == (0, 0, 1), out + err)

        # Errors
        rc, out, err = run(env, 'nobody@example.test')
        R.check('unknown account fails', rc != 0 and err.strip(), (rc, err))
        rc, out, err = run(env, '--now', 'yesterday')
        R.check('bad --now fails', rc != 0 and 'now' in err, (rc, err))
        rc, out, err = run(env, '--now')
        R.check('--now without a date fails', rc != 0, (rc, err))
        rc, out, err = run(env, 'a@example.test', 'b@example.test')
        R.check('two addresses: usage', rc == 2, (rc, err))
    return R.finish()


if __name__ == '__main__':
    sys.exit(main())
