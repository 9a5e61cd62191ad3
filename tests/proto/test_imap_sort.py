#!/usr/bin/env python3
"""IMAP SORT (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO) and THREAD
(REFERENCES, ORDEREDSUBJECT) conversations against a private loftd, on a
mailbox whose orders are worked out by hand from the RFC rules, plus the
error cases."""

import re
import sys

from loftenv import Loft, Results
from test_imap_fetch import Imap, fetch_items

MSGS = [
    (b'"03-Feb-2024 10:00:00 +0000"',
     b'From: Zed <zed@x.test>\r\nTo: amy@x.test\r\nCc: bob@x.test\r\n'
     b'Subject: apple\r\nDate: Wed, 3 Jan 2024 10:00:00 +0000\r\n'
     b'Message-ID: <m1@x.test>\r\n\r\nbody one\r\n'),
    (b'"01-Feb-2024 10:00:00 +0000"',
     b'From: "Anna" <yolanda@x.test>\r\nTo: Zz Top <bob@x.test>\r\n'
     b'Subject: Re: apple\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n'
     b'Message-ID: <m2@x.test>\r\nIn-Reply-To: <m1@x.test>\r\n\r\nbody two, longer\r\n'),
    (b'"02-Feb-2024 10:00:00 +0000"',
     b'From: bob@x.test\r\nTo: zoe@x.test\r\n'
     b'Subject: [list] banana\r\nDate: Tue, 2 Jan 2024 10:00:00 +0000\r\n'
     b'Message-ID: <m3@x.test>\r\n\r\n' + b'long body\r\n' * 50),
    (b'"04-Feb-2024 10:00:00 +0000"',
     b'From: <carl@x.test>\r\nSubject: Fwd: cherry\r\n'
     b'Message-ID: <m4@x.test>\r\n\r\nfour\r\n'),
    (b'"05-Feb-2024 10:00:00 +0000"',
     b'From: Mike <ann@x.test>\r\nSubject: banana\r\n'
     b'Date: Fri, 5 Jan 2024 10:00:00 +0000\r\n'
     b'Message-ID: <m5@x.test>\r\nReferences: <m3@x.test>\r\n\r\nfive\r\n'),
]


def numbers(u, kind):
    for line in u:
        if line.startswith(b'* ' + kind):
            return line[len(kind) + 2:].strip().decode()
    return None


def main():
    r = Results()
    with Loft() as env:
        im = Imap(env)
        im.ok('LOGIN alice@example.test tea-party-rabbit-hole')
        for date, msg in MSGS:
            im.ok(b'APPEND INBOX ' + date + b' {%d+}\r\n' % len(msg) + msg)
        im.ok('SELECT INBOX')

        u, t = im.cmd('FETCH 1:* (RFC822.SIZE)')
        sizes = {}
        for line in u:
            if b'FETCH' in line:
                s, it = fetch_items(line)
                sizes[s] = int(it[b'RFC822.SIZE'])
        by_size = ' '.join(str(s) for s in sorted(sizes, key=lambda s: (sizes[s], s)))

        cases = [
            ('(SUBJECT)', '1 2 3 5 4'),
            ('(DATE)', '2 3 1 5 4'),
            ('(REVERSE DATE)', '4 5 1 3 2'),
            ('(ARRIVAL)', '2 3 1 4 5'),
            ('(REVERSE ARRIVAL)', '5 4 1 3 2'),
            ('(FROM)', '5 3 4 2 1'),
            ('(DISPLAYFROM)', '2 3 4 5 1'),
            ('(TO)', '4 5 1 2 3'),
            ('(DISPLAYTO)', '4 5 1 3 2'),
            ('(CC)', '2 3 4 5 1'),
            ('(SIZE)', by_size),
            ('(SUBJECT REVERSE DATE)', '1 2 5 3 4'),
            ('(REVERSE SUBJECT ARRIVAL)', '4 3 5 2 1'),
        ]
        for crit, want in cases:
            u, t = im.cmd('SORT %s UTF-8 ALL' % crit)
            r.check('sort %s' % crit, numbers(u, b'SORT') == want and b'OK' in t,
                    (numbers(u, b'SORT'), want, t))
        u, t = im.cmd('SORT (DATE) UTF-8 NOT FROM bob')
        r.check('sort with search', numbers(u, b'SORT') == '2 1 5 4', u)
        u, t = im.cmd('SORT (DATE) US-ASCII KEYWORD none')
        r.check('sort empty result', u == [b'* SORT\r\n'], u)
        im.ok('STORE 1 +FLAGS.SILENT (\\Deleted)')
        im.ok('EXPUNGE')
        # after the expunge: seq 1..4 are UIDs 2..5
        u, t = im.cmd('UID SORT (DATE) UTF-8 ALL')
        r.check('uid sort', numbers(u, b'SORT') == '2 3 5 4', u)
        u, t = im.cmd('SORT (DATE) UTF-8 ALL')
        r.check('seq sort after expunge', numbers(u, b'SORT') == '1 2 4 3', u)
        # put message one back (new UID 6, seq 5)
        im.ok(b'APPEND INBOX ' + MSGS[0][0] + b' {%d+}\r\n' % len(MSGS[0][1]) + MSGS[0][1])
        im.ok('NOOP')

        # THREAD: seq 1..5 = m2, m3, m4, m5, m1
        u, t = im.cmd('THREAD REFERENCES UTF-8 ALL')
        r.check('thread references', numbers(u, b'THREAD') == '(2 4)(5 1)(3)',
                (numbers(u, b'THREAD'), t))
        u, t = im.cmd('UID THREAD REFERENCES UTF-8 ALL')
        r.check('uid thread references', numbers(u, b'THREAD') == '(3 5)(6 2)(4)',
                (numbers(u, b'THREAD'), t))
        u, t = im.cmd('THREAD ORDEREDSUBJECT UTF-8 ALL')
        r.check('thread orderedsubject', numbers(u, b'THREAD') == '(1 5)(2 4)(3)',
                (numbers(u, b'THREAD'), t))
        u, t = im.cmd('THREAD REFERENCES UTF-8 SUBJECT nothing')
        r.check('thread empty', u == [b'* THREAD\r\n'], u)
        # a reply whose parent is missing, and a subject-only sibling
        extra = [
            b'From: a@x.test\r\nSubject: Re: plum\r\nDate: Sat, 6 Jan 2024 10:00:00 +0000\r\n'
            b'Message-ID: <p2@x.test>\r\nReferences: <gone@x.test>\r\n\r\nx\r\n',
            b'From: a@x.test\r\nSubject: Re: plum\r\nDate: Sun, 7 Jan 2024 10:00:00 +0000\r\n'
            b'Message-ID: <p3@x.test>\r\nReferences: <gone@x.test>\r\n\r\nx\r\n',
            b'From: a@x.test\r\nSubject: plum\r\nDate: Mon, 8 Jan 2024 10:00:00 +0000\r\n'
            b'Message-ID: <p4@x.test>\r\n\r\nx\r\n',
        ]
        for m in extra:
            im.ok(b'APPEND INBOX {%d+}\r\n' % len(m) + m)
        im.ok('NOOP')
        # 6, 7 share the dummy <gone>; 8 has the same base subject and is
        # not a reply, so RFC 5256 step 5C makes it a child of the dummy
        u, t = im.cmd('THREAD REFERENCES UTF-8 6:*')
        r.check('thread dummy + subject merge', numbers(u, b'THREAD') == '((6)(7)(8))',
                (numbers(u, b'THREAD'), t))

        for bad in ('SORT DATE UTF-8 ALL', 'SORT () UTF-8 ALL', 'SORT (BOGUS) UTF-8 ALL',
                    'SORT (REVERSE) UTF-8 ALL', 'SORT (DATE) ALL', 'SORT (DATE) UTF-8',
                    'THREAD BOGUS UTF-8 ALL', 'THREAD REFERENCES ALL', 'THREAD',
                    'SORT (DATE) UTF-8 BOGUS'):
            u, t = im.cmd(bad)
            r.check('bad: ' + bad, t.split()[1] == b'BAD', t)
        u, t = im.cmd('SORT (DATE) X-NO-SUCH-CHARSET ALL')
        r.check('sort badcharset', t.split()[1] == b'NO' and b'BADCHARSET' in t, t)
        u, t = im.cmd('THREAD ORDEREDSUBJECT X-NO-SUCH-CHARSET ALL')
        r.check('thread badcharset', t.split()[1] == b'NO' and b'BADCHARSET' in t, t)
        u, t = im.cmd('SORT (ARRIVAL) UTF-8 ALL')
        r.check('session usable', b'OK' in t and numbers(u, b'SORT') is not None, t)
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
