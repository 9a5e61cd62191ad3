#!/usr/bin/env python3
"""IMAP SEARCH conversations against a private loftd: every search key on a
small mailbox whose answers are known, ESEARCH (RETURN MIN MAX ALL COUNT
SAVE), SEARCHRES "$", CONDSTORE MODSEQ, charsets, and the bad cases
(unknown keys, wrong arguments, deep nesting), after each of which the
session must go on."""

import re
import sys
import time

from loftenv import Loft, Results
from test_imap_fetch import Imap, fetch_items, tokenize

MSGS = [
    # 1: seen; plain ASCII
    (b'(\\Seen)', b'"01-Feb-2024 10:00:00 +0000"',
     b'From: Alice Example <alice@example.test>\r\n'
     b'To: bob@example.test\r\nCc: Carol <carol@example.test>\r\n'
     b'Subject: Quarterly report\r\n'
     b'Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n'
     b'Message-ID: <q1@example.test>\r\n\r\n'
     b'The numbers are GOOD this quarter.\r\n'),
    # 2: answered+flagged; 8-bit UTF-8 body; late evening in -0500
    (b'(\\Answered \\Flagged)', b'"02-Feb-2024 10:00:00 +0000"',
     b'From: Bob <bob@example.test>\r\nTo: Alice <alice@example.test>\r\n'
     b'Subject: Re: Quarterly report\r\n'
     b'Date: Tue, 2 Jan 2024 23:30:00 -0500\r\n'
     b'Message-ID: <q2@example.test>\r\nIn-Reply-To: <q1@example.test>\r\n'
     b'MIME-Version: 1.0\r\n'
     b'Content-Type: text/plain; charset=utf-8\r\n'
     b'Content-Transfer-Encoding: 8bit\r\n\r\n'
     + 'Grüße aus München!\r\n'.encode()),
    # 3: deleted + keyword; encoded-word From and Subject; base64 body
    (b'(\\Deleted $Important)', b'"03-Feb-2024 10:00:00 +0000"',
     b'From: =?iso-8859-1?q?J=F6rg?= <jorg@example.test>\r\n'
     b'To: alice@example.test\r\n'
     b'Subject: =?utf-8?b?w5xiZXIgYWxsZXM=?=\r\n'
     b'Date: Fri, 5 Jan 2024 08:00:00 +0100\r\n'
     b'MIME-Version: 1.0\r\n'
     b'Content-Type: text/plain; charset=iso-8859-1\r\n'
     b'Content-Transfer-Encoding: base64\r\n\r\n'
     + __import__('base64').encodebytes('Straße und Käse\r\n'.encode('latin-1')).replace(b'\n', b'\r\n')),
    # 4: multipart alternative with HTML
    (b'()', b'"04-Feb-2024 10:00:00 +0000"',
     b'From: news@example.test\r\nTo: alice@example.test\r\n'
     b'Subject: Newsletter\r\nDate: Sat, 6 Jan 2024 09:00:00 +0000\r\n'
     b'MIME-Version: 1.0\r\n'
     b'Content-Type: multipart/alternative; boundary=XX\r\n\r\n'
     b'--XX\r\nContent-Type: text/html\r\n\r\n'
     b'<p>Hello <b>Wonderful</b> World</p>\r\n--XX--\r\n'),
    # 5: big, no Subject
    (b'(\\Draft)', b'"05-Feb-2024 10:00:00 +0000"',
     b'From: big@example.test\r\nDate: Sun, 7 Jan 2024 09:00:00 +0000\r\n\r\n'
     + b'filler line of text\r\n' * 400),
    # 6: Bcc, custom header, delivered "now"
    (b'()', None,
     b'From: misc@example.test\r\nTo: alice@example.test\r\n'
     b'Bcc: secret@example.test\r\nX-Custom: Foo Bar\r\n'
     b'Subject: misc\r\nDate: Mon, 8 Jan 2024 09:00:00 +0000\r\n\r\n'
     b'nothing much\r\n'),
]


def search(im, text):
    """Returns (set of numbers, tagged line, untagged lines)."""
    if isinstance(text, str):
        text = text.encode()
    u, t = im.cmd(b'SEARCH ' + text)
    nums = None
    for line in u:
        if line.startswith(b'* SEARCH'):
            nums = set(int(x) for x in re.findall(rb' (\d+)(?= |\r)',
                                                  line.split(b'(')[0]))
    return nums, t, u


def main():
    r = Results()
    with Loft() as env:
        im = Imap(env)
        im.ok('LOGIN alice@example.test tea-party-rabbit-hole')
        for flags, date, msg in MSGS:
            cmd = b'APPEND INBOX ' + flags + b' '
            if date:
                cmd += date + b' '
            im.ok(cmd + b'{%d+}\r\n' % len(msg) + msg)
        im.ok('SELECT INBOX')

        cases = [
            ('ALL', {1, 2, 3, 4, 5, 6}),
            ('SEEN', {1}), ('UNSEEN', {2, 3, 4, 5, 6}),
            ('ANSWERED', {2}), ('UNANSWERED', {1, 3, 4, 5, 6}),
            ('FLAGGED', {2}), ('UNFLAGGED', {1, 3, 4, 5, 6}),
            ('DELETED', {3}), ('UNDELETED', {1, 2, 4, 5, 6}),
            ('DRAFT', {5}), ('UNDRAFT', {1, 2, 3, 4, 6}),
            ('KEYWORD $Important', {3}), ('UNKEYWORD $important', {1, 2, 4, 5, 6}),
            ('RECENT', {1, 2, 3, 4, 5, 6}), ('NEW', {2, 3, 4, 5, 6}), ('OLD', set()),
            ('FROM alice', {1}), ('FROM ALICE', {1}), ('TO alice', {2, 3, 4, 6}),
            ('CC carol', {1}), ('BCC secret', {6}),
            ('SUBJECT quarterly', {1, 2}), ('SUBJECT "re: quarterly"', {2}),
            ('HEADER X-Custom bar', {6}), ('HEADER X-Custom ""', {6}),
            ('HEADER Message-ID q2@', {2}), ('HEADER X-None ""', set()),
            ('BODY good', {1}), ('BODY "numbers are"', {1}),
            ('BODY alice', set()), ('TEXT alice', {1, 2, 3, 4, 6}),
            ('BODY wonderful', {4}), ('BODY "<b>"', set()),
            ('BODY ""', {1, 2, 3, 4, 5, 6}),
            ('LARGER 5000', {5}), ('SMALLER 5000', {1, 2, 3, 4, 6}),
            ('ON 02-Feb-2024', {2}), ('BEFORE 3-Feb-2024', {1, 2}),
            ('SINCE 4-Feb-2024', {4, 5, 6}),
            ('SENTON 2-Jan-2024', {2}), ('SENTBEFORE 2-Jan-2024', {1}),
            ('SENTSINCE 6-Jan-2024', {4, 5, 6}), ('SENTON 5-Jan-2024', {3}),
            ('YOUNGER 3600', {6}), ('OLDER 3600', {1, 2, 3, 4, 5}),
            ('SAVEDSINCE 1-Jan-2020', {1, 2, 3, 4, 5, 6}),
            ('SAVEDBEFORE 1-Jan-2020', set()), ('SAVEDATESUPPORTED', {1, 2, 3, 4, 5, 6}),
            ('2:4', {2, 3, 4}), ('4:2', {2, 3, 4}), ('*', {6}), ('5:*', {5, 6}),
            ('1,3,5', {1, 3, 5}), ('UID 2:3', {2, 3}), ('UID *', {6}),
            ('NOT SEEN', {2, 3, 4, 5, 6}), ('OR SEEN FLAGGED', {1, 2}),
            ('OR (SEEN) (OR DRAFT DELETED)', {1, 3, 5}),
            ('(SUBJECT quarterly NOT ANSWERED)', {1}),
            ('SEEN FLAGGED', set()), ('NOT NOT SEEN', {1}),
            ('CHARSET UTF-8 ALL', {1, 2, 3, 4, 5, 6}),
            ('CHARSET US-ASCII SEEN', {1}),
        ]
        for text, want in cases:
            got, t, u = search(im, text)
            r.check('search %s' % text, got == want and b'OK' in t[:12],
                    (got, want, t))

        # non-ASCII: literal strings under CHARSET UTF-8, case folded
        for needle, key, want in (('jörg', 'FROM', {3}), ('JÖRG', 'FROM', {3}),
                                  ('über', 'SUBJECT', {3}), ('ÜBER', 'SUBJECT', {3}),
                                  ('grüße', 'BODY', {2}), ('MÜNCHEN', 'BODY', {2}),
                                  ('straße', 'BODY', {3}), ('KÄSE', 'TEXT', {3})):
            b = needle.encode()
            got, t, u = search(im, b'CHARSET UTF-8 %s {%d+}\r\n' % (key.encode(), len(b)) + b)
            r.check('utf-8 %s %s' % (key, needle), got == want, (got, want, t))
            # IMAP4rev2 / RFC 6855 style: a quoted UTF-8 string
            got, t, u = search(im, b'%s "%s"' % (key.encode(), b))
            r.check('quoted utf-8 %s %s' % (key, needle), got == want, (got, want, t))

        # UID SEARCH answers UIDs
        u, t = im.cmd('UID SEARCH 2:3')
        r.check('uid search', u == [b'* SEARCH 2 3\r\n'], u)

        # ESEARCH
        u, t = im.cmd('SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN')
        r.check('esearch all opts', u == [b'* ESEARCH (TAG "F%d") MIN 2 MAX 6 ALL 2:6 COUNT 5\r\n' % im.n], u)
        u, t = im.cmd('SEARCH RETURN () 1,3:4')
        r.check('esearch empty list = ALL', u == [b'* ESEARCH (TAG "F%d") ALL 1,3:4\r\n' % im.n], u)
        u, t = im.cmd('UID SEARCH RETURN (COUNT) SEEN')
        r.check('uid esearch', u == [b'* ESEARCH (TAG "F%d") UID COUNT 1\r\n' % im.n], u)
        u, t = im.cmd('SEARCH RETURN (MIN MAX) KEYWORD nothing')
        r.check('esearch no match', u == [b'* ESEARCH (TAG "F%d")\r\n' % im.n], u)
        u, t = im.cmd('SEARCH RETURN (COUNT) KEYWORD nothing')
        r.check('esearch count 0', u == [b'* ESEARCH (TAG "F%d") COUNT 0\r\n' % im.n], u)
        u, t = im.cmd('SEARCH RETURN (BOGUS) ALL')
        r.check('esearch bad option', t.split()[1] == b'BAD', t)

        # SEARCHRES: SAVE alone answers nothing; $ is the saved set
        u, t = im.cmd('SEARCH RETURN (SAVE) OR SEEN DRAFT')
        r.check('save silent', u == [] and b'OK' in t, (u, t))
        got, t, u = search(im, '$')
        r.check('search $', got == {1, 5}, got)
        u, t = im.cmd('UID FETCH $ (FLAGS)')
        r.check('fetch $', len([x for x in u if b'FETCH' in x]) == 2, u)
        u, t = im.cmd('SEARCH RETURN (SAVE MIN) UNSEEN')
        got, t, u = search(im, 'UID $')
        r.check('save min only', got == {2}, got)
        u, t = im.cmd('SEARCH RETURN (SAVE) CHARSET X-NO-SUCH-CHARSET ALL')
        got, t, u = search(im, '$')
        r.check('failed save empties $', got == set(), got)

        # CONDSTORE
        u, t = im.cmd('FETCH 1:* (MODSEQ)')
        ms = {}
        for line in u:
            if b'FETCH' in line:
                s, it = fetch_items(line)
                ms[s] = int(it[b'MODSEQ'][0])
        top = max(ms.values())
        got, t, u = search(im, 'MODSEQ %d' % top)
        want = {s for s, m in ms.items() if m >= top}
        r.check('modseq search', got == want, (got, want))
        r.check('modseq in reply', any(re.search(rb'\(MODSEQ %d\)\r\n$' % top, x) for x in u), u)
        got, t, u = search(im, 'MODSEQ "/flags/\\\\draft" all 1')
        r.check('modseq entry form', got == {1, 2, 3, 4, 5, 6}, (got, t))
        u, t = im.cmd('SEARCH RETURN (COUNT) MODSEQ 1')
        r.check('esearch modseq', re.search(rb'COUNT 6 MODSEQ \d+\r\n$', u[0] if u else b'') is not None, u)

        # EMAILID / THREADID (RFC 8474)
        u, t = im.cmd('FETCH 2 (EMAILID)')
        s, it = fetch_items(u[0])
        eid = it[b'EMAILID'][0].decode()
        got, t, u = search(im, 'EMAILID %s' % eid)
        r.check('emailid search', got == {2}, (got, t))

        u, t = im.cmd('FETCH 1:2 (THREADID)')
        tids = [fetch_items(x)[1].get(b'THREADID') for x in u if b'FETCH' in x]
        r.check('threadid fetched', len(tids) == 2 and all(isinstance(x, list) for x in tids), tids)
        if len(tids) == 2 and all(isinstance(x, list) for x in tids):
            got, t, u = search(im, 'THREADID %s' % tids[1][0].decode())
            r.check('threadid search', got is not None and 2 in got, (got, t))
            # message 2 answers message 1 (In-Reply-To): one thread
            r.check('reply shares threadid', tids[0] == tids[1], tids)

        # IMAP4rev2 (RFC 9051 7.3.4): SEARCH answers with ESEARCH
        im2 = Imap(env)
        im2.ok('LOGIN alice@example.test tea-party-rabbit-hole')
        im2.ok('ENABLE IMAP4rev2')
        im2.ok('EXAMINE INBOX')
        u, t = im2.cmd('SEARCH SEEN')
        r.check('rev2 esearch', u == [b'* ESEARCH (TAG "F%d") ALL 1\r\n' % im2.n], u)
        u, t = im2.cmd('UID SEARCH KEYWORD none')
        r.check('rev2 uid esearch empty', u == [b'* ESEARCH (TAG "F%d") UID\r\n' % im2.n], u)

        # errors; the session goes on
        u, t = im.cmd('SEARCH CHARSET X-NO-SUCH-CHARSET ALL')
        r.check('badcharset', t.split()[1] == b'NO' and b'[BADCHARSET (UTF-8 US-ASCII)]' in t, t)
        for bad in ('SEARCH', 'SEARCH BOGUS', 'SEARCH FROM', 'SEARCH LARGER x',
                    'SEARCH BEFORE 31-Foo-2024', 'SEARCH BEFORE 2024-01-01',
                    'SEARCH OR SEEN', 'SEARCH NOT', 'SEARCH (SEEN', 'SEARCH ()',
                    'SEARCH UID', 'SEARCH UID x', 'SEARCH 1:x', 'SEARCH 0',
                    'SEARCH HEADER X', 'SEARCH MODSEQ x', 'SEARCH CHARSET',
                    'SEARCH RETURN ALL'):
            u, t = im.cmd(bad)
            r.check('bad: ' + bad, t.split()[1] == b'BAD', t)
        u, t = im.cmd('SEARCH ' + 'NOT ' * 5000 + 'ALL')
        r.check('deep NOT refused', t.split()[1] == b'BAD', t[:80])
        u, t = im.cmd('SEARCH ' + '(' * 200 + 'ALL' + ')' * 200)
        r.check('deep parens refused or answered', t.split()[1] in (b'BAD', b'OK'), t[:80])
        u, t = im.cmd('SEARCH ' + 'OR SEEN ' * 200 + 'DRAFT')
        r.check('long OR chain', t.split()[1] == b'OK' and u == [b'* SEARCH 1 5\r\n'], (u, t[:80]))
        got, t, u = search(im, 'ALL')
        r.check('session usable after errors', got == {1, 2, 3, 4, 5, 6}, (got, t))

        # a larger mailbox: SEARCH BODY stays quick
        n = 1000
        chunk = b''
        for i in range(n):
            word = b'needle%d' % i if i % 100 == 0 else b'hay'
            m = b'Subject: bulk %d\r\n\r\nsome body text with %s in it\r\n' % (i, word)
            chunk += b'A%d APPEND INBOX {%d+}\r\n' % (i, len(m)) + m + b'\r\n'
        im.send(chunk)
        done = 0
        while done < n:
            if re.match(rb'A\d+ ', im.read_response()):
                done += 1
        im.ok('NOOP')
        t0 = time.time()
        got, t, u = search(im, 'BODY NEEDLE')
        dt = time.time() - t0
        r.check('body search bulk', got is not None and len(got) == 10, got and len(got))
        print('SEARCH BODY over %d messages: %.3f s' % (n + 6, dt))
        t0 = time.time()
        got, t, u = search(im, 'UNSEEN SUBJECT "bulk 29"')
        print('SEARCH UNSEEN SUBJECT (cached envelope) over %d messages: %.3f s' % (n + 6, time.time() - t0))
        r.check('subject search bulk', got is not None and len(got) == 11, got and len(got))

        # issue 11: no cap on a message's search text (docs/compat.md;
        # searches once stopped at 16 MiB of text): a 17 MiB text
        # message whose word comes at its end is found by BODY and TEXT
        big = 17 << 20
        line = b'plain words of a very long text message, line after line\r\n'
        body = line * (big // len(line)) + b'tail needlepastthecap end\r\n'
        m = b'Subject: very long\r\n\r\n' + body
        im.ok('CREATE Long')
        im.ok(b'APPEND Long {%d+}\r\n' % len(m) + m)
        im.ok('SELECT Long')
        for key in ('BODY', 'TEXT'):
            got, t, u = search(im, '%s needlepastthecap' % key)
            r.check('%s finds a word past 16 MiB of text' % key, got == {1},
                    (got, t))
        got, t, u = search(im, 'BODY "line after line"')
        r.check('the long message matches at its start too', got == {1}, (got, t))
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
