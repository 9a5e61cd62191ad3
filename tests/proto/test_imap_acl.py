#!/usr/bin/env python3
"""IMAP ACL (RFC 4314) and the other users' namespace (RFC 2342): SETACL,
DELETEACL, GETACL, LISTRIGHTS, MYRIGHTS and their errors; a grantee's
LIST, SELECT, STATUS, FETCH, STORE, APPEND, COPY, EXPUNGE, CREATE, DELETE,
RENAME through "Other Users/alice@example.test/..."; existence never
leaks (a hidden mailbox, a missing one and one of an account that does
not exist answer alike); for each right and a command needing it, a
grantee with every other right gets NO and nothing changes (the matrix);
IDLE across users; losing r on the selected mailbox ends the session."""

import os
import re
import sys
import time

from imapconv import Conv
from loftenv import Loft, Results

ALICE, APW = 'alice@example.test', 'tea-party-rabbit-hole'
BOB, BPW = 'bob@example.test', 'can-we-fix-it-yes'
CAROL, CPW = 'carol@example.test', 'down-the-chimney-7'
ERIN, EPW = 'erin@example.test', 'under-the-sea-22'
OTHER = 'Other Users/alice@example.test/'
MSG = 'Subject: bills\r\nFrom: a@example.test\r\n\r\nelectricity\r\n'

r = Results()


def append(c, mailbox, flags='', msg=MSG):
    tag = c.next_tag()
    c.send('%s APPEND "%s" %s{%d}\r\n' % (tag, mailbox, flags, len(msg)))
    c.expect(r'^\+', name='continuation')
    c.send(msg + '\r\n')
    return c.collect(tag, 'OK', name='APPEND ' + mailbox)


def tagged_text(c, command):
    """The tagged reply of command without its tag."""
    _, t = c.run(command, '(OK|NO|BAD)')
    return re.sub(r'^\S+ ', '', t or '')


def snapshot(c, mailbox):
    """What alice sees of a mailbox: messages, flags, modseqs, ACL."""
    lines, _ = c.run('EXAMINE "%s"' % mailbox, 'OK')
    f, _ = c.run('FETCH 1:* (UID FLAGS MODSEQ)', '(OK|NO)')
    a, _ = c.run('GETACL "%s"' % mailbox, 'OK')
    c.run('UNSELECT', 'OK')
    exists = [l for l in lines if 'EXISTS' in l]
    return (exists, sorted(f), a)


users = {ALICE: APW, BOB: BPW, CAROL: CPW, ERIN: EPW}
with Loft(users=users) as env:
    rc, out, err = env.loftctl('domain', 'add', 'other.test')
    env.add_user('dave@other.test', 'over-the-hills-far-away')
    a = Conv(env.raw('imap'), r)
    a.login(ALICE, APW)
    b = Conv(env.raw('imap'), r)
    b.login(BOB, BPW)

    # ---- capability and namespaces --------------------------------------
    a.run('CAPABILITY', 'OK', [r'\bACL\b', r'\bRIGHTS=texk\b'])
    a.run('NAMESPACE', 'OK',
          [r'^\* NAMESPACE \(\(""\s"/"\)\) \(\("Other Users/" "/"\)\)'
           r' \(\("Shared/" "/"\)\)$'])

    # ---- alice shares Family/Bills with bob ------------------------------
    a.run('CREATE Family/Bills', 'OK')
    a.run('CREATE Secret', 'OK')
    append(a, 'Family/Bills')
    append(a, 'Family/Bills', '(\\Flagged) ')
    a.run('SETACL Family/Bills bob@example.test lr', 'OK')
    a.run('GETACL Family/Bills', 'OK',
          [r'^\* ACL "?Family/Bills"? "?alice@example.test"? lrswipkxteacd'
           r' "?bob@example.test"? lr$'])
    a.run('MYRIGHTS Family/Bills', 'OK',
          [r'^\* MYRIGHTS "?Family/Bills"? lrswipkxteacd$'])
    a.run('LISTRIGHTS Family/Bills bob@example.test', 'OK',
          [r'^\* LISTRIGHTS "?Family/Bills"? "?bob@example.test"? "" l r s w i'])
    # bad input (RFC 4314 3.1, 3): BAD for rights and identifiers, NO for
    # names of nobody, the owner, another domain
    a.run('SETACL Family/Bills bob@example.test lrZ', 'BAD')
    a.run('SETACL Family/Bills bob@example.test LR', 'BAD')
    a.run('SETACL Family/Bills "bob\x01@example.test" lr', 'BAD')
    a.run('SETACL Family/Bills nobody@example.test lr', 'NO \\[NONEXISTENT\\]')
    a.run('SETACL Family/Bills $nogroup lr', 'NO \\[NONEXISTENT\\]')
    a.run('SETACL Family/Bills alice@example.test lr', 'NO \\[CANNOT\\]')
    a.run('DELETEACL Family/Bills alice@example.test', 'NO \\[CANNOT\\]')
    a.run('SETACL Family/Bills dave@other.test lr', 'NO \\[CANNOT\\]')
    a.run('SETACL Nope bob@example.test lr', 'NO \\[NONEXISTENT\\]')
    a.run('SETACL Family/Bills bob@example.test', 'BAD')
    # c and d (RFC 4314 2.1.1)
    a.run('SETACL Secret carol@example.test cd', 'OK')
    a.run('GETACL Secret', 'OK', [r'carol@example.test"? kxtecd$'])
    a.run('DELETEACL Secret carol@example.test', 'OK')
    a.run('GETACL Secret', 'OK', absent=[r'carol'])

    # ---- bob's view ------------------------------------------------------------
    lines, _ = b.run('LIST "" "*"', 'OK',
                     [r'^\* LIST \(\\Noselect \\HasChildren\) "/" "Other Users"$',
                      r'^\* LIST \(\\Noselect \\HasChildren\) "/"'
                      r' "Other Users/alice@example.test"$',
                      r'^\* LIST \(\\HasNoChildren\) "/"'
                      r' "Other Users/alice@example.test/Family/Bills"$'],
                     absent=[r'Secret', r'alice@example.test/INBOX',
                             r'alice@example.test/Family"$',
                             r'alice@example.test/Sent'])
    b.run('LIST "" "Other Users/%"', 'OK',
          [r'"Other Users/alice@example.test"$'], absent=[r'Bills'])
    b.run('LIST "" "Other Users/alice@example.test/*" RETURN (STATUS (MESSAGES UNSEEN))',
          'OK', [r'^\* STATUS "Other Users/alice@example.test/Family/Bills"'
                 r' \(MESSAGES 2 UNSEEN 2\)$'])
    b.run('MYRIGHTS "%sFamily/Bills"' % OTHER, 'OK',
          [r'^\* MYRIGHTS "Other Users/alice@example.test/Family/Bills" lr$'])
    b.run('STATUS "%sFamily/Bills" (MESSAGES)' % OTHER, 'OK',
          [r'^\* STATUS "Other Users/alice@example.test/Family/Bills" \(MESSAGES 2\)$'])
    # existence never leaks (RFC 4314 6)
    hidden = tagged_text(b, 'STATUS "%sSecret" (MESSAGES)' % OTHER)
    missing = tagged_text(b, 'STATUS "%sNope" (MESSAGES)' % OTHER)
    noowner = tagged_text(b, 'STATUS "Other Users/zed@example.test/INBOX" (MESSAGES)')
    r.check('hidden, missing, no owner: one answer',
            hidden == missing == noowner and hidden.startswith('NO [NONEXISTENT]'),
            repr((hidden, missing, noowner)))
    for cmd in ('SELECT "%sSecret"', 'EXAMINE "%sSecret"', 'MYRIGHTS "%sSecret"',
                'GETACL "%sSecret"', 'DELETE "%sSecret"', 'SUBSCRIBE "%sSecret"',
                'SETACL "%sSecret" bob@example.test lr',
                'SELECT "%sINBOX"'):
        h = tagged_text(b, cmd % OTHER)
        m = tagged_text(b, cmd.replace('%sSecret', '%sNope')
                        .replace('%sINBOX', '%sNope2') % OTHER)
        r.check('as missing: ' + cmd, h.startswith('NO [NONEXISTENT]') and
                re.sub(r'completed|Nope2?|Secret|INBOX', '', h) ==
                re.sub(r'completed|Nope2?|Secret|INBOX', '', m), repr((h, m)))
    for name in ('Other Users/../bob@example.test/INBOX', 'Other Users/', 'Other Users',
                 'Other Users//INBOX', 'Other Users/alice@example.test/../Secret',
                 'Other Users/alice@example.test/./Secret', 'Shared/../x',
                 'Other Users/alice@example.test&AC8-Secret'):
        b.run('SELECT "%s"' % name, 'NO \\[(NONEXISTENT|CANNOT)\\]',
              name='escape ' + name)
    # without a: NOPERM (l is held)
    b.run('GETACL "%sFamily/Bills"' % OTHER, 'NO \\[NOPERM\\]')
    b.run('SETACL "%sFamily/Bills" bob@example.test lrswi' % OTHER, 'NO \\[NOPERM\\]')
    b.run('DELETEACL "%sFamily/Bills" bob@example.test' % OTHER, 'NO \\[NOPERM\\]')
    # r only: read-only; STORE, APPEND, EXPUNGE refused, nothing changes
    before = snapshot(a, 'Family/Bills')
    b.run('SELECT "%sFamily/Bills"' % OTHER, 'OK \\[READ-ONLY\\]', [r'^\* 2 EXISTS$'])
    b.run('FETCH 1:* (FLAGS BODY[TEXT])', 'OK', [r'electricity'])
    b.run('STORE 1 +FLAGS (\\Seen)', 'NO')
    b.run('UID EXPUNGE 1:*', 'NO')
    b.run('CLOSE', 'OK')
    tag = b.next_tag()
    b.send('%s APPEND "%sFamily/Bills" {%d}\r\n' % (tag, OTHER, len(MSG)))
    b.expect(r'^\+')
    b.send(MSG + '\r\n')
    b.collect(tag, 'NO \\[NOPERM\\]', name='APPEND without i')
    b.run('CREATE "%sFamily/Bills/Sub"' % OTHER, 'NO \\[NOPERM\\]')
    b.run('DELETE "%sFamily/Bills"' % OTHER, 'NO \\[NOPERM\\]')
    b.run('RENAME "%sFamily/Bills" Mine' % OTHER, 'NO \\[CANNOT\\]')
    b.run('RENAME "%sFamily/Bills" "%sFamily/Other"' % (OTHER, OTHER), 'NO \\[NOPERM\\]')
    r.check('nothing changed', snapshot(a, 'Family/Bills') == before)

    # s w i: STORE with a permitted flag changes only what may change
    a.run('SETACL Family/Bills bob@example.test +si', 'OK')
    b.run('SELECT "%sFamily/Bills"' % OTHER, 'OK \\[READ-WRITE\\]',
          [r'^\* OK \[PERMANENTFLAGS \(\\Seen\)\]'])
    b.run('STORE 1 +FLAGS (\\Seen \\Flagged)', 'OK',
          [r'^\* 1 FETCH \(.*FLAGS \(\\Seen( \\Recent)?\)'])
    # bob's \Seen is his own (per user by default): alice's stays
    a.run('EXAMINE Family/Bills', 'OK')
    a.run('FETCH 1 FLAGS', 'OK', [r'FLAGS \((\\Recent)?\)'],
          absent=[r'Flagged', r'Seen'])
    a.run('UNSELECT', 'OK')
    b.run('FETCH 1 FLAGS', 'OK', [r'FLAGS \(\\Seen( \\Recent)?\)'])
    b.run('STORE 1 +FLAGS (\\Flagged)', 'NO \\[NOPERM\\]')
    b.run('UID STORE 1:* FLAGS ()', 'OK')
    a.run('EXAMINE Family/Bills', 'OK')
    a.run('FETCH 1:2 FLAGS', 'OK',
          [r'^\* 2 FETCH \(FLAGS \(\\Flagged( \\Recent)?\)\)'],
          absent=[r'Seen'])
    a.run('UNSELECT', 'OK')
    # APPEND with i: flags bob may not set are dropped
    tag = b.next_tag()
    b.send('%s APPEND "%sFamily/Bills" (\\Seen \\Deleted) {%d}\r\n'
           % (tag, OTHER, len(MSG)))
    b.expect(r'^\+')
    b.send(MSG + '\r\n')
    b.collect(tag, 'OK \\[APPENDUID', name='APPEND with i')
    a.run('EXAMINE Family/Bills', 'OK', [r'^\* 3 EXISTS$'])
    a.run('FETCH 3 FLAGS', 'OK', [r'FLAGS \((\\Recent)?\)'],
          absent=[r'Deleted', r'Seen'])
    a.run('UNSELECT', 'OK')
    b.run('EXAMINE "%sFamily/Bills"' % OTHER, 'OK', [r'^\* 3 EXISTS$'])
    b.run('FETCH 3 FLAGS', 'OK', [r'FLAGS \(\\Seen( \\Recent)?\)'],
          absent=[r'Deleted'], name="bob's APPEND with \\Seen: his own")
    b.run('SELECT "%sFamily/Bills"' % OTHER, 'OK')
    # i alone on Secret: a drop box, otherwise missing
    a.run('SETACL Secret bob@example.test i', 'OK')
    tag = b.next_tag()
    b.send('%s APPEND "%sSecret" {%d}\r\n' % (tag, OTHER, len(MSG)))
    b.expect(r'^\+')
    b.send(MSG + '\r\n')
    b.collect(tag, 'OK', name='drop box APPEND')
    b.run('STATUS "%sSecret" (MESSAGES)' % OTHER, 'NO \\[NONEXISTENT\\]')
    b.run('LIST "" "*"', 'OK', absent=[r'Secret'])
    # COPY within alice's mail: r there, i here
    b.run('COPY 1 "%sSecret"' % OTHER, 'OK')
    b.run('MOVE 1 "%sSecret"' % OTHER, 'NO \\[NOPERM\\]')
    # COPY / MOVE between two accounts' mail: r (t e for MOVE) at the
    # source, i at the destination, flags as the source shows them
    b.run('COPY 1 INBOX', 'OK \\[COPYUID \\d+ 1 1\\]', name='COPY into his own INBOX')
    b.run('MOVE 1 INBOX', 'NO \\[NOPERM\\]', name='MOVE without t e at the source')
    b.run('STATUS INBOX (MESSAGES)', 'OK', [r'MESSAGES 1\)'])
    b.run('SELECT INBOX', 'OK')
    b.run('FETCH 1 (FLAGS BODY[TEXT])', 'OK', [r'electricity'])
    b.run('COPY 1 "%sSecret"' % OTHER, 'OK \\[COPYUID', name='COPY into a drop box')
    a.run('SETACL Secret bob@example.test -i', 'OK')
    before = snapshot(a, 'Secret')
    b.run('COPY 1 "%sSecret"' % OTHER, 'NO \\[TRYCREATE\\]',
          name='COPY into a folder without i: as missing')
    r.check('without i: nothing copied', snapshot(a, 'Secret') == before)
    a.run('SETACL Secret bob@example.test +i', 'OK')
    b.run('MOVE 1 "%sSecret"' % OTHER, 'OK', [r'^\* OK \[COPYUID \d+ 1 \d+\]',
                                             r'^\* 1 EXPUNGE$'],
          name='MOVE into another account: the source goes')
    b.run('STATUS INBOX (MESSAGES)', 'OK', [r'MESSAGES 0\)'])
    a.run('EXAMINE Secret', 'OK', [r'^\* 4 EXISTS$'], name='both copies in Secret')
    a.run('UNSELECT', 'OK')

    # ---- IDLE across users ---------------------------------------------------
    b.run('SELECT "%sFamily/Bills"' % OTHER, 'OK')
    tag = b.next_tag()
    b.send('%s IDLE\r\n' % tag)
    b.expect(r'^\+ ', name='idling')
    t0 = time.monotonic()
    append(a, 'Family/Bills')
    b.expect(r'^\* 4 EXISTS$', timeout=5, name="alice's APPEND reaches bob")
    r.check('within a second or so', time.monotonic() - t0 < 3,
            '%.2f s' % (time.monotonic() - t0))
    b.send('DONE\r\n')
    b.collect(tag, 'OK', name='IDLE done')

    # ---- the matrix: every right but one, for a command needing it ---------
    a.run('CREATE Matrix', 'OK')
    append(a, 'Matrix')
    append(a, 'Matrix', '(\\Deleted) ')
    M = OTHER + 'Matrix'
    cases = [
        ('l', 'LIST "" "%s"' % M, None),
        ('r', 'STATUS "%s" (MESSAGES)' % M, 'NOPERM'),
        ('r', 'EXAMINE "%s"' % M, 'NOPERM'),
        ('a', 'GETACL "%s"' % M, 'NOPERM'),
        ('a', 'SETACL "%s" carol@example.test l' % M, 'NOPERM'),
        ('a', 'LISTRIGHTS "%s" carol@example.test' % M, 'NOPERM'),
        ('x', 'DELETE "%s"' % M, 'NOPERM'),
        ('k', 'CREATE "%s/Child"' % M, 'NOPERM'),
    ]
    for right, cmd, code in cases:
        rights = 'lrswipkxtea'.replace(right, '')
        a.run('SETACL Matrix bob@example.test %s' % rights, 'OK')
        before = snapshot(a, 'Matrix')
        if code is None:
            b.run(cmd, 'OK', absent=[r'Matrix'], name='without l: ' + cmd)
            # a right held without l still works (RFC 4314 6, issue)
            b.run('STATUS "%s" (MESSAGES)' % M, 'OK', name='without l: STATUS')
        else:
            b.run(cmd, 'NO \\[%s\\]' % code, name='without %s: %s' % (right, cmd))
        r.check('without %s: nothing changed' % right, snapshot(a, 'Matrix') == before)
    for right, cmd in (('s', 'STORE 1 +FLAGS (\\Seen)'),
                       ('w', 'STORE 1 +FLAGS (\\Flagged)'),
                       ('t', 'STORE 1 +FLAGS (\\Deleted)'),
                       ('e', 'EXPUNGE'), ('e', 'UID EXPUNGE 1:*'),
                       ('t', 'MOVE 1 "%sFamily/Bills"' % OTHER),
                       ('e', 'MOVE 1 "%sFamily/Bills"' % OTHER)):
        rights = 'lrswipkxtea'.replace(right, '')
        a.run('SETACL Matrix bob@example.test %s' % rights, 'OK')
        before = snapshot(a, 'Matrix')
        b.run('SELECT "%s"' % M, 'OK')
        b.run(cmd, 'NO', name='without %s: %s' % (right, cmd))
        if right == 's':
            # FETCH sets \Seen only with s: it still answers
            b.run('FETCH 1 BODY[]', 'OK', [r'electricity'],
                  name='without s: FETCH BODY[]')
        b.run('UNSELECT', 'OK')
        r.check('without %s (%s): nothing changed' % (right, cmd),
                snapshot(a, 'Matrix') == before)
    # i into: APPEND and COPY
    a.run('SETACL Family/Bills bob@example.test lrswpkxtea', 'OK')
    a.run('SETACL Matrix bob@example.test lrswipkxtea', 'OK')
    before = snapshot(a, 'Family/Bills')
    b.run('SELECT "%s"' % M, 'OK')
    b.run('COPY 1 "%sFamily/Bills"' % OTHER, 'NO \\[NOPERM\\]', name='without i: COPY')
    b.run('UNSELECT', 'OK')
    r.check('without i: nothing copied', snapshot(a, 'Family/Bills') == before)
    # with every right: the commands work
    b.run('SELECT "%s"' % M, 'OK \\[READ-WRITE\\]')
    b.run('STORE 1 +FLAGS (\\Seen \\Flagged)', 'OK')
    b.run('EXPUNGE', 'OK', [r'^\* 2 EXPUNGE$'])
    b.run('CREATE "%s/Child"' % M, 'OK')
    b.run('GETACL "%s/Child"' % M, 'OK', [r'bob@example.test"? lrswipkxteacd'])
    b.run('DELETE "%s/Child"' % M, 'OK')

    # ---- groups and the loftctl verbs ---------------------------------------
    def ctl(*args, ok=True):
        rc, out, err = env.loftctl(*args)
        r.check('loftctl ' + ' '.join(args), (rc == 0) == ok, out + err)
        return out + err
    ctl('group', 'add', 'family@example.test', BOB)
    ctl('group', 'add', 'family@example.test', ok=False)
    ctl('group', 'add', 'team@nowhere.test', ok=False)
    ctl('group', 'join', 'family@example.test', CAROL)
    out = ctl('group', 'members', 'family@example.test')
    r.check('group members', out.split() == [BOB, CAROL], out)
    out = ctl('group', 'list', 'example.test')
    r.check('group list', 'family@example.test 2 members' in out, out)
    a.run('CREATE Photos', 'OK')
    a.run('SETACL Photos $family lr', 'OK')
    a.run('GETACL Photos', 'OK', [r'"?\$family"? lr$'])
    c = Conv(env.raw('imap'), r)
    c.login(CAROL, CPW)
    c.run('MYRIGHTS "%sPhotos"' % OTHER, 'OK', [r' lr$'])
    a.run('SETACL Photos -carol@example.test r', 'OK')
    c.run('MYRIGHTS "%sPhotos"' % OTHER, 'OK', [r' l$'], name='negative rights')
    c.run('EXAMINE "%sPhotos"' % OTHER, 'NO \\[NOPERM\\]')
    ctl('group', 'leave', 'family@example.test', CAROL)
    c.run('LIST "" "*"', 'OK', absent=[r'Photos'], name='left the group')
    out = ctl('acl', 'get', 'alice@example.test/Photos')
    r.check('acl get', 'alice@example.test lrswipkxteacd (owner)' in out and
            '$family lr' in out and '-carol@example.test r' in out, out)
    ctl('acl', 'set', 'alice@example.test/Photos', 'carol@example.test', 'lrs')
    ctl('acl', 'set', 'alice@example.test/Photos', 'carol@example.test', '+w')
    ctl('acl', 'del', 'alice@example.test/Photos', '-carol@example.test')
    c.run('MYRIGHTS "%sPhotos"' % OTHER, 'OK', [r' lrsw$'], name='loftctl acl set')
    ctl('acl', 'set', 'alice@example.test', 'carol@example.test', 'lr')
    c.run('STATUS "%sINBOX" (MESSAGES)' % OTHER, 'OK', name='bare address = INBOX')
    ctl('acl', 'set', 'alice@example.test/Photos', 'carol@example.test', 'lrZ', ok=False)
    ctl('acl', 'set', 'alice@example.test/Photos', 'nobody@example.test', 'l', ok=False)
    ctl('acl', 'set', 'alice@example.test/Nope', 'carol@example.test', 'l', ok=False)
    ctl('acl', 'set', 'nobody@example.test/Photos', 'carol@example.test', 'l', ok=False)
    ctl('group', 'del', 'family@example.test')
    a.run('GETACL Photos', 'OK', absent=[r'family'], name='a deleted group goes')
    # loftctl check rebuilds alice's part of the reverse index (the
    # accounts' acl_hints): a stale hint goes, a missing one comes
    ids = dict(env.accounts_sql('SELECT address, id FROM users'))
    def hints():
        return sorted(env.accounts_sql('SELECT kind, ident FROM acl_hints'
                                       ' WHERE owner = ?', (ids[ALICE],)))
    before = hints()
    env.accounts_sql('INSERT INTO acl_hints(kind, ident, owner)'
                     ' VALUES (1, ?, ?)', (ids[ERIN], ids[ALICE]))
    env.accounts_sql('DELETE FROM acl_hints WHERE kind = 1 AND ident = ?'
                     ' AND owner = ?', (ids[BOB], ids[ALICE]))
    out = ctl('check', ALICE)
    r.check('check rebuilds the reverse index',
            'reverse ACL index: 1 hints added, 1 stale removed' in out and
            hints() == before, repr((out, before, hints())))
    out = ctl('check', ALICE)
    r.check('check again: consistent', out.strip().endswith('consistent'), out)
    c.run('LOGOUT', 'OK')

    # ---- a shared address: loftctl shared, LMTP, the shared namespace -------
    ctl('shared', 'add', 'sales@example.test')
    ctl('shared', 'add', 'sales@example.test', ok=False)
    ctl('shared', 'add', 'sales@nowhere.test', ok=False)
    out = ctl('shared', 'list')
    r.check('shared list', out.split() == ['sales@example.test'], out)
    ctl('acl', 'set', 'sales@example.test', BOB, 'lrswik')
    ctl('acl', 'set', 'sales@example.test', CAROL, 'lrs')
    lm = env.lmtp()
    lm.sendmail('customer@remote.test', ['sales@example.test'],
                'Subject: order 1\r\n\r\nplease\r\n')
    b.run('LIST "" "Shared/*"', 'OK', [r'^\* LIST \(\\HasNoChildren\) "/" "Shared/sales"$'],
          absent=[r'Other Users/sales'])
    b.run('LIST "" "*"', 'OK', [r'^\* LIST \(\\Noselect \\HasChildren\) "/" "Shared"$'])
    b.run('STATUS "Other Users/sales@example.test/INBOX" (MESSAGES)', 'NO \\[NONEXISTENT\\]')
    b.run('STATUS "Shared/sales" (MESSAGES UNSEEN)', 'OK',
          [r'^\* STATUS "Shared/sales" \(MESSAGES 1 UNSEEN 1\)$'])
    b.run('CREATE "Shared/sales/orders"', 'OK')
    # +folder: only where anyone holds p
    lm.sendmail('customer@remote.test', ['sales+orders@example.test'],
                'Subject: order 2\r\n\r\nplease\r\n')
    b.run('STATUS "Shared/sales" (MESSAGES)', 'OK', [r'MESSAGES 2\)'],
          name='+orders without anyone p: INBOX')
    ctl('acl', 'set', 'sales@example.test/orders', 'anyone', 'p')
    lm.sendmail('customer@remote.test', ['sales+orders@example.test'],
                'Subject: order 3\r\n\r\nplease\r\n')
    b.run('STATUS "Shared/sales/orders" (MESSAGES)', 'OK', [r'MESSAGES 1\)'],
          name='+orders with anyone p')
    lm.quit()
    s = Conv(env.raw('imap'), r)
    s.run('LOGIN "sales@example.test" ""', 'NO', name='a shared address never logs in')
    s.run('LOGIN "sales@example.test" "{NOLOGIN}"', 'NO', name='nor with the marker')
    s.close()
    # ---- per-user \Seen: three readers of sales@, each their own unread ----
    ctl('acl', 'set', 'sales@example.test', ERIN, 'lrs')
    e = Conv(env.raw('imap'), r)
    e.login(ERIN, EPW)
    c = Conv(env.raw('imap'), r)
    c.login(CAROL, CPW)
    for conv in (b, c, e):
        conv.run('STATUS "Shared/sales" (MESSAGES UNSEEN)', 'OK',
                 [r'\(MESSAGES 2 UNSEEN 2\)$'], name='before: own UNSEEN 2')
    b.run('SELECT "Shared/sales"', 'OK', [r'^\* OK \[UNSEEN 1\]'])
    b.run('FETCH 1 BODY[TEXT]', 'OK', [r'^\* 1 FETCH .*\\Seen'])
    b.run('SEARCH UNSEEN', 'OK', [r'^\* SEARCH 2$'], name='SEARCH UNSEEN: his own')
    b.run('SEARCH SEEN', 'OK', [r'^\* SEARCH 1$'], name='SEARCH SEEN: his own')
    c.run('SELECT "Shared/sales" (CONDSTORE)', 'OK')
    c.run('STORE 2 +FLAGS (\\Seen)', 'OK', [r'^\* 2 FETCH \(.*\\Seen'])
    c.run('UNSELECT', 'OK')
    b.run('STATUS "Shared/sales" (UNSEEN)', 'OK', [r'\(UNSEEN 1\)$'],
          name="bob read 1: his UNSEEN 1")
    c.run('STATUS "Shared/sales" (UNSEEN)', 'OK', [r'\(UNSEEN 1\)$'],
          name="carol read 2: her UNSEEN 1")
    e.run('STATUS "Shared/sales" (UNSEEN)', 'OK', [r'\(UNSEEN 2\)$'],
          name="erin read nothing: UNSEEN 2")
    e.run('EXAMINE "Shared/sales"', 'OK', [r'^\* OK \[UNSEEN 1\]'])
    e.run('FETCH 1:* FLAGS', 'OK', absent=[r'Seen'])
    e.run('UNSELECT', 'OK')
    # no stray FETCH for someone else's reading: erin idles in CONDSTORE,
    # bob reads message 2 (his own \Seen) and then flags message 1 (a
    # common change, after it on the same channel): erin sees the flag
    # and nothing of bob's reading
    e.run('ENABLE CONDSTORE QRESYNC', 'OK')
    _, hms_e = None, None
    lines, _ = e.run('SELECT "Shared/sales"', 'OK', [r'HIGHESTMODSEQ \d+'])
    hms_e = int(re.search(r'HIGHESTMODSEQ (\d+)', ' '.join(lines)).group(1))
    tag = e.next_tag()
    e.send('%s IDLE\r\n' % tag)
    e.expect(r'^\+ ', name='erin idles')
    def hms(conv):
        lines, _ = conv.run('STATUS "Shared/sales" (HIGHESTMODSEQ)', 'OK')
        return int(re.search(r'HIGHESTMODSEQ (\d+)', ' '.join(lines)).group(1))
    hc1 = hms(c)
    b.run('STORE 2 +FLAGS (\\Seen)', 'OK', [r'^\* 2 FETCH \(.*\\Seen'])
    hc2, hb = hms(c), hms(b)
    r.check("bob's reading: his HIGHESTMODSEQ moves, carol's does not",
            hc1 == hc2 and hb > hc1, repr((hc1, hc2, hb)))
    b.run('STORE 1 +FLAGS (\\Flagged)', 'OK')
    got = e.expect(r'^\* \d+ FETCH', timeout=10, name='erin sees a FETCH')
    r.check('the first FETCH erin sees is the common \\Flagged of 1',
            got is not None and got.startswith('* 1 FETCH') and
            'Flagged' in got and 'Seen' not in got, repr(got))
    e.send('DONE\r\n')
    e.collect(tag, 'OK', absent=[r'^\* 2 FETCH'], name='IDLE done: no FETCH 2')
    b.run('STATUS "Shared/sales" (UNSEEN)', 'OK', [r'UNSEEN 0'])
    e.run('STATUS "Shared/sales" (UNSEEN)', 'OK', [r'UNSEEN 2'])
    e.run('UNSELECT', 'OK')
    # QRESYNC from before bob's reading: the \Flagged only
    uv = re.search(r'UIDVALIDITY (\d+)',
                   ' '.join(e.run('STATUS "Shared/sales" (UIDVALIDITY)',
                                  'OK')[0])).group(1)
    e.run('SELECT "Shared/sales" (QRESYNC (%s %d))' % (uv, hms_e), 'OK',
          [r'^\* 1 FETCH \(.*Flagged'], absent=[r'^\* 2 FETCH', r'^\* \d+ FETCH .*Seen'],
          name='QRESYNC after bob read: no FETCH of his reading')
    # bob's CONDSTORE sees his own reading as a change
    b.run('FETCH 1:* (FLAGS) (CHANGEDSINCE %d)' % hms_e, 'OK',
          [r'^\* 2 FETCH \(.*\\Seen'], name="bob's CHANGEDSINCE: his reading")
    b.run('UNSELECT', 'OK')
    e.run('UNSELECT', 'OK')
    # seen=shared: one \Seen for a team working a queue
    out = ctl('mailbox', 'get', 'sales@example.test')
    r.check('mailbox get: default', 'seen=default (per-user' in out, out)
    ctl('mailbox', 'set', 'sales@example.test', 'seen=sometimes', ok=False)
    ctl('mailbox', 'set', 'sales@example.test/Nope', 'seen=shared', ok=False)
    ctl('mailbox', 'set', 'sales@example.test', 'seen=shared')
    out = ctl('mailbox', 'get', 'sales@example.test')
    r.check('mailbox get: shared', out.strip() == 'seen=shared', out)
    e.run('SELECT "Shared/sales"', 'OK')
    e.run('STORE 1 +FLAGS (\\Seen)', 'OK')
    e.run('UNSELECT', 'OK')
    for conv in (b, c, e):
        conv.run('STATUS "Shared/sales" (UNSEEN)', 'OK', [r'\(UNSEEN 1\)$'],
                 name='seen=shared: one UNSEEN for all')
    ctl('mailbox', 'set', 'sales@example.test', 'seen=default')
    b.run('STATUS "Shared/sales" (UNSEEN)', 'OK', [r'\(UNSEEN 0\)$'],
          name='seen=default again: bob his own')
    e.run('LOGOUT', 'OK')
    c.run('LOGOUT', 'OK')
    b.run('SELECT "%s"' % M, 'OK')

    # shared_admin: l and a on the domain's shared addresses
    c = Conv(env.raw('imap'), r)
    c.login(CAROL, CPW)
    c.run('GETACL "Shared/sales/orders"', 'NO \\[NOPERM\\]')
    ctl('user', 'set', CAROL, 'shared_admin=maybe', ok=False)
    ctl('user', 'set', CAROL, 'shared_admin=yes')
    c.run('GETACL "Shared/sales/orders"', 'OK', [r'anyone"? p'])
    c.run('SETACL "Shared/sales/orders" carol@example.test lr', 'OK')
    c.run('LIST "" "Shared/*"', 'OK', [r'"Shared/sales/orders"$'])
    c.run('GETACL "%sFamily/Bills"' % OTHER, 'NO \\[NONEXISTENT\\]',
          name='shared_admin is not over accounts')
    c.run('LOGOUT', 'OK')
    out = ctl('shared', 'del', 'sales@example.test', ok=False)
    r.check('shared del lists what others see', 'bob@example.test lrswikc' in out, out)

    # ---- user del of an owner: refused without --yes, listing what others
    # see; with it, grantees' sessions on its mail end and the rights it
    # held on others' mail go
    env.add_user('gina@example.test', 'green-grass-grows-9')
    g = Conv(env.raw('imap'), r)
    g.login('gina@example.test', 'green-grass-grows-9')
    g.run('CREATE Stuff', 'OK')
    g.run('SETACL Stuff bob@example.test lr', 'OK')
    g.run('LOGOUT', 'OK')
    a.run('CREATE Gifts', 'OK')
    a.run('SETACL Gifts gina@example.test lrs', 'OK')
    b2 = Conv(env.raw('imap'), r)
    b2.login(BOB, BPW)
    b2.run('SELECT "Other Users/gina@example.test/Stuff"', 'OK')
    out = ctl('user', 'del', 'gina@example.test', ok=False)
    r.check('user del lists what others see',
            'gina@example.test/Stuff: bob@example.test lr' in out, out)
    b2.run('NOOP', 'OK', name='still there after a refused del')
    out = ctl('user', 'del', 'gina@example.test', '--yes')
    r.check('user del --yes: its rights elsewhere go',
            'removed 1 ACL entries naming gina@example.test' in out, out)
    b2.expect(r'^\* BYE', timeout=10, name="grantee's session on its mail: * BYE")
    b2.close()
    a.run('GETACL Gifts', 'OK', absent=[r'gina'])
    out = ctl('acl', 'get', 'alice@example.test/Gifts')
    r.check('acl get: gina gone', 'gina' not in out, out)

    # ---- losing r on the selected mailbox ends the session -------------------
    a.run('SETACL Matrix bob@example.test -r', 'OK')
    b.send('z1 NOOP\r\n')
    b.expect(r'^\* BYE', timeout=5, name='* BYE after losing r')
    r.check('closed after losing r', b.closed(timeout=5))
    a.run('LOGOUT', 'OK')

sys.exit(r.finish())
