#!/usr/bin/env python3
"""NOTIFY (RFC 5465) on other accounts' mailboxes (issue 9): bob watches
"Other Users/alice@example.test/..." and "Shared/sales" under his rights
(RFC 5465 5, RFC 4314): STATUS for a change of a mailbox he holds l and r
on; nothing for one he cannot see, or sees without r; a granted l comes
as a LIST (as a created mailbox), a revoked one as LIST \\NonExistent,
after which nothing more; a revoked r stops the STATUS; the subtree,
mailboxes and subscribed filters reach other namespaces, personal does
not; a user with no rights gets nothing; `loftctl kick` of the owner does
not wait for the watcher. "Nothing" is checked in order: an event that
must come is made after the one that must not, and must come first."""

import re
import sys

from imapconv import Conv
from loftenv import Loft, Results, SLOW

ALICE, APW = 'alice@example.test', 'tea-party-rabbit-hole'
BOB, BPW = 'bob@example.test', 'can-we-fix-it-yes'
CAROL, CPW = 'carol@example.test', 'down-the-chimney-7'
OU = 'Other Users/alice@example.test/'
BILLS, SECRET, LOOKUP = OU + 'Family/Bills', OU + 'Secret', OU + 'Lookup'
r = Results()
WAIT = 60 * SLOW     # a push is waited for, never slept for


def msg(subject):
    return 'Subject: %s\r\nFrom: a@example.test\r\n\r\nhello\r\n' % subject


def append(c, box, subject='x'):
    text = msg(subject)
    c.run('APPEND "%s" {%d+}\r\n%s' % (box, len(text), text), 'OK')




def status_of(box):
    return r'^\* STATUS "%s" \(' % re.escape(box)


users = {ALICE: APW, BOB: BPW, CAROL: CPW}
with Loft(users=users) as env:
    rc, out, err = env.loftctl('shared', 'add', 'sales@example.test')
    r.check('shared address sales', rc == 0, out + err)
    rc, out, err = env.loftctl('acl', 'set', 'sales@example.test',
                               'alice@example.test', 'lri')
    r.check('alice may write to sales', rc == 0, out + err)
    rc, out, err = env.loftctl('acl', 'set', 'sales@example.test',
                               'bob@example.test', 'lr')
    r.check('bob may read sales', rc == 0, out + err)
    a = Conv(env.raw('imap'), r, timeout=WAIT)
    a.login(ALICE, APW)
    for box in ('Family/Bills', 'Secret', 'Lookup'):
        a.run('CREATE %s' % box, 'OK')
    a.run('SETACL Family/Bills bob@example.test lr', 'OK')
    a.run('SETACL Lookup bob@example.test l', 'OK')
    append(a, 'Family/Bills', 'first')

    b = Conv(env.raw('imap'), r, timeout=WAIT)
    b.login(BOB, BPW)
    b.run('ENABLE CONDSTORE', 'OK')

    # ---- subtree of the namespace's root, with STATUS ---------------------
    lines, _ = b.run('NOTIFY SET STATUS (subtree ("Other Users" "Shared") '
                     '(MessageNew MessageExpunge FlagChange MailboxName))', 'OK',
                     [status_of(BILLS) + r'MESSAGES 1 UIDNEXT \d+ UIDVALIDITY \d+'
                      r' UNSEEN 1 HIGHESTMODSEQ \d+\)$',
                      status_of('Shared/sales') + r'MESSAGES 0 '],
                     absent=[r'Secret', r'Lookup', r'"INBOX"'],
                     name='NOTIFY SET STATUS: what bob may read only')
    append(a, 'Secret', 'hidden')
    append(a, 'Lookup', 'no r')
    append(a, 'Family/Bills', 'second')
    b.pushed(status_of(BILLS) + r'MESSAGES 2 .*UNSEEN 2 HIGHESTMODSEQ \d+\)',
           'STATUS for a mailbox with l and r',
           before=r'Secret|Lookup')
    append(a, 'Shared/sales', 'to the team')
    b.pushed(status_of('Shared/sales') + r'MESSAGES 1 ',
           'STATUS for a shared address\'s mailbox')
    a.run('SELECT Family/Bills', 'OK')
    a.run('STORE 1 +FLAGS.SILENT (\\Flagged)', 'OK')
    b.pushed(status_of(BILLS) + r'MESSAGES 2 ', 'STATUS for FlagChange')
    a.run('STORE 1 +FLAGS.SILENT (\\Deleted)', 'OK')
    a.run('EXPUNGE', 'OK')
    b.pushed(status_of(BILLS) + r'MESSAGES 1 ', 'STATUS for MessageExpunge')
    a.run('UNSELECT', 'OK')

    # ---- l granted and revoked: MailboxName (RFC 5465 5.4) ----------------
    a.run('SETACL Secret bob@example.test lr', 'OK')
    b.pushed(r'^\* LIST \(\\HasNoChildren\) "/" "%s"$' % SECRET,
           'granted l: LIST as a new mailbox')
    append(a, 'Secret', 'now visible')
    b.pushed(status_of(SECRET) + r'MESSAGES 2 ', 'STATUS once l and r are held')
    a.run('DELETEACL Secret bob@example.test', 'OK')
    b.pushed(r'^\* LIST \(\\NonExistent\) "/" "%s"$' % SECRET,
           'revoked l: LIST \\NonExistent')
    append(a, 'Secret', 'hidden again')
    # r revoked, l kept: no more STATUS
    a.run('SETACL Family/Bills bob@example.test l', 'OK')
    append(a, 'Family/Bills', 'no r any more')
    append(a, 'Shared/sales', 'marker 1')
    b.pushed(status_of('Shared/sales') + r'MESSAGES 2 ',
           'nothing after l or r is revoked', before=r'Secret|Bills"? \(')
    a.run('SETACL Family/Bills bob@example.test lr', 'OK')

    # ---- the owner's sessions end: the watcher is not one of them -------
    rc, out, err = env.loftctl('kick', ALICE)
    r.check('loftctl kick of the watched owner ends at once', rc == 0, out + err)
    a = Conv(env.raw('imap'), r, timeout=WAIT)
    a.login(ALICE, APW)
    append(a, 'Family/Bills', 'after the kick')
    b.pushed(status_of(BILLS) + r'MESSAGES 3 ', 'still watched after a kick')

    # ---- mailboxes: that one only; personal: none of others' ------------
    b.run('NOTIFY SET (mailboxes "%s" (MessageNew MessageExpunge)) '
          '(personal (MessageNew MessageExpunge))' % SECRET, 'OK')
    a.run('SETACL Secret bob@example.test lr', 'OK')
    append(a, 'Family/Bills', 'not in the list')
    append(a, 'Secret', 'in the list')
    b.pushed(status_of(SECRET), 'mailboxes: the named one',
           before=r'Bills|Shared')
    b.run('NOTIFY SET (personal (MessageNew MessageExpunge))', 'OK')
    append(a, 'Family/Bills', 'personal is bob\'s own')
    b.run('APPEND INBOX {%d+}\r\n%s' % (len(msg('own')), msg('own')), 'OK',
          absent=[r'Other Users'], name='personal: none of alice\'s')

    # ---- subscribed -------------------------------------------------------
    b.run('SUBSCRIBE "%s"' % BILLS, 'OK')
    b.run('NOTIFY SET (subscribed (MessageNew MessageExpunge))', 'OK')
    append(a, 'Secret', 'not subscribed')
    append(a, 'Family/Bills', 'subscribed')
    b.pushed(status_of(BILLS), 'subscribed: another account\'s mailbox',
           before=r'Secret')
    b.run('NOTIFY NONE', 'OK')

    # ---- a user with no rights on alice's mail gets nothing -------------
    c = Conv(env.raw('imap'), r, timeout=WAIT)
    c.login(CAROL, CPW)
    c.run('NOTIFY SET STATUS (subtree "Other Users/alice@example.test" '
          '(MessageNew MessageExpunge MailboxName)) (personal (MessageNew '
          'MessageExpunge))', 'OK', absent=[r'alice'],
          name='no rights: no STATUS at NOTIFY SET')
    append(a, 'Family/Bills', 'carol may not know')
    a.run('CREATE Family/New', 'OK')
    # every recorded event goes out before a tagged reply
    c.run('APPEND INBOX {%d+}\r\n%s' % (len(msg('c')), msg('c')), 'OK',
          absent=[r'alice'], name='no rights: nothing of alice\'s')
    c.run('NOOP', 'OK', absent=[r'alice'], name='no rights: nothing at NOOP')
    for s in (a, b, c):
        s.run('LOGOUT')

sys.exit(r.finish())
