#!/usr/bin/env python3
"""IMAP: APPEND (flags, dates, MULTIAPPEND, literal8, UTF8, APPENDUID,
TOOBIG, TRYCREATE), SELECT/EXAMINE responses, STORE (+FLAGS, -FLAGS,
.SILENT, UNCHANGEDSINCE/MODIFIED), COPY/MOVE with COPYUID, EXPUNGE,
UID EXPUNGE, CLOSE, UNSELECT, QRESYNC SELECT, QUOTA."""

import re
import sys

from imapconv import Conv
from loftenv import Loft, Results

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
r = Results()


def msg(n, size=0):
    body = 'Subject: test %d\r\nFrom: a@example.test\r\n\r\nbody %d\r\n' % (n, n)
    return body + 'x' * size


def append(c, mailbox, text, flags='', date='', tagged='OK', name=None):
    data = text.encode()
    extra = (' ' + flags if flags else '') + (' "%s"' % date if date else '')
    tag = c.next_tag()
    c.transcript = []
    c.send('%s APPEND %s%s {%d}\r\n' % (tag, mailbox, extra, len(data)))
    cont = c.read_response()
    if not cont.startswith('+'):
        c.check(name or 'append', re.match(tag + ' ' + tagged, cont) is not None, cont)
        return cont
    c.send(data + b'\r\n')
    _, t = c.collect(tag, tagged, name=name or 'append ' + mailbox)
    return t


with Loft(extra={'imap': {'append_limit': '100K'}}) as env:
    c = Conv(env.raw('imap'), r)
    c.login(USER, PW)

    # ---- APPEND ---------------------------------------------------------
    t = append(c, 'INBOX', msg(1), '(\\Seen)', '05-Mar-2024 10:00:00 +0100',
               'OK \\[APPENDUID \\d+ 1\\]')
    append(c, 'INBOX', msg(2), '(\\Flagged $Forwarded)', tagged='OK \\[APPENDUID \\d+ 2\\]')
    append(c, 'INBOX', msg(3), tagged='OK \\[APPENDUID \\d+ 3\\]')
    append(c, 'INBOX', msg(4), ' 5-Mar-2024 10:00:00 +0000'.strip(), '',
           'BAD \\[CLIENTBUG\\]', name='append with an atom date')
    append(c, 'NoSuchBox', msg(9), tagged='NO \\[TRYCREATE\\]')
    append(c, 'INBOX', msg(9), '(\\Recent)', tagged='BAD \\[CLIENTBUG\\]')
    append(c, 'INBOX', msg(9), '(\\Bogus)', tagged='BAD \\[CLIENTBUG\\]')
    append(c, 'INBOX', msg(9), '', '31-Foo-2024 10:00:00 +0000', 'BAD \\[CLIENTBUG\\]')
    # APPENDLIMIT: a synchronising literal over the limit: NO before "+"
    c.run('APPEND INBOX {200000}', 'NO \\[TOOBIG\\]')
    # non-synchronising: read, discarded, BAD [TOOBIG]; the session goes on
    tag = c.next_tag()
    c.send('%s APPEND INBOX {200000+}\r\n' % tag + 'y' * 200000 + '\r\n')
    c.collect(tag, 'BAD \\[TOOBIG\\]', name='append nonsync over the limit')
    c.run('NOOP', 'OK', name='noop after TOOBIG')
    # MULTIAPPEND with LITERAL+
    m5, m6 = msg(5).encode(), msg(6).encode()
    tag = c.next_tag()
    c.send(b'%s APPEND INBOX (\\Draft) {%d+}\r\n%s (\\Answered) {%d+}\r\n%s\r\n'
           % (tag.encode(), len(m5), m5, len(m6), m6))
    c.collect(tag, 'OK \\[APPENDUID \\d+ 4:5\\]', name='multiappend')
    # literal8 and RFC 6855 UTF8 (literal8)
    m7 = msg(7).encode()
    c.run('APPEND INBOX ~{%d+}\r\n%s' % (len(m7), m7.decode()), 'OK \\[APPENDUID \\d+ 6\\]',
          name='append literal8')
    m8 = ('Subject: caf\u00e9\r\n\r\nhi\r\n').encode()
    tag = c.next_tag()
    c.send(b'%s APPEND INBOX UTF8 (~{%d+}\r\n%s)\r\n' % (tag.encode(), len(m8), m8))
    c.collect(tag, 'OK \\[APPENDUID \\d+ 7\\]', name='append UTF8 (literal8)')
    c.run('APPEND INBOX', 'BAD \\[CLIENTBUG\\]')
    c.run('APPEND', 'BAD \\[CLIENTBUG\\]')
    c.run('APPEND INBOX (\\Seen) "notadate"', 'BAD \\[CLIENTBUG\\]')
    # MULTIAPPEND is all or nothing: the second message is empty
    tag = c.next_tag()
    c.send(b'%s APPEND INBOX {%d+}\r\n%s {0+}\r\n\r\n' % (tag.encode(), len(m5), m5))
    c.collect(tag, 'NO', name='multiappend with an empty message fails')
    # the messages are committed together, after every literal is read:
    # the empty one fails before any is stored (no UID is used)
    c.run('STATUS INBOX (MESSAGES UIDNEXT)', 'OK', [r'MESSAGES 7 UIDNEXT 8\)'],
          name='nothing kept of the failed MULTIAPPEND')

    # ---- SELECT / EXAMINE ----------------------------------------------
    lines, _ = c.run('SELECT INBOX', 'OK \\[READ-WRITE\\]',
                     [r'^\* FLAGS \(.*\$Forwarded', r'^\* OK \[PERMANENTFLAGS \(.*\\\*\)\]',
                      r'^\* 7 EXISTS', r'^\* 7 RECENT', r'^\* OK \[UNSEEN 2\]',
                      r'^\* OK \[UIDVALIDITY \d+\]', r'^\* OK \[UIDNEXT 8\]',
                      r'^\* OK \[HIGHESTMODSEQ \d+\]', r'^\* OK \[MAILBOXID \(.+\)\]'])
    uidvalidity = int(re.search(r'UIDVALIDITY (\d+)', ' '.join(lines)).group(1))
    c.run('EXAMINE INBOX', 'OK \\[READ-ONLY\\]',
          [r'^\* OK \[CLOSED\]', r'^\* OK \[PERMANENTFLAGS \(\)\]', r'^\* 0 RECENT'])
    c.run('STORE 1 +FLAGS (\\Deleted)', 'NO \\[READ-ONLY\\]')
    c.run('EXPUNGE', 'NO \\[READ-ONLY\\]')
    c.run('SELECT NoSuchBox', 'NO \\[NONEXISTENT\\]')
    c.run('FETCH 1 FLAGS', 'BAD \\[CLIENTBUG\\] No mailbox selected',
          name='failed SELECT leaves nothing selected')
    c.run('SELECT INBOX (FOO)', 'BAD \\[CLIENTBUG\\]')
    c.run('SELECT INBOX (QRESYNC (1 1))', 'BAD \\[CLIENTBUG\\]',
          name='QRESYNC without ENABLE')
    c.run('SELECT INBOX', 'OK')
    c.run('STORE 7 (UNCHANGEDSINCE 999999) +FLAGS (kw0)', 'OK \\[HIGHESTMODSEQ \\d+\\]',
          name='STORE UNCHANGEDSINCE turns CONDSTORE on: HIGHESTMODSEQ in the OK')
    c.run('STORE 6:7 (UNCHANGEDSINCE 0) +FLAGS (kw0)', 'OK \\[MODIFIED 6:7\\]',
          name='UNCHANGEDSINCE 0 always fails')
    lines, _ = c.run('SELECT INBOX (CONDSTORE)', 'OK \\[READ-WRITE\\]',
                     [r'HIGHESTMODSEQ'], absent=[r'RECENT [1-9]'])

    # ---- STORE ------------------------------------------------------------
    c.run('STORE 1 +FLAGS (\\Flagged)', 'OK',
          [r'^\* 1 FETCH \(UID 1 FLAGS \(\\Flagged \\Seen\) MODSEQ \(\d+\)\)'])
    c.run('STORE 1 -FLAGS.SILENT (\\Flagged)', 'OK',
          [r'^\* 1 FETCH \(UID 1 MODSEQ \(\d+\)\)'], absent=[r'FLAGS'],
          name='silent store with CONDSTORE reports only MODSEQ')
    c.run('UID STORE 2 FLAGS (\\Seen kw1)', 'OK',
          [r'^\* 2 FETCH \(UID 2 FLAGS \(\\Seen kw1\)'])
    c.run('STORE 3 +FLAGS \\Answered \\Seen', 'OK', [r'^\* 3 FETCH .*\\Answered \\Seen'])
    lines, _ = c.run('FETCH 3 (MODSEQ)', 'OK')
    ms = int(re.search(r'MODSEQ \((\d+)\)', ' '.join(lines)).group(1))
    c.run('STORE 3,4 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)' % (ms - 1),
          'OK \\[MODIFIED 3\\]', name='UNCHANGEDSINCE fails for a changed message')
    c.run('STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Flagged)', 'BAD \\[CLIENTBUG\\]')
    c.run('STORE 1 FLAGZ (\\Seen)', 'BAD \\[CLIENTBUG\\]')
    c.run('STORE 1 +FLAGS', 'BAD \\[CLIENTBUG\\]')
    c.run('STORE 1 +FLAGS (\\Recent)', 'BAD \\[CLIENTBUG\\]')
    c.run('STORE 99 +FLAGS (\\Seen)', 'BAD \\[CLIENTBUG\\]')
    c.run('STORE 0 +FLAGS (\\Seen)', 'BAD \\[CLIENTBUG\\]')
    c.run('STORE 1:4294967295 +FLAGS.SILENT (kw2)', 'OK')
    c.run('STORE *:* -FLAGS.SILENT (kw2)', 'OK')
    c.run('UID STORE 100:200 +FLAGS (\\Seen)', 'OK', name='uid store outside the mailbox')

    # ---- COPY / MOVE ---------------------------------------------------
    c.run('CREATE Work', 'OK')
    c.run('COPY 1:2 Work', 'OK \\[COPYUID \\d+ 1:2 1:2\\]')
    c.run('UID COPY 3 Work', 'OK \\[COPYUID \\d+ 3 3\\]')
    c.run('COPY 1 Nope', 'NO \\[TRYCREATE\\]')
    c.run('COPY 1', 'BAD \\[CLIENTBUG\\]')
    c.run('MOVE 7 Work', 'OK', [r'^\* OK \[COPYUID \d+ 7 4\]', r'^\* 7 EXPUNGE'])
    c.run('UID MOVE 6 Work', 'OK', [r'^\* OK \[COPYUID \d+ 6 5\]', r'^\* 6 EXPUNGE'])
    c.run('STATUS Work (MESSAGES)', 'OK', [r'MESSAGES 5'])

    # ---- EXPUNGE ---------------------------------------------------------
    c.run('STORE 1,3 +FLAGS.SILENT (\\Deleted)', 'OK')
    c.run('UID EXPUNGE 3', 'OK', [r'^\* 3 EXPUNGE'], absent=[r'^\* 1 EXPUNGE'])
    c.run('EXPUNGE', 'OK', [r'^\* 1 EXPUNGE'])
    c.run('EXPUNGE 1', 'BAD \\[CLIENTBUG\\]')
    c.run('UID EXPUNGE', 'BAD \\[CLIENTBUG\\]')
    c.run('NOOP', 'OK', absent=[r'EXPUNGE'])
    c.run('STORE 1 +FLAGS.SILENT (\\Deleted)', 'OK')
    c.run('UNSELECT', 'OK')
    c.run('STATUS INBOX (MESSAGES DELETED)', 'OK', [r'MESSAGES 3 DELETED 1'],
          name='UNSELECT does not expunge')
    c.run('SELECT INBOX', 'OK')
    c.run('CLOSE', 'OK', absent=[r'EXPUNGE'])
    c.run('STATUS INBOX (MESSAGES DELETED)', 'OK', [r'MESSAGES 2 DELETED 0'],
          name='CLOSE expunges silently')
    c.run('CLOSE', 'BAD \\[CLIENTBUG\\]')

    # ---- QRESYNC --------------------------------------------------------
    c.run('ENABLE QRESYNC', 'OK', [r'ENABLED QRESYNC'])
    lines, _ = c.run('SELECT INBOX', 'OK')
    hms = int(re.search(r'HIGHESTMODSEQ (\d+)', ' '.join(lines)).group(1))
    c.run('STORE 1 +FLAGS (kwq)', 'OK')
    c.run('STORE 2 +FLAGS.SILENT (\\Deleted)', 'OK')
    c.run('EXPUNGE', 'OK', [r'^\* VANISHED 5$'], absent=[r'EXPUNGE'])
    c.run('UNSELECT', 'OK')
    c.run('SELECT INBOX (QRESYNC (%d %d 1:10))' % (uidvalidity, hms), 'OK',
          [r'^\* VANISHED \(EARLIER\) 5$', r'^\* 1 FETCH \(UID 4 FLAGS \(.*kwq.*\) MODSEQ'])
    c.run('SELECT INBOX (QRESYNC (%d %d))' % (uidvalidity + 1, hms), 'OK',
          absent=[r'VANISHED', r'FETCH'], name='QRESYNC with an old UIDVALIDITY')
    c.run('SELECT INBOX (QRESYNC (%d x))' % uidvalidity, 'BAD \\[CLIENTBUG\\]')

    # ---- QUOTA ---------------------------------------------------------------
    c.run('GETQUOTAROOT INBOX', 'OK', [r'^\* QUOTAROOT "INBOX"$'],
          name='no quota: no quota root')
    rc, out, err = env.loftctl('user', 'quota', USER, '10M')
    r.check('loftctl user quota', rc == 0, out + err)
    c.run('GETQUOTAROOT INBOX', 'OK', [r'^\* QUOTAROOT "INBOX" ""$',
                                       r'^\* QUOTA "" \(STORAGE \d+ 10240'])
    c.run('GETQUOTA ""', 'OK', [r'^\* QUOTA "" \(STORAGE \d+ 10240'])
    c.run('GETQUOTA "other"', 'NO \\[NONEXISTENT\\]')
    c.run('SETQUOTA "" (STORAGE 1)', 'NO \\[NOPERM\\]')
    c.run('GETQUOTAROOT Nope', 'NO \\[NONEXISTENT\\]')
    # MULTIAPPEND over quota is all or nothing: the first two messages
    # fit, the third does not; those stored in the same commit go again
    lines, _ = c.run('GETQUOTA ""', 'OK')
    used = int(re.search(r'STORAGE (\d+) ', ' '.join(lines)).group(1))
    rc, out, err = env.loftctl('user', 'quota', USER, '%dK' % (used + 30))
    r.check('loftctl user quota for MULTIAPPEND', rc == 0, out + err)
    lines, _ = c.run('STATUS INBOX (MESSAGES)', 'OK')
    before = re.search(r'MESSAGES (\d+)', ' '.join(lines)).group(1)
    msgs = [msg(20 + i, size).encode()
            for i, size in enumerate((10000, 10000, 20000))]
    tag = c.next_tag()
    c.send(tag.encode() + b' APPEND INBOX' +
           b''.join(b' {%d+}\r\n%s' % (len(m), m) for m in msgs) + b'\r\n')
    c.collect(tag, 'NO \\[OVERQUOTA\\]', name='multiappend over quota')
    c.run('STATUS INBOX (MESSAGES)', 'OK', [r'MESSAGES %s\)' % before],
          name='nothing kept of the MULTIAPPEND over quota')
    c.run('APPEND INBOX {%d+}\r\n%s' % (len(msgs[0]), msgs[0].decode()),
          'OK', name='a message that fits still goes in')
    c.run('LOGOUT', 'OK')

sys.exit(r.finish())
