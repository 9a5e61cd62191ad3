#!/usr/bin/env python3
"""Issue 15's limits on shared mailboxes: [sharing] max_acl_entries (SETACL
past it: NO [LIMIT], the earlier entries kept, an existing entry still
changes, a freed place takes a new one), and the quota of a shared
folder is its owner's (a grantee's APPEND into the owner's full account:
NO [OVERQUOTA], nothing added; the grantee's own mail is not held back);
LIST-STATUS across owners (STATUS only with r, the reader's own UNSEEN,
the common one under seen=shared); a reader's [UNSEEN n] through every
change of its \Seen, new mail, expunges and a mailbox made again;
[imap] other_users_namespace and shared_namespace empty turn the two
namespaces off (NIL in NAMESPACE, nothing of them in LIST or SELECT)."""

import re
import sys

from imapconv import Conv
from loftenv import Loft, Results

ALICE, APW = 'alice@example.test', 'tea-party-rabbit-hole'
BOB, BPW = 'bob@example.test', 'can-we-fix-it-yes'
CAROL, CPW = 'carol@example.test', 'down-the-chimney-7'
BOX = 'Other Users/alice@example.test/Box'
MSG = 'Subject: limits\r\nFrom: a@example.test\r\n\r\nbody\r\n'

r = Results()


def append(c, mailbox, tagged='OK'):
    tag = c.next_tag()
    c.send('%s APPEND "%s" {%d}\r\n' % (tag, mailbox, len(MSG)))
    c.expect(r'^\+', name='continuation')
    c.send(MSG + '\r\n')
    return c.collect(tag, tagged, name='APPEND %s -> %s' % (mailbox, tagged))


def acl_ids(c):
    lines, _ = c.run('GETACL Box', 'OK')
    words = ' '.join(l for l in lines if l.startswith('* ACL ')) \
        .replace('"', '').split()[3:]
    return dict(zip(words[::2], words[1::2]))


def messages(c, mailbox):
    lines, _ = c.run('STATUS "%s" (MESSAGES)' % mailbox, 'OK')
    m = re.search(r'MESSAGES (\d+)', ' '.join(lines))
    return int(m.group(1)) if m else None


users = {ALICE: APW, BOB: BPW, CAROL: CPW}
with Loft(users=users, extra={'sharing': {'max_acl_entries': '3'}}) as env:
    a = Conv(env.raw('imap'), r)
    a.login(ALICE, APW)
    b = Conv(env.raw('imap'), r)
    b.login(BOB, BPW)
    a.run('CREATE Box', 'OK')

    # ---- max_acl_entries = 3: stored entries, the owner's not among them --
    a.run('SETACL Box bob@example.test lr', 'OK')
    a.run('SETACL Box -bob@example.test w', 'OK')
    a.run('SETACL Box anyone l', 'OK')
    before = acl_ids(a)
    a.run('SETACL Box carol@example.test lr', r'NO \[LIMIT\]',
          name='a fourth entry: NO [LIMIT]')
    a.run('SETACL Box authenticated l', r'NO \[LIMIT\]',
          name='another fourth entry: NO [LIMIT]')
    r.check('the earlier entries are kept', acl_ids(a) == before,
            (acl_ids(a), before))
    r.check('nothing of the refused ones', 'carol@example.test' not in
            acl_ids(a) and 'authenticated' not in acl_ids(a), acl_ids(a))
    a.run('SETACL Box bob@example.test lri', 'OK',
          name='an existing entry still changes at the limit')
    r.check('bob now lri', acl_ids(a).get('bob@example.test') == 'lri',
            acl_ids(a))
    a.run('DELETEACL Box anyone', 'OK')
    a.run('SETACL Box carol@example.test lr', 'OK',
          name='a freed place takes a new entry')
    r.check('carol listed', acl_ids(a).get('carol@example.test') == 'lr',
            acl_ids(a))

    # ---- the quota of a shared folder is its owner's --------------------------
    append(a, 'Box')
    rc, out, err = env.loftctl('user', 'set', ALICE, 'quota_messages=1')
    r.check('user set quota_messages=1', rc == 0, out + err)
    b.run('MYRIGHTS "%s"' % BOX, 'OK', [r'MYRIGHTS .* lri$'])
    append(b, BOX, r'NO \[OVERQUOTA\]')
    r.check("nothing added to alice's folder", messages(a, 'Box') == 1,
            messages(a, 'Box'))
    r.check('bob sees the same', messages(b, BOX) == 1, messages(b, BOX))
    append(b, 'INBOX', 'OK')
    r.check("bob's own quota is not alice's", messages(b, 'INBOX') == 1,
            messages(b, 'INBOX'))
    rc, out, err = env.loftctl('user', 'set', ALICE, 'quota_messages=none')
    r.check('user set quota_messages=none', rc == 0, out + err)
    append(b, BOX, 'OK')
    r.check("alice's folder takes it once her quota has room",
            messages(a, 'Box') == 2, messages(a, 'Box'))

    # ---- LIST-STATUS across owners: STATUS only with r, the reader's own
    # UNSEEN, the common one once the mailbox's \Seen is shared ---------------
    for box, rights in (('Lonly', 'l'), ('Lread', 'lrs')):
        a.run('CREATE %s' % box, 'OK')
        append(a, box)
        append(a, box)
        a.run('SETACL %s bob@example.test %s' % (box, rights), 'OK')
    ls = 'LIST "" "Other Users/alice@example.test/L*" RETURN (STATUS' \
         ' (MESSAGES UNSEEN))'
    b.run(ls, 'OK', [r'^\* LIST .* "Other Users/alice@example.test/Lonly"$',
                     r'^\* STATUS "Other Users/alice@example.test/Lread"'
                     r' \(MESSAGES 2 UNSEEN 2\)$'],
          absent=[r'^\* STATUS "Other Users/alice@example.test/Lonly"'],
          name='LIST-STATUS: STATUS only where r is held')
    b.run('SELECT "Other Users/alice@example.test/Lread"', 'OK')
    b.run('STORE 1 +FLAGS.SILENT (\\Seen)', 'OK')
    b.run('UNSELECT', 'OK')
    b.run(ls, 'OK', [r'^\* STATUS "Other Users/alice@example.test/Lread"'
                     r' \(MESSAGES 2 UNSEEN 1\)$'],
          name="LIST-STATUS: the reader's own UNSEEN")
    a.run('STATUS Lread (UNSEEN)', 'OK', [r'UNSEEN 2\)$'],
          name="the owner's UNSEEN unchanged")
    rc, out, err = env.loftctl('mailbox', 'set', ALICE + '/Lread',
                               'seen=shared')
    r.check('mailbox set seen=shared', rc == 0, out + err)
    b.run(ls, 'OK', [r'^\* STATUS "Other Users/alice@example.test/Lread"'
                     r' \(MESSAGES 2 UNSEEN 2\)$'],
          name='LIST-STATUS: seen=shared gives the common UNSEEN')

    # ---- a reader's [UNSEEN n]: its own first unseen, through every change
    # (the store keeps a low-water hint of it: never stale) -------------------
    a.run('CREATE Many', 'OK')
    for _ in range(12):
        append(a, 'Many')
    a.run('SETACL Many bob@example.test lrste', 'OK')
    many = '"Other Users/alice@example.test/Many"'

    def first_unseen(what, want):
        lines, _ = b.run('SELECT %s' % many, 'OK', name='SELECT: ' + what)
        got = [int(m.group(1)) for l in lines
               for m in [re.search(r'\[UNSEEN (\d+)\]', l)] if m]
        r.check('[UNSEEN] %s' % what, got == ([want] if want else []),
                (got, want))

    first_unseen('none seen', 1)
    b.run('STORE 1:6 +FLAGS.SILENT (\\Seen)', 'OK')
    first_unseen('first half seen', 7)
    first_unseen('again, nothing changed', 7)
    b.run('STORE 3 -FLAGS.SILENT (\\Seen)', 'OK')
    first_unseen('one below cleared', 3)
    b.run('STORE 3,7:9 +FLAGS.SILENT (\\Seen)', 'OK')
    first_unseen('read on', 10)
    a.run('STATUS Many (UNSEEN)', 'OK', [r'UNSEEN 12\)$'],
          name="the owner's own [UNSEEN] untouched")
    append(a, 'Many')
    first_unseen('a new message above', 10)
    b.run('STORE 1:* +FLAGS.SILENT (\\Seen)', 'OK')
    first_unseen('all seen', None)
    append(a, 'Many')
    first_unseen('one new', 14)
    b.run('STORE 2 -FLAGS.SILENT (\\Seen)', 'OK')
    b.run('UID STORE 1:* -FLAGS.SILENT (\\Seen)', 'OK')
    first_unseen('all cleared', 1)
    b.run('STORE 1:5 +FLAGS.SILENT (\\Seen)', 'OK')
    b.run('STORE 6 +FLAGS.SILENT (\\Deleted)', 'OK')
    b.run('EXPUNGE', 'OK')
    first_unseen('the first unseen expunged', 6)
    b.run('UNSELECT', 'OK')
    a.run('DELETE Many', 'OK')
    a.run('CREATE Many', 'OK')
    append(a, 'Many')
    a.run('SETACL Many bob@example.test lrs', 'OK')
    first_unseen('a new mailbox of the same name', 1)
    b.run('UNSELECT', 'OK')
    a.run('LOGOUT', 'OK')
    b.run('LOGOUT', 'OK')

# ---- both namespaces off ----------------------------------------------------
off = {'imap': {'other_users_namespace': '', 'shared_namespace': ''}}
with Loft(users=users, extra=off) as env:
    rc, out, err = env.loftctl('shared', 'add', 'sales@example.test')
    r.check('shared add', rc == 0, out + err)
    rc, out, err = env.loftctl('acl', 'set', 'sales@example.test', BOB, 'lr')
    r.check('acl set sales', rc == 0, out + err)
    a = Conv(env.raw('imap'), r)
    a.login(ALICE, APW)
    b = Conv(env.raw('imap'), r)
    b.login(BOB, BPW)
    a.run('CREATE Box', 'OK')
    a.run('SETACL Box bob@example.test lr', 'OK')
    b.run('NAMESPACE', 'OK', [r'^\* NAMESPACE \(\(""\s"/"\)\) NIL NIL$'])
    b.run('LIST "" "*"', 'OK', [r'INBOX'], absent=[r'Other Users', r'Shared',
                                                  r'alice', r'sales'])
    b.run('SELECT "%s"' % BOX, r'NO \[NONEXISTENT\]',
          name='no other users namespace: SELECT as missing')
    b.run('SELECT Shared/sales', r'NO \[NONEXISTENT\]',
          name='no shared namespace: SELECT as missing')
    a.run('LOGOUT', 'OK')
    b.run('LOGOUT', 'OK')

sys.exit(r.finish())
