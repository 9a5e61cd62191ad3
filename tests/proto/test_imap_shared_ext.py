#!/usr/bin/env python3
"""METADATA (RFC 5464), CATENATE (RFC 4469) and URLAUTH (RFC 4467) on other
accounts' mailboxes (issue 9 with ACL, RFC 4314): the Other Users and Shared
namespaces, each with the rights its RFC names.

- METADATA: a viewer reads and sets /shared entries of a mailbox on which it
  holds l and any of r s w i p (RFC 5464 3.3); /private entries are each
  user's own (RFC 5464 3.2): the reader's value, never the owner's nor
  another reader's; l alone is NO [NOPERM]; no l is the same NO
  [NONEXISTENT] as a missing mailbox.
- CATENATE: a URL to another account's message needs r on its mailbox.
- URLAUTH: a viewer with r signs URLs of another account's mailbox with its
  own key (RFC 4467 3: per user and mailbox); their use is checked against
  the URL user's rights at URLFETCH time (a revoked r turns them into NIL);
  the viewer's RESETKEY voids its own URLs, the owner's leaves them.
"""

import re
import sys

from imapconv import Conv
from loftenv import Loft, Results

A, B = 'alice@example.test', 'bob@example.test'
CAROL = 'carol@example.test'
OTHER = 'Other Users/alice@example.test/'
r = Results()


def append(c, box, text):
    _, t = c.run('APPEND "%s" {%d+}\r\n%s' % (box, len(text.encode()), text), 'OK')
    m = re.search(r'APPENDUID (\d+) (\d+)', t or '')
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


def body_of(c, box, uid):
    c.run('EXAMINE "%s"' % box, 'OK')
    lines, _ = c.run('UID FETCH %d (BODY.PEEK[])' % uid, 'OK')
    c.run('UNSELECT', 'OK')
    for l in lines:
        m = re.search(r'BODY\[\] \{(\d+)\}\r\n', l, re.S)
        if m:
            return l[m.end():m.end() + int(m.group(1))]
    return None


def url_path(box):
    return box.replace(' ', '%20')


with Loft(users={A: 'tea-party-rabbit-hole', B: 'can-we-fix-it-yes', CAROL: 'seven-blue-kites-fly'}) as env:
    a = Conv(env.raw('imap'), r)
    b = Conv(env.raw('imap'), r)
    a.login(A, env.users[A])
    b.login(B, env.users[B])
    for box in ('Family', 'Work', 'Secret'):
        a.run('CREATE %s' % box, 'OK')
    note = 'Subject: family note\r\nFrom: a@example.test\r\n\r\nBring cake.\r\n'
    fuv, fuid = append(a, 'Family', note)
    wuv, wuid = append(a, 'Work', 'Subject: work\r\n\r\nQ3 plan\r\n')
    a.run('SETACL Family %s lr' % B, 'OK')
    a.run('SETACL Work %s l' % B, 'OK')
    a.run('SETMETADATA Family (/shared/comment "family things" /private/comment "alice only")', 'OK')

    # ---- METADATA -----------------------------------------------------------
    b.run('GETMETADATA "%sFamily" (/shared/comment /private/comment)' % OTHER, 'OK',
          [r'^\* METADATA "%sFamily" \(/shared/comment "family things"\)$' % re.escape(OTHER)],
          absent=[r'alice only'], name='viewer with lr reads /shared only')
    b.run('GETMETADATA (DEPTH infinity) "%sFamily" /private' % OTHER, 'OK',
          absent=[r'alice only'], name='the owner\'s /private never shown')
    b.run('SETMETADATA "%sFamily" (/shared/comment "bob was here")' % OTHER, 'OK',
          name='viewer with lr sets /shared')
    a.run('GETMETADATA Family (/shared/comment /private/comment)', 'OK',
          [r'/shared/comment "bob was here"', r'/private/comment "alice only"'],
          name='owner sees the viewer\'s /shared value and keeps its /private')
    # RFC 5464 3.2: /private is each user's own, on a shared mailbox too
    b.run('SETMETADATA "%sFamily" (/private/comment "bob only")' % OTHER, 'OK',
          name='reader sets its own /private')
    b.run('GETMETADATA "%sFamily" (/shared/comment /private/comment)' % OTHER, 'OK',
          [r'^\* METADATA "%sFamily" \(/private/comment "bob only" '
           r'/shared/comment "bob was here"\)$' % re.escape(OTHER)],
          absent=[r'alice only'], name='reader reads its own /private')
    a.run('GETMETADATA Family /private/comment', 'OK', [r'/private/comment "alice only"'],
          absent=[r'bob only'], name='owner keeps its own /private')
    a.run('SETMETADATA Family (/private/comment "alice again")', 'OK')
    b.run('GETMETADATA (DEPTH infinity) "%sFamily" /private' % OTHER, 'OK',
          [r'/private/comment "bob only"'], absent=[r'alice only', r'alice again'],
          name='owner\'s change leaves the reader\'s')
    a.run('SETACL Family %s lr' % CAROL, 'OK')
    cm = Conv(env.raw('imap'), r)
    cm.login(CAROL, env.users[CAROL])
    cm.run('GETMETADATA (DEPTH infinity) "%sFamily" /private' % OTHER, 'OK',
           absent=[r'only', r'again', r'^\* METADATA'], name='a third user sees no one\'s /private')
    cm.run('SETMETADATA "%sFamily" (/private/comment "carol")' % OTHER, 'OK')
    b.run('SETMETADATA "%sFamily" (/private/comment NIL)' % OTHER, 'OK',
          name='reader removes its own /private')
    b.run('GETMETADATA "%sFamily" /private/comment' % OTHER, 'OK',
          absent=[r'^\* METADATA'], name='removed: nothing, not the owner\'s')
    cm.run('GETMETADATA "%sFamily" /private/comment' % OTHER, 'OK',
           [r'/private/comment "carol"'], name='the other reader\'s stays')
    a.run('GETMETADATA Family /private/comment', 'OK', [r'/private/comment "alice again"'])
    cm.run('LOGOUT', 'OK')
    a.run('DELETEACL Family %s' % CAROL, 'OK')
    b.run('GETMETADATA "%sWork" /shared/comment' % OTHER, r'NO \[NOPERM\]',
          name='l alone: NOPERM')
    b.run('SETMETADATA "%sWork" (/shared/comment "x")' % OTHER, r'NO \[NOPERM\]')
    b.run('GETMETADATA "%sSecret" /shared/comment' % OTHER, r'NO \[NONEXISTENT\]',
          name='no l: as missing')
    b.run('GETMETADATA "%sNope" /shared/comment' % OTHER, r'NO \[NONEXISTENT\]')
    a.run('SETACL Work %s li' % B, 'OK')
    b.run('GETMETADATA "%sWork" /shared/comment' % OTHER, 'OK', name='l and i: allowed')
    b.run('GETMETADATA "" /private/comment', 'OK', name='server entries are one\'s own')

    # ---- CATENATE -------------------------------------------------------------
    head = 'Subject: forwarded\r\nFrom: b@example.test\r\n\r\n'
    url = '/%s;UIDVALIDITY=%d/;UID=%d' % (url_path(OTHER + 'Family'), fuv, fuid)
    _, t = b.run('APPEND Drafts CATENATE (TEXT {%d+}\r\n%s URL "%s")' % (len(head), head, url),
                 r'OK \[APPENDUID \d+ \d+\]', name='CATENATE URL to another account\'s message')
    m = re.search(r'APPENDUID \d+ (\d+)', t or '')
    got = body_of(b, 'Drafts', int(m.group(1))) if m else None
    r.check('CATENATE copied the message', got == head + note, got)
    wurl = '/%s;UIDVALIDITY=%d/;UID=%d' % (url_path(OTHER + 'Work'), wuv, wuid)
    b.run('APPEND Drafts CATENATE (TEXT {%d+}\r\n%s URL "%s")' % (len(head), head, wurl),
          r'NO \[BADURL ', name='CATENATE URL without r')
    surl = '/%s;UIDVALIDITY=%d/;UID=1' % (url_path(OTHER + 'Secret'), fuv)
    _, t1 = b.run('APPEND Drafts CATENATE (TEXT {%d+}\r\n%s URL "%s")' % (len(head), head, surl),
                  r'NO \[BADURL ', name='CATENATE URL to a hidden mailbox')
    murl = surl.replace('Secret', 'Nope')
    _, t2 = b.run('APPEND Drafts CATENATE (TEXT {%d+}\r\n%s URL "%s")' % (len(head), head, murl),
                  r'NO \[BADURL ', name='CATENATE URL to a missing mailbox')
    r.check('hidden and missing read the same',
            t1 is not None and t2 is not None and
            t1.split('] ', 1)[-1].replace('Secret', 'X') == t2.split('] ', 1)[-1].replace('Nope', 'X'),
            (t1, t2))

    # ---- URLAUTH ----------------------------------------------------------------
    rump = ('imap://bob%%40example.test@loft.example.test/%s;UIDVALIDITY=%d/;UID=%d'
            ';URLAUTH=user+bob@example.test' % (url_path(OTHER + 'Family'), fuv, fuid))
    lines, _ = b.run('GENURLAUTH "%s" INTERNAL' % rump, 'OK',
                     [r'^\* GENURLAUTH "' + re.escape(rump) + r':INTERNAL:[0-9a-f]{40}"$'],
                     name='GENURLAUTH of another account\'s mailbox')
    m = re.search(r'GENURLAUTH "([^"]+)"', lines[0] if lines else '')
    signed = m.group(1) if m else 'none'

    def urlfetch(conn, u, want, name):
        lines, _ = conn.run('URLFETCH "%s"' % u, 'OK', name=name)
        got = None
        for l in lines:
            mm = re.search(r'^\* URLFETCH "[^"]+" \{(\d+)\}\r\n', l, re.S)
            if mm:
                got = l[mm.end():mm.end() + int(mm.group(1))]
            elif l.endswith(' NIL'):
                got = 'NIL'
        r.check(name, got == want, (got, lines))

    urlfetch(b, signed, note, 'URLFETCH with the viewer\'s rights')
    wrump = ('imap://bob%%40example.test@loft.example.test/%s;UIDVALIDITY=%d/;UID=%d'
             ';URLAUTH=user+bob@example.test' % (url_path(OTHER + 'Work'), wuv, wuid))
    b.run('GENURLAUTH "%s" INTERNAL' % wrump, r'NO \[BADURL ', name='GENURLAUTH without r')
    # the owner's URL of the same message: the owner's key
    arump = ('imap://alice%%40example.test@loft.example.test/Family;UIDVALIDITY=%d/;UID=%d'
             ';URLAUTH=user+alice@example.test' % (fuv, fuid))
    lines, _ = a.run('GENURLAUTH "%s" INTERNAL' % arump, 'OK')
    m = re.search(r'GENURLAUTH "([^"]+)"', lines[0] if lines else '')
    asigned = m.group(1) if m else 'none'
    r.check('the reader\'s key is its own',
            signed.rsplit(':', 1)[-1] != asigned.rsplit(':', 1)[-1], (signed, asigned))
    urlfetch(a, asigned, note, 'URLFETCH of the owner\'s URL')
    a.run('RESETKEY Family', 'OK')
    urlfetch(a, asigned, 'NIL', 'the owner\'s RESETKEY voids the owner\'s URL')
    urlfetch(b, signed, note, 'the owner\'s RESETKEY leaves the reader\'s')
    a.run('SETACL Family %s l' % B, 'OK')
    urlfetch(b, signed, 'NIL', 'r revoked: the URL gives NIL')
    b.run('GENURLAUTH "%s" INTERNAL' % rump, r'NO \[BADURL ', name='r revoked: no GENURLAUTH')
    a.run('SETACL Family %s lr' % B, 'OK')
    urlfetch(b, signed, note, 'r given back')
    b.run('RESETKEY "%sFamily"' % OTHER, 'OK', name='the reader resets its own key')
    urlfetch(b, signed, 'NIL', 'the reader\'s RESETKEY voids its URL')
    lines, _ = b.run('GENURLAUTH "%s" INTERNAL' % rump, 'OK')
    m = re.search(r'GENURLAUTH "([^"]+)"', lines[0] if lines else '')
    signed = m.group(1) if m else 'none'
    urlfetch(b, signed, note, 'signed again')
    b.run('RESETKEY', 'OK', name='RESETKEY of all the reader\'s keys')
    urlfetch(b, signed, 'NIL', 'RESETKEY without a mailbox voids the reader\'s URLs')
    b.run('RESETKEY "%sSecret"' % OTHER, r'NO \[NONEXISTENT\]', name='RESETKEY of a hidden mailbox')

    # ---- the Shared namespace -----------------------------------------------
    rc, out, err = env.loftctl('shared', 'add', 'sales@example.test')
    r.check('shared add', rc == 0, out + err)
    rc, out, err = env.loftctl('acl', 'set', 'sales@example.test', B, 'lrswi')
    r.check('acl set', rc == 0, out + err)
    suv, suid = append(b, 'Shared/sales', 'Subject: order\r\n\r\n2 cakes\r\n')
    b.run('SETMETADATA "Shared/sales" (/shared/comment "orders")', 'OK')
    b.run('GETMETADATA "Shared/sales" /shared/comment', 'OK',
          [r'^\* METADATA "Shared/sales" \(/shared/comment "orders"\)$'])
    srump = ('imap://bob%%40example.test@loft.example.test/Shared/sales;UIDVALIDITY=%d/;UID=%d'
             ';URLAUTH=user+bob@example.test' % (suv, suid))
    lines, _ = b.run('GENURLAUTH "%s" INTERNAL' % srump, 'OK', name='GENURLAUTH in Shared/')
    m = re.search(r'GENURLAUTH "([^"]+)"', lines[0] if lines else '')
    urlfetch(b, m.group(1) if m else 'none', 'Subject: order\r\n\r\n2 cakes\r\n',
             'URLFETCH in Shared/')
    c = Conv(env.raw('imap'), r)
    c.login(CAROL, env.users[CAROL])
    c.run('GETMETADATA "Shared/sales" /shared/comment', r'NO \[NONEXISTENT\]',
          name='no rights on the shared address: as missing')
    for conn in (a, b, c):
        conn.run('LOGOUT', 'OK')

sys.exit(r.finish())
