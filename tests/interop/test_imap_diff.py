#!/usr/bin/env python3
"""Differential test of FETCH, SEARCH, SORT and THREAD against Dovecot.

The same messages (the tests/corpus/gen.py corpus plus a thread- and
date-oriented set made here) are APPENDed with the same flags and internal
dates to a private loftd and a private Dovecot. Then:
  - FETCH of metadata and sections (flags, dates, sizes, header fields,
    partials) is compared message by message;
  - SEARCH with many keys (flags, sizes, dates, header keys, BODY/TEXT in
    mixed case and non-ASCII, NOT/OR, sets) is compared as sets;
  - SORT by every criterion, and THREAD=REFERENCES/ORDEREDSUBJECT, are
    compared as sequences;
  - ESEARCH and ESORT results (RFC 4731, RFC 5267: RETURN MIN MAX COUNT
    ALL), the message a CATENATE APPEND (RFC 4469) builds from URLs and
    text, and PREVIEW (RFC 8970) and PARTIAL (RFC 9394) where Dovecot
    offers them (Dovecot 2.3.19 has PREVIEW, not PARTIAL: said in the
    output), METADATA (RFC 5464) entries and results, and URLAUTH
    (RFC 4467: GENURLAUTH, URLFETCH, RESETKEY; the data each server's
    URLs give, what both refuse).
A difference is a failure unless it lies in one of the message classes
described below (and in docs/compat.md), where Loft decodes for the reader
and Dovecot does not.
"""

import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'lib'))
sys.path.insert(0, os.path.join(HERE, '..', 'proto'))
from dovecotenv import Dovecot  # noqa: E402
from loftenv import Loft, Results  # noqa: E402
from test_imap_fetch import fetch_items  # noqa: E402

SRC = os.environ.get('LOFT_SRC', os.path.abspath(os.path.join(HERE, '..', '..')))

# Two kinds of messages answer differently by design; each is explained in
# docs/compat.md ("IMAP FETCH, SEARCH, SORT and THREAD"):
#  - 8-bit bytes that are not UTF-8 in headers, or in text declared
#    us-ascii: Loft reads them as Windows-1252 (src/mail), Dovecot keeps
#    bytes that match nothing and sort last. Compared without them.
#  - BODY/TEXT over MIME structure: Loft's BODY is the decoded text the
#    user reads, including the header of an attached message; Dovecot's
#    BODY skips attached headers and its TEXT also matches MIME part
#    headers, and it searches HTML source rather than its text. BODY/TEXT
#    are compared on single-part text/plain messages only.
# Differences outside those classes fail.


def classify(msgs):
    """(raw8, simple): seqs with non-UTF-8 bytes; seqs of single-part
    text/plain messages."""
    import email
    import email.policy
    raw8, simple = set(), set()
    for i, (_, m) in enumerate(msgs, 1):
        try:
            m.decode('utf-8')
        except UnicodeDecodeError:
            raw8.add(i)
        em = email.message_from_bytes(m, policy=email.policy.compat32)
        if not em.is_multipart() and em.get_content_type() == 'text/plain':
            simple.add(i)
            # 8-bit text under a us-ascii (or no) charset, behind a
            # transfer encoding: the same class as raw 8-bit headers
            payload = em.get_payload(decode=True) or b''
            if (em.get_content_charset() or 'us-ascii') == 'us-ascii':
                try:
                    payload.decode('utf-8')
                except UnicodeDecodeError:
                    raw8.add(i)
    return raw8, simple


def seqset(nums):
    nums = sorted(nums)
    out, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else '%d:%d' % (nums[i], nums[j]))
        i = j + 1
    return ','.join(out)


def extra_messages():
    """Messages for threading, sorting and date keys."""
    out = []
    zones = ['+0000', '-0500', '+0100', '+1400', '-1100']
    for i in range(40):
        day = 1 + i % 27
        hdr = ('From: %s <%s@thread.test>\r\n'
               'To: list@thread.test\r\n'
               'Subject: %s\r\n'
               'Date: %02d Mar 2024 %02d:30:00 %s\r\n'
               'Message-ID: <t%d@thread.test>\r\n' %
               (['Zoe', 'adam', 'Émile', '"Smith, J"', ''][i % 5],
                ['zoe', 'adam', 'emile', 'js', 'anon'][i % 5],
                ['Re: topic %d' % (i % 6), 'topic %d' % (i % 6),
                 'Fwd: topic %d' % (i % 6), '[list] topic %d (fwd)' % (i % 6),
                 'RE: Re: topic %d' % (i % 6)][i % 5],
                day, (i * 7) % 24, zones[i % 5], i))
        if i % 3 == 1:
            hdr += 'In-Reply-To: <t%d@thread.test>\r\n' % (i - 1)
        if i % 3 == 2:
            hdr += 'References: <t%d@thread.test> <t%d@thread.test>\r\n' % (i - 2, i - 1)
        if i % 11 == 5:
            hdr += 'References: <missing%d@thread.test>\r\n' % (i % 2)
        # custom fields for SEARCH HEADER (answered from the index)
        if i % 7 == 3:
            hdr += 'X-Loft-Tag: priority-%d queue\r\n' % (i % 4)
        if i % 13 == 4:
            hdr += 'X-Mailer: =?utf-8?q?B=C3=BCro_Caf=C3=A9?= client\r\n'
        if i % 17 == 6:
            hdr += 'X-Loft-Tag:\r\n'

        body = 'Message %d about Topic %d. Grüße, MÜNCHEN straße\r\n' % (i, i % 6)
        out.append(('extra-%02d' % i, (hdr + '\r\n' + body).encode()))
    return out


def corpus():
    tmp = tempfile.mkdtemp(prefix='loft-imapdiff-')
    subprocess.run([sys.executable, os.path.join(SRC, 'tests', 'corpus', 'gen.py'), tmp],
                   check=True, stdout=subprocess.DEVNULL)
    msgs = []
    for name in sorted(os.listdir(tmp)):
        with open(os.path.join(tmp, name), 'rb') as f:
            msgs.append((name, f.read()))
    return msgs + extra_messages()


class Imap:
    """Keeps raw bytes: literals are inlined into their response line."""

    def __init__(self, port):
        import socket
        self.s = socket.create_connection(('127.0.0.1', port), timeout=120)
        self.f = self.s.makefile('rb')
        self.n = 0
        self.f.readline()

    def read_response(self):
        line = self.f.readline()
        if not line:
            raise EOFError
        while True:
            m = re.search(rb'~?\{(\d+)\}\r\n$', line)
            if not m:
                return line
            line += self.f.read(int(m.group(1)))
            line += self.f.readline()

    def cmd(self, text):
        if isinstance(text, str):
            text = text.encode()
        self.n += 1
        tag = b'D%d' % self.n
        self.s.sendall(tag + b' ' + text + b'\r\n')
        untagged = []
        while True:
            line = self.read_response()
            if line.startswith(tag + b' '):
                return untagged, line
            untagged.append(line)

    def pipeline_appends(self, msgs):
        """APPENDs with LITERAL+; returns the tagged lines."""
        data = b''
        tags = []
        for i, (flags, date, msg) in enumerate(msgs):
            tag = b'P%d' % i
            tags.append(tag)
            data += (tag + b' APPEND INBOX (' + flags + b') "' + date +
                     b'" {%d+}\r\n' % len(msg) + msg + b'\r\n')
        self.s.sendall(data)
        done = {}
        while len(done) < len(tags):
            line = self.read_response()
            m = re.match(rb'(P\d+) ', line)
            if m:
                done[m.group(1)] = line
        return [done[t] for t in tags]


def flags_for(i):
    f = []
    if i % 3 == 0:
        f.append(b'\\Seen')
    if i % 5 == 0:
        f.append(b'\\Flagged')
    if i % 7 == 0:
        f.append(b'\\Answered')
    if i % 11 == 0:
        f.append(b'$Work')
    return b' '.join(f)


def date_for(i):
    day = 1 + (i // 24) % 28
    return b'%02d-Jan-2024 %02d:%02d:00 +0000' % (day, i % 24, (i * 13) % 60)


def normalize(data):
    return re.sub(rb'(?<!\r)\n', b'\r\n', data)


def search_keys():
    words = ['lorem', 'IPSUM', 'Dolor', 'über', 'ÜBER', 'café', 'CAFÉ', 'naïve',
             'façade', '日本語', 'текст', 'ТЕКСТ', 'grüße', 'MÜNCHEN', 'topic 3',
             'Topic', 'message 1', 'boundary', 'x']
    keys = ['ALL', 'SEEN', 'UNSEEN', 'FLAGGED NOT SEEN', 'ANSWERED', 'KEYWORD $Work',
            'UNKEYWORD $work', 'OR SEEN FLAGGED', 'NOT OR SEEN ANSWERED',
            'LARGER 2000', 'SMALLER 500', 'LARGER 300 SMALLER 1000',
            '1:10', '5:*', '*', '2,4,6:8', 'UID 3:20', 'UID 100:*',
            'BEFORE 5-Jan-2024', 'SINCE 10-Jan-2024', 'ON 3-Jan-2024',
            'SENTBEFORE 1-Jan-2000', 'SENTSINCE 1-Mar-2024', 'SENTON 5-Mar-2024',
            'SENTON 6-Mar-2024', 'SENTSINCE 1-Jan-2024 SENTBEFORE 1-Feb-2030',
            'FROM alice', 'FROM bob', 'FROM example.com', 'FROM "Smith, J"',
            'TO thread.test', 'CC bob', 'SUBJECT topic', 'SUBJECT "re: topic"',
            'SUBJECT fwd', 'HEADER Message-ID thread.test', 'HEADER References ""',
            'HEADER In-Reply-To t1', 'HEADER X-Nothing ""', 'BCC x',
            'HEADER X-Loft-Tag priority', 'HEADER x-loft-tag PRIORITY-2',
            'HEADER X-Loft-Tag ""', 'HEADER X-Loft-Tag "y-1 qu"',
            'HEADER X-Mailer "café"', 'HEADER X-MAILER "BÜRO"', 'HEADER X-Mailer ""',
            'HEADER X-Mailer priority', 'HEADER Subject topic', 'HEADER To list',
            'HEADER X-Loft "priority"', 'NOT HEADER X-Loft-Tag queue',
            'NOT BODY lorem', 'OR BODY lorem TEXT ipsum',
            'TEXT "Content-Type"', 'BODY "Content-Type"']
    out = [k.encode() for k in keys]
    for w in words:
        b = w.encode()
        for k in (b'BODY', b'TEXT', b'SUBJECT', b'FROM'):
            out.append(b'CHARSET UTF-8 ' + k + b' {%d+}\r\n' % len(b) + b)
    return out


SORTS = ['(ARRIVAL)', '(DATE)', '(REVERSE DATE)', '(SIZE)', '(SUBJECT)',
         '(FROM)', '(TO)', '(CC)', '(DISPLAYFROM)', '(DISPLAYTO)',
         '(SUBJECT DATE)', '(REVERSE SUBJECT REVERSE ARRIVAL)', '(FROM SIZE)']


def search_set(im, key):
    u, t = im.cmd(b'SEARCH ' + key)
    for line in u:
        if line.startswith(b'* SEARCH'):
            return set(int(x) for x in line[8:].split()), t
    return None, t


def main():
    r = Results()
    if not Dovecot.available():
        print('dovecot not installed: skipped')
        print('0 passed, 0 failed')
        return 0
    msgs = corpus()
    items = [(flags_for(i), date_for(i), normalize(m)) for i, (_, m) in enumerate(msgs)]
    with Loft() as loft, Dovecot(extra=DOVECOT_METADATA) as dc:
        lo = Imap(loft.ports['imap'])
        dv = Imap(dc.ports['imap'])
        lo.cmd('LOGIN alice@example.test tea-party-rabbit-hole')
        dv.cmd('LOGIN alice@example.test tea-party-rabbit-hole')
        ok_l = lo.pipeline_appends(items)
        ok_d = dv.pipeline_appends(items)
        both = [i for i in range(len(items)) if b' OK' in ok_l[i][:12] and b' OK' in ok_d[i][:12]]
        r.check('appends accepted by both', len(both) == len(items),
                [(msgs[i][0], ok_l[i], ok_d[i]) for i in range(len(items)) if i not in both][:5])
        lo.cmd('SELECT INBOX')
        dv.cmd('SELECT INBOX')

        # ---- FETCH
        q = ('FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE UID '
             'BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] BODY.PEEK[]<0.64> '
             'BODY.PEEK[TEXT]<10.20> BODY.PEEK[HEADER.FIELDS.NOT (RECEIVED)])')
        fl = dict(fetch_items(x) for x in lo.cmd(q)[0] if b' FETCH ' in x)
        fd = dict(fetch_items(x) for x in dv.cmd(q)[0] if b' FETCH ' in x)
        r.check('fetch count', len(fl) == len(fd) == len(items), (len(fl), len(fd)))
        bad = 0
        for seq in sorted(fd):
            a, b = fl.get(seq), fd[seq]
            if a is None:
                continue
            for k in b:
                va, vb = a.get(k), b[k]
                if k == b'FLAGS':
                    va, vb = sorted(va or []), sorted(vb)
                if va != vb:
                    bad += 1
                    if bad <= 10:
                        print('FETCH diff %s %s: loft=%r dovecot=%r'
                              % (msgs[seq - 1][0], k.decode(), va, vb))
        r.check('fetch items equal', bad == 0, '%d differences' % bad)

        # \Seen side effect of a non-PEEK fetch, and its FLAGS report
        ul, _ = lo.cmd('FETCH 2 (BODY[1])')
        ud, _ = dv.cmd('FETCH 2 (BODY[1])')
        sl = [fetch_items(x)[1].get(b'FLAGS') for x in ul if b' FETCH ' in x]
        sd = [fetch_items(x)[1].get(b'FLAGS') for x in ud if b' FETCH ' in x]
        r.check('seen side effect', [sorted(x or []) for x in sl] ==
                [sorted(x or []) for x in sd], (sl, sd))

        # ---- SEARCH
        raw8, simple = classify(msgs)
        everything = set(range(1, len(msgs) + 1))
        print('%d messages, %d with raw 8-bit, %d single-part text/plain'
              % (len(msgs), len(raw8), len(simple)))
        nkeys = excused = 0
        for key in search_keys():
            nkeys += 1
            sl, tl = search_set(lo, key)
            sd, td = search_set(dv, key)
            if sl == sd:
                r.check('search', True)
                continue
            textual = re.search(rb'\b(BODY|TEXT)\b', key) is not None
            scope = (simple if textual else everything) - raw8
            if sl is not None and sd is not None and sl & scope == sd & scope:
                excused += 1
                continue
            r.check('search %r' % key, False,
                    'loft-only=%s dovecot-only=%s (%r / %r)' % (
                        sorted(((sl or set()) - (sd or set())) & scope)[:10],
                        sorted(((sd or set()) - (sl or set())) & scope)[:10], tl, td))
        print('%d search keys compared; %d differ only on documented message classes'
              % (nkeys, excused))

        # ---- SORT and THREAD, without the raw 8-bit messages
        skip = ('NOT ' + seqset(raw8)) if raw8 else 'ALL'
        for crit in SORTS:
            for uid in ('', 'UID '):
                ul, tl = lo.cmd('%sSORT %s UTF-8 %s' % (uid, crit, skip))
                ud, td = dv.cmd('%sSORT %s UTF-8 %s' % (uid, crit, skip))
                a = [x for x in ul if x.startswith(b'* SORT')]
                b = [x for x in ud if x.startswith(b'* SORT')]
                detail = ''
                if a != b:
                    la = a[0].split()[2:] if a else []
                    lb = b[0].split()[2:] if b else []
                    first = next((i for i in range(min(len(la), len(lb))) if la[i] != lb[i]), None)
                    detail = 'first difference at %s: loft %s dovecot %s' % (
                        first, la[first:first + 5] if first is not None else la[:5],
                        lb[first:first + 5] if first is not None else lb[:5])
                r.check('%sSORT %s' % (uid, crit), a == b and len(a) == 1, detail)
        for alg in ('REFERENCES', 'ORDEREDSUBJECT'):
            for key in (skip, 'SUBJECT topic'):
                ul, tl = lo.cmd('THREAD %s UTF-8 %s' % (alg, key))
                ud, td = dv.cmd('THREAD %s UTF-8 %s' % (alg, key))
                a = [x for x in ul if x.startswith(b'* THREAD')]
                b = [x for x in ud if x.startswith(b'* THREAD')]
                if a != b:
                    ta = re.findall(rb'\([^()]*(?:\([^()]*\))*[^()]*\)', a[0]) if a else []
                    tb = re.findall(rb'\([^()]*(?:\([^()]*\))*[^()]*\)', b[0]) if b else []
                    print('THREAD %s %s: loft-only %r\n  dovecot-only %r' % (
                        alg, key[:20], sorted(set(ta) - set(tb))[:5], sorted(set(tb) - set(ta))[:5]))
                r.check('THREAD %s %s' % (alg, key[:20]), a == b and len(a) == 1)
        # damaged base64 / quoted-printable: decoded as RFC 2045 6.7, 6.8
        # say (compat.md, item 4); Dovecot stops at the damage
        damaged = {i for i, (name, _) in enumerate(msgs, 1)
                   if name.endswith(('base64-garbage.eml', 'qp-soft-breaks.eml'))}
        extensions(r, lo, dv, skip, simple - raw8 - damaged)
    return r.finish()


def esearch_items(lines):
    """The ESEARCH response without its tag correlator."""
    out = [re.sub(rb'\(TAG "[^"]*"\) ?', b'', x).strip() for x in lines
           if x.startswith(b'* ESEARCH')]
    return out


def uidvalidity(im):
    u, _ = im.cmd('STATUS INBOX (UIDVALIDITY)')
    for line in u:
        m = re.search(rb'UIDVALIDITY (\d+)', line)
        if m:
            return int(m.group(1))
    return 0


def catenate(im, parts):
    """APPEND INBOX CATENATE (parts): parts are ('URL', section-url) or
    ('TEXT', bytes); returns (tagged line, BODY[] of the new message)."""
    im.n += 1
    tag = b'D%d' % im.n
    uv = uidvalidity(im)
    items = []
    for kind, val in parts:
        if kind == 'URL':
            items.append(b'URL "/INBOX;UIDVALIDITY=%d%s"' % (uv, val.encode()))
        else:
            items.append(b'TEXT {%d+}\r\n' % len(val) + val)
    im.s.sendall(tag + b' APPEND INBOX CATENATE (' + b' '.join(items) + b')\r\n')
    while True:
        line = im.read_response()
        if line.startswith(tag + b' '):
            break
    m = re.search(rb'APPENDUID \d+ (\d+)', line)
    if not m:
        return line, None
    u, _ = im.cmd('UID FETCH %s (BODY.PEEK[])' % m.group(1).decode())
    body = [fetch_items(x)[1].get(b'BODY[]') for x in u if b' FETCH ' in x]
    return line, body[0] if body else None


def extensions(r, lo, dv, skip, simple):
    """ESEARCH/ESORT, CATENATE, PREVIEW and PARTIAL on both servers."""
    caps_d = b' '.join(dv.cmd('CAPABILITY')[0])
    print('Dovecot: %s' % caps_d.decode(errors='replace').strip())
    for key in ('ALL', 'UNSEEN', 'FLAGGED', 'SUBJECT topic', 'LARGER 2000',
                'KEYWORD $Work', 'FROM nobody-at-all'):
        for uid in ('', 'UID '):
            q = '%sSEARCH RETURN (MIN MAX COUNT ALL) %s' % (uid, key)
            a, b = esearch_items(lo.cmd(q)[0]), esearch_items(dv.cmd(q)[0])
            r.check('ESEARCH %s' % q, a == b and len(a) == 1, (a, b))
    if b'ESORT' in caps_d:
        for crit in ('(SUBJECT)', '(REVERSE DATE)', '(SIZE)', '(FROM SIZE)'):
            for uid in ('', 'UID '):
                q = '%sSORT RETURN (MIN MAX COUNT ALL) %s UTF-8 %s' % (uid, crit, skip)
                a, b = esearch_items(lo.cmd(q)[0]), esearch_items(dv.cmd(q)[0])
                r.check('ESORT %s' % q[:60], a == b and len(a) == 1, (a, b))
    else:
        print('Dovecot offers no ESORT: ESORT not compared')
    # CATENATE: a header from one message, text, a body part of another
    s = sorted(simple)
    parts_list = [
        [('URL', '/;UID=%d/;SECTION=HEADER' % s[0]), ('TEXT', b'Hello from CATENATE.\r\n')],
        [('TEXT', b'From: cat@example.test\r\nSubject: two parts\r\n\r\n'),
         ('URL', '/;UID=%d/;SECTION=TEXT' % s[1]), ('URL', '/;UID=%d/;SECTION=1' % s[2])],
    ]
    for i, parts in enumerate(parts_list):
        tl, bl = catenate(lo, parts)
        td, bd = catenate(dv, parts)
        r.check('CATENATE %d: both build it' % i, bl is not None and bd is not None,
                (tl, td))
        r.check('CATENATE %d: the same message' % i, bl == bd,
                (bl[:200] if bl else bl, bd[:200] if bd else bd))
    lo.cmd('NOOP')
    dv.cmd('NOOP')
    if re.search(rb'(?<![-\w])PREVIEW(?![-\w=])', caps_d):
        q = 'FETCH %s (PREVIEW)' % seqset(s[:20])
        a = dict(fetch_items(x) for x in lo.cmd(q)[0] if b' FETCH ' in x)
        b = dict(fetch_items(x) for x in dv.cmd(q)[0] if b' FETCH ' in x)
        diff = {k: (a.get(k), b[k]) for k in b if a.get(k) != b[k]}
        r.check('PREVIEW of single-part text', a.keys() == b.keys() and not diff,
                diff)
    else:
        print('Dovecot offers no PREVIEW: PREVIEW not compared')
    # (not URL-PARTIAL, RFC 5550's)
    if re.search(rb'(?<![-\w])PARTIAL(?![-\w])', caps_d):
        q = 'SEARCH RETURN (PARTIAL 1:10) ALL'
        a, b = esearch_items(lo.cmd(q)[0]), esearch_items(dv.cmd(q)[0])
        r.check('PARTIAL', a == b, (a, b))
    else:
        print('Dovecot offers no PARTIAL: PARTIAL not compared')
    if re.search(rb'(?<![-\w])METADATA(?![-\w])', caps_d):
        metadata(r, lo, dv)
    else:
        print('Dovecot offers no METADATA: METADATA not compared')
    if re.search(rb'(?<![-\w])URLAUTH(?![-\w=])', caps_d):
        urlauth(r, lo, dv, s)
    else:
        print('Dovecot offers no URLAUTH: URLAUTH not compared')


# Dovecot's METADATA (RFC 5464) is on in this test: entries in a file dict;
# so is its URLAUTH (RFC 4467), whose mailbox keys it keeps in the same
# dict, for URLs naming any host (a session's own URLs are resolved in
# its imap process, without the imap-urlauth service)
DOVECOT_METADATA = ('mail_attribute_dict = file:%h/dovecot-attributes\n'
                    'imap_urlauth_host = *\n'
                    'protocol imap {\n  imap_metadata = yes\n}\n')

# SETMETADATA / GETMETADATA on a mailbox and on the server, the options
# (DEPTH, MAXSIZE), deletion, a literal value and bad input; each
# GETMETADATA's entries and each tagged result (word, LONGENTRIES) are
# compared
METADATA_CMDS = [
    'SETMETADATA INBOX (/private/comment "hello" /shared/comment "for all")',
    'GETMETADATA INBOX /private/comment',
    'GETMETADATA INBOX (/private/comment /shared/comment /private/none)',
    'SETMETADATA INBOX (/private/vendor/loft-test/a "1" '
    '/private/vendor/loft-test/a/b "2")',
    'GETMETADATA (DEPTH 1) INBOX /private/vendor/loft-test',
    'GETMETADATA (DEPTH infinity) INBOX /private/vendor/loft-test',
    'GETMETADATA (DEPTH 0) INBOX /private/vendor/loft-test/a',
    'GETMETADATA (DEPTH infinity) INBOX /shared',
    'GETMETADATA (MAXSIZE 3) INBOX (/private/comment /shared/comment)',
    'GETMETADATA (MAXSIZE 100) INBOX (/private/comment /shared/comment)',
    'SETMETADATA INBOX (/private/comment NIL)',
    'GETMETADATA INBOX (/private/comment /shared/comment)',
    'SETMETADATA "" (/private/vendor/loft-test/x "server")',
    'GETMETADATA "" /private/vendor/loft-test/x',
    'SETMETADATA INBOX (/shared/comment {3+}\r\nabc)',
    'GETMETADATA INBOX /shared/comment',
    'SETMETADATA INBOX (/other/x "bad")',
    'SETMETADATA INBOX (/private/a/ "bad")',
    'SETMETADATA Nope (/private/comment "x")',
    'GETMETADATA Nope /private/comment',
]


def metadata_entries(lines):
    """{mailbox: {entry: value}} from METADATA responses. An entry given
    as NIL is left out: Dovecot names a requested entry that does not
    exist with NIL, Loft (as Cyrus) leaves it out; RFC 5464 allows
    both (docs/compat.md)."""
    tok = re.compile(rb'\s*(?:\{(\d+)\}\r\n|"((?:[^"\\]|\\.)*)"|(NIL)|([^\s()"]+)|([()]))')
    out = {}
    for line in lines:
        if not line.startswith(b'* METADATA '):
            continue
        data, pos, words = line[len(b'* METADATA '):].rstrip(b'\r\n'), 0, []
        while pos < len(data):
            m = tok.match(data, pos)
            if m is None:
                break
            pos = m.end()
            if m.group(1) is not None:
                n = int(m.group(1))
                words.append(data[pos:pos + n])
                pos += n
            elif m.group(2) is not None:
                words.append(re.sub(rb'\\(.)', rb'\1', m.group(2)))
            elif m.group(3) is not None:
                words.append(None)
            elif m.group(4) is not None:
                words.append(m.group(4))
        if not words:
            continue
        box = out.setdefault(words[0], {})
        pairs = words[1:]
        for i in range(0, len(pairs) - 1, 2):
            if pairs[i + 1] is not None:
                box[pairs[i]] = pairs[i + 1]
    return out


def metadata_result(tagged):
    """The tagged word and a LONGENTRIES code, if any."""
    word = tagged.split()[1] if len(tagged.split()) > 1 else b''
    m = re.search(rb'\[METADATA LONGENTRIES (\d+)\]', tagged)
    return (word, m.group(1) if m else None)


def metadata(r, lo, dv):
    """METADATA (RFC 5464) on both servers: the same entries come back
    and each command ends the same (OK, NO or BAD; LONGENTRIES)."""
    for q in METADATA_CMDS:
        ul, tl = lo.cmd(q)
        ud, td = dv.cmd(q)
        a, b = metadata_entries(ul), metadata_entries(ud)
        r.check('%s: same entries' % q[:70], a == b, (ul, ud))
        r.check('%s: same result' % q[:70],
                metadata_result(tl) == metadata_result(td), (tl, td))


def urlfetch_data(im, urls):
    """URLFETCH of urls: [data or None] per URLFETCH response, in order,
    and the tagged line."""
    u, t = im.cmd('URLFETCH ' + ' '.join('"%s"' % x for x in urls))
    out = []
    for line in u:
        m = re.match(rb'\* URLFETCH (?:"(?:[^"\\]|\\.)*"|[^\s"]+) '
                     rb'(?:(NIL)|\{(\d+)\}\r\n)', line, re.S)
        if m:
            out.append(None if m.group(1) else
                       line[m.end():m.end() + int(m.group(2))])
    return out, t


def genurlauth(im, rump, mech='INTERNAL'):
    """GENURLAUTH of one rump URL: (the authorized URL or None, tagged)."""
    u, t = im.cmd('GENURLAUTH "%s" %s' % (rump, mech))
    urls = [m.group(1).decode() for m in
            (re.match(rb'\* GENURLAUTH "?([^"\s]+)', x) for x in u) if m]
    return (urls[0] if urls else None), t


def urlauth(r, lo, dv, s):
    """URLAUTH (RFC 4467) on both servers: GENURLAUTH of the same rump URLs
    (each access identifier, sections, partial ranges, EXPIRE), URLFETCH
    of what each server signed gives the same data (or NIL on both),
    forged and reset tokens give NIL, RESETKEY's results, and the rump
    URLs both refuse. Tokens differ by design (each server's own key and
    token form): only their place in the URL is compared."""
    def rump(im, uid, access, extra='', uv=None, user='alice%40example.test'):
        return ('imap://%s@loft.example.test/INBOX;UIDVALIDITY=%d/;UID=%d%s'
                ';URLAUTH=%s' % (user, uv or uidvalidity(im), uid, extra, access))

    def both(name, uid, access, extra=''):
        """Signs on both; returns (loft URL, dovecot URL)."""
        got = []
        for im in (lo, dv):
            want = rump(im, uid, access, extra)
            url, t = genurlauth(im, want)
            got.append(url)
            # the mechanism's case is the server's (Dovecot writes
            # "internal"; RFC 4467: case-insensitive)
            r.check('GENURLAUTH %s (%s): signed' % (name, 'loft' if im is lo else 'dovecot'),
                    url is not None and url.startswith(want) and
                    re.fullmatch(r':INTERNAL:[0-9a-fA-F]+', url[len(want):], re.I)
                    is not None, (url, t))
        return got

    def same_fetch(name, pair, want_data=True):
        a, _ = urlfetch_data(lo, [pair[0] or 'none'])
        b, _ = urlfetch_data(dv, [pair[1] or 'none'])
        r.check('URLFETCH %s: same result' % name, a == b and len(a) == 1 and
                (a[0] is not None) == want_data,
                ([x[:80] if x else x for x in a], [x[:80] if x else x for x in b]))

    u1, u2 = s[0], s[1]
    signed = {}
    for access in ('anonymous', 'authuser', 'user+alice%40example.test'):
        signed[access] = both(access, u1, access)
        same_fetch(access, signed[access])
    # a submission server's URL: not for an IMAP session (RFC 4467 3)
    same_fetch('submit+alice over IMAP',
               both('submit+alice', u1, 'submit+alice%40example.test'), False)
    # another user's URL, signed by alice: only bob's sessions may use it
    # (RFC 4467 3); Dovecot 2.3.19 gives its owner the data too
    # (docs/compat.md), so only Loft's answer is checked
    pair = both('user+bob', u1, 'user+bob%40example.test')
    a, _ = urlfetch_data(lo, [pair[0] or 'none'])
    b, _ = urlfetch_data(dv, [pair[1] or 'none'])
    r.check('URLFETCH of a user+bob URL by alice: NIL', a == [None], a)
    print('Dovecot: URLFETCH of a user+bob URL by its owner alice: %s'
          % ('NIL' if b == [None] else 'the data'))
    for extra in ('/;SECTION=HEADER', '/;SECTION=TEXT', '/;SECTION=1',
                  '/;SECTION=HEADER.FIELDS%20(SUBJECT)', '/;PARTIAL=0.20',
                  '/;SECTION=TEXT/;PARTIAL=5.10', '/;PARTIAL=100000.10',
                  ';EXPIRE=2099-01-01T00:00:00Z'):
        same_fetch(extra, both(extra, u2, 'anonymous', extra))
    # several URLs in one URLFETCH, a forged one among them
    la, da = signed['anonymous']

    def forge(url):
        return url[:-1] + ('0' if url[-1] != '0' else '1')
    a, ta = urlfetch_data(lo, [la, forge(la), signed['authuser'][0]])
    b, tb = urlfetch_data(dv, [da, forge(da), signed['authuser'][1]])
    r.check('URLFETCH of three URLs, one forged', a == b and len(a) == 3 and
            a[0] and a[1] is None and a[2], ([x[:40] if x else x for x in a],
                                             [x[:40] if x else x for x in b], ta, tb))
    same_fetch('token of another URL', (la.replace(';UID=%d' % u1, ';UID=%d' % u2),
                                         da.replace(';UID=%d' % u1, ';UID=%d' % u2)), False)
    # rump URLs both refuse (Loft: NO [BADURL...], Dovecot: BAD; the same
    # to a client: nothing signed)
    for name, uid, access, extra, uvd in (
            ('an expired URL', u1, 'anonymous', ';EXPIRE=2001-01-01T00:00:00Z', 0),
            ('another UIDVALIDITY', u1, 'anonymous', '', 1),
            ('a missing message', 999999, 'anonymous', '', 0),
            ('a signed URL', u1, 'anonymous', '', 0)):
        res = []
        for im in (lo, dv):
            uv = uidvalidity(im) + uvd
            want = rump(im, uid, access, extra, uv)
            if name == 'a signed URL':
                want = signed['anonymous'][0 if im is lo else 1]
            url, t = genurlauth(im, want)
            res.append((url, t.split()[1] if len(t.split()) > 1 else t))
        r.check('GENURLAUTH of %s: refused by both' % name,
                all(u is None and w in (b'NO', b'BAD') for u, w in res), res)
    res = []
    for im in (lo, dv):
        url, t = genurlauth(im, rump(im, u1, 'anonymous'), 'XSAMPLE')
        res.append((url, t.split()[1]))
    r.check('GENURLAUTH with an unknown mechanism: refused by both',
            all(u is None and w in (b'NO', b'BAD') for u, w in res), res)
    res = []
    for im in (lo, dv):
        url, t = genurlauth(im, 'imap://alice%40example.test@loft.example.test/NoBox;'
                            'UIDVALIDITY=1/;UID=1;URLAUTH=anonymous')
        res.append((url, t.split()[1]))
    r.check('GENURLAUTH in a missing mailbox: refused by both',
            all(u is None and w in (b'NO', b'BAD') for u, w in res), res)
    # RESETKEY: of the mailbox (tagged OK [URLMECH INTERNAL]), then of all
    for q, code in (('RESETKEY INBOX', True), ('RESETKEY INBOX INTERNAL', True),
                    ('RESETKEY NoSuchBox', None), ('RESETKEY INBOX XSAMPLE', None)):
        tl, td = lo.cmd(q)[1], dv.cmd(q)[1]
        word = [t.split()[1] for t in (tl, td)]
        mech = [b'[URLMECH INTERNAL]' in t for t in (tl, td)]
        r.check('%s: same result' % q, word[0] == word[1] and
                (code is None or mech == [True, True]), (tl, td))
    same_fetch('after RESETKEY INBOX', signed['authuser'], False)
    fresh = both('after RESETKEY INBOX', u1, 'authuser')
    same_fetch('signed after RESETKEY INBOX', fresh)
    tl, td = lo.cmd('RESETKEY')[1], dv.cmd('RESETKEY')[1]
    r.check('RESETKEY: OK on both', tl.split()[1] == td.split()[1] == b'OK', (tl, td))
    same_fetch('after RESETKEY', fresh, False)


if __name__ == '__main__':
    sys.exit(main())
