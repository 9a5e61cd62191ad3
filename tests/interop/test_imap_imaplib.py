#!/usr/bin/env python3
"""python3 imaplib against loftd: LOGIN over STARTTLS and IMAPS, LIST,
SELECT, APPEND, FETCH, SEARCH, STORE, COPY, MOVE (uid), EXPUNGE, STATUS,
CREATE/RENAME/DELETE, AUTHENTICATE PLAIN, NAMESPACE, GETQUOTAROOT, LOGOUT."""

import imaplib
import sys
import time

from loftenv import Loft, Results, client_tls_context

USER, PW = 'alice@example.test', 'tea-party-rabbit-hole'
r = Results()


def ok(name, res):
    typ, data = res
    r.check(name, typ == 'OK', data)
    return data


with Loft() as env:
    m = env.imap()
    r.check('greeting capabilities', 'IMAP4REV1' in m.capabilities and
            'STARTTLS' in m.capabilities, m.capabilities)
    ok('starttls', m.starttls(ssl_context=client_tls_context()))
    ok('login', m.login(USER, PW))
    data = ok('list', m.list())
    names = [d.decode() for d in data]
    r.check('list shows special-use folders',
            any('\\Sent' in n and '"Sent"' in n for n in names), names)
    ok('create', m.create('Reports'))
    ok('rename', m.rename('Reports', 'Reports2024'))
    data = ok('list pattern', m.list('""', 'Reports*'))
    r.check('renamed folder listed', b'"Reports2024"' in data[0], data)

    when = imaplib.Time2Internaldate(time.mktime((2024, 3, 4, 10, 0, 0, 0, 0, -1)))
    for i in range(5):
        msg = ('From: a@example.test\r\nSubject: imaplib %d\r\n\r\nbody %d\r\n' % (i, i)).encode()
        typ, data = m.append('INBOX', '(\\Seen)' if i % 2 else None, when, msg)
        r.check('append %d' % i, typ == 'OK' and b'APPENDUID' in data[0], data)
    data = ok('select', m.select('INBOX'))
    r.check('select count', data == [b'5'], data)
    data = ok('search unseen', m.search(None, 'UNSEEN'))
    r.check('unseen messages', data == [b'1 3 5'], data)
    typ, data = m.fetch('2', '(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    r.check('fetch', typ == 'OK' and b'\\Seen' in data[0][0] and
            b'Subject: imaplib 1' in data[0][1] and b'04-Mar-2024' in data[0][0], data)
    typ, data = m.fetch('1', '(RFC822)')
    r.check('fetch rfc822', typ == 'OK' and data[0][1].endswith(b'body 0\r\n'), data)
    data = ok('store', m.store('1', '+FLAGS', '(\\Flagged)'))
    r.check('store response', b'\\Flagged' in data[0], data)
    ok('copy', m.copy('1:2', 'Reports2024'))
    typ, data = m.uid('MOVE', '3', 'Archive')
    r.check('uid move', typ == 'OK', data)
    ok('store deleted', m.store('1', '+FLAGS', '(\\Deleted)'))
    typ, data = m.expunge()
    # imaplib also hands back the EXPUNGE that the UID MOVE caused
    r.check('expunge', typ == 'OK' and data == [b'3', b'1'], data)
    data = ok('status', m.status('Reports2024', '(MESSAGES UNSEEN UIDNEXT)'))
    r.check('status values', b'MESSAGES 2' in data[0] and b'UIDNEXT 3' in data[0], data)
    ok('namespace', m.namespace())
    typ, data = m.getquotaroot('INBOX')
    r.check('getquotaroot', typ == 'OK', data)
    ok('close', m.close())
    ok('delete', m.delete('Reports2024'))
    r.check('select deleted mailbox fails', m.select('Reports2024')[0] == 'NO')
    r.check('logout', m.logout()[0] == 'BYE')

    s = env.imap(tls=True)
    ok('authenticate plain',
       s.authenticate('PLAIN', lambda _: ('\0%s\0%s' % (USER, PW)).encode()))
    data = ok('examine', s.select('Archive', readonly=True))
    r.check('moved message arrived', data == [b'1'], data)
    typ, data = s.store('1', '+FLAGS', '(\\Seen)')
    r.check('store in read-only mailbox refused', typ == 'NO', data)
    r.check('logout imaps', s.logout()[0] == 'BYE')
    bad = env.imap()
    try:
        bad.login(USER, 'wrong')
        r.check('wrong password refused', False)
    except imaplib.IMAP4.error as e:
        r.check('wrong password refused', 'AUTHENTICATIONFAILED' in str(e), e)
    bad.logout()

sys.exit(r.finish())
