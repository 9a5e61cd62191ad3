#!/usr/bin/env python3
"""Deterministic corpus of MIME messages for the Dovecot differential test.

    python3 tests/corpus/gen.py OUTDIR [--seed N] [--count N] [--mutate P]

Writes OUTDIR/NNNN-shape.eml: hand-made messages for every MIME shape and
the broken forms real mail has (tests/corpus/broken/*.eml are copied as
they are), then seeded random trees (multipart nesting, message/rfc822,
every transfer encoding, charsets, RFC 2231 and RFC 2047 values) up to
--count messages in all (default 320). The same seed gives the same bytes.
Messages use CRLF unless their name says lf. With --mutate P a share P of
the random messages is damaged (lines cut, lost, doubled, stray boundaries
and specials), for longer differential runs against Dovecot.
"""

import base64
import os
import quopri
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

NAMES = ['Alice Example', 'Bob', 'Ça Va', 'Jörg Müller', 'O\'Brien, Pat',
         'Dr. "Who"', '山田太郎', 'x']
WORDS = ('lorem ipsum dolor sit amet consectetur adipiscing elit sed do '
         'eiusmod tempor incididunt ut labore et dolore magna aliqua '
         'über café naïve façade 日本語 текст').split()
CHARSETS = ['us-ascii', 'utf-8', 'iso-8859-1', 'windows-1252', 'koi8-r',
            'iso-2022-jp', 'UTF-8', 'x-unknown']


def crlf(s):
    return s.replace('\r\n', '\n').replace('\n', '\r\n')


def enc_word(text, charset='utf-8', q=False):
    raw = text.encode(charset, 'replace')
    if q:
        body = ''.join(c if (c.isalnum() and ord(c) < 128) else
                       '=%02X' % b for c, b in
                       ((chr(b), b) for b in raw))
        return '=?%s?Q?%s?=' % (charset, body)
    return '=?%s?B?%s?=' % (charset, base64.b64encode(raw).decode())


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.n = 0

    def words(self, lo, hi):
        return ' '.join(self.r.choice(WORDS) for _ in range(self.r.randint(lo, hi)))

    def addr(self):
        r = self.r
        local = r.choice(['alice', 'bob', 'c.d', 'first.last', 'x+tag'])
        dom = r.choice(['example.com', 'example.test', 'mail.example.org'])
        kind = r.randint(0, 6)
        name = r.choice(NAMES)
        if kind == 0:
            return '%s@%s' % (local, dom)
        if kind == 1:
            return '<%s@%s>' % (local, dom)
        if kind == 2:
            return '"%s" <%s@%s>' % (name.replace('"', '\\"'), local, dom)
        if kind == 3:
            return '%s <%s@%s>' % (enc_word(name, q=r.random() < .5), local, dom)
        if kind == 4:
            return '%s@%s (%s)' % (local, dom, name.replace('(', '').replace(')', ''))
        if kind == 5:
            return 'Plain Name <%s@%s>' % (local, dom)
        return '"%s" <%s@%s>' % (self.words(1, 3), local, dom)

    def addr_list(self):
        r = self.r
        items = [self.addr() for _ in range(r.randint(1, 3))]
        if r.random() < .15:
            items.append('team: %s, %s;' % (self.addr(), self.addr()))
        if r.random() < .05:
            items.append('undisclosed-recipients:;')
        sep = ',\r\n\t' if r.random() < .3 else ', '
        return sep.join(items)

    def subject(self):
        r = self.r
        k = r.randint(0, 5)
        base = self.words(1, 8)
        if k == 0:
            return base
        if k == 1:
            return 'Re: ' + base
        if k == 2:
            return enc_word(base, r.choice(['utf-8', 'iso-8859-1']), q=r.random() < .5)
        if k == 3:
            return 'Fwd: [list] ' + base + ' (fwd)'
        if k == 4:
            return base + '\r\n\t' + self.words(1, 4)
        return base + '  with  "quotes"  and\ttab'

    def headers(self, top=True):
        r = self.r
        h = []
        if top:
            h.append('Return-Path: <bounce@example.com>')
            h.append('From: ' + self.addr_list() if r.random() < .1 else 'From: ' + self.addr())
            h.append('To: ' + self.addr_list())
            if r.random() < .4:
                h.append('Cc: ' + self.addr_list())
            if r.random() < .1:
                h.append('Bcc: ' + self.addr())
            if r.random() < .2:
                h.append('Reply-To: ' + self.addr())
            if r.random() < .1:
                h.append('Sender: ' + self.addr())
            h.append('Subject: ' + self.subject())
            d = r.choice(['Mon, 2 Jan 2006 15:04:05 -0700', 'Tue, 30 Jun 2026 23:59:60 +0000',
                          '2 Jan 06 15:04 EST', 'Fri, 21 Nov 1997 09:55:06 -0600 (CST)',
                          'not a date', 'Thu, 01 Jan 1970 00:00:00 GMT'])
            h.append('Date: ' + d)
            h.append('Message-ID: <%d.%d@example.com>' % (self.n, r.randint(1, 10**9)))
            if r.random() < .3:
                h.append('In-Reply-To: <parent.%d@example.com>' % r.randint(1, 99))
                h.append('References: <a@example.com>\r\n <parent@example.com>')
            if r.random() < .9:
                h.append('MIME-Version: 1.0')
        return h

    def leaf(self, depth):
        r = self.r
        kind = r.choice(['plain', 'plain', 'html', 'pdf', 'image', 'plain8',
                         'calendar', 'unknowncte', 'noct', 'message'])
        h = []
        cs = r.choice(CHARSETS)
        if kind == 'message' and depth < 4:
            inner = self.message(depth + 1)
            h.append('Content-Type: message/rfc822')
            if r.random() < .5:
                h.append('Content-Disposition: inline')
            return h, inner
        text = self.words(5, 60) + '\n' + self.words(0, 30) + '\n'
        if kind in ('plain', 'plain8', 'noct'):
            if kind != 'noct':
                h.append('Content-Type: text/plain; charset=%s%s' %
                         (cs if r.random() < .7 else '"%s"' % cs,
                          '; format=flowed' if r.random() < .2 else ''))
            body = self.encode_text(h, text, cs)
        elif kind == 'html':
            html = '<html><body><p>%s</p><br><b>%s</b> &amp; &#233;</body></html>\n' % (
                self.words(3, 20), self.words(1, 4))
            h.append('Content-Type: text/html; charset="utf-8"')
            body = self.encode_text(h, html, 'utf-8')
        elif kind == 'calendar':
            h.append('Content-Type: text/calendar; method=REQUEST; charset=UTF-8')
            body = crlf('BEGIN:VCALENDAR\nEND:VCALENDAR\n')
        elif kind == 'unknowncte':
            h.append('Content-Type: application/octet-stream')
            h.append('Content-Transfer-Encoding: x-uuencode')
            body = crlf('begin 644 x\nM86)C\n`\nend\n')
        else:
            data = bytes(r.randrange(256) for _ in range(r.randint(0, 600)))
            fname = r.choice(['report.pdf', 'naïve file.pdf', 'a "quoted" name.png',
                              'very long file name that needs continuation lines in rfc 2231.pdf'])
            ctype = 'application/pdf' if kind == 'pdf' else 'image/png'
            if all(ord(c) < 128 for c in fname) and '"' not in fname and len(fname) < 40:
                h.append('Content-Type: %s; name="%s"' % (ctype, fname))
                h.append('Content-Disposition: attachment; filename="%s"' % fname)
            elif len(fname) >= 40:
                h.append('Content-Type: %s' % ctype)
                h.append('Content-Disposition: attachment;\r\n filename*0="%s";\r\n filename*1="%s"'
                         % (fname[:30], fname[30:]))
            else:
                enc = ''.join(c if c.isalnum() or c in '.-' else '%%%02X' % b
                              for c in fname for b in c.encode())
                h.append('Content-Type: %s; name="%s"' % (ctype, enc_word(fname)))
                h.append("Content-Disposition: attachment; filename*=utf-8''%s" % enc)
            h.append('Content-Transfer-Encoding: base64')
            if r.random() < .3:
                h.append('Content-ID: <part%d@example.com>' % r.randint(1, 999))
            if r.random() < .2:
                h.append('Content-Description: %s' % self.words(1, 4))
            if r.random() < .1:
                h.append('Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==')
            if r.random() < .1:
                h.append('Content-Language: en, de')
            if r.random() < .1:
                h.append('Content-Location: http://example.com/x.pdf')
            b = base64.encodebytes(data).decode()
            body = crlf(b)
        return h, body

    def encode_text(self, h, text, cs):
        r = self.r
        try:
            raw = text.encode(cs if cs != 'x-unknown' else 'utf-8', 'replace')
        except LookupError:
            raw = text.encode('utf-8')
        k = r.randint(0, 3)
        if k == 0 and all(b < 128 for b in raw):
            return crlf(raw.decode())
        if k <= 1:
            h.append('Content-Transfer-Encoding: quoted-printable')
            return crlf(quopri.encodestring(raw).decode())
        if k == 2:
            h.append('Content-Transfer-Encoding: base64')
            return crlf(base64.encodebytes(raw).decode())
        h.append('Content-Transfer-Encoding: 8bit')
        return crlf(raw.decode('latin-1'))

    def multipart(self, depth):
        r = self.r
        sub = r.choice(['mixed', 'alternative', 'related', 'mixed', 'digest', 'signed'])
        b = '=_b%d_%d' % (depth, r.randint(1, 10**6))
        params = 'boundary="%s"' % b if r.random() < .8 else 'boundary=%s' % b.replace('=', 'q')
        if 'boundary=q' in params or params.startswith('boundary=_'):
            b = b.replace('=', 'q')
        h = ['Content-Type: multipart/%s;\r\n\t%s' % (sub, params)]
        parts = []
        for _ in range(r.randint(1, 4)):
            if depth < 3 and r.random() < .25:
                ph, pb = self.multipart(depth + 1)
            elif sub == 'digest':
                ph, pb = ([] if r.random() < .7 else ['Content-Type: message/rfc822']), self.message(depth + 1)
            else:
                ph, pb = self.leaf(depth)
            parts.append((ph, pb))
        out = ''
        if r.random() < .3:
            out += 'This is a multi-part message in MIME format.\r\n'
        for ph, pb in parts:
            out += '--%s\r\n' % b
            out += ''.join(x + '\r\n' for x in ph) + '\r\n' + pb
            if not pb.endswith('\r\n'):
                out += '\r\n'
        out += '--%s--\r\n' % b
        if r.random() < .2:
            out += 'epilogue text\r\n'
        return h, out

    def message(self, depth=0):
        r = self.r
        h = self.headers(top=True)
        if depth < 3 and r.random() < .6:
            ph, pb = self.multipart(depth + 1)
        else:
            ph, pb = self.leaf(depth + 1)
        return ''.join(x + '\r\n' for x in h + ph) + '\r\n' + pb


MUTATION_BYTES = b' \t:;"<>()=?-\r\n@,[]\\/*\'%'


def mutate(r, data):
    """A broken variant of data: the damage real mail suffers (cut off,
    lines lost or doubled, stray boundaries and specials, lost blank lines).
    Never NUL: IMAP APPEND cannot carry it outside literal8."""
    lines = data.split(b'\r\n')
    for _ in range(r.randint(1, 4)):
        k = r.randint(0, 7)
        i = r.randrange(len(lines))
        if k == 0 and len(lines) > 1:
            del lines[i]
        elif k == 1:
            lines.insert(i, lines[i])
        elif k == 2:
            bnd = [l for l in lines if l.startswith(b'--')]
            lines.insert(i, r.choice(bnd) if bnd else b'--')
        elif k == 3 and lines[i]:
            j = r.randrange(len(lines[i]))
            lines[i] = lines[i][:j] + bytes([r.choice(MUTATION_BYTES)]) + lines[i][j + 1:]
        elif k == 4 and b'' in lines:
            del lines[lines.index(b'')]
        elif k == 5:
            lines.insert(i, b' ' + r.choice([b'', b'folded', b'=?utf-8?q?x?=']))
        elif k == 6 and lines[i]:
            lines[i] = lines[i][:r.randrange(len(lines[i]) + 1)]
        else:
            lines.insert(i, r.choice([b'Content-Type: multipart/mixed; boundary=x',
                                      b'--x', b'--x--', b'MIME-Version: 1.0',
                                      b'Content-Type: message/rfc822',
                                      b'Content-Transfer-Encoding: base64', b'']))
    out = b'\r\n'.join(lines)
    if r.random() < .2:
        out = out[:r.randrange(len(out) + 1)]
    return out


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    out = args[0]
    seed = int(args[args.index('--seed') + 1]) if '--seed' in args else 5322
    count = int(args[args.index('--count') + 1]) if '--count' in args else 320
    # --mutate P: that share (0..1) of the random messages is damaged
    mutate_share = float(args[args.index('--mutate') + 1]) if '--mutate' in args else 0.0
    os.makedirs(out, exist_ok=True)
    n = 0
    broken = os.path.join(HERE, 'broken')
    for name in sorted(os.listdir(broken)) if os.path.isdir(broken) else []:
        with open(os.path.join(broken, name), 'rb') as f:
            data = f.read()
        with open(os.path.join(out, '%04d-%s' % (n, name)), 'wb') as f:
            f.write(data)
        n += 1
    g = Gen(seed)
    while n < count:
        g.n = n
        msg = g.message()
        data = msg.encode('utf-8', 'surrogateescape') if isinstance(msg, str) else msg
        try:
            data = msg.encode('latin-1')
        except UnicodeEncodeError:
            data = msg.encode('utf-8')
        kind = 'random'
        if mutate_share and g.r.random() < mutate_share:
            data = mutate(g.r, data)
            kind = 'mutated'
        with open(os.path.join(out, '%04d-%s.eml' % (n, kind)), 'wb') as f:
            f.write(data)
        n += 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
