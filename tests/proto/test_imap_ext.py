#!/usr/bin/env python3
"""IMAP extensions of issue 9: PREVIEW (RFC 8970), UIDONLY (RFC 9586),
REPLACE (RFC 8508), CATENATE (RFC 4469), URLAUTH (RFC 4467), METADATA and
METADATA-SERVER (RFC 5464): each as a client uses it, and the bad input
each must refuse (URLs to messages the user cannot read or that were
expunged, forged or expired URLAUTH tokens, annotations over the size and
count limits, malformed entry names), with the session going on."""

import re
import sys
import time

from imapconv import Conv
from loftenv import Loft, Results

A, B = 'alice@example.test', 'bob@example.test'
r = Results()


def msg(subject, body='hello'):
    return ('Subject: %s\r\nFrom: a@example.test\r\n\r\n%s\r\n' % (subject, body))


MULTI = ('Subject: multi\r\nFrom: a@example.test\r\nMIME-Version: 1.0\r\n'
         'Content-Type: multipart/mixed; boundary="xx"\r\n\r\n'
         '--xx\r\nContent-Type: text/plain\r\n\r\npart one text\r\n'
         '--xx\r\nContent-Type: text/plain\r\n\r\npart two text\r\n--xx--\r\n')


def append(c, box, text, flags=''):
    _, t = c.run('APPEND %s %s{%d+}\r\n%s' % (box, flags + ' ' if flags else '',
                                              len(text.encode()), text), 'OK')
    m = re.search(r'APPENDUID (\d+) (\d+)', t or '')
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def text(s):
    """A CATENATE TEXT part."""
    return 'TEXT {%d+}\r\n%s' % (len(s.encode()), s)


def body_of(c, uid):
    c.run('NOOP', 'OK')
    lines, _ = c.run('UID FETCH %d (BODY.PEEK[])' % uid, 'OK')
    for l in lines:
        m = re.search(r'BODY\[\] \{(\d+)\}\r\n', l, re.S)
        if m:
            start = m.end()
            return l[start:start + int(m.group(1))]
    return None


with Loft() as env:
    c = Conv(env.raw('imap'), r)
    b = Conv(env.raw('imap'), r)
    c.login(A, env.users[A])
    b.login(B, env.users[B])
    lines, _ = c.run('CAPABILITY', 'OK')
    for cap in ('PREVIEW', 'UIDONLY', 'REPLACE', 'CATENATE', 'URLAUTH', 'METADATA',
                'METADATA-SERVER'):
        r.check('capability ' + cap, re.search(r' %s( |$)' % re.escape(cap), lines[0]) is not None,
                lines[0])
    uv, u1 = append(c, 'INBOX', MULTI)
    _, u2 = append(c, 'INBOX', msg('second', 'Second   message,\r\n  with   spaces.'))
    _, u3 = append(c, 'INBOX', 'Subject: empty\r\n\r\n')
    c.run('SELECT INBOX', 'OK')

    # ---- PREVIEW ---------------------------------------------------------
    c.run('FETCH 2 (PREVIEW)', 'OK', [r'^\* 2 FETCH \(PREVIEW "Second message, with spaces\."\)$'])
    c.run('FETCH 1 (PREVIEW (LAZY))', 'OK', [r'PREVIEW "part one text'])
    c.run('FETCH 3 (UID PREVIEW)', 'OK', [r'PREVIEW ""'], name='no text: empty preview')
    c.run('FETCH 1 (PREVIEW (FAST))', r'BAD \[CLIENTBUG\]')
    c.run('FETCH 1 (PREVIEW ())', r'BAD \[CLIENTBUG\]')

    # ---- CATENATE --------------------------------------------------------
    url1 = '/INBOX;UIDVALIDITY=%d/;UID=%d/;SECTION=1' % (uv, u1)
    head = 'Subject: built\r\nFrom: a@example.test\r\n\r\n'
    tail = '\r\nend\r\n'
    _, t = c.run('APPEND Drafts CATENATE (TEXT {%d+}\r\n%s URL "%s" TEXT {%d+}\r\n%s)'
                 % (len(head), head, url1, len(tail), tail), r'OK \[APPENDUID \d+ \d+\]')
    d = Conv(env.raw('imap'), r)
    d.login(A, env.users[A])
    d.run('SELECT Drafts', 'OK')
    got = body_of(d, int(re.search(r'APPENDUID \d+ (\d+)', t).group(1)))
    r.check('CATENATE: text, the part, text', got == head + 'part one text' + '\r\nend\r\n',
            repr(got))
    absu = 'imap://alice%%40example.test@loft.example.test/INBOX;UIDVALIDITY=%d/;UID=%d' % (uv, u2)
    _, t = c.run('APPEND Drafts (\\Draft) CATENATE (URL "%s")' % absu, 'OK')
    got = body_of(d, int(re.search(r'APPENDUID \d+ (\d+)', t).group(1)))
    r.check('CATENATE: a whole message by absolute URL', got == msg('second', 'Second   message,\r\n  with   spaces.'),
            repr(got))
    c.run('APPEND Drafts CATENATE (URL "/INBOX/;UID=%d/;PARTIAL=0.7")' % u2, 'OK',
          name='CATENATE: partial, no UIDVALIDITY')
    for bad, why in (('/INBOX;UIDVALIDITY=%d/;UID=999' % uv, 'no such message'),
                     ('/INBOX;UIDVALIDITY=%d/;UID=%d' % (uv + 1, u1), 'old UIDVALIDITY'),
                     ('/NoSuchBox/;UID=1', 'no such mailbox'),
                     ('imap://bob%40example.test@loft.example.test/INBOX/;UID=1', "another user's"),
                     ('/INBOX', 'no UID'), ('http://x/y', 'not IMAP'),
                     ('/INBOX/;UID=0', 'UID 0'), ('/INBOX/;UID=99999999999', 'UID too big'),
                     ('/INBOX/;UID=1/;SECTION=%ZZ', 'bad escape')):
        c.run('APPEND Drafts CATENATE (%s URL "%s")' % (text('x\r\n\r\n'), bad),
              r'NO \[BADURL "%s"\]' % re.escape(bad), name='BADURL: ' + why)
    c.run('APPEND Drafts CATENATE ()', r'BAD \[CLIENTBUG\]')
    c.run('APPEND Drafts CATENATE (TEXT "inline")', r'BAD \[CLIENTBUG\]', name='TEXT needs a literal')
    c.run('APPEND Drafts CATENATE (FOO "x")', r'BAD \[CLIENTBUG\]')
    c.run('APPEND NoSuch CATENATE (URL "%s")' % url1, r'NO \[TRYCREATE\]')
    # MULTIAPPEND with CATENATE: all or nothing
    lines, _ = d.run('STATUS Drafts (MESSAGES)', 'OK')
    before = int(re.search(r'MESSAGES (\d+)', lines[0]).group(1))
    c.run('APPEND Drafts CATENATE (URL "%s") CATENATE (URL "/INBOX/;UID=999")' % url1,
          r'NO \[BADURL', name='MULTIAPPEND with one bad URL')
    lines, _ = d.run('STATUS Drafts (MESSAGES)', 'OK')
    r.check('nothing of it stored', int(re.search(r'MESSAGES (\d+)', lines[0]).group(1)) == before,
            lines)
    # a URL to a message expunged meanwhile
    _, ux = append(c, 'INBOX', msg('to go'))
    c.run('UID STORE %d +FLAGS.SILENT (\\Deleted)' % ux, 'OK')
    c.run('UID EXPUNGE %d' % ux, 'OK')
    c.run('APPEND Drafts CATENATE (URL "/INBOX/;UID=%d")' % ux, r'NO \[BADURL', name='expunged')
    c.run('NOOP', 'OK')

    # ---- URLAUTH ---------------------------------------------------------
    def genurl(access, extra=''):
        rump = ('imap://alice%%40example.test@loft.example.test/INBOX;UIDVALIDITY=%d/;UID=%d'
                '/;SECTION=2%s;URLAUTH=%s' % (uv, u1, extra, access))
        lines, _ = c.run('GENURLAUTH "%s" INTERNAL' % rump, 'OK',
                         [r'^\* GENURLAUTH "' + re.escape(rump) + r':INTERNAL:[0-9a-f]{40}"$'],
                         name='GENURLAUTH ' + access)
        m = re.search(r'GENURLAUTH "([^"]+)"', lines[0] if lines else '')
        return m.group(1) if m else 'none'

    part2 = 'part two text'
    u_auth = genurl('authuser')
    u_bob = genurl('user+bob%40example.test')
    u_sub = genurl('submit+bob%40example.test')
    u_anon = genurl('anonymous')
    # an URL that expires a few seconds from now (whole seconds, UTC),
    # fetched once that moment has passed; signed again with a longer
    # margin if the machine was too slow to sign it in time
    u_past = 'none'
    for margin in (2, 5, 20, 60):
        soon = int(time.time()) + margin
        rump = ('imap://alice%%40example.test@loft.example.test/INBOX;UIDVALIDITY=%d'
                '/;UID=%d/;SECTION=2%s;URLAUTH=authuser'
                % (uv, u1, time.strftime(';EXPIRE=%Y-%m-%dT%H:%M:%SZ', time.gmtime(soon))))
        lines, t = c.run('GENURLAUTH "%s" INTERNAL' % rump, '(OK|NO)',
                         name='GENURLAUTH expiring in %d s' % margin)
        m = re.search(r'GENURLAUTH "([^"]+)"', lines[0] if lines else '')
        if m:
            u_past = m.group(1)
            break
    u_future = genurl('authuser', ';EXPIRE=2099-01-01T00:00:00+01:00')
    c.run('GENURLAUTH "imap://alice%%40example.test@h/INBOX;UIDVALIDITY=%d/;UID=%d'
          ';EXPIRE=2001-01-01T00:00:00Z;URLAUTH=authuser" INTERNAL' % (uv, u1),
          r'NO \[BADURL', name='GENURLAUTH of an expired URL')
    c.run('GENURLAUTH "imap://alice%%40example.test@h/INBOX;UIDVALIDITY=%d/;UID=%d'
          ';URLAUTH=authuser" INTERNAL' % (uv + 1, u1),
          r'NO \[BADURL', name='GENURLAUTH with another UIDVALIDITY')
    c.run('GENURLAUTH "imap://alice%%40example.test@h/INBOX;UIDVALIDITY=%d/;UID=%d'
          ';URLAUTH=authuser" INTERNAL' % (uv, 999999),
          r'NO \[BADURL', name='GENURLAUTH of a missing message')
    while time.time() <= soon + 1:
        time.sleep(max(0.01, soon + 1.05 - time.time()))

    def urlfetch(conn, url, want, name):
        lines, _ = conn.run('URLFETCH "%s"' % url, 'OK', name=name)
        got = None
        for l in lines:
            m = re.search(r'^\* URLFETCH "[^"]+" \{(\d+)\}\r\n', l, re.S)
            if m:
                got = l[m.end():m.end() + int(m.group(1))]
            elif l.endswith(' NIL'):
                got = 'NIL'
        r.check(name + ': ' + ('data' if want != 'NIL' else 'NIL'), got == want, (got, lines))

    urlfetch(b, u_auth, part2, 'authuser URL fetched by bob')
    urlfetch(b, u_bob, part2, 'user+bob URL fetched by bob')
    urlfetch(c, u_bob, 'NIL', 'user+bob URL refused to alice')
    urlfetch(b, u_sub, 'NIL', 'submit+ URL refused over IMAP')
    urlfetch(b, u_anon, part2, 'anonymous URL')
    urlfetch(b, u_past, 'NIL', 'expired URL')
    urlfetch(b, u_future, part2, 'URL expiring later')
    forged = u_auth[:-4] + ('0000' if not u_auth.endswith('0000') else '1111')
    urlfetch(b, forged, 'NIL', 'forged token')
    urlfetch(b, u_auth.replace('SECTION=2', 'SECTION=1'), 'NIL', 'URL changed after signing')
    urlfetch(b, u_auth.replace(':INTERNAL:', ':internal:'), part2, 'mechanism in any case')
    urlfetch(b, u_auth.upper().replace('IMAP://', 'imap://'), 'NIL', 'upper-cased URL')
    lines, _ = b.run('URLFETCH "%s" "%s"' % (u_auth, forged), 'OK', name='two URLs')
    r.check('two URLFETCH responses', len([l for l in lines if l.startswith('* URLFETCH')]) == 2,
            lines)
    # CATENATE with another user's URLAUTH URL
    _, t = b.run('APPEND INBOX CATENATE (%s URL "%s")' % (text('Subject: x\r\n\r\n'), u_auth),
                 r'OK \[APPENDUID', name="bob CATENATEs alice's authorized part")
    b.run('GENURLAUTH "%s" INTERNAL' % u_auth.split(':INTERNAL:')[0], r'NO \[BADURL',
          name="bob cannot authorize alice's URL")
    c.run('GENURLAUTH "imap://alice%%40example.test@h/INBOX/;UID=%d;URLAUTH=authuser" INTERNAL'
          % u1, r'NO \[BADURL', name='GENURLAUTH without UIDVALIDITY')
    c.run('GENURLAUTH "%s" INTERNAL' % u_auth, r'NO \[BADURL', name='GENURLAUTH of a signed URL')
    c.run('GENURLAUTH "%s" HMAC-SHA1' % u_auth.split(':INTERNAL:')[0], r'NO \[BADURLMECH\]')
    c.run('GENURLAUTH "imap://alice%%40example.test@h/NoBox;UIDVALIDITY=1/;UID=1;URLAUTH=authuser"'
          ' INTERNAL', r'NO \[BADURL')
    c.run('GENURLAUTH', r'BAD \[CLIENTBUG\]')
    c.run('URLFETCH', r'BAD \[CLIENTBUG\]')
    # RESETKEY voids the URLs of the mailbox
    c.run('RESETKEY INBOX', r'OK \[URLMECH INTERNAL\]')
    urlfetch(b, u_auth, 'NIL', 'after RESETKEY INBOX')
    u_auth2 = genurl('authuser')
    urlfetch(b, u_auth2, part2, 'a new URL works')
    c.run('RESETKEY', 'OK', name='RESETKEY of every mailbox')
    urlfetch(b, u_auth2, 'NIL', 'after RESETKEY')
    c.run('RESETKEY NoSuchBox', r'NO \[NONEXISTENT\]')
    c.run('RESETKEY INBOX FOO', r'NO \[BADURLMECH\]')

    # ---- REPLACE ---------------------------------------------------------
    _, ur = append(c, 'INBOX', msg('draft v1'))
    c.run('NOOP', 'OK')
    lines, _ = c.run('UID FETCH %d (UID)' % ur, 'OK')
    seq = int(re.match(r'^\* (\d+) FETCH', lines[0]).group(1))
    new = msg('draft v2')
    lines, t = c.run('REPLACE %d INBOX {%d+}\r\n%s' % (seq, len(new), new), 'OK',
                     [r'^\* OK \[APPENDUID %d \d+\]' % uv, r'^\* %d EXPUNGE$' % seq],
                     name='REPLACE by number')
    nu = int(re.search(r'APPENDUID \d+ (\d+)', ' '.join(lines)).group(1))
    r.check('the replacement is there', body_of(c, nu) == new)
    c.run('UID FETCH %d (UID)' % ur, 'OK', absent=[r'FETCH'], name='the old one is gone')
    new3 = msg('draft v3')
    c.run('UID REPLACE %d Drafts (\\Draft) {%d+}\r\n%s' % (nu, len(new3), new3), 'OK',
          [r'^\* OK \[APPENDUID \d+ \d+\]', r'EXPUNGE'], name='UID REPLACE into another mailbox')
    c.run('UID REPLACE 999999 INBOX {%d+}\r\n%s' % (len(new3), new3), r'NO \[NONEXISTENT\]')
    c.run('REPLACE 99999 INBOX {%d+}\r\n%s' % (len(new3), new3), r'BAD \[CLIENTBUG\]')
    lines, _ = c.run('STATUS INBOX (MESSAGES)', 'OK')
    n0 = int(re.search(r'MESSAGES (\d+)', lines[0]).group(1))
    c.run('REPLACE 1 NoSuchBox {%d+}\r\n%s' % (len(new3), new3), r'NO \[TRYCREATE\]')
    lines, _ = c.run('STATUS INBOX (MESSAGES)', 'OK')
    r.check('a failed REPLACE leaves the old message',
            int(re.search(r'MESSAGES (\d+)', lines[0]).group(1)) == n0, lines)
    c.run('REPLACE 1 Drafts CATENATE (URL "%s")' % url1.replace('SECTION=1', 'SECTION=2'),
          r'OK', [r'APPENDUID'], name='REPLACE with CATENATE')
    c.run('REPLACE 1 INBOX {5+}\r\nhello {5+}\r\nworld', r'BAD \[CLIENTBUG\]',
          name='REPLACE takes one message')
    e = Conv(env.raw('imap'), r)
    e.login(A, env.users[A])
    e.run('EXAMINE INBOX', 'OK')
    e.run('REPLACE 1 INBOX {%d+}\r\n%s' % (len(new3), new3), r'NO \[READ-ONLY\]')
    e.run('LOGOUT', 'OK')

    # ---- METADATA --------------------------------------------------------
    c.run('SETMETADATA INBOX (/private/comment "my inbox" /shared/comment {5+}\r\nshare)', 'OK')
    c.run('GETMETADATA INBOX (/private/comment /shared/comment /private/none)', 'OK',
          [r'^\* METADATA "?INBOX"? \(/private/comment "my inbox" /shared/comment "share"\)$'])
    c.run('SETMETADATA "" (/private/vendor/loft.test/x ~{3+}\r\na\x00b)', 'OK',
          name='binary value (literal8)')
    lines, _ = c.run('GETMETADATA "" /private/vendor/loft.test/x', 'OK')
    r.check('binary value back as literal8', lines and '~{3}\r\na\x00b' in lines[0], lines)
    c.run('SETMETADATA INBOX (/private/comment/a "1" /private/comment/a/b "2")', 'OK')
    c.run('GETMETADATA (DEPTH 1) INBOX /private/comment', 'OK',
          [r'/private/comment "my inbox" /private/comment/a "1"\)$'])
    c.run('GETMETADATA (DEPTH infinity) INBOX /private', 'OK',
          [r'/private/comment/a/b "2"'])
    c.run('GETMETADATA (MAXSIZE 2 DEPTH infinity) INBOX /private', r'OK \[METADATA LONGENTRIES 8\]',
          [r'/private/comment/a "1"'], absent=[r'my inbox'])
    c.run('SETMETADATA INBOX (/private/comment/a NIL)', 'OK')
    c.run('GETMETADATA INBOX /private/comment/a', 'OK', absent=[r'METADATA'])
    c.run('SETMETADATA "" (/shared/admin "mailto:x@y")', r'NO \[NOPERM\]')
    c.run('GETMETADATA NoSuchBox /private/comment', r'NO \[NONEXISTENT\]')
    c.run('SETMETADATA NoSuchBox (/private/comment "x")', r'NO \[NONEXISTENT\]')
    big = 'x' * (64 * 1024 + 1)
    c.run('SETMETADATA INBOX (/private/big {%d+}\r\n%s)' % (len(big), big),
          r'NO \[METADATA MAXSIZE 65536\]')
    many = ' '.join('/private/n%d "v"' % i for i in range(600))
    c.run('SETMETADATA "" (%s)' % many, r'NO \[METADATA TOOMANY\]')
    c.run('GETMETADATA "" /private/n1', 'OK', absent=[r'METADATA'],
          name='nothing of a refused batch stored')
    for bad in ('/comment', 'shared/comment', '/shared//x', '/shared/x/', '"/shared/*"',
                '"/shared/%"', '/', '"/shared/\xe9"'):
        c.run('GETMETADATA INBOX %s' % bad, r'BAD \[CLIENTBUG\]', name='bad entry ' + bad)
    # a vendor's root (RFC 5464 3.2.1.1) is read as a tree, not written
    c.run('SETMETADATA "" (/private/vendor/loft.test/y "1")', 'OK')
    c.run('SETMETADATA "" (/private/vendor/loft.test "x")', r'BAD \[CLIENTBUG\]',
          name='a vendor root is not an entry to set')
    c.run('GETMETADATA "" /private/vendor/loft.test', 'OK', absent=[r'METADATA'],
          name='a vendor root alone: nothing')
    lines, _ = c.run('GETMETADATA (DEPTH 1) "" /private/vendor/loft.test', 'OK',
                     name='a vendor root with DEPTH 1')
    c.check('vendor root DEPTH 1 lists what is below it',
            any('/private/vendor/loft.test/y "1"' in x for x in lines), lines)
    c.run('SETMETADATA "" (/private/vendor/loft.test/y NIL)', 'OK')
    for bad in ('SETMETADATA INBOX (/shared "x")', 'SETMETADATA INBOX ()',
                'SETMETADATA INBOX (/shared/comment)', 'SETMETADATA INBOX (/shared/comment x)',
                'SETMETADATA INBOX (/shared/comment (x))', 'SETMETADATA INBOX /shared/comment "x"',
                'SETMETADATA INBOX (/shared/comment {3+}\r\na\nb)',
                'GETMETADATA INBOX', 'GETMETADATA () INBOX /shared/comment',
                'GETMETADATA INBOX (MAXSIZE 10) /shared/comment',
                'GETMETADATA (DEPTH 2) INBOX /shared', 'GETMETADATA (MAXSIZE -1) INBOX /shared',
                'GETMETADATA (MAXSIZE 4294967296) INBOX /shared'):
        c.run(bad, r'BAD \[CLIENTBUG\]', name='refused: ' + bad[:40])
    c.run('SETMETADATA INBOX (/shared/comment {4+}\r\na\r\nb)', 'OK', name='CRLF in a value')
    # a mailbox annotation is a change of the mailbox (RFC 7162 3.2)
    lines, _ = c.run('STATUS INBOX (HIGHESTMODSEQ)', 'OK')
    h0 = int(re.search(r'HIGHESTMODSEQ (\d+)', lines[0]).group(1))
    c.run('SETMETADATA INBOX (/private/comment "changed")', 'OK')
    lines, _ = c.run('STATUS INBOX (HIGHESTMODSEQ)', 'OK')
    r.check('SETMETADATA raises the HIGHESTMODSEQ',
            int(re.search(r'HIGHESTMODSEQ (\d+)', lines[0]).group(1)) > h0, lines)
    # rename keeps them, delete removes them
    c.run('CREATE Notes', 'OK')
    c.run('SETMETADATA Notes (/private/comment "notes")', 'OK')
    c.run('RENAME Notes Notes2', 'OK')
    c.run('GETMETADATA Notes2 /private/comment', 'OK', [r'"notes"'], name='kept by RENAME')
    c.run('DELETE Notes2', 'OK')
    c.run('CREATE Notes2', 'OK')
    c.run('GETMETADATA Notes2 /private/comment', 'OK', absent=[r'METADATA'],
          name='gone with DELETE')
    # bob does not see alice's
    b.run('GETMETADATA "" /private/vendor/loft.test/x', 'OK', absent=[r'METADATA'])

    # ---- UIDONLY ---------------------------------------------------------
    u = Conv(env.raw('imap'), r)
    u.login(A, env.users[A])
    u.run('ENABLE UIDONLY', 'OK', [r'^\* ENABLED UIDONLY$'])
    lines, _ = u.run('SELECT INBOX', 'OK', absent=[r'UNSEEN'])
    for cmd in ('FETCH 1 (FLAGS)', 'STORE 1 +FLAGS (\\Seen)', 'SEARCH ALL', 'COPY 1 Drafts',
                'MOVE 1 Drafts', 'SORT (DATE) UTF-8 ALL', 'THREAD REFERENCES UTF-8 ALL',
                'UID SEARCH 1:2', 'UID SORT (DATE) UTF-8 1', 'REPLACE 1 INBOX {1+}\r\nx'):
        u.run(cmd, r'BAD \[UIDREQUIRED\]', absent=[r'FETCH', r'SEARCH'], name='UIDONLY ' + cmd[:20])
    lines, _ = u.run('UID FETCH 1:* (FLAGS)', 'OK')
    r.check('UIDFETCH responses', lines and all(re.match(r'^\* (\d+) UIDFETCH \(', l)
                                                for l in lines if 'FETCH' in l), lines)
    u.run('UID SEARCH UID 1:*', 'OK', [r'^\* SEARCH'])
    _, uy = append(b, 'INBOX', msg('x'))
    c.run('UID STORE %d +FLAGS (\\Flagged)' % u2, 'OK')
    lines, _ = u.run('NOOP', 'OK', [r'^\* %d UIDFETCH \(UID %d FLAGS' % (u2, u2)],
                     absent=[r'^\* \d+ FETCH'])
    c.run('UID STORE %d +FLAGS.SILENT (\\Deleted)' % u2, 'OK')
    c.run('UID EXPUNGE %d' % u2, 'OK')
    u.run('NOOP', 'OK', [r'^\* VANISHED %d$' % u2], absent=[r'EXPUNGE'],
          name='UIDONLY: expunges as VANISHED')
    u.run('UID STORE 1:* +FLAGS (\\Answered)', 'OK', [r'UIDFETCH'], absent=[r'^\* \d+ FETCH'])
    u.run('EXPUNGE', 'OK')
    u.run('UNSELECT', 'OK')
    u.run('ENABLE QRESYNC', 'OK')
    u.run('SELECT INBOX (QRESYNC (%d 1 1:5 (1:2 1:2)))' % uv, r'BAD \[UIDREQUIRED\]')
    u.run('SELECT INBOX (QRESYNC (%d 1 1:5))' % uv, 'OK')
    u.run('LOGOUT', 'OK')

    c.run('NOOP', 'OK', name='session alive at the end')
    r.check('no errors in the log', ' error ' not in env.log(),
            [l for l in env.log().splitlines() if ' error ' in l][:5])

sys.exit(r.finish())
