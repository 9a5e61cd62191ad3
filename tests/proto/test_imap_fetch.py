#!/usr/bin/env python3
"""IMAP FETCH conversations against a private loftd: every attribute, the
\\Seen side effect, sections and partials, BINARY with NULs, macros, UID
FETCH, CONDSTORE/QRESYNC modifiers, and the error cases (each must leave
the session usable). Plain sockets, so the exact bytes are checked."""

import re
import socket
import sys
import time

from loftenv import Loft, Results, SLOW

ATTACHMENT = bytes(range(256)) * 40          # binary, has NUL bytes
B64 = __import__('base64').encodebytes(ATTACHMENT).replace(b'\n', b'\r\n')

MULTIPART = (
    b'From: Alice Example <alice@example.test>\r\n'
    b'To: Bob <bob@example.test>, carol@example.test\r\n'
    b'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and a file\r\n'
    b'Date: Tue, 2 Jan 2024 10:00:00 +0100\r\n'
    b'Message-ID: <m1@example.test>\r\n'
    b'MIME-Version: 1.0\r\n'
    b'Content-Type: multipart/mixed; boundary="BB"\r\n'
    b'\r\n'
    b'preamble\r\n'
    b'--BB\r\n'
    b'Content-Type: text/plain; charset=utf-8\r\n'
    b'Content-Transfer-Encoding: quoted-printable\r\n'
    b'\r\n'
    b'Hello Bob, caf=C3=A9 time.\r\n'
    b'--BB\r\n'
    b'Content-Type: application/octet-stream; name="blob.bin"\r\n'
    b'Content-Transfer-Encoding: base64\r\n'
    b'Content-Disposition: attachment; filename="blob.bin"\r\n'
    b'\r\n' + B64 +
    b'--BB--\r\n')

WITH_NUL = (b'From: nul@example.test\r\nSubject: nul\r\n\r\n'
            b'a\x00b\x00c\r\n')

SIMPLE = (b'From: x@example.test\r\nSubject: plain\r\n'
          b'Date: Wed, 3 Jan 2024 12:00:00 +0000\r\n\r\nline one\r\n')


class Imap:
    """A minimal IMAP conversation over a socket: cmd() returns the
    untagged responses (literals inlined) and the tagged line."""

    def __init__(self, env):
        self.s = env.raw('imap')
        self.f = self.s.makefile('rb')
        self.n = 0
        self.greeting = self.f.readline()

    def send(self, data):
        self.s.sendall(data)

    def read_response(self):
        line = self.f.readline()
        if not line:
            raise EOFError('connection closed')
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
        tag = b'F%d' % self.n
        self.send(tag + b' ' + text + b'\r\n')
        untagged = []
        while True:
            line = self.read_response()
            if line.startswith(tag + b' '):
                return untagged, line
            untagged.append(line)

    def ok(self, text):
        u, t = self.cmd(text)
        if b' OK' not in t[:12]:
            raise RuntimeError('%r -> %r' % (text[:200], t))
        return u

    def append(self, mailbox, msg, flags=b''):
        return self.ok(b'APPEND %s %s{%d+}\r\n' % (mailbox, flags, len(msg))
                       + msg)


def tokenize(data, i=0):
    """Parses an IMAP response fragment into nested lists of bytes."""
    out = []
    n = len(data)
    while i < n:
        c = data[i:i + 1]
        if c in (b' ', b'\r', b'\n'):
            i += 1
        elif c == b'(':
            sub, i = tokenize(data, i + 1)
            out.append(sub)
        elif c == b')':
            return out, i + 1
        elif c == b'"':
            j = i + 1
            buf = b''
            while data[j:j + 1] != b'"':
                if data[j:j + 1] == b'\\':
                    j += 1
                buf += data[j:j + 1]
                j += 1
            out.append(buf)
            i = j + 1
        elif c in (b'{', b'~'):
            m = re.match(rb'~?\{(\d+)\}\r\n', data[i:])
            ln = int(m.group(1))
            start = i + m.end()
            out.append(data[start:start + ln])
            i = start + ln
        else:
            j = i
            depth = 0
            while j < n:
                ch = data[j:j + 1]
                if ch == b'[':
                    depth += 1
                elif ch == b']':
                    depth -= 1
                elif depth == 0 and ch in (b' ', b'(', b')', b'\r'):
                    break
                j += 1
            out.append(data[i:j])
            i = j
    return out, i


def fetch_items(line):
    """'* 3 FETCH (A x B y)' -> (3, {A: x, B: y})"""
    m = re.match(rb'\* (\d+) FETCH ', line)
    toks, _ = tokenize(line[m.end():])
    lst = toks[0]
    return int(m.group(1)), {lst[k].upper(): lst[k + 1]
                             for k in range(0, len(lst), 2)}


def fetch1(im, text):
    u, t = im.cmd(text)
    items = [fetch_items(x) for x in u if re.match(rb'\* \d+ FETCH', x)]
    return items, t, u


def main():
    r = Results()
    with Loft() as env:
        im = Imap(env)
        im.ok('LOGIN alice@example.test tea-party-rabbit-hole')
        im.append(b'INBOX', MULTIPART)
        im.append(b'INBOX', WITH_NUL, b'(\\Flagged) ')
        im.append(b'INBOX', SIMPLE)
        crlf_multipart = MULTIPART
        u = im.ok('SELECT INBOX')
        r.check('select exists', any(b'3 EXISTS' in x for x in u), u)

        # ---- metadata attributes
        items, t, _ = fetch1(im, 'FETCH 1:3 (FLAGS INTERNALDATE RFC822.SIZE)')
        r.check('fetch 3 messages', len(items) == 3 and b'OK' in t, (items, t))
        seqs = [s for s, _ in items]
        r.check('fetch seq order', seqs == [1, 2, 3], seqs)
        d = dict(items)
        r.check('rfc822.size', d[1][b'RFC822.SIZE'] == str(len(crlf_multipart)).encode(),
                d[1].get(b'RFC822.SIZE'))
        r.check('internaldate format',
                re.match(rb'^[ 0-9]\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d [+-]\d{4}$',
                         d[1][b'INTERNALDATE']) is not None, d[1][b'INTERNALDATE'])
        r.check('flags of 2', d[2][b'FLAGS'] == [b'\\Flagged', b'\\Recent'] or
                sorted(d[2][b'FLAGS']) == sorted([b'\\Flagged', b'\\Recent']),
                d[2][b'FLAGS'])

        items, t, _ = fetch1(im, 'FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)')
        env_ = items[0][1][b'ENVELOPE']
        r.check('envelope subject', env_[1] == b'=?utf-8?q?Gr=C3=BC=C3=9Fe?= and a file', env_[1])
        r.check('envelope from', env_[2] == [[b'Alice Example', b'NIL', b'alice', b'example.test']], env_[2])
        r.check('envelope to count', len(env_[5]) == 2, env_[5])
        bs = items[0][1][b'BODYSTRUCTURE']
        r.check('bodystructure multipart', isinstance(bs[0], list) and bs[2].upper() == b'MIXED', bs)
        r.check('body no ext', isinstance(items[0][1][b'BODY'][0], list), items[0][1][b'BODY'])

        # ---- PEEK keeps \Seen off; BODY[] sets it and reports FLAGS
        items, t, _ = fetch1(im, 'FETCH 1 (BODY.PEEK[])')
        r.check('body.peek[] bytes', items[0][1][b'BODY[]'] == crlf_multipart,
                len(items[0][1].get(b'BODY[]', b'')))
        items, t, _ = fetch1(im, 'FETCH 1 (FLAGS)')
        r.check('peek left unseen', b'\\Seen' not in items[0][1][b'FLAGS'], items)
        items, t, u = fetch1(im, 'FETCH 1 (BODY[TEXT])')
        r.check('body[text] sets seen with FLAGS', len(items) == 1 and
                b'\\Seen' in items[0][1].get(b'FLAGS', []), items)
        r.check('no duplicate flags update', len(u) == 1, u)
        items, t, _ = fetch1(im, 'FETCH 1 (FLAGS)')
        r.check('seen stored', b'\\Seen' in items[0][1][b'FLAGS'], items)

        # ---- sections
        items, t, _ = fetch1(im, 'FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject To)])')
        hf = items[0][1]
        key = [k for k in hf if k.startswith(b'BODY[HEADER.FIELDS')]
        r.check('header.fields name', key == [b'BODY[HEADER.FIELDS (SUBJECT TO)]'], key)
        r.check('header.fields bytes', hf[key[0]] ==
                b'To: Bob <bob@example.test>, carol@example.test\r\n'
                b'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and a file\r\n\r\n', hf[key[0]])
        items, t, _ = fetch1(im, 'FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Subject To From Date Message-ID MIME-Version)])')
        v = list(items[0][1].values())[0]
        r.check('header.fields.not', v == b'Content-Type: multipart/mixed; boundary="BB"\r\n\r\n', v)
        items, t, _ = fetch1(im, 'FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[1]<6.3>)')
        it = items[0][1]
        r.check('body[1]', it.get(b'BODY[1]') == b'Hello Bob, caf=C3=A9 time.', it.get(b'BODY[1]'))
        r.check('body[2.mime]', it.get(b'BODY[2.MIME]', b'').startswith(b'Content-Type: application/octet-stream')
                and it[b'BODY[2.MIME]'].endswith(b'\r\n\r\n'), it.get(b'BODY[2.MIME]'))
        r.check('partial', it.get(b'BODY[1]<6>') == b'Bob', it)
        items, t, _ = fetch1(im, 'FETCH 1 (BODY.PEEK[3] BODY.PEEK[1]<500.10>)')
        it = items[0][1]
        r.check('missing part empty', it.get(b'BODY[3]') == b'', it)
        r.check('partial past end empty', it.get(b'BODY[1]<500>') == b'', it)

        # ---- BINARY
        items, t, u = fetch1(im, 'FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[1])')
        it = items[0][1]
        r.check('binary[2] decoded', it.get(b'BINARY[2]') == ATTACHMENT, len(it.get(b'BINARY[2]', b'')))
        r.check('binary literal8 for NUL', b'BINARY[2] ~{' in u[0], u[0][:80])
        r.check('binary.size', it.get(b'BINARY.SIZE[2]') == str(len(ATTACHMENT)).encode(), it.get(b'BINARY.SIZE[2]'))
        r.check('binary[1] qp decoded', it.get(b'BINARY[1]') == 'Hello Bob, café time.'.encode(), it.get(b'BINARY[1]'))

        # ---- NUL: replaced in BODY, kept in BINARY
        items, t, u = fetch1(im, 'FETCH 2 (BODY.PEEK[TEXT] BINARY.PEEK[1])')
        it = items[0][1]
        r.check('nul replaced in body', it.get(b'BODY[TEXT]') == b'a\x80b\x80c\r\n', it.get(b'BODY[TEXT]'))
        r.check('nul kept in binary', it.get(b'BINARY[1]') == b'a\x00b\x00c\r\n', it.get(b'BINARY[1]'))

        # ---- RFC822 forms and macros
        items, t, _ = fetch1(im, 'FETCH 3 (RFC822.HEADER RFC822.SIZE)')
        it = items[0][1]
        r.check('rfc822.header', it.get(b'RFC822.HEADER', b'').endswith(b'\r\n\r\n') and
                it[b'RFC822.HEADER'].startswith(b'From: x@example.test'), it)
        items, t, _ = fetch1(im, 'FETCH 3 (FLAGS)')
        r.check('rfc822.header does not set seen', b'\\Seen' not in items[0][1][b'FLAGS'], items)
        items, t, _ = fetch1(im, 'FETCH 3 RFC822.TEXT')
        r.check('rfc822.text', items[0][1].get(b'RFC822.TEXT') == b'line one\r\n', items)
        r.check('rfc822.text sets seen', b'\\Seen' in items[0][1].get(b'FLAGS', []), items)
        items, t, _ = fetch1(im, 'FETCH 3 RFC822')
        r.check('rfc822', items[0][1].get(b'RFC822') == SIMPLE, items)
        for macro, keys in (('FAST', {b'FLAGS', b'INTERNALDATE', b'RFC822.SIZE'}),
                            ('ALL', {b'FLAGS', b'INTERNALDATE', b'RFC822.SIZE', b'ENVELOPE'}),
                            ('FULL', {b'FLAGS', b'INTERNALDATE', b'RFC822.SIZE', b'ENVELOPE', b'BODY'})):
            items, t, _ = fetch1(im, 'FETCH 3 ' + macro)
            r.check('macro ' + macro, set(items[0][1]) == keys, items[0][1].keys())

        # ---- UID FETCH, object ids, savedate, modseq
        items, t, u = fetch1(im, 'UID FETCH 1:* (FLAGS)')
        r.check('uid fetch carries UID', all(b'UID' in x for _, x in items) and len(items) == 3, items)
        r.check('uid first', u[0].startswith(b'* 1 FETCH (UID 1 '), u[0])
        items, t, _ = fetch1(im, 'FETCH 1:2 (EMAILID THREADID SAVEDATE MODSEQ)')
        a, b = items[0][1], items[1][1]
        r.check('emailid', isinstance(a.get(b'EMAILID'), list) and len(a[b'EMAILID'][0]) > 0, a)
        r.check('emailids differ', a.get(b'EMAILID') != b.get(b'EMAILID'), (a, b))
        r.check('threadid', b'THREADID' in a, a)
        r.check('savedate', re.match(rb'^\d\d-[A-Z][a-z]{2}-\d{4} ', a.get(b'SAVEDATE', b'')) is not None, a)
        r.check('modseq', isinstance(a.get(b'MODSEQ'), list) and int(a[b'MODSEQ'][0]) > 0, a)

        # ---- CHANGEDSINCE and VANISHED
        items, t, _ = fetch1(im, 'FETCH 1:* (FLAGS MODSEQ)')
        ms = {s: int(x[b'MODSEQ'][0]) for s, x in items}
        top = max(ms.values())
        im.ok('STORE 2 +FLAGS.SILENT (\\Answered)')
        items, t, _ = fetch1(im, 'FETCH 1:* (FLAGS) (CHANGEDSINCE %d)' % top)
        r.check('changedsince only changed', [s for s, _ in items] == [2], items)
        r.check('changedsince adds modseq', b'MODSEQ' in items[0][1] if items else False, items)
        u, t = im.cmd('UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)')
        r.check('vanished needs qresync', t.split()[1] == b'BAD', t)
        im.ok('ENABLE QRESYNC')
        im.ok('STORE 3 +FLAGS.SILENT (\\Deleted)')
        items, t, _ = fetch1(im, 'FETCH 3 (MODSEQ)')
        before = int(items[0][1][b'MODSEQ'][0])
        im.ok('EXPUNGE')
        u, t = im.cmd('UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)' % before)
        r.check('vanished earlier', b'* VANISHED (EARLIER) 3\r\n' in u, u)
        r.check('vanished ok', b'OK' in t, t)

        items, t, _ = fetch1(im, 'FETCH 2 (BODY[TEXT])')
        it = items[0][1] if items else {}
        r.check('seen under condstore carries modseq', b'\\Seen' in it.get(b'FLAGS', [])
                and b'MODSEQ' in it, it)

        # ---- RFC 3516 4.2: an encoding Loft cannot undo
        uu = (b'Subject: uu\r\nContent-Type: application/octet-stream\r\n'
              b'Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\nM86)C\r\n`\r\nend\r\n')
        im.append(b'INBOX', uu)
        im.ok('NOOP')
        u, t = im.cmd('UID FETCH 4 (BINARY.PEEK[1])')
        r.check('unknown cte', t.split()[1] == b'NO' and b'[UNKNOWN-CTE]' in t and
                not any(b'FETCH' in x for x in u), (u, t))
        u, t = im.cmd('UID FETCH 4 (BODY.PEEK[1])')
        r.check('body of unknown cte is fine', t.split()[1] == b'OK' and
                any(b'BODY[1] {' in x for x in u), (u, t))

        # ---- errors, and the session goes on
        for bad in ('FETCH', 'FETCH 1', 'FETCH 1 (BOGUS)', 'FETCH 1 BODY[0]',
                    'FETCH 1 (BODY[1]<5>)', 'FETCH 1 (BODY[1]<1.0>)',
                    'FETCH 99 FLAGS', 'FETCH 1 FLAGS extra', 'FETCH x FLAGS',
                    'FETCH 1 (FLAGS) (CHANGEDSINCE x)',
                    'FETCH 1 (BINARY[1.HEADER])', 'FETCH 1 BODY[HEADER.FIELDS ()]'):
            u, t = im.cmd(bad)
            r.check('bad: ' + bad, t.split()[1] == b'BAD', t)
        items, t, _ = fetch1(im, 'FETCH 1 (UID)')
        r.check('session usable after errors', len(items) == 1 and b'OK' in t, t)

        # ---- a large message streams intact
        big = (b'Subject: big\r\n\r\n' +
               b''.join(b'%07d ' % i + b'x' * 70 + b'\r\n' for i in range(40000)))
        im.append(b'INBOX', big)
        im.ok('NOOP')
        t0 = time.time()
        items, t, _ = fetch1(im, 'UID FETCH 5 (BODY.PEEK[] RFC822.SIZE)')
        r.check('big body intact', items and items[0][1].get(b'BODY[]') == big,
                len(items[0][1].get(b'BODY[]', b'')) if items else None)
        r.check('big rfc822.size', items and items[0][1].get(b'RFC822.SIZE') == str(len(big)).encode(), items and items[0][1].get(b'RFC822.SIZE'))

        # ---- FETCH 1:* (FLAGS) over a few thousand messages
        n = 1000
        chunk = b''
        for i in range(n):
            m = b'Subject: bulk %d\r\n\r\nbody %d\r\n' % (i, i)
            chunk += b'A%d APPEND INBOX {%d+}\r\n' % (i, len(m)) + m + b'\r\n'
        im.send(chunk)
        done = 0
        while done < n:
            line = im.read_response()
            if re.match(rb'A\d+ ', line):
                done += 1
        im.ok('NOOP')
        t0 = time.time()
        items, t, _ = fetch1(im, 'FETCH 1:* (FLAGS)')
        dt = time.time() - t0
        r.check('fetch 1:* count', len(items) == n + 4, len(items))
        r.check('fetch 1:* fast', dt < 5 * SLOW, dt)
        print('FETCH 1:* (FLAGS) over %d messages: %.3f s' % (len(items), dt))
    sys.exit(r.finish())


if __name__ == '__main__':
    main()
