#!/usr/bin/env python3
"""IMAP mailboxes: CREATE (USE), DELETE, RENAME, SUBSCRIBE, LIST with
LIST-EXTENDED/SPECIAL-USE/CHILDREN/LIST-STATUS, LSUB, STATUS, mailbox names
in modified UTF-7 and, after ENABLE UTF8=ACCEPT / IMAP4rev2, UTF-8; the
Courier-style "INBOX." namespace option."""

import sys

from imapconv import Conv
from loftenv import Loft, Results

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
r = Results()

with Loft() as env:
    c = Conv(env.raw('imap'), r)
    c.login(USER, PW)

    # ---- special-use folders exist from the first login ----------------
    c.run('LIST "" *', 'OK', [r'^\* LIST \(\\HasNoChildren\) "/" "INBOX"$',
                              r'\\Sent\) "/" "Sent"$', r'\\Drafts\) "/" "Drafts"$',
                              r'\\Trash\) "/" "Trash"$', r'\\Junk\) "/" "Junk"$',
                              r'\\Archive\) "/" "Archive"$'])
    c.run('LIST "" ""', 'OK', [r'^\* LIST \(\\Noselect\) "/" ""$'])

    # ---- CREATE / hierarchy ----------------------------------------------
    c.run('CREATE Projects/2024/Q1', 'OK')
    c.run('CREATE Projects/2024/Q1', 'NO \\[ALREADYEXISTS\\]')
    c.run('CREATE INBOX', 'NO \\[ALREADYEXISTS\\]')
    c.run('CREATE inbox', 'NO \\[ALREADYEXISTS\\]')
    c.run('CREATE "Trailing/"', 'OK')
    c.run('CREATE "a//b"', 'NO \\[CANNOT\\]')
    c.run('CREATE "/lead"', 'NO \\[CANNOT\\]')
    c.run('CREATE "wild*card"', 'NO \\[CANNOT\\]')
    c.run('CREATE', 'BAD \\[CLIENTBUG\\]')
    c.run('CREATE a b', 'BAD \\[CLIENTBUG\\]')
    c.run('CREATE ' + 'n' * 1001, 'NO \\[LIMIT\\]')
    c.run('CREATE ' + '/'.join(['d'] * 400), 'OK', name='a deep hierarchy')
    # one mailbox per role (RFC 6154 5.2): \Archive is taken by Archive
    c.run('CREATE MyArchive (USE (\\Archive))', 'NO \\[USEATTR\\]')
    c.run('CREATE MyArchive (USE (\\Flagged))', 'OK')
    c.run('CREATE Bad (USE (\\Nonsense))', 'NO \\[USEATTR\\]')
    c.run('CREATE Bad (FOO (\\Archive))', 'BAD \\[CLIENTBUG\\]')
    c.run('LIST "" Projects/%', 'OK', [r'^\* LIST \(\\HasChildren\) "/" "Projects/2024"$'],
          absent=[r'Q1'])
    c.run('LIST Projects/ *', 'OK', [r'"Projects/2024/Q1"$'])
    c.run('LIST "" %', 'OK', [r'"Projects"$', r'\(\\HasChildren\) "/" "Projects"$'],
          absent=[r'"Projects/2024"'])
    c.run('LIST "" inbox', 'OK', [r'"INBOX"$'], name='LIST inbox in any case')
    c.run('LIST (SPECIAL-USE) "" *', 'OK', [r'\\Flagged\) "/" "MyArchive"$'],
          absent=[r'"Projects"'])
    c.run('LIST "" * RETURN (SPECIAL-USE CHILDREN)', 'OK', [r'\\Sent\) "/" "Sent"$'])
    c.run('LIST "" ("INBOX" "Sent")', 'OK', [r'"INBOX"$', r'"Sent"$'], absent=[r'"Trash"'])
    c.run('LIST "" INBOX RETURN (STATUS (MESSAGES UIDNEXT SIZE))', 'OK',
          [r'^\* LIST .*"INBOX"$', r'^\* STATUS "INBOX" \(MESSAGES 0 UIDNEXT 1 SIZE 0\)$'])
    c.run('LIST (RECURSIVEMATCH) "" *', 'BAD \\[CLIENTBUG\\]')
    c.run('LIST (BOGUS) "" *', 'BAD \\[CLIENTBUG\\]')
    c.run('LIST "" * RETURN (BOGUS)', 'BAD \\[CLIENTBUG\\]')
    c.run('LIST "" * RETURN (STATUS (BOGUS))', 'BAD \\[CLIENTBUG\\]')
    c.run('LIST ""', 'BAD \\[CLIENTBUG\\]')
    c.run('LIST "" ()', 'BAD \\[CLIENTBUG\\]')

    # ---- SUBSCRIBE / LSUB / LIST (SUBSCRIBED) ----------------------------
    c.run('SUBSCRIBE Projects/2024/Q1', 'OK')
    c.run('SUBSCRIBE INBOX', 'OK')
    c.run('LSUB "" *', 'OK', [r'^\* LSUB \(\) "/" "Projects/2024/Q1"$', r'"INBOX"$'],
          absent=[r'"MyArchive"'])
    c.run('LSUB "" %', 'OK', [r'^\* LSUB \(\\Noselect\) "/" "Projects"$'])
    c.run('LIST (SUBSCRIBED) "" *', 'OK',
          [r'^\* LIST \(\\HasNoChildren \\Subscribed\) "/" "Projects/2024/Q1"$'])
    c.run('LIST (SUBSCRIBED RECURSIVEMATCH) "" %', 'OK',
          [r'^\* LIST \(\\HasChildren\) "/" "Projects" \("CHILDINFO" \("SUBSCRIBED"\)\)$'])
    c.run('LIST "" * RETURN (SUBSCRIBED)', 'OK', [r'\\Subscribed\) "/" "INBOX"$'])
    c.run('UNSUBSCRIBE Projects/2024/Q1', 'OK')
    c.run('LSUB "" *', 'OK', absent=[r'Projects'])
    c.run('SUBSCRIBE', 'BAD \\[CLIENTBUG\\]')

    # ---- RENAME / DELETE ------------------------------------------------------
    c.run('RENAME Projects Work', 'OK')
    c.run('LIST "" Work/*', 'OK', [r'"Work/2024/Q1"$'])
    c.run('RENAME Nope Other', 'NO \\[NONEXISTENT\\]')
    c.run('RENAME Work Sent', 'NO \\[ALREADYEXISTS\\]')
    c.run('RENAME Work INBOX', 'NO \\[ALREADYEXISTS\\]')
    c.run('RENAME Work', 'BAD \\[CLIENTBUG\\]')
    # renaming the selected mailbox keeps it selected under the new name
    c.run('CREATE Sel', 'OK')
    c.run('SELECT Sel', 'OK')
    c.run('RENAME Sel Sel2', 'OK')
    c.run('APPEND Sel2 {3+}\r\nx\r\n', 'OK', [r'^\* 1 EXISTS'])
    c.run('STORE 1 +FLAGS (\\Seen)', 'OK', [r'^\* 1 FETCH'])
    c.run('UNSELECT', 'OK')
    c.run('DELETE INBOX', 'NO \\[NOPERM\\]')
    c.run('DELETE Nope', 'NO \\[NONEXISTENT\\]')
    c.run('DELETE Work', 'OK', name='delete a parent with children')
    c.run('LIST "" Work', 'OK', [r'\\Noselect.*"Work"$'])
    c.run('SELECT Work', 'NO', name='select a \\Noselect parent')
    c.run('DELETE Work/2024/Q1', 'OK')
    c.run('SELECT Trailing', 'OK')
    c.run('DELETE Trailing', 'OK', [r'^\* OK \[CLOSED\]'])
    c.run('FETCH 1 FLAGS', 'BAD \\[CLIENTBUG\\]', name='deleted selected mailbox is closed')

    # ---- STATUS ---------------------------------------------------------------
    c.run('STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE '
          'HIGHESTMODSEQ APPENDLIMIT MAILBOXID)', 'OK',
          [r'^\* STATUS "INBOX" \(MESSAGES 0 RECENT 0 UIDNEXT 1 UIDVALIDITY \d+ UNSEEN 0 '
           r'DELETED 0 SIZE 0 HIGHESTMODSEQ \d+ APPENDLIMIT \d+ MAILBOXID \(\S+\)\)$'])
    c.run('STATUS INBOX ()', 'BAD \\[CLIENTBUG\\]')
    c.run('STATUS INBOX (BOGUS)', 'BAD \\[CLIENTBUG\\]')
    c.run('STATUS INBOX MESSAGES', 'BAD \\[CLIENTBUG\\]')
    c.run('STATUS Nope (MESSAGES)', 'NO \\[NONEXISTENT\\]')

    # ---- modified UTF-7 -------------------------------------------------------
    c.run('CREATE "Entw&APw-rfe"', 'OK')
    c.run('LIST "" Entw*', 'OK', [r'"Entw&APw-rfe"$'])
    c.run('CREATE "A&B"', 'NO \\[CANNOT\\]', name='unencoded & is invalid mUTF-7')
    c.run('CREATE "&Jjo"', 'NO \\[CANNOT\\]')
    c.run('CREATE "&AGE-"', 'NO \\[CANNOT\\]', name='encoded ASCII is invalid mUTF-7')
    c.run('CREATE "A&-B"', 'OK')
    c.run('LIST "" A*', 'OK', [r'"A&-B"$'])
    c.run('CREATE "caf\u00e9"', 'NO \\[CANNOT\\]', name='8-bit name without UTF8=ACCEPT')

    # ---- UTF-8 after ENABLE UTF8=ACCEPT ---------------------------------------
    c.run('ENABLE UTF8=ACCEPT', 'OK', [r'ENABLED UTF8=ACCEPT'])
    c.run('LIST "" Entw*', 'OK', [r'"Entw\u00fcrfe"$'])
    c.run('CREATE "caf\u00e9"', 'OK')
    c.run('STATUS "caf\u00e9" (MESSAGES)', 'OK', [r'^\* STATUS "caf\u00e9" \(MESSAGES 0\)'])
    c.send(b'x1 CREATE "bad\xff"\r\n')
    c.collect('x1', 'NO \\[CANNOT\\]', name='invalid UTF-8 name')
    c.run('LOGOUT', 'OK')

    c = Conv(env.raw('imap'), r)
    c.login(USER, PW)
    c.run('LIST "" caf*', 'OK', [r'"caf&AOk-"$'], name='mUTF-7 again in a new session')
    c.run('ENABLE IMAP4rev2', 'OK', [r'ENABLED IMAP4rev2'])
    c.run('LIST "" caf*', 'OK', [r'"caf\u00e9"$'])
    c.run('SELECT INBOX', 'OK', [r'^\* LIST \(\) "/" "INBOX"$'], absent=[r'RECENT'])
    c.run('LOGOUT', 'OK')

# ---- Courier-style namespace: "INBOX." with "." --------------------------
# (this server also has compress = no)
with Loft(extra={'imap': {'namespace': 'inbox', 'compress': 'no'}}) as env:
    c = Conv(env.raw('imap'), r)
    c.login(USER, PW)
    c.run('CAPABILITY', 'OK', absent=[r'COMPRESS'])
    c.run('COMPRESS DEFLATE', 'NO \\[CANNOT\\]')
    # the other users' and shared namespaces keep "/" (issue 15)
    c.run('NAMESPACE', 'OK', [r'^\* NAMESPACE \(\("INBOX\." "\."\)\)'
                              r' \(\("Other Users/" "/"\)\) \(\("Shared/" "/"\)\)$'])
    c.run('LIST "" *', 'OK', [r'\(\\HasChildren\) "\." "INBOX"$', r'\\Sent\) "\." "INBOX\.Sent"$'])
    c.run('CREATE INBOX.Lists.Loft', 'OK')
    c.run('LIST "INBOX." %', 'OK', [r'"INBOX\.Lists"$'], absent=[r'Loft"$'])
    c.run('CREATE Outside', 'NO \\[NONEXISTENT\\]')
    c.run('CREATE "INBOX.a/b"', 'NO \\[CANNOT\\]')
    c.run('SELECT INBOX.Sent', 'OK')
    c.run('APPEND INBOX.Lists.Loft {3+}\r\nx\r\n', 'OK \\[APPENDUID')
    c.run('STATUS INBOX.Lists.Loft (MESSAGES)', 'OK', [r'"INBOX\.Lists\.Loft" \(MESSAGES 1\)'])
    c.run('LOGOUT', 'OK')
    rc, out, err = env.loftctl('user', 'show', USER)
    r.check('the same folders in the store', 'Lists/Loft' in out, out + err)

sys.exit(r.finish())
