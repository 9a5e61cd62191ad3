#!/usr/bin/env python3
"""NOTIFY (RFC 5465, issue 9): one connection watches many mailboxes, with
and without IDLE. Session A sets NOTIFY and sends nothing more; session B
(the same account) changes mail; A must be told at once: EXISTS, the
MessageNew FETCH, FETCH FLAGS and EXPUNGE for the selected mailbox
("selected": expunges at once; "selected-delayed": held for a command);
STATUS (with HIGHESTMODSEQ once CONDSTORE is on) for other mailboxes of
the personal / inboxes / subtree / mailboxes filters; LIST for created,
renamed, deleted mailboxes and subscriptions; METADATA for changed
entries. NOTIFY NONE stops it. Bad input: malformed event groups, events
that must go together, \\Seen-setting fetch attributes, thousands of
mailbox names, and a client that never reads (NOTIFICATIONOVERFLOW, no
one else notices)."""

import re
import socket
import sys

from imapconv import Conv
from loftenv import Loft, Results, SLOW

A = 'alice@example.test'
r = Results()
WAIT = 60 * SLOW     # a push is waited for, never slept for


def msg(subject, body='hello'):
    return 'Subject: %s\r\nFrom: a@example.test\r\n\r\n%s\r\n' % (subject, body)


def append(c, box, text):
    _, t = c.run('APPEND %s {%d+}\r\n%s' % (box, len(text.encode()), text), 'OK')
    m = re.search(r'APPENDUID \d+ (\d+)', t or '')
    return int(m.group(1)) if m else None




with Loft() as env:
    a = Conv(env.raw('imap'), r, timeout=WAIT)
    b = Conv(env.raw('imap'), r, timeout=WAIT)
    a.login(A, env.users[A])
    b.login(A, env.users[A])
    lines, _ = a.run('CAPABILITY')
    r.check('capability NOTIFY', re.search(r' NOTIFY( |$)', lines[0]) is not None, lines[0])
    for box in ('Lists', 'Lists/rust', 'Other'):
        b.run('CREATE %s' % box)
    u1 = append(b, 'INBOX', msg('one'))
    u2 = append(b, 'INBOX', msg('two'))

    # ---- bad input: each refused, the session goes on -----------------
    a.run('NOTIFY', r'BAD \[CLIENTBUG\]')
    a.run('NOTIFY SET', r'BAD \[CLIENTBUG\]')
    a.run('NOTIFY SET (selected (MessageNew))', r'BAD \[CLIENTBUG\]',
          name='MessageNew without MessageExpunge')
    a.run('NOTIFY SET (personal (MessageExpunge))', r'BAD \[CLIENTBUG\]',
          name='MessageExpunge without MessageNew')
    a.run('NOTIFY SET (personal (FlagChange))', r'BAD \[CLIENTBUG\]',
          name='FlagChange alone')
    a.run('NOTIFY SET (personal (MessageNew MessageExpunge Bogus))', r'BAD \[CLIENTBUG\]')
    a.run('NOTIFY SET (personal (MessageNew MessageExpunge AnnotationChange))',
          r'NO \[BADEVENT \(MessageNew MessageExpunge FlagChange MailboxName '
          r'SubscriptionChange MailboxMetadataChange ServerMetadataChange\)\]')
    a.run('NOTIFY SET (selected (MessageNew (BODY[]) MessageExpunge))',
          r'BAD \[CLIENTBUG\].*Seen', name='fetch-att setting \\Seen')
    a.run('NOTIFY SET (personal (MessageNew (UID) MessageExpunge))',
          r'BAD \[CLIENTBUG\]', name='fetch-att outside selected')
    a.run('NOTIFY SET (selected (MessageNew MessageExpunge)) (selected-delayed NONE)',
          r'BAD \[CLIENTBUG\]', name='selected twice')
    a.run('NOTIFY SET (nowhere (MessageNew MessageExpunge))', r'BAD \[CLIENTBUG\]')
    a.run('NOTIFY SET (subtree (MessageNew MessageExpunge))', r'BAD \[CLIENTBUG\]')
    a.run('NOTIFY SET (mailboxes () (MessageNew MessageExpunge))', r'BAD \[CLIENTBUG\]')
    names = ' '.join('box%d' % i for i in range(3000))
    a.run('NOTIFY SET (mailboxes (%s) (MessageNew MessageExpunge))' % names, 'OK',
          name='3000 mailbox names')
    a.run('NOTIFY NONE', 'OK')
    a.run('NOOP', 'OK', name='session goes on after bad NOTIFYs')

    # ---- selected, without IDLE -----------------------------------------
    a.run('SELECT INBOX', 'OK')
    a.run('NOTIFY SET (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)]) '
          'MessageExpunge FlagChange))', 'OK')
    u3 = append(b, 'INBOX', msg('pushed'))
    a.pushed(r'^\* 3 EXISTS', 'selected: EXISTS pushed without IDLE')
    a.pushed(r'^\* 3 FETCH \(.*UID %d.*BODY\[HEADER\.FIELDS \(SUBJECT\)\].*Subject: pushed' % u3,
           'selected: MessageNew FETCH with its fetch-atts')
    b.run('SELECT INBOX', 'OK')
    b.run('UID STORE %d +FLAGS.SILENT (\\Flagged)' % u1, 'OK')
    a.pushed(r'^\* 1 FETCH \(.*FLAGS \([^)]*\\Flagged', 'selected: FlagChange pushed')
    b.run('UID STORE %d +FLAGS.SILENT (\\Deleted)' % u1, 'OK')
    b.run('EXPUNGE', 'OK')
    a.pushed(r'^\* 1 EXPUNGE', 'selected: EXPUNGE pushed at once')
    a.run('UID FETCH %d (FLAGS)' % u3, 'OK', [r'^\* 2 FETCH'],
          name='numbers follow the pushed EXPUNGE')
    lines, _ = a.run('UID FETCH %d (FLAGS)' % u2, 'OK')
    r.check('\\Seen untouched by the MessageNew FETCH',
            not any('\\Seen' in l for l in lines), lines)

    # ---- selected-delayed: expunges wait for a command that allows them --
    a.run('NOTIFY SET (selected-delayed (MessageNew MessageExpunge))', 'OK')
    b.run('UID STORE %d +FLAGS.SILENT (\\Deleted)' % u2, 'OK')
    b.run('EXPUNGE', 'OK')
    append(b, 'INBOX', msg('after expunge'))
    a.pushed(r'^\* 3 EXISTS', 'selected-delayed: EXISTS pushed',
           before=r'EXPUNGE|VANISHED')
    a.run('FETCH 1:* (UID)', 'OK', absent=[r'EXPUNGE'],
          name='selected-delayed: no EXPUNGE in FETCH')
    a.run('NOOP', 'OK', [r'^\* 1 EXPUNGE'], name='selected-delayed: EXPUNGE at NOOP')

    # ---- other mailboxes: STATUS, CONDSTORE ------------------------------
    a.run('ENABLE CONDSTORE', 'OK')
    a.run('NOTIFY SET STATUS (selected (MessageNew MessageExpunge)) '
          '(personal (MessageNew MessageExpunge FlagChange))', 'OK',
          [r'^\* STATUS "Lists" \(MESSAGES 0 UIDNEXT \d+ UIDVALIDITY \d+ UNSEEN 0 HIGHESTMODSEQ \d+\)',
           r'^\* STATUS "Other" \('],
          absent=[r'^\* STATUS "INBOX"'], name='NOTIFY SET STATUS')
    ul = append(b, 'Lists', msg('list mail'))
    a.pushed(r'^\* STATUS "Lists" \(MESSAGES 1 UIDNEXT %d UIDVALIDITY \d+ UNSEEN 1 '
           r'HIGHESTMODSEQ \d+\)' % (ul + 1), 'personal: STATUS for MessageNew')
    b.run('SELECT Lists', 'OK')
    b.run('UID STORE %d +FLAGS.SILENT (\\Seen)' % ul, 'OK')
    a.pushed(r'^\* STATUS "Lists" \(MESSAGES 1 .*UNSEEN 0 HIGHESTMODSEQ', 'personal: STATUS for FlagChange')
    b.run('UID STORE %d +FLAGS.SILENT (\\Deleted)' % ul, 'OK')
    b.run('EXPUNGE', 'OK')
    a.pushed(r'^\* STATUS "Lists" \(MESSAGES 0 ', 'personal: STATUS for MessageExpunge')
    b.run('UNSELECT', 'OK')

    # ---- subtree / mailboxes / inboxes: only what they name -------------
    a.run('UNSELECT', 'OK')
    a.run('NOTIFY SET (subtree Lists (MessageNew MessageExpunge)) '
          '(mailboxes Other NONE)', 'OK')
    append(b, 'Other', msg('unwatched'))
    append(b, 'Lists/rust', msg('watched'))
    a.pushed(r'^\* STATUS "Lists/rust" \(MESSAGES 1 ', 'subtree: a child is watched',
           before=r'STATUS "Other"')
    a.run('NOTIFY SET (inboxes (MessageNew MessageExpunge))', 'OK')
    append(b, 'INBOX', msg('to the inbox'))
    a.pushed(r'^\* STATUS "INBOX" \(MESSAGES 3 ', 'inboxes: INBOX (not selected) gets STATUS')

    # ---- in IDLE too ------------------------------------------------------
    a.send('i1 IDLE\r\n')
    a.expect(r'^\+ ', name='IDLE')
    append(b, 'Other', msg('while idling'))
    a.pushed(r'^\* STATUS "Other" \(MESSAGES 2 ', 'IDLE: STATUS of another mailbox')
    a.send('DONE\r\n')
    a.collect('i1', 'OK', name='IDLE done')

    # ---- MailboxName, SubscriptionChange ---------------------------------
    a.run('NOTIFY SET (personal (MailboxName SubscriptionChange))', 'OK')
    b.run('CREATE Projects', 'OK')
    a.pushed(r'^\* LIST \(\\HasNoChildren\) "/" "Projects"$', 'MailboxName: created')
    b.run('RENAME Projects Archive2026', 'OK')
    a.pushed(r'^\* LIST \([^)]*\) "/" "Archive2026" \("OLDNAME" \("Projects"\)\)$',
           'MailboxName: renamed (OLDNAME)')
    b.run('SUBSCRIBE Archive2026', 'OK')
    a.pushed(r'^\* LIST \(\\Subscribed\) "/" "Archive2026"$', 'SubscriptionChange: subscribed')
    b.run('UNSUBSCRIBE Archive2026', 'OK')
    a.pushed(r'^\* LIST \(\) "/" "Archive2026"$', 'SubscriptionChange: unsubscribed')
    b.run('DELETE Archive2026', 'OK')
    a.pushed(r'^\* LIST \(\\NonExistent\) "/" "Archive2026"$', 'MailboxName: deleted')

    # ---- metadata ---------------------------------------------------------
    a.run('NOTIFY SET (personal (MailboxMetadataChange ServerMetadataChange))', 'OK')
    b.run('SETMETADATA Lists (/private/comment "watch me")', 'OK')
    a.pushed(r'^\* METADATA "Lists" /private/comment$', 'MailboxMetadataChange')
    b.run('SETMETADATA "" (/private/comment "server note")', 'OK')
    a.pushed(r'^\* METADATA "" /private/comment$', 'ServerMetadataChange')
    b.run('SETMETADATA Lists (/private/comment NIL)', 'OK')
    a.pushed(r'^\* METADATA "Lists" /private/comment$', 'MailboxMetadataChange: removed')

    # ---- NOTIFY NONE: nothing more ---------------------------------------
    a.run('NOTIFY SET (personal (MessageNew MessageExpunge))', 'OK')
    a.run('NOTIFY NONE', 'OK')
    append(b, 'Other', msg('after none'))
    a.run('NOOP', 'OK', absent=[r'STATUS'], name='NOTIFY NONE: no STATUS')
    # the hub's wake-up of the append may come after the NOOP: a second
    # round trip after a commit that comes later proves nothing was queued
    append(b, 'Lists', msg('after none 2'))
    a.run('NOOP', 'OK', absent=[r'STATUS'], name='NOTIFY NONE: still none')

    # ---- a client that never reads: NOTIFICATIONOVERFLOW ------------------
    # Its receive buffer is tiny; each rename of 800 watched mailboxes with
    # long names makes ~1.5 MB of LIST responses it does not take: six of
    # them are more than the kernel's socket buffers can hold (tcp_wmem's
    # maximum, 4 MiB here) and the server's own limit.
    long = 'x' * 900
    b.send(''.join('cr%d CREATE P/%s%d\r\n' % (i, long, i) for i in range(800)))
    oks = 0
    while True:
        line = b.read_response(WAIT)
        oks += bool(re.match(r'cr\d+ OK', line))
        if line.startswith('cr799 '):
            break
    r.check('800 mailboxes created', oks == 800, oks)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(WAIT)
    s.connect(('127.0.0.1', env.ports['imap']))
    slow = Conv(s, r, timeout=WAIT)
    slow.login(A, env.users[A])
    slow.run('NOTIFY SET (subtree P (MessageNew MessageExpunge MailboxName))', 'OK')
    for i in range(6):
        b.run('RENAME P Q' if i % 2 == 0 else 'RENAME Q P', 'OK',
              name='rename of 800 watched mailboxes')
    # the other session does not wait for the slow one
    b.run('NOOP', 'OK', name='others unaffected')
    u = append(b, 'INBOX', msg('still delivering'))
    r.check('others still append', u is not None)
    slow.pushed(r'^\* OK \[NOTIFICATIONOVERFLOW\]', 'a client that never read: NOTIFICATIONOVERFLOW')
    slow.run('NOOP', 'OK', name='overflowed session goes on')
    append(b, 'P/%s1' % long, msg('after overflow'))
    slow.run('NOOP', 'OK', absent=[r'STATUS'], name='after overflow NOTIFY is off')
    slow.run('LOGOUT', 'OK')
    for c in (a, b):
        c.run('LOGOUT', 'OK')

sys.exit(r.finish())
