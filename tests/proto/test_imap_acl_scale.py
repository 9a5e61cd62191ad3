#!/usr/bin/env python3
"""Issue 15 at its sizes ("Bad input it must survive"): 10,000 SETACL of
distinct accounts on one mailbox, and a group of 10,000 members.

SETACL: with the default [sharing] max_acl_entries (1000) the first
1000 are stored, every later one answers NO [LIMIT] and stores nothing;
GETACL lists exactly the stored ones; a stored grantee sees the mailbox
(LIST, MYRIGHTS, SELECT), a refused one sees nothing (NONEXISTENT, as a
missing mailbox); an existing entry still changes at the limit.

Group: `loftctl group add NAME@DOMAIN ADDRESS...` with 10,000 members is
one transaction (an unknown address among them: nothing made, the
address named); `group members` lists them all; a $group grant reaches a
member (LIST, MYRIGHTS, SELECT) and not a non-member; leaving the group
and deleting it take the rights away.

Each step must answer within a bound meant for a loaded machine, and the
times are printed. The accounts (grantees, members) are made by SQL: the
test is of the ACL, not of `user add`. LOFT_ACL_SCALE=N changes both
sizes (default 10,000)."""

import os
import re
import sys
import time

from imapconv import Conv
from loftenv import Loft, Results, SLOW

N = int(os.environ.get('LOFT_ACL_SCALE', '10000'))
LIMIT = 1000                  # [sharing] max_acl_entries' default
ALICE, APW = 'alice@example.test', 'tea-party-rabbit-hole'
BOB, BPW = 'bob@example.test', 'can-we-fix-it-yes'
CAROL, CPW = 'carol@example.test', 'down-the-chimney-7'
DAVE, DPW = 'dave@example.test', 'not-in-any-group-9'
BOX = 'Other Users/alice@example.test/Big'
TEAMBOX = 'Other Users/alice@example.test/Team'
# a bound for one IMAP command on a loaded machine, and one for a batch
CMD_S = 20 * SLOW

r = Results()


def member(i):
    return 'm%05d@example.test' % i


def timed(what, bound, fn, *args):
    t0 = time.monotonic()
    out = fn(*args)
    dt = time.monotonic() - t0
    print('%s: %.2f s' % (what, dt), flush=True)
    r.check('%s within %d s' % (what, bound), dt < bound, '%.1f s' % dt)
    return out


def pipelined(c, commands, chunk=250):
    """Sends commands chunk by chunk (each chunk at once), returns each
    tagged reply's text after the tag, in order."""
    replies = []
    for at in range(0, len(commands), chunk):
        tags = []
        data = []
        for cmd in commands[at:at + chunk]:
            tag = c.next_tag()
            tags.append(tag)
            data.append('%s %s\r\n' % (tag, cmd))
        c.send(''.join(data))
        for tag in tags:
            while True:
                line = c.read_response(CMD_S)
                if line.startswith(tag + ' '):
                    replies.append(line[len(tag) + 1:].rstrip('\r\n'))
                    break
    return replies


def acl_of(c, mailbox):
    lines, _ = c.run('GETACL %s' % mailbox, 'OK', timeout=CMD_S)
    words = ' '.join(l for l in lines if l.startswith('* ACL ')) \
        .replace('"', '').split()[3:]
    return dict(zip(words[::2], words[1::2]))


users = {ALICE: APW, BOB: BPW, CAROL: CPW, DAVE: DPW}
with Loft(users=users) as env:
    # N accounts besides the four, with no password (never log in)
    env.accounts_sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
        " WHERE i < ?) INSERT INTO users(address, domain_id, password_hash,"
        " created) SELECT 'm' || substr(CAST(100000 + i AS TEXT), 2) ||"
        " '@example.test', (SELECT id FROM domains WHERE name ="
        " 'example.test'), '{NOLOGIN}', 0 FROM n", (N,))
    made = env.accounts_sql("SELECT count(*) FROM users WHERE address"
                            " LIKE 'm_____@example.test'")[0][0]
    r.check('%d accounts made' % N, made == N, made)

    a = Conv(env.raw('imap'), r)
    a.login(ALICE, APW)
    a.run('CREATE Big', 'OK')
    a.run('CREATE Team', 'OK')

    # ---- N SETACL on one mailbox: the first LIMIT kept, the rest LIMIT --
    # bob is the 500th grantee (kept), carol the 5000th (past the limit)
    ids = [member(i) for i in range(1, N + 1)]
    ids[499] = BOB
    if N >= 5000:
        ids[4999] = CAROL
    replies = timed('%d SETACL, %d stored' % (N, min(N, LIMIT)), 600 * SLOW,
                    pipelined, a,
                    ['SETACL Big %s lr' % i for i in ids[:LIMIT]])
    replies += timed('%d SETACL past the limit' % max(0, N - LIMIT),
                     600 * SLOW, pipelined, a,
                     ['SETACL Big %s lr' % i for i in ids[LIMIT:]])
    ok = [i for i, rep in enumerate(replies) if rep.startswith('OK')]
    limit = [i for i, rep in enumerate(replies)
             if re.match(r'NO \[LIMIT\]', rep)]
    r.check('the first %d SETACL OK' % min(N, LIMIT),
            ok == list(range(min(N, LIMIT))), (len(ok), ok[:3], ok[-3:]))
    r.check('every later one NO [LIMIT]',
            limit == list(range(LIMIT, N)),
            (len(limit), [rep for rep in replies
                          if not rep.startswith('OK')][:3]))
    hints = env.accounts_sql(
        "SELECT count(*) FROM acl_hints WHERE owner = (SELECT id FROM users"
        " WHERE address = ?)", (ALICE,))[0][0]
    r.check('the reverse index holds the stored grants only (no hint for'
            ' a refused one)', hints == min(N, LIMIT), hints)
    acl = timed('GETACL of %d entries' % min(N, LIMIT), CMD_S, acl_of, a,
                'Big')
    want = {i: 'lr' for i in ids[:LIMIT]}
    want[ALICE] = acl.get(ALICE, '?')
    r.check('GETACL: exactly the stored entries and the owner',
            acl == want and len(acl) == min(N, LIMIT) + 1,
            (len(acl), len(want),
             sorted(set(acl) ^ set(want))[:5]))
    r.check('the owner holds every right',
            set(acl.get(ALICE, '')) >= set('lrswipkxtea'), acl.get(ALICE))
    a.run('SETACL Big %s lrs' % BOB, 'OK', timeout=CMD_S,
          name='an existing entry still changes at the limit')
    a.run('SETACL Big authenticated l', r'NO \[LIMIT\]', timeout=CMD_S,
          name='a new identifier at the limit: NO [LIMIT]')
    r.check('bob now lrs', acl_of(a, 'Big').get(BOB) == 'lrs')

    b = Conv(env.raw('imap'), r)
    b.login(BOB, BPW)
    timed('a stored grantee\'s LIST', CMD_S, b.run, 'LIST "" "*"', 'OK',
          [r'Other Users/alice@example\.test/Big'], (), None, CMD_S)
    b.run('MYRIGHTS "%s"' % BOX, 'OK', [r'MYRIGHTS .* "?lrs"?\s*$'],
          timeout=CMD_S)
    timed('a stored grantee\'s SELECT', CMD_S, b.run,
          'SELECT "%s"' % BOX, r'OK \[READ-(ONLY|WRITE)\]', (), (), None, CMD_S)
    b.run('UNSELECT', 'OK')
    cc = Conv(env.raw('imap'), r)
    cc.login(CAROL, CPW)
    if N >= 5000:
        cc.run('LIST "" "*"', 'OK', absent=[r'/Big'], timeout=CMD_S,
               name='a refused grantee\'s LIST: nothing of it')
        cc.run('SELECT "%s"' % BOX, r'NO \[NONEXISTENT\]', timeout=CMD_S,
               name='a refused grantee\'s SELECT: as a missing mailbox')
        cc.run('MYRIGHTS "%s"' % BOX, r'NO \[NONEXISTENT\]', timeout=CMD_S)

    # ---- a group of N members --------------------------------------------
    members = [member(i) for i in range(1, N + 1)] + [CAROL]
    rc, out, err = env.loftctl('group', 'add', 'crowd@example.test',
                               *(members[:N // 2] + ['nobody@example.test']
                                 + members[N // 2:]), timeout=300)
    r.check('group add with an unknown member: refused', rc != 0, out)
    r.check('... naming it', 'nobody@example.test' in err + out, err + out)
    rc, out, err = env.loftctl('group', 'list', 'example.test')
    r.check('... and nothing made', 'crowd@' not in out, out)
    rc, out, err = timed('group add with %d members' % (N + 1), 300 * SLOW,
                         lambda: env.loftctl('group', 'add',
                                             'crowd@example.test', *members,
                                             timeout=300))
    r.check('group add OK', rc == 0, err)
    rc, out, err = env.loftctl('group', 'list', 'example.test')
    r.check('group list counts them',
            'crowd@example.test %d members' % (N + 1) in out, out)
    rc, out, err = timed('group members', 60 * SLOW, env.loftctl,
                         'group', 'members', 'crowd@example.test')
    r.check('group members lists every one',
            out.split() == sorted(members), (len(out.split()), N + 1))
    a.run('SETACL Team $crowd lrs', 'OK', timeout=CMD_S)
    timed('a member\'s LIST', CMD_S, cc.run, 'LIST "" "*"', 'OK',
          [r'Other Users/alice@example\.test/Team'], (), None, CMD_S)
    cc.run('MYRIGHTS "%s"' % TEAMBOX, 'OK', [r'MYRIGHTS .* "?lrs"?\s*$'],
           timeout=CMD_S)
    timed('a member\'s SELECT', CMD_S, cc.run, 'SELECT "%s"' % TEAMBOX,
          r'OK \[READ-(ONLY|WRITE)\]', (), (), None, CMD_S)
    cc.run('UNSELECT', 'OK')
    d = Conv(env.raw('imap'), r)
    d.login(DAVE, DPW)
    d.run('LIST "" "*"', 'OK', absent=[r'/Team', r'/Big'], timeout=CMD_S,
          name='a non-member sees nothing')
    d.run('SELECT "%s"' % TEAMBOX, r'NO \[NONEXISTENT\]', timeout=CMD_S)
    rc, out, err = env.loftctl('group', 'leave', 'crowd@example.test', CAROL)
    r.check('group leave', rc == 0, err)
    cc.run('LIST "" "*"', 'OK', absent=[r'/Team'], timeout=CMD_S,
           name='after leaving: nothing of it')
    rc, out, err = env.loftctl('group', 'join', 'crowd@example.test', CAROL)
    cc.run('LIST "" "*"', 'OK', [r'/Team'], timeout=CMD_S,
           name='joined again: listed')
    rc, out, err = timed('group del of %d members' % (N + 1), 60 * SLOW,
                         env.loftctl, 'group', 'del', 'crowd@example.test')
    r.check('group del', rc == 0, err)
    cc.run('SELECT "%s"' % TEAMBOX, r'NO \[NONEXISTENT\]', timeout=CMD_S,
           name='the group gone: no rights')
    a.run('GETACL Team', 'OK', absent=[r'crowd'], timeout=CMD_S,
          name='the deleted group\'s entry goes from GETACL')
    for c in (a, b, cc, d):
        c.run('LOGOUT', 'OK')
sys.exit(r.finish())
