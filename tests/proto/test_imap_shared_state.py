#!/usr/bin/env python3
"""Shared mailboxes over IMAP (issue 15), the state a reader keeps of
another account's mailboxes:
- subscriptions: SUBSCRIBE "Other Users/alice@example.test/..." shows as
  \\Subscribed in LSUB, LIST (SUBSCRIBED) and LIST ... RETURN (SUBSCRIBED),
  under the one form of its name; a subscribed mailbox the reader can no
  longer see is \\NonExistent (as a missing one); UNSUBSCRIBE needs no
  right;
- names: under `namespace = inbox`, STATUS and LIST-STATUS name another
  account's mailbox as "Other Users/..." (no INBOX. rewriting);
- \\Seen mode: `loftctl mailbox set ... seen=shared` raises the messages'
  modseqs, so a reader with CONDSTORE learns its \\Seen changed;
- MOVE within the owner's mail keeps every reader's own \\Seen."""

import re
import sys

from imapconv import Conv
from loftenv import Loft, Results

ALICE, APW = 'alice@example.test', 'tea-party-rabbit-hole'
BOB, BPW = 'bob@example.test', 'can-we-fix-it-yes'
BILLS = 'Other Users/alice@example.test/Family/Bills'
OLD = 'Other Users/alice@example.test/Family/Old'
MSG = 'Subject: bills\r\nFrom: a@example.test\r\n\r\nelectricity\r\n'

r = Results()


def append(c, mailbox):
    _, t = c.run('APPEND "%s" {%d+}\r\n%s' % (mailbox, len(MSG), MSG), 'OK')
    m = re.search(r'APPENDUID \d+ (\d+)', t or '')
    return int(m.group(1)) if m else None


def modseqs(lines):
    return {int(m.group(1)): int(m.group(2)) for m in
            (re.search(r'UID (\d+).*MODSEQ \((\d+)\)', l) for l in lines) if m}


def flags_of(lines):
    out = {}
    for l in lines:
        u, f = re.search(r'UID (\d+)', l), re.search(r'FLAGS \(([^)]*)\)', l)
        if u and f:
            out[int(u.group(1))] = f.group(1)
    return out


def share(env):
    """alice: Family/Bills and Family/Old, bob holds lrs on both."""
    a = Conv(env.raw('imap'), r)
    a.login(ALICE, APW)
    a.run('CREATE Family/Bills', 'OK')
    a.run('CREATE Family/Old', 'OK')
    a.run('CREATE Family/Secret', 'OK')
    for box in ('Family/Bills', 'Family/Old', 'Family/Secret'):
        a.run('SETACL %s bob@example.test lrs' % box, 'OK')
    return a


users = {ALICE: APW, BOB: BPW}

# ---- subscriptions, seen mode, MOVE ------------------------------------
with Loft(users=users) as env:
    a = share(env)
    u1 = append(a, 'Family/Bills')
    u2 = append(a, 'Family/Bills')
    b = Conv(env.raw('imap'), r)
    b.login(BOB, BPW)

    # subscriptions to another account's mailboxes (RFC 5258, RFC 3501)
    b.run('SUBSCRIBE "Other Users/ALICE@example.test/Family/Bills"', 'OK',
          name='SUBSCRIBE (owner in upper case)')
    b.run('SUBSCRIBE "%s"' % 'Other Users/alice@example.test/Family/Secret', 'OK')
    b.run('SUBSCRIBE "Other Users/alice@example.test/Nope"', r'NO \[NONEXISTENT\]',
          name='SUBSCRIBE of a missing mailbox')
    b.run('LSUB "" "*"', 'OK',
          [r'^\* LSUB \(\) "/" "%s"$' % BILLS],
          absent=[r'ALICE', r'INBOX\.Other', r'Nope'], name='LSUB shows it')
    b.run('LIST (SUBSCRIBED) "" "*"', 'OK',
          [r'^\* LIST \(\\HasNoChildren \\Subscribed\) "/" "%s"$' % BILLS],
          absent=[r'Family/Old', r'"Other Users"$'],
          name='LIST (SUBSCRIBED) marks it')
    b.run('LIST "" "Other Users/*" RETURN (SUBSCRIBED)', 'OK',
          [r'^\* LIST \(\\HasNoChildren \\Subscribed\) "/" "%s"$' % BILLS,
           r'^\* LIST \(\\HasNoChildren\) "/" "%s"$' % OLD],
          name='LIST RETURN (SUBSCRIBED) marks it')
    b.run('LIST (SUBSCRIBED) "" "Other Users/%"', 'OK', absent=[r'Bills'],
          name='LIST (SUBSCRIBED) applies the pattern')
    # the right goes: the name stays subscribed, as a missing mailbox
    a.run('DELETEACL Family/Secret bob@example.test', 'OK')
    b.run('LIST (SUBSCRIBED) "" "*"', 'OK',
          [r'^\* LIST \(\\NonExistent \\Subscribed\) "/"'
           r' "Other Users/alice@example.test/Family/Secret"$'],
          name='hidden subscribed mailbox is \\NonExistent')
    b.run('UNSUBSCRIBE "Other Users/alice@example.test/Family/Secret"', 'OK',
          name='UNSUBSCRIBE without rights')
    b.run('LSUB "" "*"', 'OK', absent=[r'Secret'], name='unsubscribed')

    # seen mode: a reader's own \Seen, then the mailbox's shared one
    b.run('ENABLE CONDSTORE', 'OK')
    b.run('SELECT "%s"' % BILLS, 'OK')
    lines, _ = b.run('UID STORE %d +FLAGS (\\Seen)' % u1, 'OK',
                     [r'FLAGS \([^)]*\\Seen'])
    before = modseqs(lines).get(u1, 0)
    lines, _ = b.run('UID FETCH 1:* (FLAGS MODSEQ)', 'OK')
    high = max(modseqs(lines).values())
    b.run('UNSELECT', 'OK')
    rc, out, err = env.loftctl('mailbox', 'set', ALICE + '/Family/Bills',
                               'seen=shared')
    r.check('loftctl mailbox set seen=shared', rc == 0, out + err)
    b.run('SELECT "%s" (CONDSTORE)' % BILLS, 'OK')
    lines, _ = b.run('UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)' % high, 'OK')
    got = flags_of(lines)
    r.check('seen=shared: the \\Seen change reaches CONDSTORE (CHANGEDSINCE)',
            u1 in got and '\\Seen' not in got[u1], lines)
    ms = modseqs(lines)
    r.check('seen=shared: modseq raised', ms.get(u1, 0) > max(high, before), lines)
    b.run('UNSELECT', 'OK')
    rc, out, err = env.loftctl('mailbox', 'set', ALICE + '/Family/Bills',
                               'seen=per-user')
    r.check('loftctl mailbox set seen=per-user', rc == 0, out + err)

    # MOVE within alice's mail keeps bob's own \Seen
    b.run('SELECT "%s"' % BILLS, 'OK')
    b.run('UID FETCH %d (FLAGS)' % u1, 'OK', [r'\\Seen'],
          name='per-user again: bob has seen it')
    b.run('UNSELECT', 'OK')
    a.run('SELECT Family/Bills', 'OK')
    a.run('UID FETCH %d (FLAGS)' % u1, 'OK', absent=[r'\\Seen'],
          name='alice has not')
    a.run('UID MOVE %d:%d Family/Old' % (u1, u2), 'OK')
    a.run('UNSELECT', 'OK')
    b.run('SELECT "%s"' % OLD, 'OK', [r'^\* 2 EXISTS'])
    lines, _ = b.run('FETCH 1:2 (FLAGS)', 'OK')
    r.check('MOVE keeps the reader\'s \\Seen',
            len(lines) >= 2 and '\\Seen' in lines[0] and '\\Seen' not in lines[1],
            lines)
    b.run('STATUS "%s" (UNSEEN)' % OLD, 'OK', [r'UNSEEN 1\)'],
          name='reader\'s UNSEEN after MOVE')
    b.run('STATUS "%s" (MESSAGES UNSEEN)' % BILLS, 'OK', [r'MESSAGES 0 UNSEEN 0'])
    a.run('STATUS Family/Old (UNSEEN)', 'OK', [r'UNSEEN 2\)'],
          name='owner\'s UNSEEN unchanged by the MOVE')
    b.run('LOGOUT')
    a.run('LOGOUT')

# ---- names under namespace = inbox ----------------------------------------
with Loft(users=users, extra={'imap': {'namespace': 'inbox'}}) as env:
    a = Conv(env.raw('imap'), r)
    a.login(ALICE, APW)
    a.run('CREATE INBOX.Family.Bills', 'OK')
    a.run('SETACL INBOX.Family.Bills bob@example.test lr', 'OK')
    append(a, 'INBOX.Family.Bills')
    b = Conv(env.raw('imap'), r)
    b.login(BOB, BPW)
    b.run('STATUS "%s" (MESSAGES UNSEEN)' % BILLS, 'OK',
          [r'^\* STATUS "%s" \(MESSAGES 1 UNSEEN 1\)$' % BILLS],
          absent=[r'INBOX\.Other'], name='namespace = inbox: STATUS name')
    b.run('LIST "" "Other Users/*" RETURN (STATUS (MESSAGES))', 'OK',
          [r'^\* LIST \(\\HasNoChildren\) "/" "%s"$' % BILLS,
           r'^\* STATUS "%s" \(MESSAGES 1\)$' % BILLS],
          absent=[r'INBOX\.Other'], name='namespace = inbox: LIST-STATUS name')
    b.run('SUBSCRIBE "%s"' % BILLS, 'OK')
    b.run('LSUB "" "*"', 'OK', [r'^\* LSUB \(\) "/" "%s"$' % BILLS],
          absent=[r'INBOX\.Other'], name='namespace = inbox: LSUB name')
    b.run('LOGOUT')
    a.run('LOGOUT')

sys.exit(r.finish())
